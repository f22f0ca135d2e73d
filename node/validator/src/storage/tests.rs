//! The record store with records produced by real replicas: reopen and restore, compaction,
//! and refusal to start on a damaged or foreign database.

use std::sync::Arc;

use super::*;
use scbe_core::consensus::{
    batch_digest, Action, Digest, Input, Kind, PrePrepare, Principal, Record, Replica, ReplicaId,
    Seq, Signed, StateMachine as _, View,
};
use scbe_core::crypto::Keypair;
use scbe_wire::testkit::{ChainApp, Cluster};
use scbe_wire::ProtoCodec;

/// The genesis digest these stores are written under.
pub(super) const GENESIS: Digest = Digest([7; 32]);

fn store_all(path: &std::path::Path, key: &Keypair, records: &[Record]) {
    let mut s = RecordStore::open(path, &key.public(), &GENESIS).expect("opens");
    // One append per record: the worst case for compaction order.
    for r in records {
        s.append(std::slice::from_ref(r)).expect("appends");
    }
}

pub(super) fn restore(c: &Cluster, i: usize, records: &[Record]) -> Replica<ChainApp> {
    Replica::restore(
        c.config(i),
        c.keys[i].clone(),
        Arc::new(ProtoCodec),
        ChainApp::default(),
        records,
    )
    .expect("restores")
    .0
}

#[test]
fn reopened_store_restores_the_same_replica() {
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=5);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    store_all(&path, &c.keys[1], &c.stores[1]);
    let loaded = RecordStore::open(&path, &c.keys[1].public(), &GENESIS)
        .expect("reopens")
        .load(&c.dir)
        .expect("loads");
    let r = restore(&c, 1, &loaded);
    assert_eq!(r.last_executed(), Seq(5));
    assert_eq!(r.stable_checkpoint().seq, Seq(4));
    assert_eq!(r.app().digest(), c.replica(1).app().digest());
    // Compaction kept nothing decided at or below the stable checkpoint but its snapshot.
    assert!(loaded.iter().all(|rec| match rec {
        Record::Snapshot(s) => s.seq >= Seq(4),
        Record::Committed(cert) => cert.seq() > Seq(4),
        _ => true,
    }));
    assert_eq!(
        loaded
            .iter()
            .filter(|r| matches!(r, Record::Stable(_)))
            .count(),
        1
    );
}

#[test]
fn restart_through_the_store_never_signs_a_conflicting_prepare() {
    let mut c = Cluster::new(4, 128);
    c.cut.insert((1, 2));
    c.cut.insert((3, 2));
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    store_all(&path, &c.keys[2], &c.stores[2]);
    let loaded = RecordStore::open(&path, &c.keys[2].public(), &GENESIS)
        .expect("reopens")
        .load(&c.dir)
        .expect("loads");
    c.replicas[2] = Some(restore(&c, 2, &loaded));
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
        |v| scbe_core::consensus::Codec::encode_pre_prepare(&ProtoCodec, v),
        &c.keys[0],
        Principal::Validator(ReplicaId(0)),
    );
    c.heal();
    c.send(0, 2, equivocation.envelope());
    c.run();
    // Its prepare at (0, 1) went out under a reservation, with no record of which digest: the
    // restored replica signs nothing there.
    assert_eq!(
        c.replica(2)
            .dropped()
            .get("prepare withheld: reserved before a restart"),
        Some(&1)
    );
    assert!(
        !c.log[2]
            .iter()
            .any(|a| matches!(a, Action::Broadcast(e) if e.kind == Kind::Prepare)),
        "no prepare signed after the restart"
    );
}

#[test]
fn a_store_written_by_another_validator_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    drop(RecordStore::open(&path, &Keypair::from_label("a").public(), &GENESIS).expect("creates"));
    let err = RecordStore::open(&path, &Keypair::from_label("b").public(), &GENESIS)
        .err()
        .expect("refused");
    assert!(matches!(err, StorageError::WrongNode { .. }), "{err}");
}

