//! The snapshot a peer's state request needs, encoded off the core's loop before the request
//! reaches the core.
//!
//! Why: a checkpoint's snapshot is lazy (`consensus::AppState`): its whole bytes are made the
//! first time something reads them. Persisting no longer makes them when the ledger keeps its
//! bodies in the store (it persists a form naming them, `AppState::bytes_for_store`), so the
//! first peer to ask for state made them within the core's turn: every body read back from the
//! store, about a second at 140,000 releases, during which the loop answered nobody (a profile
//! of a 150 s registration bench showed it; one run of that build read 1,104 decisions/s, a
//! second 2,441).
//!
//! A state request that would read a snapshot not yet encoded is held here while a blocking
//! thread encodes it, then handed to the core with any others that came meanwhile. Requests
//! handed back are not held again (if a newer checkpoint became stable meanwhile, the core
//! encodes that one itself, as before), so a requester is always answered. At most
//! [`MAX_HELD`] requests wait; beyond that a request is dropped (requesters ask again), so a
//! peer cannot queue work without bound. One encoding runs at a time, and each snapshot is
//! encoded at most once (its bytes are kept), as on the loop.

use std::collections::VecDeque;

use scbe_core::consensus::{Message, Replica, Seq, Signed, Snapshot};
use scbe_core::governance::ledger::Ledger;
use tokio::task::JoinHandle;

/// Requests held while a snapshot is encoded; more are dropped.
pub const MAX_HELD: usize = 64;

#[derive(Default)]
pub struct SnapshotWarmer {
    /// The encoding running, for the snapshot at this seq.
    in_flight: Option<(Seq, JoinHandle<()>)>,
    held: VecDeque<Signed<Message>>,
}

/// What [`SnapshotWarmer::hold`] did with a message.
pub enum Hold {
    /// Hand it to the core now.
    Handle(Signed<Message>),
    /// Held until [`SnapshotWarmer::finished`] returns it.
    Held,
    /// Dropped: [`MAX_HELD`] requests were held already.
    Dropped,
}

impl SnapshotWarmer {
    /// `m` to be handled now, or, if it is a state request that would read the bytes of a
    /// snapshot not yet encoded, held (or dropped) while a blocking thread encodes them. Must
    /// be called inside a tokio runtime.
    pub fn hold(&mut self, m: Signed<Message>, replica: &Replica<Ledger>) -> Hold {
        // A requester the core answers from the batches it keeps below its stable checkpoint
        // reads no snapshot: nothing to encode for it.
        if let Message::StateRequest(req) = m.value() {
            if !replica.serves_snapshot(req) {
                return Hold::Handle(m);
            }
        }
        self.hold_for(m, replica.serving_snapshot(), replica.last_executed())
    }

    /// [`Self::hold`] given what the replica would serve and how far it executed.
    fn hold_for(
        &mut self,
        m: Signed<Message>,
        serving: Option<&Snapshot>,
        last_executed: Seq,
    ) -> Hold {
        let Message::StateRequest(req) = m.value() else {
            return Hold::Handle(m);
        };
        let Some(snap) = serving else {
            return Hold::Handle(m);
        };
        // The core serves a snapshot only to a replica behind it, and only when it has executed
        // past what the requester has.
        if req.after >= snap.seq || req.after >= last_executed {
            return Hold::Handle(m);
        }
        let running_for = self.in_flight.as_ref().map(|(seq, _)| *seq);
        if snap.app_state.is_encoded() && running_for.is_none() {
            return Hold::Handle(m);
        }
        if running_for.is_none() {
            let state = snap.app_state.clone();
            let handle = tokio::task::spawn_blocking(move || {
                state.bytes();
            });
            self.in_flight = Some((snap.seq, handle));
        }
        if self.held.len() >= MAX_HELD {
            return Hold::Dropped;
        }
        self.held.push_back(m);
        Hold::Held
    }

