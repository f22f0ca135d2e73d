//! What the core task receives, from the services, the fleet side and its own timers. Reads
//! never come here: they are served from what the core publishes (`crate::reads`).

use scbe_core::consensus::{Message, Request, Signed, Timer};
use scbe_core::rollout::evidence::{AckBody, DeployAck, HealthBody, HealthReport};
use scbe_core::rollout::order::{EndorseRefusal, Endorsement};
use scbe_core::validator_step::{ClientReply, SubmitRefusal};
use tokio::sync::oneshot;

/// One input of the core task.
pub enum Inbound {
    /// A peer's message, its signature verified.
    Peer(Signed<Message>),
    /// A peer's state request held until the snapshot it reads was encoded off the loop
    /// (`crate::snapshot_warmer`): handed to the core without being held again.
    Warmed(Signed<Message>),
    /// A requester's request, its signature and role verified; the decision (or refusal) goes
    /// to `reply`.
    Client {
        request: Signed<Request>,
        reply: oneshot::Sender<Result<ClientReply, SubmitRefusal>>,
    },
    /// A consensus timer fired (from the core task's own timer queue).
    Timer(Timer),
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
