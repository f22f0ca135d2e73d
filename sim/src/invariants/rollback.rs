//! Rollback: a rollout that rolled back ends with every agent it touched on `rollback_to`
//! (unless a newer order has moved the agent on since), according to the agents themselves.

use scbe_core::governance::ledger::Rollout;

use crate::fleet::SimAgent;

pub fn check_rolled_back(r: &Rollout, agents: &[SimAgent]) -> Vec<String> {
    let mut out = Vec::new();
    for id in &r.rollback_agents {
        let Some(a) = agents.iter().find(|a| a.id == *id) else {
            out.push(format!("rollout {} rolled back unknown agent {id}", r.id));
            continue;
        };
        let s = a.core.state();
        let moved_on = s.last_order_seq > r.step_seq;
        if s.current.version != r.rollback_to && !moved_on {
            out.push(format!(
                "rollout {} rolled back, but {id} runs {} instead of {}",
                r.id, s.current.version, r.rollback_to
            ));
        }
    }
    out
}
