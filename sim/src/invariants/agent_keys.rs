//! Agent keys: no rollout counts a report signed with a retired agent key. Membership seeds
//! re-key an agent and hand its old key to an attacker, who signs healthy reports under the
//! agent's name (marked with `LEAKED_KEY_TASKS_PER_MINUTE`); a ledger that kept one among a
//! rollout's reports took evidence from a key the fleet no longer lists.

use scbe_core::governance::ledger::Rollout;

use crate::fleet::LEAKED_KEY_TASKS_PER_MINUTE;

pub fn check_no_leaked_key(r: &Rollout) -> Vec<String> {
    r.reports
        .iter()
        .map(|(agent, body)| ("report", agent, body))
        .chain(r.baseline.iter().map(|(a, b)| ("baseline report", a, b)))
        .filter(|(_, _, body)| body.tasks_per_minute == LEAKED_KEY_TASKS_PER_MINUTE)
        .map(|(what, agent, _)| {
            format!(
                "rollout {} counted a {what} for {agent} signed with its retired (leaked) key",
                r.id
            )
        })
        .collect()
}
