//! Membership: no rollout plans an agent outside the fleet of its planning seq, that is, one
//! an approved proposal removed before that seq and none admitted again before it.

use scbe_core::governance::ledger::{AgentChange, ProposalKind, ProposalStatus, Rollout};
use scbe_core::governance::Ledger;

/// Every approved membership change of `ledger`, with the seq that decided it.
pub fn approved_changes(ledger: &Ledger) -> Vec<(u64, AgentChange)> {
    ledger
        .state()
        .proposals
        .values()
        .filter(|p| p.status == ProposalStatus::Approved)
        .filter_map(|p| match &p.kind {
            ProposalKind::Agent { change } => Some((p.decided_seq?, change.clone())),
            _ => None,
        })
        .collect()
}

/// The agents `r` plans that were out of the fleet when it was planned.
pub fn check_planned(r: &Rollout, changes: &[(u64, AgentChange)]) -> Vec<String> {
    let mut out = Vec::new();
    for agent in r.batches.iter().flatten() {
        let last = changes
            .iter()
            .filter(|(seq, c)| *seq < r.planned_seq && c.agent() == agent)
            .max_by_key(|(seq, _)| *seq);
        if let Some((seq, AgentChange::Remove { .. })) = last {
            out.push(format!(
                "rollout {} planned at seq {} names {agent}, removed at seq {seq}",
                r.id, r.planned_seq
            ));
        }
    }
    out
}
