//! State transfer seen from both ends: what a replica behind asks for, and what a peer sends
//! back. The catch-up scenarios in `paper.rs` and `size_tests.rs` check that a replica ends
//! up caught up; cargo-mutants showed that how much it is sent on the way was never checked
//! (a request asking from seq 0, or a response past its batch count, still caught up).

use scbe_core::consensus::limits;
use scbe_core::consensus::*;
use scbe_wire::testkit::ChainApp;
use scbe_wire::testkit::Cluster;
use scbe_wire::{encode_envelope, open, ProtoCodec};

/// Every state request replica `i` sent (broadcast or to one peer), as decoded by a peer.
pub(crate) fn state_requests(c: &Cluster, i: usize) -> Vec<StateRequest> {
    c.sent(i, Kind::StateRequest)
        .iter()
        .map(|m| match m.value() {
            Message::StateRequest(r) => *r,
            other => panic!("a state request opens as one: {other:?}"),
        })
        .collect()
}

/// Every state response replica `i` sent, with its addressee.
pub(crate) fn state_responses(c: &Cluster, i: usize) -> Vec<(ReplicaId, StateResponse)> {
    c.log[i]
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, envelope } if envelope.kind == Kind::StateResponse => {
                match open(&encode_envelope(envelope), &c.dir).map(|m| m.value().clone()) {
                    Ok(Message::StateResponse(r)) => Some((*to, r)),
                    other => panic!("a state response opens as one: {other:?}"),
                }
            }
            _ => None,
        })
        .collect()
}

/// Replica `to` handed a state request from replica `from` that asks for everything from the
/// genesis (seq 0, epoch 0).
pub(crate) fn ask_from_genesis(c: &mut Cluster, from: usize, to: usize) {
    let req = StateRequest {
        after: Seq(0),
        snapshot_offset: 0,
        epoch: 0,
        needs_snapshot: false,
    };
    let m = c.signed_by(
        from,
        Kind::StateRequest,
        ProtoCodec.encode_state_request(&req),
    );
    c.input(to, Input::Message(m));
}

/// Every state response the others sent replica 3 since `before` (their counts then).
fn sent_to_three_since(c: &Cluster, before: &[usize]) -> Vec<StateResponse> {
    (0..3)
        .flat_map(|i| state_responses(c, i).into_iter().skip(before[i]))
        .map(|(to, r)| {
            assert_eq!(to, ReplicaId(3));
            r
        })
        .collect()
}

fn response_counts(c: &Cluster) -> Vec<usize> {
    (0..3).map(|i| state_responses(c, i).len()).collect()
}

/// Asserts every response in `sent` holds no snapshot and exactly the batches `seqs`.
fn assert_only_batches(sent: &[StateResponse], seqs: &[u64], why: &str) {
    for r in sent {
        assert!(r.snapshot.is_none(), "{why}");
        let got: Vec<Seq> = r.decided.iter().map(CommitCert::seq).collect();
        assert_eq!(got, seqs.iter().copied().map(Seq).collect::<Vec<_>>());
    }
}

/// A replica past its peers' stable checkpoint asks only for what follows its last executed
/// batch, and is sent only those batches: no snapshot it would not install.
#[test]
fn a_replica_behind_within_the_window_asks_after_its_last_batch_and_gets_no_snapshot() {
    let mut c = Cluster::new(4, 4);
    c.decide_each(0, 1..=5);
    assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(4));
    c.isolate(3);
    c.decide_each(0, 6..=7);
    assert_eq!(c.replica(3).last_executed(), Seq(5));
    c.heal();
    let before = response_counts(&c);
    c.fire(3, TimerKind::Status);

    let asked = state_requests(&c, 3);
    let last = asked.last().expect("replica 3 asked for state");
    assert_eq!(last.after, Seq(5), "after its last executed batch");
    assert_eq!(last.snapshot_offset, 0);
    let sent = sent_to_three_since(&c, &before);
    assert_eq!(sent.len(), 3, "each peer answers once");
    assert_only_batches(&sent, &[6, 7], "no snapshot for a replica past it");
    assert_eq!(c.replica(3).last_executed(), Seq(7));
}

