//! Checkpoints that were lost in transit are sent again, so the window moves on: without it the
//! primary stops at the high watermark for good (simulator seed 444).

use scbe_core::consensus::*;
use scbe_wire::testkit::{ChainApp, Cluster};
use scbe_wire::{open, ProtoCodec};

#[test]
fn lost_checkpoints_are_sent_again_and_the_window_moves_on() {
    // K = 2, window 4: sequence numbers 1..=4 fill the window while every checkpoint is lost.
    let mut c = Cluster::new(4, 2);
    c.drop_kinds.insert(Kind::Checkpoint);
    c.decide_each(0, 1..=4);
    c.drop_kinds.clear();
    c.input(0, Input::ClientRequest(c.request(5)));
    c.run();
    for i in 0..4 {
        assert_eq!(c.replica(i).last_executed(), Seq(4), "replica {i}");
        assert_eq!(c.replica(i).stable_checkpoint().seq, Seq(0), "replica {i}");
    }
    // One status tick everywhere: each replica re-sends its newest checkpoint (4), a quorum
    // matches, the low watermark moves and the waiting request is ordered.
    for i in 0..4 {
        c.fire_if_armed(i, TimerKind::Status);
    }
    for i in 0..4 {
        assert_eq!(c.replica(i).stable_checkpoint().seq, Seq(4), "replica {i}");
        assert_eq!(c.replica(i).last_executed(), Seq(5), "replica {i}");
    }
}

/// Replicas that executed the same batches count their own checkpoints stable: none takes
/// itself for diverged, drops its own checkpoint as differing from a quorum, or fetches state
/// it already holds. (cargo-mutants at 8c1a26e: the own-digest guard as `false`, or either of
/// its comparisons as `!=`, went unseen: the replica healed by state transfer every time.)
#[test]
fn replicas_that_agree_count_their_own_checkpoints_stable() {
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=4);
    for i in 0..4 {
        let r = c.replica(i);
        assert_eq!(r.stable_checkpoint().seq, Seq(4), "replica {i}");
        assert_eq!(r.diverged_at(), None, "replica {i}");
        assert_eq!(
            r.dropped()
                .get("own checkpoint digest differs from a quorum"),
            None,
            "replica {i}"
        );
        assert!(c.sent(i, Kind::StateRequest).is_empty(), "replica {i}");
        // The state at the stable checkpoint is the snapshot taken there (what proves parts
        // of it): nothing executed since, so the live state's.
        let snap = r
            .stable_snapshot()
            .expect("a snapshot at the stable checkpoint");
        assert_eq!(snap.seq, Seq(4));
        assert_eq!(
            snap.app_state.bytes(),
            r.app().snapshot().bytes(),
            "replica {i}"
        );
        // ... and with its nonce table it leads to the digest the checkpoint signs.
        let digest = state_digest_of(snap.seq, r.app().digest(), &nonce_parts(&snap.nonces));
        assert_eq!(digest, r.stable_checkpoint().state_digest, "replica {i}");
        assert!(!snap.nonces.is_empty(), "the requests' signers are in it");
        // By definition: the seq, the application's digest, then each signer's key and window
        // in key order (cargo-mutants: `nonce_parts` answering a constant went unseen, the
        // replica and the check above sharing it).
        let seq = snap.seq.0.to_be_bytes();
        let app = r.app().digest();
        let windows: Vec<[u8; 24]> = snap.nonces.values().map(|w| w.to_bytes()).collect();
        let mut parts: Vec<&[u8]> = vec![b"state", &seq, app.as_bytes()];
        for (k, w) in snap.nonces.keys().zip(&windows) {
            parts.push(k.as_bytes());
            parts.push(w);
        }
        assert_eq!(Digest::of_parts(&parts), r.stable_checkpoint().state_digest);
    }
}

/// What a store may drop below a stable checkpoint is found by `Record::seq`: every record
/// about a sequence number names it (signed votes, prepared and committed certificates,
/// snapshots), and the records kept for good (stable certificates, view changes, views
/// entered, nonce reservations) name none. cargo-mutants (consensus shard 0) found it
/// returning `None`, or seq 0 for all, with every consensus test passing.
#[test]
fn every_record_about_a_seq_names_it_and_the_others_name_none() {
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=3);
    let mut named = std::collections::BTreeSet::new();
    for store in &c.stores {
        for r in store {
            let expected = match r {
                Record::Signed { seq, .. } => Some(*seq),
                Record::SignReserved { through, .. } => Some(*through),
                Record::Prepared(p) => Some(p.pre_prepare.value().seq),
                Record::Committed(cert) => Some(cert.seq()),
                Record::Snapshot(s) => Some(s.seq),
                Record::Stable(_)
                | Record::ViewChange(_)
                | Record::EnteredView { .. }
                | Record::NonceReservation { .. }
                | Record::EpochLink(_) => None,
            };
            assert_eq!(r.seq(), expected, "{r:?}");
            named.extend(expected);
        }
    }
    // The expected values are not all zero: three decided batches and a checkpoint at 2.
    assert!(
        named.contains(&Seq(3)) && named.contains(&Seq(2)),
        "{named:?}"
    );
}

