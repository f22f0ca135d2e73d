//! Aborting a rollout by vote: a requester proposes stopping a promotion in progress
//! (`scbe abort --rollout R`); validators check that it is still in progress and vote; at `q`
//! approvals every replica starts its rollback at that sequence number, exactly as on degraded
//! evidence, with the requester's reason. Only promotions are aborted: a restore puts back a
//! known-good version and has nothing to roll back to.

use super::state::{ProposalKind, RolloutKind, RolloutStatus};
use super::{reject, Ledger, Rejection};
use crate::governance::admission;
use crate::governance::stage::Tongue;

impl Ledger {
    /// Why rollout `id` cannot be aborted now (empty: it can).
    pub(super) fn check_abort(&self, id: u64) -> Vec<String> {
        match self.state.rollouts.get(&id) {
            None => vec![format!("unknown rollout {id}")],
            Some(r) if !matches!(r.kind, RolloutKind::Promote { .. }) => vec![format!(
                "rollout {id} restores a known-good version; only a promotion can be aborted"
            )],
            Some(r) if r.status != RolloutStatus::InProgress => vec![format!(
                "rollout {id} is {}, not in progress; only a promotion in progress can be aborted",
                r.status.name()
            )],
            Some(_) => Vec::new(),
        }
    }

    /// A requester proposes aborting rollout `id`.
    pub(super) fn propose_abort(
        &mut self,
        seq: u64,
        id: u64,
        reason: String,
    ) -> Result<u64, Rejection> {
        admission::check_reason("reason", &reason).map_err(|e| vec![e.to_string()])?;
        let problems = self.check_abort(id);
        if !problems.is_empty() {
            return Err(problems);
        }
        if let Some(p) = self.pending_where(|k| matches!(k, ProposalKind::Abort { .. })) {
            return reject(format!("abort proposal {} is still being voted on", p.id));
        }
        let detail = format!("rollout {id}: {reason}");
        let proposal = self.open_proposal(
            seq,
            ProposalKind::Abort {
                rollout: id,
                reason,
            },
        );
        self.event(
            seq,
            Tongue::DR,
            "abort_proposed",
            format!("proposal:{proposal}"),
            detail,
        );
        Ok(proposal)
    }

    /// An approved abort applies if the rollout is still in progress (checked again: it may
    /// have completed or rolled back while the votes came in). The rollout id when it did.
    pub(super) fn apply_abort(
        &mut self,
        seq: u64,
        proposal: u64,
        id: u64,
        reason: String,
    ) -> Option<u64> {
        let problems = self.check_abort(id);
        if !problems.is_empty() {
            self.event(
                seq,
                Tongue::DR,
                "abort_not_applied",
                format!("proposal:{proposal}"),
                problems.join("; "),
            );
            return None;
        }
        self.start_rollback(
            seq,
            id,
            "aborted",
            format!("aborted by vote (proposal {proposal}): {reason}"),
        );
        Some(id)
    }
}
