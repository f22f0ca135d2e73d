//! Epochs (`replica/epoch.rs`): the validator set the application holds changes between two
//! batches, and every replica moves to it there. A rotated or removed validator's old key
//! never counts again, except for the old set's checkpoint at the boundary; a replica behind
//! the boundary catches up across it; a restart lands in the epoch its store reached, and
//! refuses to start with a key that is not in force there. Slots the old set had started above
//! the boundary, voided there, are `voided_slot_tests.rs`'.

use scbe_core::consensus::*;
use scbe_core::crypto::{Keypair, PublicKey};
use scbe_wire::testkit::Cluster;
use scbe_wire::ProtoCodec;

/// The cluster's validators as a set: ids `0..n` with their current keys.
pub(crate) fn members(c: &Cluster) -> Vec<(ReplicaId, PublicKey)> {
    c.keys
        .iter()
        .enumerate()
        .map(|(i, k)| (ReplicaId(i as u32), k.public()))
        .collect()
}

/// Decides requests 1 and 2 at replica 0, then hands it, as request 3, the change that
/// rotates validator `id`'s key to a new one; returns (the old key, the new one). The caller
/// runs the queue.
pub(crate) fn propose_rotation_at_3(c: &mut Cluster, id: usize) -> (Keypair, Keypair) {
    c.decide_each(0, 1..=2);
    let old = c.keys[id].clone();
    let new = Keypair::from_label(&format!("t{id} rotated"));
    let mut set = members(c);
    set[id].1 = new.public();
    c.input(0, Input::ClientRequest(c.set_request(3, &set)));
    (old, new)
}

/// A message from an epoch the replica has not reached is dropped as such, not taken for a
/// later view of its own epoch: the status tick's state request brings it across the boundary
/// first. (cargo-mutants at 8c1a26e: the later-epoch test's `>` as `<` went unseen.)
#[test]
fn a_message_from_a_later_epoch_is_dropped_until_the_replica_reaches_it() {
    let mut c = Cluster::new(4, 8);
    c.decide_each(0, 1..=1);
    let key = c.keys[2].clone();
    let later = prepare_signed_by(&c, 1, &key, View::first_of_epoch(1), Seq(2));
    let before = dropped(&c, 1, "message from a later epoch");
    c.input(1, Input::Message(later));
    assert_eq!(dropped(&c, 1, "message from a later epoch"), before + 1);
}

/// The boundary's certificate takes only old-set checkpoints for the boundary's own state and
/// next set: a Byzantine old-set validator's checkpoint naming the next set but another state
/// is not counted, though it arrived first and the certificate has room for it.
/// (cargo-mutants at 8c1a26e: either `&&` of `boundary_votes`' filter as `||` went unseen.)
#[test]
fn a_boundary_certificate_counts_no_checkpoint_for_another_state() {
    let mut c = Cluster::new(4, 8);
    c.decide_each(0, 1..=2);
    c.isolate(1);
    let mut set = members(&c);
    set[3].1 = Keypair::from_label("t3 rotated").public();
    let next = ValidatorSet {
        epoch: 1,
        start: Seq(3),
        members: set.clone(),
    };
    let forged = Checkpoint {
        seq: Seq(3),
        state_digest: Digest([9; 32]),
        next_set: Some(next.digest()),
    };
    let forged = c.signed_by(1, Kind::Checkpoint, ProtoCodec.encode_checkpoint(&forged));
    c.input(0, Input::Message(forged));
    c.input(0, Input::ClientRequest(c.set_request(3, &set)));
    c.run();
    let stable = c.replica(0).stable_checkpoint();
    assert_eq!((stable.seq, c.replica(0).epoch()), (Seq(3), 1));
    assert_eq!(stable.next_set, Some(next.digest()));
    assert_eq!(stable.proof.len(), 3);
    for vote in &stable.proof {
        assert_ne!(
            vote.validator(),
            Some(ReplicaId(1)),
            "the forged checkpoint"
        );
        assert_eq!(vote.value().state_digest, stable.state_digest);
    }
}

