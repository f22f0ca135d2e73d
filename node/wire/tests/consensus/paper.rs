//! Scenario tests for the replica, each naming the section of Castro & Liskov, "Practical
//! Byzantine Fault Tolerance" (OSDI '99) it checks, on the in-memory cluster of
//! `scbe_wire::testkit`.

use std::collections::BTreeSet;
use std::sync::Arc;

use scbe_core::consensus::*;
use scbe_wire::testkit::{ChainApp, Cluster};
use scbe_wire::{open, ProtoCodec};

/// Index of the first action matching `pred` in replica `i`'s log.
fn position(log: &[Action], pred: impl Fn(&Action) -> bool) -> usize {
    log.iter().position(pred).expect("action present")
}

#[test]
fn s4_2_normal_case_commits_with_a_quorum_certificate() {
    let mut c = Cluster::new(4, 128);
    let req = c.request(1);
    c.input(0, Input::ClientRequest(req));
    c.run();
    for i in 0..4 {
        assert_eq!(c.executed_seqs(i), vec![1], "replica {i}");
        let d = &c.delivered[i][0];
        assert_eq!(d.executed.len(), 1);
        let signers: BTreeSet<_> = d
            .certificate
            .commits
            .iter()
            .filter_map(|s| s.validator())
            .collect();
        assert!(
            signers.len() >= 3,
            "certificate holds a quorum of distinct commits"
        );
        assert!(certificate::check_commit_cert(&c.config(i), &d.certificate).is_ok());
    }
}

#[test]
fn s4_2_backup_persists_before_it_sends_its_prepare_and_commit() {
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    let log = &c.log[1];
    // The first prepare of a view reserves the seqs ahead: one durable record for many.
    let guard = position(log, |a| {
        matches!(a, Action::Persist(Record::SignReserved { .. }))
    });
    let prepare = position(
        log,
        |a| matches!(a, Action::Broadcast(e) if e.kind == Kind::Prepare),
    );
    let prepared = position(log, |a| matches!(a, Action::Persist(Record::Prepared(_))));
    let commit = position(
        log,
        |a| matches!(a, Action::Broadcast(e) if e.kind == Kind::Commit),
    );
    assert!(
        guard < prepare,
        "vote guard durable before the prepare leaves"
    );
    assert!(
        prepared < commit,
        "prepared certificate durable before the commit leaves"
    );
}

#[test]
fn s4_2_pre_prepare_from_a_backup_is_dropped() {
    let mut c = Cluster::new(4, 128);
    let req = c.request(1);
    let batch = vec![req];
    let pp = PrePrepare {
        view: View(0),
        seq: Seq(1),
        digest: batch_digest(&batch),
        batch,
    };
    let forged = Signed::seal(
        pp,
        Kind::PrePrepare,
        |v| ProtoCodec.encode_pre_prepare(v),
        &c.keys[1],
        Principal::Validator(ReplicaId(1)),
    );
    c.send(1, 2, forged.envelope());
    c.run();
    assert_eq!(
        c.replica(2)
            .dropped()
            .get("pre-prepare not from the primary"),
        Some(&1)
    );
    assert!(c.delivered[2].is_empty());
}

#[test]
fn s4_2_a_request_takes_effect_once_and_stale_nonces_are_refused() {
    let mut c = Cluster::new(4, 128);
    let req = c.request(5);
    c.input(0, Input::ClientRequest(req.clone()));
    c.run();
    c.input(0, Input::ClientRequest(req));
    c.run();
    // Within the window below the highest, a nonce not yet used still executes (a client's
    // concurrent requests may be ordered in any order), once.
    c.input(0, Input::ClientRequest(c.request(4)));
    c.run();
    c.input(0, Input::ClientRequest(c.request(4)));
    c.run();
    // Out of the window: refused.
    c.input(0, Input::ClientRequest(c.request(300)));
    c.run();
    c.input(0, Input::ClientRequest(c.request(100)));
    c.run();
    assert_eq!(c.executed_seqs(0), vec![1, 2, 3]);
    assert_eq!(
        c.replica(0)
            .dropped()
            .get("request nonce already executed or out of the window"),
        Some(&3)
    );
}

#[test]
fn s4_3_checkpoints_become_stable_and_move_the_low_watermark() {
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=5);
    for i in 0..4 {
        assert_eq!(c.replica(i).last_executed(), Seq(5));
        let stable = c.replica(i).stable_checkpoint();
        assert_eq!(stable.seq, Seq(4), "replica {i}");
        assert!(certificate::check_checkpoint_cert(
            &c.config(i),
            stable,
            c.replica(i).genesis_digest()
        )
        .is_ok());
    }
}

#[test]
fn s4_4_silent_primary_is_replaced_and_the_request_executes_in_the_next_view() {
    let mut c = Cluster::new(4, 128);
    c.isolate(0);
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    assert!(c.delivered[1].is_empty());
    // Two backups time out; the third joins on seeing f + 1 view changes (§4.5.2).
    c.fire(2, TimerKind::Request);
    assert_eq!(c.replica(3).view(), View(0));
    c.fire(3, TimerKind::Request);
    for i in 1..4 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal);
        assert_eq!(c.executed_seqs(i), vec![1]);
    }
}