/// A replica exactly at its peers' stable checkpoint is past the snapshot too.
#[test]
fn a_replica_at_the_stable_checkpoint_is_sent_batches_and_no_snapshot() {
    let mut c = Cluster::new(4, 4);
    c.decide_each(0, 1..=4);
    c.isolate(3);
    c.decide_each(0, 5..=6);
    assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(4));
    assert_eq!(c.replica(3).last_executed(), Seq(4));
    c.heal();
    c.fire(3, TimerKind::Status);
    let sent = sent_to_three_since(&c, &[0, 0, 0]);
    assert!(!sent.is_empty());
    assert_only_batches(&sent, &[5, 6], "asked after the stable checkpoint itself");
    assert_eq!(c.replica(3).last_executed(), Seq(6));
}

/// A replica behind its peers' stable checkpoint, within the batches they keep below it, is
/// sent those batches and no snapshot (issue 27: under load a backup is often a batch or two
/// behind when a checkpoint becomes stable, and each such request used to cost every peer a
/// whole snapshot). Its own stable checkpoint follows once the peers re-send theirs.
#[test]
fn a_replica_behind_the_stable_checkpoint_within_the_kept_batches_gets_them_not_the_snapshot() {
    let mut c = Cluster::new(4, 4);
    c.isolate(3);
    c.decide_each(0, 1..=5);
    assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(4));
    assert_eq!(c.replica(3).last_executed(), Seq(0));
    c.heal();
    c.fire(3, TimerKind::Status);
    let sent = sent_to_three_since(&c, &[0, 0, 0]);
    assert_eq!(sent.len(), 3, "each peer answers once");
    assert_only_batches(
        &sent,
        &[1, 2, 3, 4, 5],
        "batches below the checkpoint, no snapshot",
    );
    assert_eq!(c.replica(3).last_executed(), Seq(5));
    assert_eq!(c.replica(3).app().digest(), c.replica(0).app().digest());
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(0));
    for i in 0..3 {
        c.fire(i, TimerKind::Status);
    }
    assert_eq!(
        c.replica(3).stable_checkpoint().seq,
        Seq(4),
        "the peers' re-sent checkpoints match its own"
    );
}

/// The batches kept below the stable checkpoint are as many as one response carries: a
/// replica behind all of them is sent the snapshot; one behind only those is sent them.
#[test]
fn the_kept_batches_are_one_responses_worth_and_a_replica_behind_them_gets_the_snapshot() {
    let mut c = Cluster::new_with(4, 4, |cfg| cfg.max_transfer_batches = 2);
    c.isolate(3);
    c.decide_each(0, 1..=5);
    c.heal();
    c.fire(3, TimerKind::Status);
    let sent = sent_to_three_since(&c, &[0, 0, 0]);
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|r| r.snapshot.is_some()),
        "batches 1 and 2 are no longer kept: the snapshot at 4"
    );
    assert_eq!(c.replica(3).last_executed(), Seq(5));

    let mut c = Cluster::new_with(4, 4, |cfg| cfg.max_transfer_batches = 2);
    c.decide_each(0, 1..=2);
    c.isolate(3);
    c.decide_each(0, 3..=5);
    assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(4));
    assert_eq!(c.replica(3).last_executed(), Seq(2));
    let before = response_counts(&c);
    c.heal();
    c.fire(3, TimerKind::Status);
    let sent = sent_to_three_since(&c, &before);
    assert!(!sent.is_empty());
    for r in &sent {
        assert!(r.snapshot.is_none(), "3 and 4 are kept: no snapshot");
    }
    let first: Vec<Seq> = sent[0].decided.iter().map(CommitCert::seq).collect();
    assert_eq!(first, vec![Seq(3), Seq(4)], "cut at two batches");
    assert_eq!(c.replica(3).last_executed(), Seq(5));
}