/// A replica that entered a new epoch while its boundary certificate is still short of the
/// old set's quorum keeps serving the checkpoint before the boundary: a replica behind is
/// sent that one and the batches up to the boundary, which it can check, not the short
/// certificate, which it could not. (cargo-mutants at 8c1a26e: the completeness test's `>=`
/// as `<` went unseen: it made the short certificate stable at once.)
#[test]
fn a_boundary_short_of_its_proof_is_not_served_and_a_replica_behind_still_crosses_it() {
    let mut c = Cluster::new(4, 8);
    c.decide_each(0, 1..=2);
    c.isolate(3);
    c.drop_kinds.insert(Kind::Checkpoint);
    let mut set = members(&c);
    set[2].1 = Keypair::from_label("short boundary").public();
    c.input(0, Input::ClientRequest(c.set_request(3, &set)));
    c.run();
    for i in 0..3 {
        let r = c.replica(i);
        assert_eq!((r.epoch(), r.last_executed()), (1, Seq(3)), "replica {i}");
        assert!(r.stable_checkpoint().proof.len() < 3, "replica {i}: short");
    }
    c.heal();
    c.fire(3, TimerKind::Status);
    let r3 = c.replica(3);
    assert_eq!((r3.epoch(), r3.last_executed()), (1, Seq(3)));
    assert_eq!(r3.app().digest(), c.replica(0).app().digest());
}

pub(crate) fn dropped(c: &Cluster, i: usize, reason: &str) -> u64 {
    c.replica(i).dropped().get(reason).copied().unwrap_or(0)
}

/// A prepare for `view` and `seq` signed by `key` as validator `id`, opened by replica `at`'s
/// edge.
fn prepare_signed_by(
    c: &Cluster,
    at: usize,
    key: &Keypair,
    view: View,
    seq: Seq,
) -> Signed<Message> {
    let vote = Vote {
        view,
        seq,
        digest: Digest::default(),
    };
    let env = Envelope::seal(Kind::Prepare, ProtoCodec.encode_vote(&vote), key);
    scbe_wire::open(&scbe_wire::encode_envelope(&env), c.directory_of(at))
        .expect("a key of this epoch or the last one opens")
}

#[test]
fn a_rotated_key_is_in_force_from_the_batch_after_the_change_and_the_old_one_never_counts_again() {
    let mut c = Cluster::new(4, 8);
    let (old, new) = propose_rotation_at_3(&mut c, 3);
    c.run();
    for i in 0..4 {
        let r = c.replica(i);
        assert_eq!(r.last_executed(), Seq(3), "replica {i}");
        assert_eq!(r.epoch(), 1, "replica {i}");
        assert_eq!(r.view(), View::first_of_epoch(1), "replica {i}");
        assert_eq!(r.status(), Status::Normal, "replica {i}");
        assert_eq!(
            r.stable_checkpoint().seq,
            Seq(3),
            "the boundary is the epoch's base"
        );
        assert_eq!(r.observing(), i == 3, "replica {i}");
    }
    // The boundary's certificate is the old set's, replica 3's old key included.
    let proof = &c.replica(0).stable_checkpoint().proof;
    assert_eq!(proof.len(), 3);
    assert!(proof.iter().all(|cp| cp.value().seq == Seq(3)));

    // The new set orders without the old key: 0, 1 and 2 are a quorum of it.
    c.decide_each(0, 4..=4);
    for i in 0..3 {
        assert_eq!(c.replica(i).last_executed(), Seq(4), "replica {i}");
    }
    assert_eq!(
        c.replica(3).last_executed(),
        Seq(3),
        "observing: it votes on nothing"
    );
    let before = dropped(&c, 1, "message signed by a key not in force");
    let stale = prepare_signed_by(&c, 1, &old, View::first_of_epoch(1), Seq(5));
    c.input(1, Input::Message(stale));
    assert_eq!(
        dropped(&c, 1, "message signed by a key not in force"),
        before + 1
    );

    // Restarted with the old key, it only observes; with the new one it is back in the set.
    c.restart_with_key(3, old).expect("restores");
    assert_eq!(c.replica(3).epoch(), 1);
    assert!(c.replica(3).observing());
    let first = c
        .armed(3, TimerKind::Status)
        .expect("an observer keeps a status timer");
    c.fire(3, TimerKind::Status);
    assert_eq!(
        c.replica(3).last_executed(),
        Seq(4),
        "an observer catches up"
    );
    // Only the status timer it armed last makes an observer ask: the firing of the one it
    // re-armed does not (cargo-mutants at 8c1a26e: the guard as `true`, its `&&` as `||`, and
    // timer ids that stop counting went unseen).
    let asked = c.sent(3, Kind::StateRequest).len();
    c.input(3, Input::Timeout(first));
    c.run();
    assert_eq!(c.sent(3, Kind::StateRequest).len(), asked, "a stale firing");
    c.restart_with_key(3, new)
        .expect("the key in force restores");
    assert_eq!(c.replica(3).epoch(), 1);
    assert!(!c.replica(3).observing());
    assert_eq!(c.replica(3).last_executed(), Seq(4), "from its store");
    // And it counts: with replica 1 cut off, 0, 2 and the re-keyed 3 decide.
    c.isolate(1);
    c.decide_each(0, 5..=5);
    for i in [0, 2, 3] {
        assert_eq!(c.replica(i).last_executed(), Seq(5), "replica {i}");
    }
    assert_eq!(c.replica(1).last_executed(), Seq(4));
}