/// A data directory belongs to one genesis: opened under another (a rerun that rewrote the
/// configs, a copy of another cluster's genesis), it is refused naming both digests, and nothing
/// in it changes; under its own genesis it opens again.
#[test]
fn a_store_written_under_another_genesis_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let key = Keypair::from_label("a").public();
    drop(RecordStore::open(&path, &key, &GENESIS).expect("creates"));
    let other = Digest([8; 32]);
    let err = RecordStore::open(&path, &key, &other)
        .err()
        .expect("refused");
    match &err {
        StorageError::WrongGenesis {
            stored, expected, ..
        } => {
            assert_eq!(stored, &"07".repeat(32));
            assert_eq!(expected, &"08".repeat(32));
        }
        other => panic!("expected WrongGenesis, got {other}"),
    }
    assert!(
        err.to_string().contains("move the data directory away"),
        "{err}"
    );
    RecordStore::open(&path, &key, &GENESIS).expect("its own genesis opens it");
}

#[test]
fn a_corrupt_or_truncated_database_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5a; 8192]).expect("write");
    let err = RecordStore::open(&garbage, &Keypair::from_label("a").public(), &GENESIS)
        .err()
        .expect("refused");
    assert!(matches!(err, StorageError::Open { .. }), "{err}");
    assert!(err.to_string().contains("refuses to start"));

    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=3);
    let path = dir.path().join("node.redb");
    store_all(&path, &c.keys[1], &c.stores[1]);
    let len = std::fs::metadata(&path).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len / 3).expect("truncate");
    drop(f);
    let opened =
        RecordStore::open(&path, &c.keys[1].public(), &GENESIS).and_then(|s| s.load(&c.dir));
    assert!(opened.is_err(), "a truncated database must not load");
}

/// One bit of a signature inside a stored prepared certificate is flipped, and the value is
/// stored again in a valid frame: only the signature check can find it (flipping a byte of the
/// stored value would land inside a zstd frame, whose damage reads as another error).
#[test]
fn a_tampered_record_is_refused_on_load() {
    use crate::storage::value_codec::{pack, unpack};
    use scbe_wire::WireError;
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    store_all(&path, &c.keys[1], &c.stores[1]);
    {
        use redb::{ReadableTable, TableDefinition};
        const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
        let db = redb::Database::open(&path).expect("db");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn.open_table(RECORDS).expect("table");
            let (k, mut bytes, signature) = t
                .iter()
                .expect("read")
                .filter_map(|e| {
                    let (k, v) = e.expect("entry");
                    let bytes = unpack(v.value()).expect("a valid frame").into_owned();
                    match scbe_wire::decode_record(&bytes, &c.dir).expect("loads") {
                        Record::Prepared(cert) => Some((
                            k.value(),
                            bytes,
                            *cert.pre_prepare.envelope().signature.as_bytes(),
                        )),
                        _ => None,
                    }
                })
                .next()
                .expect("a prepared certificate is stored");
            let at = bytes
                .windows(64)
                .position(|w| w == signature)
                .expect("the signature is in the encoding");
            bytes[at + 10] ^= 0x01;
            t.insert(k, pack(&bytes).as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = RecordStore::open(&path, &c.keys[1].public(), &GENESIS)
        .expect("opens")
        .load(&c.dir)
        .expect_err("refused");
    assert!(
        matches!(
            err,
            StorageError::Record {
                source: WireError::Crypto(_),
                ..
            }
        ),
        "{err}"
    );
}

/// A node killed while creating its store leaves a partly written file; whatever that left on
/// disk (the temporary file cut at any length, or zeroed), the next start creates the store and
/// opens it. (Before stores were created under a temporary name, a zeroed header at the final
/// path made the node refuse to start forever.)
#[test]
fn a_store_killed_while_being_created_comes_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = Keypair::from_label("a");
    let full = dir.path().join("full.redb");
    drop(RecordStore::open(&full, &key.public(), &GENESIS).expect("creates"));
    assert!(
        !dir.path().join("full.redb.creating").exists(),
        "nothing left behind"
    );
    let bytes = std::fs::read(&full).expect("read");
    let mut cuts: Vec<usize> = vec![0, 1, 512, 4096, bytes.len() / 2, bytes.len()];
    cuts.retain(|c| *c <= bytes.len());
    for (i, cut) in cuts.into_iter().enumerate() {
        for zeroed in [false, true] {
            let path = dir.path().join(format!("node{i}-{zeroed}.redb"));
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".creating");
            let left = if zeroed {
                vec![0u8; cut]
            } else {
                bytes[..cut].to_vec()
            };
            std::fs::write(&tmp, left).expect("write");
            let store = RecordStore::open(&path, &key.public(), &GENESIS)
                .unwrap_or_else(|e| panic!("cut at {cut} (zeroed {zeroed}): {e}"));
            drop(store);
            RecordStore::open(&path, &key.public(), &GENESIS).expect("and again");
        }
    }
}