/// A replica whose state diverged asks from its stable checkpoint for a snapshot: batches it
/// executed already would not repair it, so it is sent the snapshot even where the kept
/// batches reach.
#[test]
fn a_request_that_needs_a_snapshot_is_sent_one_though_the_kept_batches_reach() {
    let mut c = Cluster::new(4, 4);
    c.decide_each(0, 1..=5);
    let ask = |c: &mut Cluster, needs_snapshot| {
        let req = StateRequest {
            after: Seq(2),
            snapshot_offset: 0,
            epoch: 0,
            needs_snapshot,
        };
        let m = c.signed_by(3, Kind::StateRequest, ProtoCodec.encode_state_request(&req));
        let before = state_responses(c, 0).len();
        c.input(0, Input::Message(m));
        state_responses(c, 0)
            .into_iter()
            .nth(before)
            .expect("replica 0 answered")
            .1
    };
    let batches = ask(&mut c, false);
    assert!(batches.snapshot.is_none());
    assert_eq!(batches.decided.first().map(CommitCert::seq), Some(Seq(3)));
    assert!(c.replica(0).serves_snapshot(&StateRequest {
        after: Seq(2),
        snapshot_offset: 0,
        epoch: 0,
        needs_snapshot: true,
    }));
    let snapshot = ask(&mut c, true);
    let (cert, _, _) = snapshot.snapshot.expect("the stable snapshot");
    assert_eq!(cert.seq, Seq(4));
}

/// Replica 3 misses batches 1..=7, then asks at its status tick: every state response the
/// others sent it, in order.
fn responses_to_replica_three_seven_behind(c: &mut Cluster) -> Vec<StateResponse> {
    c.isolate(3);
    c.decide_each(0, 1..=7);
    c.heal();
    c.fire(3, TimerKind::Status);
    (0..3)
        .flat_map(|i| state_responses(c, i))
        .map(|(_, r)| r)
        .collect()
}

/// A response holds at most `max_transfer_batches` decided batches; the replica behind asks
/// the same peer again for the rest.
#[test]
fn a_response_is_cut_at_the_batch_count_and_the_rest_is_asked_for_again() {
    let mut c = Cluster::new_with(4, 8, |cfg| cfg.max_transfer_batches = 2);
    let sent = responses_to_replica_three_seven_behind(&mut c);
    assert!(!sent.is_empty());
    for r in &sent {
        assert!(
            r.decided.len() <= 2,
            "{} batches in one response",
            r.decided.len()
        );
    }
    let afters: Vec<Seq> = state_requests(&c, 3).iter().map(|r| r.after).collect();
    assert!(
        afters.contains(&Seq(2)) && afters.contains(&Seq(4)) && afters.contains(&Seq(6)),
        "asked again after each full response: {afters:?}"
    );
    assert_eq!(c.replica(3).last_executed(), Seq(7));
}

/// What one request of the test clusters (nonce below 128, one-byte operation) costs in a batch.
const ONE_REQUEST_BYTES: usize = 197;

/// A response is cut once its batches fill `max_transfer_bytes`: batches adding up to the budget
/// exactly go together, the next waits for the next response.
#[test]
fn a_response_is_cut_when_its_batches_fill_the_byte_budget() {
    let mut c = Cluster::new_with(4, 8, |cfg| cfg.max_transfer_bytes = 2 * ONE_REQUEST_BYTES);
    assert_eq!(limits::request_bytes(&c.request(1)), ONE_REQUEST_BYTES);
    let sent = responses_to_replica_three_seven_behind(&mut c);
    assert!(!sent.is_empty());
    for r in &sent {
        let bytes = limits::batch_bytes(
            &r.decided
                .iter()
                .flat_map(|d| d.pre_prepare.value().batch.clone())
                .collect::<Vec<_>>(),
        );
        assert!(r.decided.len() == 2 || r.decided.last().map(CommitCert::seq) == Some(Seq(7)));
        assert!(
            bytes <= 2 * ONE_REQUEST_BYTES,
            "{bytes} bytes in one response"
        );
    }
    let afters: Vec<Seq> = state_requests(&c, 3).iter().map(|r| r.after).collect();
    assert!(
        afters.contains(&Seq(2)) && afters.contains(&Seq(4)) && afters.contains(&Seq(6)),
        "asked again after each full response: {afters:?}"
    );
    assert_eq!(c.replica(3).last_executed(), Seq(7));
}