/// What a validator reads of its replica (its id, each signer's highest nonce for clients that
/// count on from it, the genesis and current state digests `scbe audit verify` compares, a
/// divergence flag) is what the replica decided. cargo-mutants (consensus shard 3) found each
/// of these accessors answering a constant with every consensus test passing: only the
/// validator's tests read them.
#[test]
fn what_a_validator_reads_of_its_replica_is_what_it_decided() {
    let mut c = Cluster::new(4, 2);
    let genesis = c.replica(0).stable_checkpoint().state_digest;
    c.decide_each(0, 1..=2);
    let client = *c.request(1).signer();
    for i in 0..4 {
        let r = c.replica(i);
        assert_eq!(r.id(), ReplicaId(i as u32));
        assert_eq!(r.last_nonce(&client), 2, "replica {i}");
        assert_eq!(r.last_nonce(&scbe_core::crypto::PublicKey([9; 32])), 0);
        assert_eq!(r.last_nonces().collect::<Vec<_>>(), vec![(&client, 2)]);
        assert_eq!(r.genesis_digest(), genesis);
        assert_ne!(genesis, Digest::default());
        assert_eq!(r.diverged_at(), None, "replica {i}");
        assert_eq!(r.stable_checkpoint().seq, Seq(2), "replica {i}");
    }
    // Right at the stable checkpoint, the digest now is the one the quorum signed there.
    let r = c.replicas[1].as_mut().expect("replica 1 runs");
    let signed = r.stable_checkpoint().state_digest;
    assert_ne!(signed, genesis);
    assert_eq!(r.state_digest_now(), signed);
}

/// A replica whose state differs from a quorum's at a checkpoint never counts that checkpoint
/// stable: it flags the divergence and fetches the quorum's snapshot, even though it executed
/// as far as the others (it used to ask only for what came after its own last batch, got
/// nothing back, and stayed diverged for good), and the flag clears once it installed it.
/// cargo-mutants (consensus shard 4) found the own-digest guard answering `true`, and the
/// flag's `d <= s` as `d > s`, with every consensus test passing: no test had a replica diverge.
#[test]
fn a_diverged_replica_never_counts_the_quorums_checkpoint_stable_and_heals_by_state_transfer() {
    let differs = "own checkpoint digest differs from a quorum";
    let mut c = Cluster::new(4, 2);
    c.replace_app(3, ChainApp::diverging());
    c.drop_kinds.insert(Kind::StateResponse);
    c.decide_each(0, 1..=2);
    for i in 0..3 {
        assert_eq!(c.replica(i).stable_checkpoint().seq, Seq(2), "replica {i}");
    }
    let r = c.replica(3);
    assert_eq!(r.last_executed(), Seq(2));
    assert_eq!(
        r.stable_checkpoint().seq,
        Seq(0),
        "not stable on digests it does not hold"
    );
    assert_eq!(r.diverged_at(), Some(Seq(2)));
    assert_eq!(r.dropped().get(differs), Some(&1));
    assert!(
        r.stable_snapshot().is_none(),
        "its own state at seq 2 is not the stable one"
    );

    // State responses flow again: at the next checkpoint it diverges once more, installs the
    // quorum's state and the flag clears; from then on its own digests match.
    c.drop_kinds.clear();
    c.decide_each(0, 3..=4);
    assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(4));
    assert_eq!(c.replica(3).diverged_at(), None);
    c.decide_each(0, 5..=6);
    for i in 0..4 {
        assert_eq!(c.replica(i).stable_checkpoint().seq, Seq(6), "replica {i}");
        assert_eq!(c.replica(i).last_executed(), Seq(6), "replica {i}");
    }
    assert_eq!(c.replica(3).dropped().get(differs), Some(&2));
}