#[test]
fn s4_4_a_request_prepared_in_the_old_view_keeps_its_sequence_number() {
    let mut c = Cluster::new(4, 128);
    // Everyone prepares, but every commit is lost: nothing executes in view 0.
    c.input(0, Input::ClientRequest(c.request(1)));
    while let Some((from, to, bytes)) = c.next_queued() {
        let m = open(&bytes, &c.dir).expect("opens");
        if m.value().kind() == Kind::Commit {
            continue;
        }
        let _ = from;
        c.input(to, Input::Message(m));
    }
    let prepared_digest = c.stores[1]
        .iter()
        .find_map(|r| match r {
            Record::Prepared(p) => Some(p.pre_prepare.value().digest),
            _ => None,
        })
        .expect("replica 1 prepared");
    assert!(c.delivered.iter().all(Vec::is_empty));
    c.isolate(0);
    c.fire(2, TimerKind::Request);
    c.fire(3, TimerKind::Request);
    for i in 1..4 {
        assert_eq!(c.executed_seqs(i), vec![1], "replica {i}");
        assert_eq!(
            c.delivered[i][0].certificate.pre_prepare.value().digest,
            prepared_digest
        );
    }
}

fn restore(c: &Cluster, i: usize) -> Replica<ChainApp> {
    Replica::restore(
        c.config(i),
        c.keys[i].clone(),
        Arc::new(ProtoCodec),
        ChainApp::default(),
        &c.stores[i],
    )
    .expect("restores")
    .0
}

#[test]
fn restart_replays_the_decided_log_to_the_same_state() {
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=3);
    let r = restore(&c, 2);
    assert_eq!(r.last_executed(), Seq(3));
    assert_eq!(r.stable_checkpoint().seq, Seq(2));
    assert_eq!(r.app().digest(), c.replica(2).app().digest());
}

#[test]
fn restart_never_signs_a_prepare_conflicting_with_one_it_signed() {
    let mut c = Cluster::new(4, 128);
    // Replica 2 hears the pre-prepare and sends its prepare, but hears nothing back.
    for j in [1, 3] {
        c.cut.insert((j, 2));
    }
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    // What it persisted first is a reservation of the view's seqs ahead, not the digest.
    assert!(c.stores[2].iter().any(|r| matches!(
        r,
        Record::SignReserved {
            view: View(0),
            through
        } if *through >= Seq(1)
    )));
    assert!(
        c.delivered[2].is_empty(),
        "replica 2 prepared but saw no quorum"
    );
    // It crashes and restarts; an equivocating primary offers another batch for (v0, #1).
    c.replicas[2] = Some(restore(&c, 2));
    c.log[2].clear();
    let other = vec![c.request(2)];
    let pp = PrePrepare {
        view: View(0),
        seq: Seq(1),
        digest: batch_digest(&other),
        batch: other,
    };
    let equivocation = Signed::seal(
        pp,
        Kind::PrePrepare,
        |v| ProtoCodec.encode_pre_prepare(v),
        &c.keys[0],
        Principal::Validator(ReplicaId(0)),
    );
    c.heal();
    c.send(0, 2, equivocation.envelope());
    c.run();
    assert_eq!(
        c.replica(2)
            .dropped()
            .get("prepare withheld: reserved before a restart"),
        Some(&1)
    );
    assert!(!c.log[2]
        .iter()
        .any(|a| matches!(a, Action::Broadcast(e) if e.kind == Kind::Prepare)));
}

#[test]
fn a_restarted_primary_that_may_have_proposed_unrecorded_leaves_its_view() {
    let mut c = Cluster::new(4, 128);
    // The primary proposes #1, but nobody hears it.
    for j in [1, 2, 3] {
        c.cut.insert((0, j));
    }
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    assert!(c.stores[0]
        .iter()
        .any(|r| matches!(r, Record::SignReserved { view: View(0), .. })));
    // Restarted, it cannot know what it proposed at #1, so it never proposes there in view 0:
    // it starts the change to view 1 at once, and the others, who never heard #1, decide it
    // in view 1.
    let (r, actions) = Replica::restore(
        c.config(0),
        c.keys[0].clone(),
        Arc::new(ProtoCodec),
        ChainApp::default(),
        &c.stores[0],
    )
    .expect("restores");
    assert_eq!((r.view(), r.status()), (View(1), Status::ViewChanging));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Broadcast(e) if e.kind == Kind::ViewChange)));
    c.replicas[0] = Some(r);
    c.heal();
    c.apply(0, actions);
    // The client hands its request to the backups too; their request timers find it waiting.
    for j in 1..4 {
        c.input(j, Input::ClientRequest(c.request(1)));
    }
    for _ in 0..3 {
        for j in 1..4 {
            c.fire_if_armed(j, TimerKind::Request);
        }
        c.run();
    }
    for i in 0..4 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.executed_requests(i), 1, "replica {i}");
    }
}