    /// Whether an encoding runs (the loop then awaits [`Self::finished`]).
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Once the encoding is done: the requests held for it, to be handed to the core. Pending
    /// forever when nothing runs; cancel-safe (the encoding goes on).
    pub async fn finished(&mut self) -> Vec<Signed<Message>> {
        let Some((seq, handle)) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        if let Err(e) = handle.await {
            // The core encodes it on its loop when it reads it (and meets the same failure).
            tracing::error!(seq = seq.0, error = %e, "encoding a snapshot for state transfer failed");
        }
        self.in_flight = None;
        self.held.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::{AppState, Kind, Principal, ReplicaId, StateRequest};
    use scbe_core::crypto::Keypair;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn held(h: Hold) -> bool {
        matches!(h, Hold::Held)
    }

    fn handled(h: Hold) -> bool {
        matches!(h, Hold::Handle(_))
    }

    fn state_request(after: u64) -> Signed<Message> {
        let req = StateRequest {
            after: Seq(after),
            snapshot_offset: 0,
            epoch: 0,
            needs_snapshot: false,
        };
        Signed::seal(
            Message::StateRequest(req),
            Kind::StateRequest,
            |_| Vec::new(),
            &Keypair::from_label("peer"),
            Principal::Validator(ReplicaId(1)),
        )
    }

    /// A snapshot at `seq` whose bytes count how often they are made (twice if they are made
    /// on the thread that built it: the loop's).
    fn counted_snapshot(seq: u64, made: Arc<AtomicUsize>) -> Snapshot {
        let loop_thread = std::thread::current().id();
        Snapshot {
            seq: Seq(seq),
            app_state: AppState::lazy(10, move || {
                let on_loop = std::thread::current().id() == loop_thread;
                made.fetch_add(if on_loop { 2 } else { 1 }, Ordering::SeqCst);
                vec![1; 10]
            }),
            nonces: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_request_that_reads_an_unencoded_snapshot_waits_for_it_off_the_loop() {
        let made = Arc::new(AtomicUsize::new(0));
        let snap = counted_snapshot(8, made.clone());
        let mut w = SnapshotWarmer::default();
        assert!(held(w.hold_for(state_request(3), Some(&snap), Seq(10))));
        assert!(w.is_busy());
        assert!(
            held(w.hold_for(state_request(4), Some(&snap), Seq(10))),
            "a second one waits for the same encoding"
        );
        let released = w.finished().await;
        assert_eq!(released.len(), 2);
        assert!(snap.app_state.is_encoded(), "encoded by the warmer");
        assert_eq!(made.load(Ordering::SeqCst), 1, "once, on another thread");
        assert!(!w.is_busy());
        // Now encoded: handed on at once.
        assert!(handled(w.hold_for(state_request(3), Some(&snap), Seq(10))));
    }

    #[tokio::test]
    async fn requests_that_read_no_snapshot_are_handed_on_at_once() {
        let made = Arc::new(AtomicUsize::new(0));
        let snap = counted_snapshot(8, made.clone());
        let mut w = SnapshotWarmer::default();
        // At or past the snapshot, or past what this replica executed: no snapshot is sent.
        for (after, executed) in [(8, 10), (9, 10), (5, 5)] {
            assert!(
                handled(w.hold_for(state_request(after), Some(&snap), Seq(executed))),
                "after {after}, executed {executed}"
            );
        }
        assert!(handled(w.hold_for(state_request(3), None, Seq(10))));
        assert!(!w.is_busy());
        assert_eq!(made.load(Ordering::SeqCst), 0, "nothing encoded");
    }

    #[tokio::test]
    async fn at_most_max_held_requests_wait() {
        let made = Arc::new(AtomicUsize::new(0));
        let snap = counted_snapshot(8, made);
        let mut w = SnapshotWarmer::default();
        let mut dropped = 0;
        for _ in 0..MAX_HELD + 5 {
            match w.hold_for(state_request(3), Some(&snap), Seq(10)) {
                Hold::Held => {}
                Hold::Dropped => dropped += 1,
                Hold::Handle(_) => panic!("a request that reads the snapshot was handed on"),
            }
        }
        assert_eq!(dropped, 5);
        assert_eq!(w.finished().await.len(), MAX_HELD);
    }
}