/// A diverged replica that executed past the quorum's stable checkpoint takes the snapshot
/// there all the same, executes again what it holds above it, and then agrees with the others
/// (and still restarts from its store).
#[test]
fn a_diverged_replica_ahead_of_the_quorums_snapshot_executes_again_from_it() {
    let mut c = Cluster::new(4, 2);
    c.replace_app(3, ChainApp::diverging());
    c.drop_kinds.insert(Kind::StateResponse);
    c.decide_each(0, 1..=3);
    assert_eq!(c.replica(3).last_executed(), Seq(3));
    assert_eq!(c.replica(3).diverged_at(), Some(Seq(2)));
    let delivered = c.executed_requests(3);

    c.drop_kinds.clear();
    c.fire(3, TimerKind::Status);
    let r = c.replica(3);
    assert_eq!(r.diverged_at(), None);
    assert_eq!(r.stable_checkpoint().seq, Seq(2));
    assert_eq!(
        r.last_executed(),
        Seq(3),
        "seq 3 executed again on the installed state"
    );
    assert_eq!(c.executed_requests(3), delivered + 1, "and delivered again");
    let digest = |c: &mut Cluster, i: usize| {
        c.replicas[i]
            .as_mut()
            .expect("replica runs")
            .state_digest_now()
    };
    assert_eq!(digest(&mut c, 3), digest(&mut c, 0));

    c.decide_each(0, 4..=4);
    for i in 0..4 {
        assert_eq!(c.replica(i).stable_checkpoint().seq, Seq(4), "replica {i}");
    }
    let (restored, _) = Replica::restore(
        c.config(3),
        c.keys[3].clone(),
        std::sync::Arc::new(scbe_wire::ProtoCodec),
        ChainApp::default(),
        &c.stores[3],
    )
    .expect("the healed replica's store opens");
    assert_eq!(restored.last_executed(), Seq(4));
    let (mine, theirs) = (
        restored.stable_checkpoint(),
        c.replica(0).stable_checkpoint(),
    );
    assert_eq!(
        (mine.seq, mine.state_digest),
        (theirs.seq, theirs.state_digest)
    );
}

/// One checkpoint beyond a replica's window proves nothing (its sender may be faulty); f + 1
/// from distinct replicas mean an honest one is ahead, and the replica fetches state.
/// cargo-mutants (consensus shard 4) left the count's `> f` unseen (as `>=`, `==` or `<`).
#[test]
fn f_plus_one_checkpoints_beyond_the_window_and_no_fewer_make_a_replica_fetch_state() {
    let mut c = Cluster::new(4, 2);
    let far = |c: &Cluster, from: usize| {
        let cp = Checkpoint {
            seq: Seq(6),
            state_digest: Digest([5; 32]),
            next_set: None,
        };
        c.signed_by(from, Kind::Checkpoint, ProtoCodec.encode_checkpoint(&cp))
    };
    let before = c.broadcasts(3, Kind::StateRequest);
    c.input(3, Input::Message(far(&c, 1)));
    c.input(3, Input::Message(far(&c, 1)));
    assert_eq!(
        c.broadcasts(3, Kind::StateRequest),
        before,
        "one sender, twice, is f"
    );
    c.input(3, Input::Message(far(&c, 2)));
    assert_eq!(
        c.broadcasts(3, Kind::StateRequest),
        before + 1,
        "two senders are f + 1"
    );
}

/// The seqs of the snapshots replica `i` persisted, in order.
fn persisted_snapshots(c: &Cluster, i: usize) -> Vec<u64> {
    c.stores[i]
        .iter()
        .filter_map(|r| match r {
            Record::Snapshot(s) => Some(s.seq.0),
            _ => None,
        })
        .collect()
}

/// A snapshot under the floor is persisted at every checkpoint; above it (floor 0 here), only
/// once the batches executed since the last persisted one add up to its size (a restart
/// re-executes those instead). cargo-mutants (consensus shard 4) left the condition's `||` as
/// `&&`, `<=` as `>` and `>=` as `<` unseen: the testkit's 40-byte snapshot was always under
/// the floor and always smaller than a batch.
#[test]
fn a_large_snapshot_is_persisted_once_the_batches_since_the_last_one_add_up_to_it() {
    let decide_8 = |floor_zero: bool| {
        let mut c = if floor_zero {
            Cluster::new_with(4, 2, |cfg| cfg.snapshot_persist_floor = 0)
        } else {
            Cluster::new(4, 2)
        };
        for i in 0..4 {
            c.replace_app(i, ChainApp::default().padded(4000));
        }
        for nonce in 1..=8 {
            c.input(0, Input::ClientRequest(c.request_sized(nonce, 1000)));
            c.run();
        }
        c
    };
    let small = decide_8(false);
    assert_eq!(persisted_snapshots(&small, 1), vec![2, 4, 6, 8]);
    // Two requests of about 1.1 KB per checkpoint: 2.2 KB, then 4.4 KB >= 4,040 bytes.
    let large = decide_8(true);
    assert_eq!(persisted_snapshots(&large, 1), vec![4, 8]);
    assert_eq!(large.replica(1).stable_checkpoint().seq, Seq(8));
}

