//! Restarts from snapshots that are not the stable checkpoint's own: persisted only every so
//! often (`snapshot_persist_floor`), or encoded off the core's loop and landing after their turn
//! (`crate::snapshot_encoder`). The audit trail fills the gap either way.

use std::sync::Arc;

use super::tests::{decided_cluster, restore, GENESIS};
use super::*;
use scbe_core::consensus::{Record, Replica, Seq, StateMachine as _};
use scbe_wire::testkit::ChainApp;
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
