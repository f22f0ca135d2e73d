//! The core's contract with its runtime: [`Input`]s in, [`Action`]s out, [`Record`]s to persist.

use std::sync::Arc;

use super::message::{
    CheckpointCert, CommitCert, Envelope, Message, NewView, PreparedCert, Request, Signed,
    Snapshot, ViewChange,
};
use super::types::{Digest, ReplicaId, Seq, View};

/// Everything that can happen to a replica.
#[derive(Debug, Clone)]
pub enum Input {
    /// A request a client submitted to this replica. It is relayed to every other validator so a
    /// primary that ignores it is noticed by all.
    ClientRequest(Signed<Request>),
    /// A message from a peer whose signature the edge has verified.
    Message(Signed<Message>),
    /// A timer the replica set has fired. Stale timers are ignored.
    Timeout(Timer),
    /// The application decided, at a point of the ordered log every honest replica reaches,
    /// that the primary of `view` must be replaced (e.g. `f + 1` validators saw it leave a
    /// rollout unexecuted). A replica still in `view` starts a view change; any other ignores it.
    /// Because the decision is in the log, honest replicas leave the view together.
    ReplacePrimary { view: View },
}

/// Which timer. Durations live in the runtime's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// A request has waited too long to execute: probe peers for state, then change view.
    Request,
    /// A view change gathered a quorum but the new view has not started.
    ViewChange,
    /// Periodic: ask peers for anything decided beyond what we executed, so a replica that missed
    /// traffic (partitioned, restarted) catches up even when the system is otherwise idle.
    /// Never backs off.
    Status,
    /// Periodic and short: the primary broadcasts a heartbeat; a backup counts the intervals its
    /// primary stayed silent and changes view after `silence_ticks` of them. Never backs off (the
    /// silence allowed grows instead).
    Heartbeat,
}

/// A timer as data: what it is for, in which view, and how many times the base duration has
/// doubled (consecutive views that failed to make progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub kind: TimerKind,
    pub view: View,
    pub backoff: u32,
    /// Distinguishes re-armings: a firing of an earlier arming with otherwise equal fields is
    /// stale and must not count.
    pub id: u64,
}

/// A batch decided and executed at `seq`: its commit certificate, and the requests that took
/// effect (requests whose nonce was already used are skipped deterministically).
#[derive(Debug, Clone)]
pub struct Decision {
    pub seq: Seq,
    pub certificate: CommitCert,
    pub executed: Vec<Signed<Request>>,
}

/// What the runtime must do, in order. Every `Persist` must be durable before any later `Send` or
/// `Broadcast` leaves the process (one fsync may cover all persists of one call).
#[must_use]
#[derive(Debug, Clone)]
pub enum Action {
    /// Make this record durable before any later message leaves.
    Persist(Record),
    /// Send to one validator.
    Send {
        to: ReplicaId,
        envelope: Arc<Envelope>,
    },
    /// Send to every other validator.
    Broadcast(Arc<Envelope>),
    /// A batch was executed, in sequence order; reply to clients, update indexes.
    Deliver(Decision),
    /// The state jumped to a checkpoint fetched from peers (state transfer): everything up to
    /// `seq` is now reflected without individual `Deliver`s.
    Restored { seq: Seq, state_digest: Digest },
    /// (Re)arm a timer; it replaces any armed timer of the same kind.
    SetTimer(Timer),
    /// Disarm the timer of this kind.
    CancelTimer(TimerKind),
}

/// What the replica persists. Replaying the records in order through [`super::Replica::restore`]
/// rebuilds a replica that will never sign a message conflicting with one it signed before.
#[derive(Debug, Clone)]
pub enum Record {
    /// Vote guard: this replica signed a pre-prepare (as primary) or a prepare for
    /// (view, seq, digest). Written before the message is sent.
    Signed {
        pre_prepare: bool,
        view: View,
        seq: Seq,
        digest: Digest,
    },
    /// Vote guard: this replica may sign pre-prepares and prepares in `view` at seqs up to
    /// `through` in its current life without a record each (`replica/vote_guard.rs`); after
    /// a restart it signs nothing new there. Written before the first message it covers leaves.
    SignReserved { view: View, through: Seq },
    /// The replica became prepared; written before its commit is sent, so a later view change
    /// still reports it.
    Prepared(PreparedCert),
    /// A decided batch with its certificate (the decided log).
    Committed(CommitCert),
    /// The replica's own state at a checkpoint (or one fetched from peers).
    Snapshot(Snapshot),
    /// A checkpoint became stable; earlier records may be discarded.
    Stable(CheckpointCert),
    /// The replica sent this view change; it is resent as-is after a restart.
    ViewChange(Signed<ViewChange>),
    /// The replica entered `view` in normal operation, started by `new_view` (kept so that it can
    /// be forwarded to laggards after a restart; absent only in stores written before it was).
    EnteredView {
        view: View,
        new_view: Option<Signed<NewView>>,
    },
    /// The validator may sign its own requests (votes, rollout evidence) with nonces up to
    /// `up_to` in its current life; after a restart it starts above the newest reservation, so
    /// it never signs two requests with one nonce. Written by the validator step (not the
    /// replica, which ignores it) before the first request of each block of nonces leaves;
    /// only the newest is kept.
    NonceReservation { up_to: u64 },
    /// A link of the validator-set chain this replica made at its own boundary or checked in a
    /// state response: kept for good (never garbage-collected), so that after a restart it can
    /// still prove later sets to replicas in earlier epochs.
    EpochLink(super::EpochLink),
}

impl Record {
    /// Sequence number the record is about, for garbage collection below a stable checkpoint.
    pub fn seq(&self) -> Option<Seq> {
        match self {
            Record::Signed { seq, .. } => Some(*seq),
            // Nothing at or below a stable checkpoint is signed again.
            Record::SignReserved { through, .. } => Some(*through),
            Record::Prepared(c) => Some(c.pre_prepare.value().seq),
            Record::Committed(c) => Some(c.seq()),
            Record::Snapshot(s) => Some(s.seq),
            Record::Stable(_)
            | Record::ViewChange(_)
            | Record::EnteredView { .. }
            | Record::NonceReservation { .. }
            | Record::EpochLink(_) => None,
        }
    }
}