#[test]
fn lagging_replica_catches_up_from_commit_certificates() {
    let mut c = Cluster::new(4, 2);
    c.isolate(3);
    c.decide_each(0, 1..=3);
    assert_eq!(c.replica(3).last_executed(), Seq(0));
    c.heal();
    c.fire(3, TimerKind::Status);
    assert_eq!(
        c.replica(3).last_executed(),
        Seq(3),
        "the decided batches, those below the peers' stable checkpoint at 2 included"
    );
    assert_eq!(c.replica(3).app().digest(), c.replica(0).app().digest());
    // Its own checkpoint at 2 becomes stable with the ones its peers re-send.
    for i in 0..3 {
        c.fire(i, TimerKind::Status);
    }
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(2));
}

/// The application's verdict, reached at the same point of the log by every honest replica,
/// replaces a primary that orders requests but does not do its job: all leave the view together
/// and the next primary takes over. A verdict for a view already left is ignored.
#[test]
fn replace_primary_moves_every_replica_to_the_next_view_together() {
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    for i in 0..4 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
    // Old verdicts change nothing, and are counted.
    c.input(2, Input::ReplacePrimary { view: View(0) });
    assert_eq!(c.replica(2).view(), View(1));
    assert_eq!(c.replica(2).status(), Status::Normal);
    let reason = "replace-primary for a view already left";
    assert_eq!(c.replica(2).dropped().get(reason), Some(&1));
    // The new primary (1) orders requests.
    c.input(1, Input::ClientRequest(c.request(2)));
    c.run();
    for i in 0..4 {
        assert_eq!(c.executed_seqs(i), vec![1, 2], "replica {i}");
    }
}

/// §4.5.2 with churn: timeouts double while views fail, a new view installed after failed ones
/// keeps the doubling until it executes something (its first decision may take longer than the
/// base: with base timers there, views were abandoned at the base timeout in a loop), and once
/// requests execute they are back to base (before, they stayed long after a successful view).
#[test]
fn s4_5_timers_keep_doubling_until_a_view_executes_and_return_to_base_after() {
    let mut c = Cluster::new(4, 128);
    c.isolate(0);
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    // No primary's pre-prepare gets through: views install but never execute.
    c.drop_kinds.insert(Kind::PrePrepare);
    for i in 1..4 {
        if c.replica(i).view() == View(0) {
            c.fire_if_armed(i, TimerKind::Request);
        }
    }
    assert_eq!(c.replica(2).view(), View(1));
    assert_eq!(c.replica(2).status(), Status::Normal);
    let t = c.armed(2, TimerKind::Request).expect("request timer");
    assert_eq!(
        t.backoff, 1,
        "view 0 failed: the new view's timer is doubled once"
    );
    // View 1 fails too.
    for i in 2..4 {
        if c.replica(i).view() == View(1) {
            c.fire_if_armed(i, TimerKind::Request);
        }
    }
    assert_eq!(c.replica(3).view(), View(2));
    let t = c.armed(3, TimerKind::Request).expect("request timer");
    assert_eq!(t.backoff, 2, "views 0 and 1 failed");
    // Both live backups of view 2 give up on it (one alone only suspects: `suspicion.rs`).
    c.fire_if_armed(1, TimerKind::Request);
    c.fire_if_armed(3, TimerKind::Request);
    assert_eq!(c.replica(1).view(), View(3));
    let t = c.armed(1, TimerKind::Request).expect("request timer");
    assert_eq!(t.backoff, 3, "views 0 to 2 failed");
    // View 3 fails too. Replica 1 gave up on views 0 and 2 itself and left view 1 (which it led)
    // by the f + 1 rule, counted like the replicas whose timers fired: the doubling resumes from
    // those failures instead of starting over.
    c.fire_if_armed(1, TimerKind::Request);
    c.fire_if_armed(2, TimerKind::Request);
    assert_eq!(c.replica(1).view(), View(4));
    let t = c.armed(1, TimerKind::Request).expect("request timer");
    assert_eq!(t.backoff, 4, "four views in a row executed nothing here");
    // Once requests execute, the streak is over.
    c.drop_kinds.clear();
    c.heal();
    for _ in 0..20 {
        if c.replica(3).pending_requests() == 0 {
            break;
        }
        for i in 0..4 {
            c.fire_if_armed(i, TimerKind::Request);
            c.fire_if_armed(i, TimerKind::ViewChange);
            c.fire_if_armed(i, TimerKind::Status);
        }
    }
    assert_eq!(c.replica(3).pending_requests(), 0, "the request executed");
    // Back to base: a backup that now waits for a request waits the base timeout.
    let view = c.replica(3).view();
    let backup = (0..4)
        .find(|&i| c.replica(i).view() == view && i as u64 != view.0 % 4)
        .expect("a backup of the current view");
    c.input(backup, Input::ClientRequest(c.request(2)));
    let t = c.armed(backup, TimerKind::Request).expect("request timer");
    assert_eq!(t.backoff, 0, "requests executed: base timers again");
}