/// Replica 0's stable certificate and persisted snapshot at `seq`.
fn checkpoint_at(c: &Cluster, seq: u64) -> (CheckpointCert, Snapshot) {
    let cert = c.stores[0].iter().find_map(|r| match r {
        Record::Stable(s) if s.seq == Seq(seq) => Some(s.clone()),
        _ => None,
    });
    let snap = c.stores[0].iter().find_map(|r| match r {
        Record::Snapshot(s) if s.seq == Seq(seq) => Some(s.clone()),
        _ => None,
    });
    (
        cert.expect("replica 0 made seq stable"),
        snap.expect("replica 0 persisted its snapshot"),
    )
}

/// A state response replica `from` signs, carrying bytes `[offset, offset + len)` of `snap`
/// and claiming the snapshot is `total` bytes long.
fn snapshot_chunk(
    c: &Cluster,
    from: usize,
    cert: &CheckpointCert,
    snap: &Snapshot,
    offset: usize,
    len: usize,
    total: u64,
) -> Signed<Message> {
    let chunk = Snapshot {
        seq: snap.seq,
        app_state: snap.app_state[offset..offset + len].to_vec().into(),
        nonces: snap.nonces.clone(),
    };
    let part = SnapshotPart {
        offset: offset as u64,
        total,
    };
    let resp = StateResponse {
        snapshot: Some((cert.clone(), chunk, part)),
        decided: Vec::new(),
        epochs: Vec::new(),
    };
    c.signed_by(
        from,
        Kind::StateResponse,
        ProtoCodec.encode_state_response(&resp),
    )
}

/// A cluster (checkpoint every 2) in which replica 3, isolated, missed eight requests: the
/// others hold stable checkpoints 2 to 8 and their snapshots.
fn missed_eight() -> Cluster {
    let mut c = Cluster::new(4, 2);
    c.isolate(3);
    c.decide_each(0, 1..=8);
    assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(8));
    assert_eq!(c.replica(3).last_executed(), Seq(0));
    c
}

fn restored(c: &Cluster, i: usize) -> usize {
    c.log[i]
        .iter()
        .filter(|a| matches!(a, Action::Restored { .. }))
        .count()
}

/// A snapshot at a seq the replica has executed is not installed again (a late response to an
/// earlier request), though the same response installs on a replica that has not.
#[test]
fn a_snapshot_at_the_last_executed_seq_is_not_installed_again() {
    let source = missed_eight();
    let (cert, snap) = checkpoint_at(&source, 2);
    let total = snap.app_state.len();

    // Same keys and genesis: replica 3 executed 1 and 2, but no checkpoint became stable.
    let mut c = Cluster::new(4, 2);
    c.drop_kinds.insert(Kind::Checkpoint);
    c.decide_each(0, 1..=2);
    assert_eq!(c.replica(3).last_executed(), Seq(2));
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(0));
    let resp = snapshot_chunk(&c, 0, &cert, &snap, 0, total, total as u64);
    c.input(3, Input::Message(resp.clone()));
    assert_eq!(restored(&c, 3), 0, "already executed through seq 2");
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(0));

    c.replace_app(3, ChainApp::default());
    c.input(3, Input::Message(resp));
    assert_eq!(
        restored(&c, 3),
        1,
        "a replica that has not executed seq 2 installs it"
    );
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(2));
}

/// A peer's claim of a snapshot larger than `MAX_SNAPSHOT_BYTES` is refused before a byte is
/// held; a claim of exactly that size starts an assembly (and the next chunk is asked for).
#[test]
fn a_snapshot_claimed_past_the_assembly_cap_is_refused_and_one_at_it_assembled() {
    let too_large = "state transfer snapshot larger than this replica assembles";
    let mut c = missed_eight();
    let (cert, snap) = checkpoint_at(&c, 8);
    let cap = scbe_core::consensus::replica::MAX_SNAPSHOT_BYTES;
    c.input(
        3,
        Input::Message(snapshot_chunk(&c, 0, &cert, &snap, 0, 7, cap + 1)),
    );
    assert_eq!(c.replica(3).dropped().get(too_large), Some(&1));
    assert_eq!(state_requests(&c, 3).len(), 0);

    c.input(
        3,
        Input::Message(snapshot_chunk(&c, 0, &cert, &snap, 0, 7, cap)),
    );
    assert_eq!(c.replica(3).dropped().get(too_large), Some(&1));
    let asked = state_requests(&c, 3);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].snapshot_offset, 7, "the next chunk");
}

