//! Fleet authority: no agent ever runs a version that no approved decision put on its stage.
//! Every order an agent obeys with a hook must be a step that an honest validator's ledger
//! derived: a deploy of an approved promotion's version to one of its batches, a rollback of a
//! rolling-back rollout to its `rollback_to`, or a restore batch of an approved manual rollback.
//! Checked independently of the endorsements the agent verified.

use scbe_core::governance::ledger::{Ledger, ProposalStatus, RolloutKind, RolloutStatus};
use scbe_core::rollout::evidence::OrderAction;
use scbe_core::rollout::order::Order;

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn derived_by(order: &Order, l: &Ledger) -> bool {
    let Some(r) = l.state().rollouts.get(&order.rollout) else {
        return false;
    };
    let approved = l
        .state()
        .proposals
        .get(&r.proposal)
        .is_some_and(|p| p.status == ProposalStatus::Approved);
    let batch = |b: u32| {
        b >= 1
            && r.batches
                .get(b as usize - 1)
                .is_some_and(|agents| sorted(agents) == order.agents)
    };
    match (order.action, &r.kind) {
        (OrderAction::Deploy, RolloutKind::Promote { .. }) => {
            approved && order.version == r.version && batch(order.batch)
        }
        (OrderAction::Rollback, RolloutKind::Restore { .. }) => {
            approved && order.version == r.version && batch(order.batch)
        }
        (OrderAction::Rollback, RolloutKind::Promote { .. }) => {
            matches!(
                r.status,
                RolloutStatus::RollingBack | RolloutStatus::RolledBack
            ) && order.batch == 0
                && order.version == r.rollback_to
                && order.agents == r.rollback_agents
        }
        _ => false,
    }
}

/// A violation if `agent` runs a hook for an order no honest ledger derived.
pub fn check_order(order: &Order, agent: &str, honest: &[&Ledger]) -> Option<String> {
    if honest.iter().any(|l| derived_by(order, l)) {
        return None;
    }
    Some(format!(
        "{agent} obeyed {:?} of {} for rollout {} batch {} (step issued at seq {}), which no honest ledger derived",
        order.action, order.version, order.rollout, order.batch, order.issued_seq
    ))
}
