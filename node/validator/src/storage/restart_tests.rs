//! Restarts from snapshots that are not the stable checkpoint's own: persisted only every so
//! often (`snapshot_persist_floor`), or encoded off the core's loop and landing after their turn
//! (`crate::snapshot_encoder`). The audit trail fills the gap either way.

use std::sync::Arc;

use super::tests::{decided_cluster, restore, GENESIS};
use super::*;
use scbe_core::consensus::{Record, Replica, Seq, StateMachine as _};
use scbe_wire::testkit::{ChainApp, Cluster};
use scbe_wire::ProtoCodec;

/// A large snapshot is persisted only every so often (`snapshot_persist_floor`): the store then
/// keeps the newest snapshot at or below the stable checkpoint, and a restart re-executes the
/// audit trail from it (or from genesis when there is none) up to the stable checkpoint, whose
/// digest must match. Emulated by leaving snapshot records out of a real replica's records.
#[test]
fn a_restart_re_executes_the_audit_trail_from_an_older_snapshot_or_genesis() {
    let (c, decided) = decided_cluster(2, 9);
    let load = |keep_snapshot: fn(Seq) -> bool, decided: &[scbe_core::consensus::CommitCert]| {
        let records: Vec<Record> = c.stores[1]
            .iter()
            .filter(|r| !matches!(r, Record::Snapshot(s) if !keep_snapshot(s.seq)))
            .cloned()
            .collect();
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("node.redb");
        let mut s = RecordStore::open(&path, &c.keys[1].public(), &GENESIS).expect("opens");
        s.commit_turn(&records, decided, &Default::default())
            .expect("commits");
        s.load(&c.dir).expect("loads")
    };
    for (what, keep) in [
        (
            "from the snapshot at 2",
            (|s| s == Seq(2)) as fn(Seq) -> bool,
        ),
        ("from genesis", |_| false),
    ] {
        let loaded = load(keep, &decided);
        let snapshots: Vec<Seq> = loaded
            .iter()
            .filter_map(|r| match r {
                Record::Snapshot(s) => Some(s.seq),
                _ => None,
            })
            .collect();
        assert!(snapshots.iter().all(|s| keep(*s)), "{what}: {snapshots:?}");
        let r = restore(&c, 1, &loaded);
        assert_eq!(r.stable_checkpoint().seq, Seq(8), "{what}");
        assert_eq!(r.last_executed(), Seq(9), "{what}");
        assert_eq!(r.app().digest(), c.replica(1).app().digest(), "{what}");
    }
    // A hole in the audit trail below the stable checkpoint is an error, not a wrong state.
    let holed: Vec<_> = decided
        .iter()
        .filter(|d| d.seq() != Seq(5))
        .cloned()
        .collect();
    let loaded = load(|s| s == Seq(2), &holed);
    let err = Replica::restore(
        c.config(1),
        c.keys[1].clone(),
        Arc::new(ProtoCodec),
        ChainApp::default(),
        &loaded,
    )
    .err()
    .expect("refused");
    assert!(
        matches!(
            err,
            scbe_core::consensus::RestoreError::MissingDecided(Seq(5))
        ),
        "{err}"
    );
}

/// Large snapshots are encoded off the core's loop and land after the turn that took them,
/// possibly after their own stable checkpoint compacted the log (`snapshot_encoder`). The store
/// then still restores the same replica, from the newest of them, also across a reopen; one no
/// newer than a stored snapshot is not written.
#[test]
fn snapshots_that_land_after_their_turn_restore_the_same_replica() {
    let (c, decided) = decided_cluster(2, 9);
    let (snapshots, others): (Vec<Record>, Vec<Record>) = c.stores[1]
        .iter()
        .cloned()
        .partition(|r| matches!(r, Record::Snapshot(_)));
    let snapshots: Vec<_> = snapshots
        .into_iter()
        .filter_map(|r| match r {
            Record::Snapshot(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(snapshots.len() >= 3, "{} snapshots", snapshots.len());
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let mut s = RecordStore::open(&path, &c.keys[1].public(), &GENESIS).expect("opens");
    s.commit_turn(&others, &decided, &Default::default())
        .expect("commits");
    let (older, newest) = snapshots.split_at(snapshots.len() - 1);
    let newest = &newest[0];
    assert!(s
        .commit_snapshot(&EncodedSnapshot::encode(newest))
        .expect("writes"));
    for old in older {
        assert!(
            !s.commit_snapshot(&EncodedSnapshot::encode(old))
                .expect("writes"),
            "snapshot {:?} is older than {:?}",
            old.seq,
            newest.seq
        );
    }
    let before_reopen = s.load(&c.dir).expect("loads");
    drop(s);
    let after_reopen = RecordStore::open(&path, &c.keys[1].public(), &GENESIS)
        .expect("reopens")
        .load(&c.dir)
        .expect("loads");
    for loaded in [before_reopen, after_reopen] {
        let stored: Vec<Seq> = loaded
            .iter()
            .filter_map(|r| match r {
                Record::Snapshot(s) => Some(s.seq),
                _ => None,
            })
            .collect();
        assert_eq!(stored, vec![newest.seq]);
        let r = restore(&c, 1, &loaded);
        assert_eq!(r.stable_checkpoint().seq, Seq(8));
        assert_eq!(r.last_executed(), Seq(9));
        assert_eq!(r.app().digest(), c.replica(1).app().digest());
    }
}

/// A validator restarted while its stable checkpoint is an epoch boundary short of the old
/// set's proof serves, from what the store gives back, the stable checkpoint before the
/// boundary and the batch up to it: the boundary's stable record compacts nothing (before, it
/// dropped the earlier checkpoint and the boundary batch, and the replicas still before it
/// were never brought across; simulator seed 1538).
#[test]
fn a_store_restarted_at_a_boundary_short_of_its_proof_still_brings_the_others_across() {
    // Checkpoints every 2: a regular stable checkpoint at 2, the boundary at 3.
    let mut c = Cluster::new(4, 2);
    c.boundary_short_of_its_proof();
    assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(3));
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let mut s = RecordStore::open(&path, &c.keys[0].public(), &GENESIS).expect("opens");
    // One append per record: the order compaction sees in a running node.
    for r in c.stores[0].clone() {
        s.append(std::slice::from_ref(&r)).expect("appends");
    }
    let loaded = s.load(&c.dir).expect("loads");
    assert!(
        loaded
            .iter()
            .any(|r| matches!(r, Record::Committed(cert) if cert.seq() == Seq(3))),
        "the boundary batch is kept"
    );
    c.stores[0] = loaded;
    let key0 = c.keys[0].clone();
    c.restart_with_key(0, key0).expect("restores");
    c.isolate(3);
    c.fire(1, scbe_core::consensus::TimerKind::Status);
    c.fire(2, scbe_core::consensus::TimerKind::Status);
    for i in [1, 2] {
        assert_eq!(c.replica(i).last_executed(), Seq(3), "replica {i} crossed");
        assert_eq!(c.replica(i).epoch(), 1, "replica {i}");
    }
}