/// While a snapshot is being assembled, a chunk of an older checkpoint (valid certificate, not
/// the start of it) is refused and the assembly goes on; a chunk claiming the same seq under
/// another digest is judged on its own certificate, never appended.
#[test]
fn chunks_of_another_checkpoint_do_not_disturb_an_assembly() {
    let mut c = missed_eight();
    let (cert8, snap8) = checkpoint_at(&c, 8);
    let (cert6, snap6) = checkpoint_at(&c, 6);
    let total = snap8.app_state.len() as u64;
    c.input(
        3,
        Input::Message(snapshot_chunk(&c, 0, &cert8, &snap8, 0, 7, total)),
    );

    c.input(
        3,
        Input::Message(snapshot_chunk(&c, 1, &cert6, &snap6, 7, 7, total)),
    );
    assert_eq!(
        c.replica(3)
            .dropped()
            .get("state transfer chunk of a snapshot not being assembled"),
        Some(&1),
        "an older checkpoint's chunk"
    );
    let forged = CheckpointCert {
        state_digest: Digest([9; 32]),
        ..cert8.clone()
    };
    c.input(
        3,
        Input::Message(snapshot_chunk(&c, 1, &forged, &snap8, 0, 7, total)),
    );
    assert_eq!(
        c.replica(3)
            .dropped()
            .get("state transfer with an invalid checkpoint certificate"),
        Some(&1),
        "the same seq under another digest"
    );

    // The assembly of checkpoint 8 goes on from byte 7.
    let mut offset = 7;
    while offset < total as usize {
        let len = 7.min(total as usize - offset);
        c.input(
            3,
            Input::Message(snapshot_chunk(&c, 0, &cert8, &snap8, offset, len, total)),
        );
        offset += len;
    }
    assert_eq!(restored(&c, 3), 1);
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(8));
}

/// Installing a snapshot forgets the waiting requests it already executed and keeps the
/// others for the next primary to order.
#[test]
fn an_installed_snapshot_forgets_the_waiting_requests_it_executed_and_keeps_the_rest() {
    let mut c = missed_eight();
    for nonce in [5, 6, 9] {
        c.input(3, Input::ClientRequest(c.request(nonce)));
    }
    assert_eq!(c.replica(3).pending_requests(), 3);
    let (cert, snap) = checkpoint_at(&c, 8);
    let total = snap.app_state.len();
    c.input(
        3,
        Input::Message(snapshot_chunk(&c, 0, &cert, &snap, 0, total, total as u64)),
    );
    assert_eq!(c.replica(3).last_executed(), Seq(8));
    assert_eq!(
        c.replica(3).pending_requests(),
        1,
        "nonces 5 and 6 were executed; 9 waits"
    );
}

