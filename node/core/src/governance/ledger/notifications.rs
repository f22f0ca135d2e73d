//! What the ledger knows of notifications: which event kinds a sink may ask for, and how far
//! each sink of the genesis (`[[notify]]`) has been served.
//!
//! Notifications are a side effect, so the ledger does not send them: the current leader does
//! (the validator's notifier). What must survive a failover is how far it got, and that is
//! replicated state: after a sink answers, the leader submits `Notified { sink, through }`,
//! and a new leader resends from the recorded point. Each notification carries its event's
//! index, identical on every validator, so a sink can drop the few a failover may repeat (those
//! delivered by a leader that died before its record was ordered).

use super::{reject, Ledger, Rejection};
use crate::governance::stage::Tongue;

/// Event kinds a sink can ask for: the decisions and turns of a rollout an operator acts on.
/// (Votes, progress chunks and the like are left to `scbe watch` and the audit trail.)
pub const NOTIFIABLE_EVENTS: &[&str] = &[
    "promotion_proposed",
    "rollback_proposed",
    "abort_proposed",
    "approval_proposed",
    "membership_proposed",
    "proposal_approved",
    "proposal_rejected",
    "proposal_expired",
    "rollout_planned",
    "batch_healthy",
    "baseline_passed",
    "rollout_paused",
    "rollout_resumed",
    "auto_rollback",
    "no_data_rollback",
    "baseline_rollback",
    "baseline_inconclusive",
    "aborted",
    "rolled_back",
    "rollout_completed",
    "rollout_failed",
    "membership_changed",
];

/// What a sink gets when its genesis entry names no events: proposals decided, steps healthy,
/// pauses, every automatic or voted rollback (with its evidence), and how rollouts end.
pub const DEFAULT_NOTIFY_EVENTS: &[&str] = &[
    "proposal_approved",
    "proposal_rejected",
    "proposal_expired",
    "batch_healthy",
    "rollout_paused",
    "auto_rollback",
    "no_data_rollback",
    "baseline_rollback",
    "baseline_inconclusive",
    "aborted",
    "rolled_back",
    "rollout_completed",
    "rollout_failed",
];

impl Ledger {
    /// Every event of sink `sink` before this index was delivered (0: none recorded).
    pub fn notified_through(&self, sink: &str) -> u64 {
        self.state.notified.get(sink).copied().unwrap_or(0)
    }

    /// Validator `validator` (the leader that delivered) records sink `sink` served through
    /// `through`.
    pub(super) fn notified(
        &mut self,
        seq: u64,
        validator: u32,
        sink: String,
        through: u64,
    ) -> Result<(), Rejection> {
        if !self.cfg.notify_sinks.contains(&sink) {
            return reject(format!("the genesis has no notification sink {sink:?}"));
        }
        let total = self.journal.events.total();
        if through > total {
            return reject(format!(
                "sink {sink}: through event {through}, but the ledger holds {total} events"
            ));
        }
        let before = self.notified_through(&sink);
        if through <= before {
            return reject(format!(
                "sink {sink}: already recorded through event {before}"
            ));
        }
        self.state.notified.insert(sink.clone(), through);
        self.event(
            seq,
            Tongue::AV,
            "notified",
            format!("notify:{sink}"),
            format!("events {before}..{through} delivered by validator {validator}"),
        );
        Ok(())
    }
}