#[test]
fn a_removed_validator_is_retired_and_the_others_order_with_the_quorum_of_the_smaller_set() {
    let mut c = Cluster::new(5, 8);
    assert_eq!(c.replica(0).config().quorum(), 4);
    let without_4: Vec<_> = members(&c).into_iter().take(4).collect();
    c.input(0, Input::ClientRequest(c.set_request(1, &without_4)));
    c.run();
    assert!(c.replica(4).observing());
    assert_eq!(c.replica(0).config().n(), 4);
    assert_eq!(c.replica(0).config().quorum(), 3);
    // Three of the remaining four decide: in the old set of five they could not.
    c.isolate(1);
    c.decide_each(0, 2..=3);
    for i in [0, 2, 3] {
        assert_eq!(c.replica(i).last_executed(), Seq(3), "replica {i}");
    }
    assert_eq!(c.replica(4).last_executed(), Seq(1));
    let removed = c.keys[4].clone();
    let before = dropped(&c, 2, "message signed by a key not in force");
    c.input(
        2,
        Input::Message(prepare_signed_by(
            &c,
            2,
            &removed,
            View::first_of_epoch(1),
            Seq(4),
        )),
    );
    assert_eq!(
        dropped(&c, 2, "message signed by a key not in force"),
        before + 1
    );
}

#[test]
fn a_replica_behind_the_boundary_catches_up_across_it_and_observes_if_its_key_was_rotated() {
    let mut c = Cluster::new(4, 8);
    c.isolate(2);
    let (_, new) = propose_rotation_at_3(&mut c, 2);
    c.run();
    c.decide_each(0, 4..=5);
    assert_eq!(c.replica(0).last_executed(), Seq(5));
    assert_eq!(c.replica(2).last_executed(), Seq(0));
    c.heal();
    // Its status tick asks for state: the peers' stable checkpoint is the boundary, certified
    // by the old set, which replica 2 can check; installing it puts it in the new epoch, where
    // its key is not in force.
    c.fire(2, TimerKind::Status);
    assert_eq!(c.replica(2).epoch(), 1);
    assert!(c.replica(2).observing());
    assert_eq!(
        c.replica(2).last_executed(),
        Seq(5),
        "an observer follows the decided batches"
    );
    assert_eq!(c.replica(2).app().digest(), c.replica(0).app().digest());
    // Restarted with the key the rotation named, it takes part again.
    c.restart_with_key(2, new).expect("restores into epoch 1");
    assert!(!c.replica(2).observing());
    c.isolate(1);
    c.decide_each(0, 6..=6);
    assert_eq!(c.replica(2).last_executed(), Seq(6));
}

