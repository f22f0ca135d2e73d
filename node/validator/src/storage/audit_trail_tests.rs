//! The audit trail in the record store: each decided batch stored once with its commit
//! certificate and restored from it, and read from other threads in bounded chunks.

use super::tests::{decided_cluster, restore, GENESIS};
use super::*;
use scbe_core::consensus::{Record, Seq, StateMachine as _};

#[test]
fn a_decided_batch_is_stored_once_and_restored_from_the_audit_trail() {
    let (c, decided) = decided_cluster(128, 5);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let mut s = RecordStore::open(&path, &c.keys[1].public(), &GENESIS).expect("opens");
    s.commit_turn(&c.stores[1], &decided, &Default::default())
        .expect("commits");
    let loaded = s.load(&c.dir).expect("loads");
    let committed: Vec<u64> = loaded
        .iter()
        .filter_map(|r| match r {
            Record::Committed(cert) => Some(cert.seq().0),
            _ => None,
        })
        .collect();
    assert_eq!(
        committed,
        vec![1, 2, 3, 4, 5],
        "each decided batch exactly once"
    );
    let r = restore(&c, 1, &loaded);
    assert_eq!(r.last_executed(), Seq(5));
    assert_eq!(r.app().digest(), c.replica(1).app().digest());
}

/// The audit trail is read from another thread while the store is written, in chunks cut by
/// count or by bytes (never empty while batches remain), consecutive and complete.
#[test]
fn the_audit_trail_reads_off_the_writer_in_chunks_cut_by_count_or_bytes() {
    let (c, decided) = decided_cluster(128, 5);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.redb");
    let mut s = RecordStore::open(&path, &c.keys[1].public(), &GENESIS).expect("opens");
    let reader = s.reader();
    s.commit_turn(&c.stores[1], &decided[..2], &Default::default())
        .expect("commits");
    let first = std::thread::spawn({
        let reader = reader.clone();
        move || reader.audit_from(1, (512, usize::MAX))
    })
    .join()
    .expect("reader thread")
    .expect("reads");
    let seqs = |chunk: &crate::storage::AuditChunk| -> Vec<u64> {
        chunk.decided.iter().map(|(q, _)| *q).collect()
    };
    assert_eq!(seqs(&first), vec![1, 2], "what was committed so far");
    s.commit_turn(&[], &decided[2..], &Default::default())
        .expect("commits");
    let size = first.decided[0].1.len();
    for (budget, per_chunk) in [((2, usize::MAX), 2), ((512, 1), 1), ((512, size + 1), 2)] {
        let mut from = 1;
        let mut seen = Vec::new();
        loop {
            let chunk = reader.audit_from(from, budget).expect("reads");
            if chunk.is_empty() {
                break;
            }
            assert!(
                chunk.decided.len() <= per_chunk,
                "{budget:?}: {:?}",
                seqs(&chunk)
            );
            seen.extend(seqs(&chunk));
            from = seen.last().copied().unwrap_or(from) + 1;
        }
        assert_eq!(seen, vec![1, 2, 3, 4, 5], "{budget:?}");
    }
}