#[test]
fn ledger_history_beyond_memory_is_read_back_from_the_store() {
    use scbe_core::governance::event::Event;
    use scbe_core::governance::ledger::{Fresh, Outcome};
    use scbe_core::governance::Tongue;
    let key = Keypair::from_label("t0");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let event = |i: u64| Event {
        seq: i,
        tongue: Tongue::RU,
        kind: "request_rejected".into(),
        subject: format!("r{i}"),
        detail: String::new(),
    };
    let outcome = |seq: u64| Outcome {
        request: "ab".into(),
        seq,
        accepted: false,
        reasons: vec!["no".into()],
        proposal: None,
        rollout: None,
    };
    {
        let mut s = RecordStore::open(&path, &key.public(), &GENESIS).expect("opens");
        for turn in 0..3u64 {
            let history = Fresh {
                events: (turn * 10..turn * 10 + 10)
                    .map(|i| (i, serde_json::to_vec(&event(i)).expect("encodes")))
                    .collect(),
                outcomes: vec![(
                    "aa".into(),
                    turn + 1,
                    serde_json::to_vec(&outcome(turn + 1)).expect("encodes"),
                )],
                ..Fresh::default()
            };
            s.commit_turn(&[], &[], &history).expect("commits");
        }
    }
    let s = RecordStore::open(&path, &key.public(), &GENESIS).expect("reopens");
    let got = s.events_from(5, 7).expect("reads");
    assert_eq!(
        got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (5..12).collect::<Vec<_>>()
    );
    assert_eq!(got[0].1, event(5));
    assert_eq!(s.events_from(30, 10).expect("reads"), vec![]);
    assert_eq!(s.outcome("aa", 2).expect("reads"), Some(outcome(2)));
    assert_eq!(s.outcome("aa", 4).expect("reads"), None);
    assert_eq!(s.outcome("bb", 2).expect("reads"), None);
}

/// A decided batch is stored once, in the audit trail, and still comes back as a `Committed`
/// record for restore.
/// A cluster (checkpoint every `k`) that decided `requests` requests one at a time, and the
/// commit certificates replica 1 delivered (what its runtime writes to the audit trail).
pub(super) fn decided_cluster(
    k: u64,
    requests: u64,
) -> (Cluster, Vec<scbe_core::consensus::CommitCert>) {
    let mut c = Cluster::new(4, k);
    for nonce in 1..=requests {
        c.input(0, Input::ClientRequest(c.request(nonce)));
        c.run();
    }
    let decided: Vec<_> = c.delivered[1]
        .iter()
        .map(|d| d.certificate.clone())
        .collect();
    assert_eq!(decided.len() as u64, requests);
    (c, decided)
}