#[test]
fn a_replica_started_with_its_new_key_before_its_store_reached_the_rotation_observes_until_it_does()
{
    let mut c = Cluster::new(4, 8);
    c.isolate(2);
    let (_, new) = propose_rotation_at_3(&mut c, 2);
    c.run();
    c.decide_each(0, 4..=5);
    c.heal();
    // Its store is at genesis, where the new key is nobody's: it observes, catches up across
    // the boundary, and is in the set from there.
    c.restart_with_key(2, new).expect("restores");
    assert!(c.replica(2).observing());
    assert_eq!(c.replica(2).epoch(), 0);
    c.fire(2, TimerKind::Status);
    assert_eq!(c.replica(2).epoch(), 1);
    assert!(!c.replica(2).observing());
    c.fire(2, TimerKind::Status);
    assert_eq!(c.replica(2).last_executed(), Seq(5));
    // It counts in the new set: with 1 cut off, 0, 2 and 3 decide.
    c.isolate(1);
    c.decide_each(0, 6..=6);
    assert_eq!(c.replica(2).last_executed(), Seq(6));
}

#[test]
fn the_new_epoch_changes_view_from_its_own_first_view_with_its_base_as_the_checkpoint() {
    let mut c = Cluster::new(4, 8);
    let same = members(&c);
    c.input(0, Input::ClientRequest(c.set_request(1, &same)));
    c.run();
    // The first view of epoch 1 is led by the first validator of its set (0): cut it off and
    // let the others' request timers run out.
    c.isolate(0);
    c.input(1, Input::ClientRequest(c.request(2)));
    c.run();
    for _ in 0..2 {
        for i in 1..4 {
            c.fire_if_armed(i, TimerKind::Request);
        }
    }
    let next = View::first_of_epoch(1).next();
    for i in 1..4 {
        assert_eq!(c.replica(i).view(), next, "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
        assert_eq!(c.replica(i).last_executed(), Seq(2), "replica {i}");
    }
    assert_eq!(c.replica(1).config().primary(next), ReplicaId(1));
}

/// What `scbe audit verify` runs: a decided log that crosses a rotation replays with each
/// epoch's set, reaches every digest the validators signed on either side of the boundary,
/// and refuses a checkpoint of the new epoch that counts the rotated-out key.
#[test]
fn a_decided_log_across_a_rotation_replays_with_each_epochs_set() {
    let mut c = Cluster::new(4, 4);
    let (old, new) = propose_rotation_at_3(&mut c, 3);
    c.run();
    c.restart_with_key(3, new).expect("restores into epoch 1");
    c.decide_each(0, 4..=9);
    for i in 0..4 {
        c.fire_if_armed(i, TimerKind::Status);
    }
    let certs = c.decided_certificates(0);
    let stable = c.stable_certificates(0);
    let seqs: Vec<u64> = stable.iter().map(|s| s.seq.0).collect();
    assert!(seqs.contains(&3) && seqs.contains(&8), "{seqs:?}");

    let mut replay = DecidedReplay::new(c.config(0), scbe_wire::testkit::ChainApp::default());
    for cert in &certs {
        replay.feed(cert).expect("a valid log");
    }
    assert_eq!(replay.last(), Seq(9));
    assert_eq!(
        replay
            .epochs()
            .map(|d| (d.epoch(), d.start()))
            .collect::<Vec<_>>(),
        vec![(0, Seq(0)), (1, Seq(3))]
    );
    for s in &stable {
        assert_eq!(
            replay.check_signed(s),
            Ok(scbe_core::consensus::decided_replay::CheckpointCheck::Matches),
            "seq {}",
            s.seq.0
        );
    }
    // The checkpoint at 8 with one vote signed by validator 3's rotated-out key.
    let at_8 = stable
        .iter()
        .find(|s| s.seq == Seq(8))
        .expect("stable at 8");
    let vote = Checkpoint {
        seq: Seq(8),
        state_digest: at_8.state_digest,
        next_set: at_8.next_set,
    };
    let env = Envelope::seal(Kind::Checkpoint, ProtoCodec.encode_checkpoint(&vote), &old);
    let signed = scbe_wire::open(&scbe_wire::encode_envelope(&env), &c.dir).expect("opens");
    let mut forged = at_8.clone();
    forged.proof[0] = scbe_core::consensus::message::retype(&signed, vote);
    assert!(matches!(
        replay.check_signed(&forged),
        Err(decided_replay::ReplayError::CheckpointCertificate {
            source: CertError::NotInForce { .. },
            ..
        })
    ));
}

/// A validator set consensus cannot run (here 3 validators: no fault tolerated) leaves the old
/// one in force on every replica, and the offline replay agrees: the batch that changed it
/// takes a checkpoint, the batches after it do not (each one would, if the refusal were not
/// remembered).
#[test]
fn a_set_consensus_cannot_run_leaves_the_old_one_in_force_everywhere_alike() {
    let mut c = Cluster::new(4, 8);
    let three: Vec<_> = members(&c).into_iter().take(3).collect();
    c.input(0, Input::ClientRequest(c.set_request(1, &three)));
    c.run();
    c.decide_each(0, 2..=4);
    for i in 0..4 {
        let r = c.replica(i);
        assert_eq!((r.epoch(), r.last_executed()), (0, Seq(4)), "replica {i}");
        assert_eq!(
            r.dropped()
                .get("the application's validator set is not one consensus can run"),
            Some(&1),
            "replica {i}"
        );
        assert_eq!(
            c.broadcasts(i, Kind::Checkpoint),
            1,
            "replica {i}: one, at seq 1"
        );
    }
    let mut replay = DecidedReplay::new(c.config(0), scbe_wire::testkit::ChainApp::default());
    let taken: Vec<u64> = c.delivered[0]
        .iter()
        .filter_map(|d| {
            replay
                .feed(&d.certificate)
                .expect("a valid log")
                .map(|_| d.seq.0)
        })
        .collect();
    assert_eq!(taken, vec![1]);
    assert_eq!(replay.epochs().count(), 1);
    // A restart from the store refuses it again and goes on in the same epoch.
    c.restart_with_key(2, c.keys[2].clone()).expect("restores");
    assert_eq!(c.replica(2).epoch(), 0);
    c.decide_each(0, 5..=5);
    assert_eq!(c.replica(2).last_executed(), Seq(5));
    assert_eq!(
        c.broadcasts(2, Kind::Checkpoint),
        1,
        "none since the restart either"
    );
}

/// The old set's certificate at the boundary counts only the old set's keys: a checkpoint
/// there signed by the key validator 3 rotated to is refused, and does not take the place of
/// validator 3's old-key vote, which the certificate needs when another validator is missing.
#[test]
fn a_new_key_never_stands_in_for_the_old_one_in_the_boundary_certificate() {
    let mut c = Cluster::new(4, 8);
    c.isolate(2);
    let (_, new) = propose_rotation_at_3(&mut c, 3);
    // Hold back replica 1's checkpoint at the boundary to replica 0.
    let dir = c.dir.clone();
    let mut held = Vec::new();
    while let Some((from, to, bytes)) = c.next_queued() {
        let m = scbe_wire::open(&bytes, &dir).expect("opens");
        if from == 1 && to == 0 && matches!(m.value(), Message::Checkpoint(cp) if cp.seq == Seq(3))
        {
            held.push(m);
            continue;
        }
        c.input(to, Input::Message(m));
    }
    assert_eq!(c.replica(0).epoch(), 1);
    // Its own vote and validator 3's old-key one are in: one short of the old quorum, so the
    // certificate still holds the votes it had when the replica moved on.
    assert!(c.replica(0).stable_checkpoint().proof.len() < 3);
    // Validator 3's new key signs a checkpoint at the boundary.
    let digest = c.replica(0).stable_checkpoint().state_digest;
    let vote = Checkpoint {
        seq: Seq(3),
        state_digest: digest,
        next_set: c.replica(0).stable_checkpoint().next_set,
    };
    let env = Envelope::seal(Kind::Checkpoint, ProtoCodec.encode_checkpoint(&vote), &new);
    let m = scbe_wire::open(&scbe_wire::encode_envelope(&env), c.directory_of(0))
        .expect("the new key is in force at replica 0");
    let before = dropped(&c, 0, "checkpoint signed by a key not in force");
    c.input(0, Input::Message(m));
    assert_eq!(
        dropped(&c, 0, "checkpoint signed by a key not in force"),
        before + 1
    );
    for m in held {
        c.input(0, Input::Message(m));
    }
    let proof = &c.replica(0).stable_checkpoint().proof;
    assert_eq!(proof.len(), 3, "the old set's quorum: 0, 1 and 3's old key");
    assert!(proof.iter().all(|cp| *cp.signer() != new.public()));
}