/// A set shrinks from 7 validators to 4 while 5 and 6 are away and replica 4 misses the
/// commits of the boundary batch: only 0 to 3 execute it, and the new set's quorum (3) goes
/// on deciding in epoch 1 while the boundary's proof (4 votes of the old set's 5) is short,
/// so no link proves epoch 1 yet. Replica 4, asking for state, is served the boundary batch
/// and none of epoch 1, which it could not check yet; it executes the boundary, and its
/// checkpoint there completes the proof (and the link, with which it may follow on). cargo-mutants at 8c1a26e left the served batches'
/// epoch test (as `true`) unseen: no test decided past a boundary short of its proof.
#[test]
fn a_replica_before_a_short_boundary_is_served_no_batch_of_the_new_epoch() {
    let mut c = Cluster::new(7, 8);
    let away = |c: &mut Cluster| {
        for i in 5..7 {
            c.isolate(i);
        }
    };
    away(&mut c);
    c.decide_each(0, 1..=2);
    let four: Vec<_> = super::epoch_tests::members(&c)
        .into_iter()
        .take(4)
        .collect();
    c.input(0, Input::ClientRequest(c.set_request(3, &four)));
    c.run_dropping(|to, m| to == 4 && matches!(m, Message::Commit(_)));
    assert_eq!(c.replica(4).last_executed(), Seq(2));
    c.isolate(4);
    c.decide_each(0, 4..=5);
    let r0 = c.replica(0);
    assert_eq!((r0.epoch(), r0.last_executed()), (1, Seq(5)));
    assert_eq!(r0.stable_checkpoint().seq, Seq(3));
    assert!(
        r0.stable_checkpoint().proof.len() < 5,
        "short of the old quorum"
    );
    assert!(r0.epoch_links().is_empty());

    c.heal();
    away(&mut c);
    c.fire(4, TimerKind::Status);
    let served: Vec<Vec<u64>> = state_responses(&c, 0)
        .into_iter()
        .filter(|(to, _)| *to == ReplicaId(4))
        .map(|(_, r)| r.decided.iter().map(|d| d.seq().0).collect())
        .collect();
    assert_eq!(served, vec![vec![3]], "the boundary batch alone");
    assert_eq!(
        c.replica(4).last_executed(),
        Seq(3),
        "the boundary executed"
    );
    for i in 0..4 {
        assert!(
            c.replica(i).stable_checkpoint().proof.len() >= 5,
            "replica {i}: replica 4's checkpoint completed the proof"
        );
    }
}

/// The links one response carries stop at `EPOCH_LINKS_BYTES`: links of exactly a quarter of
/// it (sets of 1,020 validators) go four to a response, the fourth filling it to the byte, not
/// the eight `MAX_EPOCH_LINKS` would allow. cargo-mutants (this session's run) left the whole
/// byte budget unseen (its `!`, its sum, the `+=`, the `>` as `>=` or `==`): every test's
/// links were a few hundred bytes. The links are restored from the store, which a replica
/// trusts as its own; nothing checks them on the way out.
#[test]
fn a_response_carries_links_up_to_their_byte_budget_exactly() {
    let mut c = Cluster::new(4, 128);
    c.decide_each(0, 1..=2);
    let members: Vec<(ReplicaId, scbe_core::crypto::PublicKey)> = (0..1020u32)
        .map(|i| {
            let key = scbe_core::crypto::Keypair::from_label(&format!("member {i}"));
            (ReplicaId(i), key.public())
        })
        .collect();
    let set = |epoch: u64| ValidatorSet {
        epoch,
        start: Seq(100 * epoch),
        members: members.clone(),
    };
    let links: Vec<EpochLink> = (1..=8)
        .map(|epoch| EpochLink {
            previous: set(epoch - 1),
            boundary: CheckpointCert {
                seq: Seq(100 * epoch),
                state_digest: Digest([7; 32]),
                next_set: Some(set(epoch).digest()),
                proof: Vec::new(),
            },
            set: set(epoch),
        })
        .collect();
    assert_eq!(
        4 * limits::link_bytes(&links[0]),
        limits::EPOCH_LINKS_BYTES,
        "four links fill the budget exactly"
    );
    let mut store = c.stores[0].clone();
    store.extend(links.into_iter().map(Record::EpochLink));
    let (r, _) = Replica::restore(
        c.config(0),
        c.keys[0].clone(),
        std::sync::Arc::new(ProtoCodec),
        ChainApp::default(),
        &store,
    )
    .expect("opens");
    c.replicas[0] = Some(r);
    c.log[0].clear();

    ask_from_genesis(&mut c, 2, 0);
    let carried: Vec<Vec<u64>> = state_responses(&c, 0)
        .iter()
        .map(|(_, resp)| resp.epochs.iter().map(EpochLink::epoch).collect())
        .collect();
    assert_eq!(carried, vec![vec![1, 2, 3, 4]]);
}