/// A diverged replica that took (and persisted) a checkpoint past the snapshot it installs
/// executes up to it again and persists that checkpoint's snapshot again, whatever its size:
/// the diverged one would otherwise be what a restart starts from, and the store would not
/// open (its digest does not match the stable certificate).
#[test]
fn a_healed_replica_persists_again_the_checkpoints_it_had_taken_on_a_diverged_state() {
    let mut c = Cluster::new_with(4, 2, |cfg| cfg.snapshot_persist_floor = 0);
    for i in 0..3 {
        c.replace_app(i, ChainApp::default().padded(4000));
    }
    c.replace_app(3, ChainApp::diverging().padded(4000));
    // Everyone executes 1..=4; the checkpoints at 4 and the state responses are held, so
    // the others' stable checkpoint is 2 while replica 3 took its own (diverged) one at 4.
    let mut held = Vec::new();
    for nonce in 1..=4 {
        c.input(0, Input::ClientRequest(c.request_sized(nonce, 1000)));
        while let Some((_, to, bytes)) = c.next_queued() {
            let m = open(&bytes, &c.dir).expect("honest messages open");
            match m.value() {
                Message::StateResponse(_) => {}
                Message::Checkpoint(cp) if cp.seq == Seq(4) => held.push((to, bytes)),
                _ => c.input(to, Input::Message(m)),
            }
        }
    }
    assert_eq!(c.replica(3).last_executed(), Seq(4));
    assert_eq!(c.replica(3).diverged_at(), Some(Seq(2)));
    assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(2));
    assert_eq!(persisted_snapshots(&c, 3), vec![4], "its own, diverged");

    // It fetches the snapshot at 2, executes 3 and 4 again and persists 4 again.
    c.fire(3, TimerKind::Status);
    assert_eq!(c.replica(3).diverged_at(), None);
    assert_eq!(persisted_snapshots(&c, 3), vec![4, 2, 4]);
    for (to, bytes) in held {
        let m = open(&bytes, &c.dir).expect("opens");
        c.input(to, Input::Message(m));
    }
    c.run();
    for i in 0..4 {
        assert_eq!(c.replica(i).stable_checkpoint().seq, Seq(4), "replica {i}");
    }
    let (restored, _) = Replica::restore(
        c.config(3),
        c.keys[3].clone(),
        std::sync::Arc::new(ProtoCodec),
        ChainApp::default(),
        &c.stores[3],
    )
    .expect("the healed replica's store opens");
    assert_eq!(restored.stable_checkpoint().seq, Seq(4));
    assert_eq!(restored.last_executed(), Seq(4));
}

/// A retired validator's checkpoint counts only at its epoch's boundary. After the set shrank
/// from 7 validators to 4 (the old quorum 5, the new 3), the three removed validators'
/// checkpoints at a later stable checkpoint are dropped as stale (counted by the old set's
/// rule they would make a certificate of retired keys for a seq the new set alone certifies),
/// and so are their late ones at the boundary once the stable checkpoint has moved past it.
/// cargo-mutants at 8c1a26e left the boundary test's two `||` (as `&&`) unseen: no test
/// shrank a set, and with the quorum unchanged the new set's proof already met the old rule.
#[test]
fn retired_validators_checkpoints_past_the_boundary_are_stale() {
    let stale = "stale checkpoint";
    let mut c = Cluster::new(7, 4);
    let four: Vec<_> = super::epoch_tests::members(&c)
        .into_iter()
        .take(4)
        .collect();
    c.input(0, Input::ClientRequest(c.set_request(1, &four)));
    c.run();
    assert_eq!(c.replica(0).epoch(), 1);
    c.decide_each(0, 2..=9);
    let stable = c.replica(0).stable_checkpoint().clone();
    assert!(stable.seq > Seq(1), "a stable checkpoint past the boundary");
    assert_eq!(stable.proof.len(), 3, "the new set's quorum");
    let before = super::epoch_tests::dropped(&c, 0, stale);
    // Their checkpoints at that stable checkpoint, and at the boundary itself (late: the
    // boundary is complete and the stable checkpoint has moved past it).
    let boundary = c.replica(0).epoch_links()[&1].boundary.clone();
    let votes = [&stable, &boundary].map(|cert| Checkpoint {
        seq: cert.seq,
        state_digest: cert.state_digest,
        next_set: cert.next_set,
    });
    for vote in &votes {
        for retired in 4..7 {
            let env = Envelope::seal(
                Kind::Checkpoint,
                ProtoCodec.encode_checkpoint(vote),
                &c.keys[retired],
            );
            let m = open(&scbe_wire::encode_envelope(&env), &c.dir).expect("opens");
            c.input(0, Input::Message(m));
        }
    }
    assert_eq!(super::epoch_tests::dropped(&c, 0, stale), before + 6);
    let now = c.replica(0).stable_checkpoint();
    assert_eq!(now.seq, stable.seq);
    let signers =
        |cert: &CheckpointCert| -> Vec<_> { cert.proof.iter().map(|cp| *cp.signer()).collect() };
    assert_eq!(signers(now), signers(&stable), "the new set's proof, kept");
}