/// A store of format 1 (values as they are, before `value_codec`) is upgraded when it is
/// opened: it loads exactly what it held, and from then on it is format 2.
#[test]
fn a_format_1_store_is_upgraded_on_open_and_loads_the_same_records() {
    use crate::storage::value_codec::unpack;
    use redb::{ReadableTable, TableDefinition};
    let (c, decided) = decided_cluster(128, 5);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let expected = {
        let mut s = RecordStore::open(&path, &c.keys[1].public(), &GENESIS).expect("opens");
        s.commit_turn(&c.stores[1], &decided, &Default::default())
            .expect("commits");
        s.load(&c.dir).expect("loads")
    };
    // Rewrite the file as format 1 wrote it.
    {
        let db = redb::Database::open(&path).expect("db");
        let txn = db.begin_write().expect("txn");
        for name in ["records", "decided"] {
            let def: TableDefinition<u64, &[u8]> = TableDefinition::new(name);
            let mut t = txn.open_table(def).expect("table");
            let rows: Vec<(u64, Vec<u8>)> = t
                .iter()
                .expect("iter")
                .map(|e| {
                    let (k, v) = e.expect("row");
                    (k.value(), unpack(v.value()).expect("unpacks").into_owned())
                })
                .collect();
            assert!(!rows.is_empty(), "{name} has rows");
            for (k, v) in rows {
                t.insert(k, v.as_slice()).expect("insert");
            }
        }
        let meta_def: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
        txn.open_table(meta_def)
            .expect("meta")
            .insert("format", b"scbe-records-1".as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }
    for _ in 0..2 {
        let s = RecordStore::open(&path, &c.keys[1].public(), &GENESIS).expect("upgrades");
        let loaded = s.load(&c.dir).expect("loads");
        assert_eq!(
            format!("{loaded:?}"),
            format!("{expected:?}"),
            "the same records, before and after the upgrade"
        );
    }
    let wrong = RecordStore::open(&path, &c.keys[2].public(), &GENESIS).map(|_| ());
    assert!(matches!(wrong, Err(StorageError::WrongNode { .. })));
}

/// Compaction picks what to drop from the store's in-memory index of (kind, seq), not by
/// reading records back. The index must say what the records say, including after a reopen
/// (it is rebuilt from the file) and across view changes and stable checkpoints: a store
/// reopened before every record loads exactly what one kept open does.
#[test]
fn compaction_from_the_index_matches_the_records_across_reopens() {
    use scbe_wire::{record_key, stored_record_key};
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=5);
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    for nonce in 6..=9 {
        c.input(1, Input::ClientRequest(c.request(nonce)));
        c.run();
    }
    let records = &c.stores[2];
    assert!(records.iter().any(|r| matches!(r, Record::ViewChange(_))));
    assert!(
        records
            .iter()
            .filter(|r| matches!(r, Record::Stable(_)))
            .count()
            >= 3
    );
    for r in records {
        assert_eq!(
            stored_record_key(&scbe_wire::encode_record(r)),
            Some(record_key(r)),
            "{r:?}"
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let kept_open = dir.path().join("open.redb");
    store_all(&kept_open, &c.keys[2], records);
    let reopened = dir.path().join("reopened.redb");
    for r in records {
        RecordStore::open(&reopened, &c.keys[2].public(), &GENESIS)
            .expect("opens")
            .append(std::slice::from_ref(r))
            .expect("appends");
    }
    let load = |path: &std::path::Path| -> Vec<Vec<u8>> {
        RecordStore::open(path, &c.keys[2].public(), &GENESIS)
            .expect("reopens")
            .load(&c.dir)
            .expect("loads")
            .iter()
            .map(scbe_wire::encode_record)
            .collect()
    };
    let (a, b) = (load(&kept_open), load(&reopened));
    assert_eq!(a, b);
    // Compacted: one stable checkpoint and one view record survive, nothing at or below the
    // stable checkpoint but its snapshot.
    let loaded = RecordStore::open(&kept_open, &c.keys[2].public(), &GENESIS)
        .expect("reopens")
        .load(&c.dir)
        .expect("loads");
    let stable = restore(&c, 2, &loaded).stable_checkpoint().seq;
    assert!(stable >= Seq(6), "stable {stable:?}");
    assert_eq!(
        loaded
            .iter()
            .filter(|r| matches!(r, Record::Stable(_)))
            .count(),
        1
    );
    assert_eq!(
        loaded
            .iter()
            .filter(|r| matches!(r, Record::ViewChange(_) | Record::EnteredView { .. }))
            .count(),
        1
    );
    assert!(loaded.iter().all(|r| match r {
        Record::Snapshot(s) => s.seq >= stable,
        other => other.seq().is_none_or(|s| s > stable),
    }));
}

/// A validator's nonce reservation survives a reopen and compaction; only the newest is kept.
#[test]
fn the_newest_nonce_reservation_is_kept_across_compaction_and_reopen() {
    let (c, _) = decided_cluster(2, 9);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("records.redb");
    let mut records = vec![
        Record::NonceReservation { up_to: 1152 },
        Record::NonceReservation { up_to: 2176 },
    ];
    // Then everything a replica persisted, stable checkpoints (compactions) included.
    records.extend(c.stores[1].iter().cloned());
    {
        let mut s = RecordStore::open(&path, &c.keys[1].public(), &GENESIS).expect("opens");
        for r in &records {
            s.commit_turn(std::slice::from_ref(r), &[], &Default::default())
                .expect("commits");
        }
    }
    let loaded = RecordStore::open(&path, &c.keys[1].public(), &GENESIS)
        .expect("reopens")
        .load(&c.dir)
        .expect("loads");
    let kept: Vec<u64> = loaded
        .iter()
        .filter_map(|r| match r {
            Record::NonceReservation { up_to } => Some(*up_to),
            _ => None,
        })
        .collect();
    assert_eq!(kept, vec![2176]);
    assert!(
        loaded.iter().any(|r| matches!(r, Record::Stable(_))),
        "the replica's records went through compaction"
    );
}

/// A turn that only records decisions commits without an fsync (nothing a peer receives waits
/// for it, and the loop used to wait for it before the next request's pre-prepare): a crash
/// right after it leaves the store as the last durable commit left it, which opens and loads;
/// [`RecordStore::sync`] (the runtime's, soon after) and a clean close keep the decisions.
#[test]
fn decisions_alone_are_not_synced_and_a_crash_after_them_leaves_a_store_that_opens() {
    use scbe_core::governance::ledger::Fresh;
    let (c, decided) = decided_cluster(128, 2);
    let key = &c.keys[1];
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let crashed = dir.path().join("crashed.redb");
    let synced = dir.path().join("synced.redb");
    {
        let mut s = RecordStore::open(&path, &key.public(), &GENESIS).expect("opens");
        // The vote guard's and prepared records: durable.
        s.append(&c.stores[1]).expect("appends");
        s.commit_turn(&[], &decided, &Fresh::default())
            .expect("commits");
        assert_eq!(s.decided_from(0, usize::MAX).expect("reads").len(), 2);
        assert!(s.unsynced_since().is_some());
        // What a kill at this instant leaves on disk.
        std::fs::copy(&path, &crashed).expect("copies");
        // What the runtime does within `UNSYNCED_FOR` when no durable commit came: a kill
        // after it loses nothing.
        s.sync().expect("syncs");
        assert!(s.unsynced_since().is_none());
        std::fs::copy(&path, &synced).expect("copies");
    }
    let after_sync = RecordStore::open(&synced, &key.public(), &GENESIS).expect("opens");
    assert_eq!(
        after_sync.decided_from(0, usize::MAX).expect("reads").len(),
        2
    );
    let after_crash = RecordStore::open(&crashed, &key.public(), &GENESIS).expect("opens");
    assert!(
        after_crash
            .decided_from(0, usize::MAX)
            .expect("reads")
            .is_empty(),
        "the decisions were not synced"
    );
    let records = after_crash.load(&c.dir).expect("loads");
    assert!(records
        .iter()
        .any(|r| matches!(r, Record::SignReserved { .. })));
    assert!(records.iter().any(|r| matches!(r, Record::Prepared(_))));
    let closed = RecordStore::open(&path, &key.public(), &GENESIS).expect("reopens");
    assert_eq!(closed.decided_from(0, usize::MAX).expect("reads").len(), 2);
}
