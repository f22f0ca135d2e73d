//! The normal case's edges (PBFT §4.2) that the paper's scenarios do not reach: a backup's
//! window byte budget filled exactly, a pre-prepare delivered twice, prepares that disagree
//! with the pre-prepare, and a prepared certificate built from more prepares than it needs.
//! Each found by cargo-mutants (consensus shard 5) with every consensus test passing.

use scbe_core::consensus::limits::request_bytes;
use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;
use scbe_wire::{encode_envelope, open, ProtoCodec};

/// Two batches that fill a backup's window budget to the byte are accepted: the budget bounds
/// what is held, it is not a limit to stay under. (`> budget` as `>=` or `==` dropped the
/// second pre-prepare at every backup.)
#[test]
fn batches_filling_the_window_budget_exactly_are_accepted() {
    let mut c = Cluster::new_with(4, 64, |cfg| {
        cfg.max_inflight_batches = 8;
        cfg.max_request_bytes = 2048;
        cfg.max_batch_bytes = 2048;
        cfg.max_window_bytes = 4096;
    });
    let len = 2048 - limits::REQUEST_FRAMING_BYTES - 5;
    let requests = [c.request_sized(1, len), c.request_sized(2, len)];
    assert!(
        requests.iter().all(|r| request_bytes(r) == 2048),
        "each request takes half the budget: {:?}",
        requests.iter().map(request_bytes).collect::<Vec<_>>()
    );
    for r in requests {
        c.input(0, Input::ClientRequest(r));
    }
    assert_eq!(
        c.broadcasts(0, Kind::PrePrepare),
        2,
        "both proposed at once"
    );
    c.run();
    for i in 0..4 {
        assert_eq!(c.executed_requests(i), 2, "replica {i}");
        let over = c
            .replica(i)
            .dropped()
            .get("pre-prepare over the window byte budget");
        assert_eq!(over, None, "replica {i}");
    }
}

/// The bytes of the pre-prepare queued for replica `to` (to deliver again later).
fn queued_pre_prepare_to(c: &Cluster, to: usize) -> Vec<u8> {
    c.queue
        .iter()
        .find(|(_, t, bytes)| {
            *t == to && open(bytes, &c.dir).is_ok_and(|m| m.envelope().kind == Kind::PrePrepare)
        })
        .map(|(_, _, bytes)| bytes.clone())
        .expect("a pre-prepare queued for the replica")
}

/// A pre-prepare delivered twice is a duplicate, not an equivocation. (`==` as `!=` named
/// every duplicate an equivocation, and every equivocation a duplicate.)
#[test]
fn a_pre_prepare_delivered_twice_is_counted_as_a_duplicate() {
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    let bytes = queued_pre_prepare_to(&c, 3);
    c.run();
    let again = open(&bytes, &c.dir).expect("opens");
    c.input(3, Input::Message(again));
    let dropped = c.replica(3).dropped();
    assert_eq!(dropped.get("duplicate pre-prepare"), Some(&1));
    assert_eq!(dropped.get("equivocating pre-prepare"), None);
}

/// A prepare for another digest does not count toward the certificate: with the pre-prepare,
/// its own prepare and a mismatching one, a backup of four is not prepared (it needs two
/// matching backups), and commits only once a matching one arrives. (`&&` as `||` in the
/// filter counted it.)
#[test]
fn a_prepare_for_another_digest_does_not_count() {
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    // Only the pre-prepare reaches replica 3; everything else is set aside.
    let mut rest = Vec::new();
    while let Some((_, to, bytes)) = c.next_queued() {
        let m = open(&bytes, &c.dir).expect("opens");
        if to == 3 && m.envelope().kind == Kind::PrePrepare {
            c.input(3, Input::Message(m));
        } else {
            rest.push((to, bytes));
        }
    }
    let wrong = Vote {
        view: View(0),
        seq: Seq(1),
        digest: Digest([9; 32]),
    };
    let m = c.signed_by(1, Kind::Prepare, ProtoCodec.encode_vote(&wrong));
    c.input(3, Input::Message(m));
    assert_eq!(
        c.broadcasts(3, Kind::Commit),
        0,
        "one matching backup is not enough"
    );
    for (to, bytes) in rest {
        let m = open(&bytes, &c.dir).expect("opens");
        c.input(to, Input::Message(m));
    }
    c.run();
    assert_eq!(c.broadcasts(3, Kind::Commit), 1);
    assert_eq!(c.executed_requests(3), 1);
}

