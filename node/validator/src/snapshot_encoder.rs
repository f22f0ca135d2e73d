//! Large persisted snapshots encoded off the core's loop. A snapshot the core asks to persist is
//! lazy (the ledger's state, cloned in O(1)); making its bytes means JSON of every release,
//! proposal and rollout, then zstd: about a second at 100,000 releases, during which the loop
//! would answer nobody and send no heartbeat. Small ones are still written within their turn.
//!
//! At most one encoding runs; a snapshot offered meanwhile waits, and a newer one replaces it
//! (only the newest is worth writing, see [`RecordStore::commit_snapshot`]). Nothing waits for a
//! snapshot to be durable: the audit trail keeps every decided batch, so a restart before it
//! lands replays from an older snapshot (or genesis) instead.
//!
//! [`RecordStore::commit_snapshot`]: crate::storage::RecordStore::commit_snapshot

use scbe_core::consensus::Snapshot;
use tokio::task::JoinHandle;

use crate::storage::EncodedSnapshot;

/// Snapshots expected below this many bytes are encoded within their turn (well under a
/// millisecond of work, and a write the same commit carries anyway).
pub const ENCODE_INLINE_BELOW: usize = 256 * 1024;

pub struct SnapshotEncoder {
    inline_below: usize,
    in_flight: Option<JoinHandle<EncodedSnapshot>>,
    waiting: Option<Snapshot>,
}

impl SnapshotEncoder {
    pub fn new(inline_below: usize) -> Self {
        Self {
            inline_below,
            in_flight: None,
            waiting: None,
        }
    }

    /// Takes `snapshot` off the loop, or hands it back when it is small enough to be written
    /// within the turn. Must be called inside a tokio runtime.
    pub fn offer(&mut self, snapshot: Snapshot) -> Option<Snapshot> {
        if snapshot.app_state.size_hint() < self.inline_below {
            return Some(snapshot);
        }
        if self.in_flight.is_some() {
            if let Some(replaced) = self.waiting.replace(snapshot) {
                tracing::debug!(
                    seq = replaced.seq.0,
                    "snapshot not persisted: a newer one replaced it while another was encoded"
                );
            }
        } else {
            self.start(snapshot);
        }
        None
    }

    /// Whether an encoding runs (the loop then awaits [`Self::finished`]).
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The running encoding's result, once it is done; the waiting snapshot (if any) starts
    /// then. Pending forever when nothing runs. Cancel-safe: dropped before it completes, it
    /// leaves the encoding running. `None` if the encoding panicked (logged; that snapshot is
    /// not persisted).
    pub async fn finished(&mut self) -> Option<EncodedSnapshot> {
        let Some(handle) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        let done = handle.await;
        self.in_flight = None;
        if let Some(next) = self.waiting.take() {
            self.start(next);
        }
        match done {
            Ok(encoded) => Some(encoded),
            Err(e) => {
                tracing::error!(error = %e, "encoding a snapshot failed; it is not persisted");
                None
            }
        }
    }

    fn start(&mut self, snapshot: Snapshot) {
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            EncodedSnapshot::encode(&snapshot)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::{AppState, Seq};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn snapshot(seq: u64, bytes: usize) -> Snapshot {
        Snapshot {
            seq: Seq(seq),
            app_state: AppState::lazy(bytes, move || vec![b'x'; bytes]),
            nonces: Default::default(),
        }
    }

    #[test]
    fn small_snapshots_are_handed_back_to_be_written_within_the_turn() {
        let mut e = SnapshotEncoder::new(1000);
        let back = e.offer(snapshot(8, 999)).expect("handed back");
        assert_eq!(back.seq, Seq(8));
        assert!(!back.app_state.is_encoded(), "not encoded by the offer");
        assert!(!e.is_busy());
    }

    #[tokio::test]
    async fn a_large_snapshot_is_encoded_on_another_thread_and_comes_back_encoded() {
        let mut e = SnapshotEncoder::new(1000);
        let loop_thread = std::thread::current().id();
        let elsewhere = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&elsewhere);
        let snap = Snapshot {
            seq: Seq(16),
            app_state: AppState::lazy(5000, move || {
                seen.store(std::thread::current().id() != loop_thread, Ordering::SeqCst);
                vec![7; 5000]
            }),
            nonces: Default::default(),
        };
        assert!(e.offer(snap.clone()).is_none(), "taken off the loop");
        assert!(e.is_busy());
        let encoded = e.finished().await.expect("encoded");
        assert_eq!(encoded.seq(), 16);
        assert!(snap.app_state.is_encoded());
        assert!(
            elsewhere.load(Ordering::SeqCst),
            "made off the loop's thread"
        );
        assert!(!e.is_busy());
    }

    #[tokio::test]
    async fn while_one_is_encoded_only_the_newest_offered_waits() {
        let mut e = SnapshotEncoder::new(1000);
        assert!(e.offer(snapshot(8, 4000)).is_none());
        assert!(e.offer(snapshot(16, 4000)).is_none());
        assert!(e.offer(snapshot(24, 4000)).is_none());
        let seqs = [
            e.finished().await.map(|s| s.seq()),
            e.finished().await.map(|s| s.seq()),
        ];
        assert_eq!(seqs, [Some(8), Some(24)], "16 was replaced by 24");
        assert!(!e.is_busy(), "nothing left");
    }
}
