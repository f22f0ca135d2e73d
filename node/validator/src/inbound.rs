//! What the core task receives, from the services, the fleet side and its own timers, and the
//! domain values it answers queries with (the services turn them into protobuf).

use std::collections::BTreeMap;

use scbe_core::consensus::{Digest, Message, Request, Signed, Status, Timer};
use scbe_core::crypto::PublicKey;
use scbe_core::governance::event::Event;
use scbe_core::governance::ledger::Proposal;
use scbe_core::rollout::evidence::{AckBody, DeployAck, HealthBody, HealthReport};
use scbe_core::rollout::order::{EndorseRefusal, Endorsement};
use scbe_core::validator_step::{ClientReply, SubmitRefusal};
use scbe_wire::status_summary::StatusSummary;
use tokio::sync::oneshot;

use crate::links::{PeerLinkState, RefusedCaller};

/// One input of the core task.
pub enum Inbound {
    /// A peer's message, its signature verified.
    Peer(Signed<Message>),
    /// A requester's request, its signature and role verified; the decision (or refusal) goes
    /// to `reply`.
    Client {
        request: Signed<Request>,
        reply: oneshot::Sender<Result<ClientReply, SubmitRefusal>>,
    },
    /// A consensus timer fired (from the core task's own timer queue).
    Timer(Timer),
    Status {
        query: StatusQuery,
        reply: oneshot::Sender<StatusReport>,
    },
    /// Ledger events from index `from` on (at most one chunk).
    Events {
        from: u64,
        reply: oneshot::Sender<Vec<(u64, Event)>>,
    },
    /// Verified agent evidence from the monitor or the executor.
    Fleet(FleetInput),
    /// Time to ask the watcher what to submit.
    FleetTick,
    /// This validator's notifier delivered sink `sink`'s events before `through`: the step
    /// submits `Operation::Notified` so a later leader resends only what follows.
    Notified { sink: String, through: u64 },
    /// The leader asks this validator to endorse an order.
    Endorse {
        rollout: u64,
        order: Vec<u8>,
        reply: oneshot::Sender<Result<Endorsement, EndorseRefusal>>,
    },
}

/// Agent evidence whose signature was checked against the agent's key.
pub enum FleetInput {
    Report(HealthReport, HealthBody),
    Ack(DeployAck, AckBody),
}

/// What a `Status` call asks for.
pub struct StatusQuery {
    /// One proposal as the ledger holds it, instead of the summary.
    pub proposal: Option<u64>,
    /// A requester asking for the highest nonce executed for its key.
    pub signer: Option<PublicKey>,
}

/// This validator's consensus position and the ledger detail asked for.
pub struct StatusReport {
    pub node: u32,
    pub view: u64,
    pub status: Status,
    pub last_executed: u64,
    pub stable_checkpoint: u64,
    pub stable_digest: Digest,
    /// The state digest after `last_executed`.
    pub state_digest: Digest,
    /// A quorum's checkpoint at this seq differed from this validator's state (see
    /// `Replica::diverged_at`).
    pub diverged_at: Option<u64>,
    /// The highest nonce executed for the asking signer (0 if none asked).
    pub last_nonce: u64,
    pub genesis: Digest,
    pub cluster: String,
    pub peers: BTreeMap<u32, PeerLinkState>,
    pub refused: Vec<RefusedCaller>,
    pub detail: StatusDetail,
}

pub enum StatusDetail {
    Summary(Box<StatusSummary>),
    /// The proposal asked for (`None`: the ledger has no such proposal).
    Proposal(Option<Box<Proposal>>),
}