/// A prepared certificate carries the pre-prepare and exactly q - 1 matching prepares, even
/// when more have arrived (here all three backups' prepares were in before the pre-prepare):
/// view changes carry these certificates, sized by that count. (`q - 1` as `q + 1` put every
/// prepare in.)
#[test]
fn a_prepared_certificate_carries_exactly_q_minus_1_prepares() {
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    let mut late = Vec::new();
    while let Some((_, to, bytes)) = c.next_queued() {
        let m = open(&bytes, &c.dir).expect("opens");
        if to == 3 && m.envelope().kind == Kind::PrePrepare {
            late.push(m);
        } else {
            c.input(to, Input::Message(m));
        }
    }
    for m in late {
        c.input(3, Input::Message(m));
    }
    c.run();
    let certs: Vec<usize> = c.stores[3]
        .iter()
        .filter_map(|r| match r {
            Record::Prepared(p) => Some(p.prepares.len()),
            _ => None,
        })
        .collect();
    assert_eq!(certs, vec![c.config(3).quorum() - 1]);
    assert_eq!(c.executed_requests(3), 1);
}

/// Each replica persists one commit certificate per decided seq, however many commits arrive
/// after the quorum. (`!prepared || committed` as `&&` built and persisted it again on every
/// late commit.)
#[test]
fn a_seq_is_committed_once_however_many_commits_arrive() {
    let mut c = Cluster::new(4, 128);
    c.decide_each(0, 1..=3);
    for i in 0..4 {
        let mut seqs: Vec<u64> = c.stores[i]
            .iter()
            .filter_map(|r| match r {
                Record::Committed(cert) => Some(cert.seq().0),
                _ => None,
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![1, 2, 3], "replica {i}");
    }
}

/// What a status tick retransmits: this replica's votes for slots of its view that are not
/// committed, and none for a slot already committed (waiting only for an earlier one to
/// execute). (`||` as `&&` in the skip resent the committed slot's votes.)
#[test]
fn a_status_tick_resends_votes_only_for_uncommitted_slots() {
    let mut c = Cluster::new_with(4, 128, |cfg| cfg.max_inflight_batches = 8);
    for nonce in 1..=2 {
        c.input(0, Input::ClientRequest(c.request(nonce)));
    }
    // Replica 3 never hears seq 1's commits: it commits 2 but cannot execute it.
    while let Some((_, to, bytes)) = c.next_queued() {
        let m = open(&bytes, &c.dir).expect("opens");
        let seq_1_commit = matches!(m.value(), Message::Commit(v) if v.seq == Seq(1));
        if !(to == 3 && seq_1_commit) {
            c.input(to, Input::Message(m));
        }
    }
    assert_eq!(c.replica(3).last_executed(), Seq(0));
    assert_eq!(c.executed_requests(0), 2);
    let Some(timer) = c.armed(3, TimerKind::Status) else {
        panic!("replica 3 has a status timer");
    };
    let actions = c.replicas[3]
        .as_mut()
        .expect("replica 3 runs")
        .handle(Input::Timeout(timer));
    let mut resent = Vec::new();
    for a in &actions {
        let Action::Broadcast(env) = a else { continue };
        if let Ok(m) = open(&encode_envelope(env), &c.dir) {
            match m.value() {
                Message::Prepare(v) => resent.push(("prepare", v.seq.0)),
                Message::Commit(v) => resent.push(("commit", v.seq.0)),
                _ => {}
            }
        }
    }
    resent.sort_unstable();
    assert_eq!(resent, vec![("commit", 1), ("prepare", 1)]);
}

/// A validator is the client of its own requests: while one waits, its status tick sends it
/// again to every peer (the one relay it sent may have been lost); a client's request waiting
/// beside it is left to its client. cargo-mutants at 7814b00 left `retransmit_own_requests`
/// doing nothing, and its filter's `==` as `!=`, unseen.
#[test]
fn a_validator_sends_its_own_waiting_requests_again_at_its_status_tick() {
    let mut c = Cluster::new(4, 128);
    // Replica 3 is cut off: what it submits waits.
    c.isolate(3);
    let own = Signed::seal(
        Request {
            nonce: 1,
            operation: vec![1],
        },
        Kind::Request,
        |r| ProtoCodec.encode_request(r),
        &c.keys[3],
        Principal::Validator(ReplicaId(3)),
    );
    c.input(3, Input::ClientRequest(own));
    c.input(3, Input::ClientRequest(c.request(1)));
    assert_eq!(c.replica(3).pending_requests(), 2);
    let signers = |c: &Cluster| -> Vec<bool> {
        c.sent(3, Kind::Request)
            .iter()
            .map(|m| m.validator() == Some(ReplicaId(3)))
            .collect()
    };
    let before = signers(&c).len();
    c.fire(3, TimerKind::Status);
    assert_eq!(
        signers(&c)[before..],
        [true],
        "its own request again, not the client's"
    );
}

/// The request timer runs on a backup while requests wait there (it would blame a primary
/// that does not order them), never on the primary in a normal view (it would blame itself),
/// and on no replica once everything is decided. (cargo-mutants at 8c1a26e: either
/// comparison in `arm_request_timer` bent went unseen.)
#[test]
fn the_request_timer_runs_only_on_a_backup_with_requests_waiting() {
    let mut c = Cluster::new(4, 8);
    c.decide_each(0, 1..=1);
    let r = c.request(2);
    c.input(0, Input::ClientRequest(r.clone()));
    c.input(1, Input::ClientRequest(r));
    assert_eq!(c.armed(0, TimerKind::Request), None, "the primary");
    assert!(c.armed(1, TimerKind::Request).is_some(), "a backup");
    c.run();
    assert_eq!(c.replica(1).last_executed(), Seq(2));
    for i in 0..4 {
        assert_eq!(c.armed(i, TimerKind::Request), None, "replica {i}, idle");
    }
}

/// The window starts after the stable checkpoint: the primary's pre-prepare for the
/// checkpoint's own seq, delivered again once it is stable, is dropped as outside the window
/// and earns no prepare (a backup voting again on a seq it has forgotten the slot of).
/// (cargo-mutants at 8c1a26e: `in_window`'s `>` as `>=` went unseen.)
#[test]
fn a_pre_prepare_at_the_stable_checkpoint_is_outside_the_window() {
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=1);
    c.input(0, Input::ClientRequest(c.request(2)));
    let bytes = queued_pre_prepare_to(&c, 3);
    c.run();
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(2));
    let prepares = c.sent(3, Kind::Prepare).len();
    c.input(3, Input::Message(open(&bytes, &c.dir).expect("opens")));
    c.run();
    let dropped = c.replica(3).dropped();
    assert_eq!(dropped.get("pre-prepare outside the window"), Some(&1));
    assert_eq!(c.sent(3, Kind::Prepare).len(), prepares, "no prepare again");
}

/// A request a client hands only a backup is relayed to the others at once and decided
/// without any timer firing. (cargo-mutants at 8c1a26e had `flush_relays` sending only an
/// empty last chunk as a timeout; put back, this test does not end either: `Cluster::run` has
/// no step bound.)
#[test]
fn a_request_handed_to_a_backup_is_relayed_and_decided_without_a_timer() {
    let mut c = Cluster::new(4, 8);
    c.input(2, Input::ClientRequest(c.request(1)));
    c.run();
    for i in 0..4 {
        assert_eq!(c.replica(i).last_executed(), Seq(1), "replica {i}");
    }
}
