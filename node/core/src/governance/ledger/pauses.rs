//! Rollouts paused for approval: a promotion proposed with `pause_before: N` deploys batches
//! `1..N` as usual, then waits. While it waits it has no current batch, so no order is derived,
//! endorsed or sent, and no deadline runs. A requester proposes `Approve` (`scbe approve
//! --rollout R`); validators check that the rollout still waits before that batch and vote; at
//! `q` approvals every replica starts the batch at that sequence number. A paused rollout can be
//! aborted like any promotion in progress, and it holds the fleet until it ends.
//!
//! A compared canary step whose comparison is inconclusive pauses the same way when the genesis
//! says `on_inconclusive = "pause"`: before the next batch, or after the last one, where an
//! approval completes the rollout.

use super::state::{ProposalKind, RolloutStatus};
use super::{reject, Ledger, Rejection};
use crate::governance::stage::Tongue;

impl Ledger {
    /// Why rollout `id` cannot be approved now (empty: it can). `batch`: the batch a proposal
    /// named, which must still be the one waited for.
    pub(super) fn check_approve(&self, id: u64, batch: Option<u32>) -> Vec<String> {
        let Some(r) = self.state.rollouts.get(&id) else {
            return vec![format!("unknown rollout {id}")];
        };
        match (r.paused_before(), batch) {
            (None, _) => vec![format!(
                "rollout {id} is {} and not paused; nothing to approve",
                r.status.name()
            )],
            (Some(waiting), Some(named)) if waiting != named => vec![format!(
                "rollout {id} waits before batch {waiting}, not {named}"
            )],
            _ => Vec::new(),
        }
    }

    /// A requester proposes letting rollout `id` go on.
    pub(super) fn propose_approve(&mut self, seq: u64, id: u64) -> Result<u64, Rejection> {
        let problems = self.check_approve(id, None);
        if !problems.is_empty() {
            return Err(problems);
        }
        if let Some(p) = self.pending_where(|k| matches!(k, ProposalKind::Approve { .. })) {
            return reject(format!(
                "approval proposal {} is still being voted on",
                p.id
            ));
        }
        let batch = self.state.rollouts[&id].completed + 1;
        let proposal = self.open_proposal(seq, ProposalKind::Approve { rollout: id, batch });
        self.event(
            seq,
            Tongue::UM,
            "approval_proposed",
            format!("proposal:{proposal}"),
            format!("rollout {id}: deploy batch {batch}"),
        );
        Ok(proposal)
    }

    /// An approved `Approve` starts the batch if the rollout still waits before it.
    pub(super) fn apply_approve(
        &mut self,
        seq: u64,
        proposal: u64,
        id: u64,
        batch: u32,
    ) -> Option<u64> {
        let problems = self.check_approve(id, Some(batch));
        let Some(r) = self
            .state
            .rollouts
            .get_mut(&id)
            .filter(|_| problems.is_empty())
        else {
            self.event(
                seq,
                Tongue::UM,
                "approval_not_applied",
                format!("proposal:{proposal}"),
                problems.join("; "),
            );
            return None;
        };
        r.pause_before = None;
        // The batch's step starts now: its orders carry this seq, its deadlines run from here.
        r.step_seq = seq;
        let total = r.batches.len();
        let finished = r.completed as usize >= total;
        let what = if finished {
            format!("completion after its last batch ({total}) approved (proposal {proposal})")
        } else {
            format!("batch {batch} of {total} approved (proposal {proposal})")
        };
        self.event(
            seq,
            Tongue::KO,
            "rollout_resumed",
            format!("rollout:{id}"),
            what,
        );
        // Paused after its last batch (an inconclusive canary with `on_inconclusive = pause`):
        // nothing is left to deploy.
        if finished {
            self.complete(seq, id);
        }
        Some(id)
    }

    /// A newly planned promotion's pause (nothing if it failed to start).
    pub(super) fn pause_before(&mut self, seq: u64, id: u64, batch: Option<u32>) {
        match self.state.rollouts.get_mut(&id) {
            Some(r) if r.status == RolloutStatus::InProgress => r.pause_before = batch,
            _ => return,
        }
        self.announce_pause(seq, id);
    }

    /// Records that rollout `id` now waits for approval, if it does.
    pub(super) fn announce_pause(&mut self, seq: u64, id: u64) {
        let Some((batch, total)) = self
            .state
            .rollouts
            .get(&id)
            .and_then(|r| r.paused_before().map(|b| (b, r.batches.len())))
        else {
            return;
        };
        self.event(
            seq,
            Tongue::UM,
            "rollout_paused",
            format!("rollout:{id}"),
            if batch as usize > total {
                format!(
                    "after its last batch ({total}), before completing: waiting for approval (scbe approve --rollout {id})"
                )
            } else {
                format!(
                    "before batch {batch} of {total}: waiting for approval (scbe approve --rollout {id})"
                )
            },
        );
    }
}
