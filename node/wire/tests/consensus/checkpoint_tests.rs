//! Checkpoints that were lost in transit are sent again, so the window moves on: without it the
//! primary stops at the high watermark for good (simulator seed 444).

use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;

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
                Record::Prepared(p) => Some(p.pre_prepare.value().seq),
                Record::Committed(cert) => Some(cert.seq()),
                Record::Snapshot(s) => Some(s.seq),
                Record::Stable(_)
                | Record::ViewChange(_)
                | Record::EnteredView { .. }
                | Record::NonceReservation { .. } => None,
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
