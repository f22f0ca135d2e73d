//! Rollout evidence: a rollout completes only if every agent of every batch really deployed it
//! (for this rollout), was monitored for the whole window (it took at least the window's
//! samples of the version) and is healthy on it. Checked against the agents' ground truth, not
//! the reports the ledger accepted, so a leader that skipped monitoring or forged a report is
//! caught even if the ledger were fooled.

use scbe_core::governance::ledger::{Rollout, RolloutKind};
use scbe_core::rollout::evidence::OrderAction;

use crate::fleet::{SimAgent, MIN_SAMPLES};

pub fn check_completed(r: &Rollout, agents: &[SimAgent]) -> Vec<String> {
    let mut out = Vec::new();
    let restore = matches!(r.kind, RolloutKind::Restore { .. });
    for id in r.batches.iter().flatten() {
        let Some(a) = agents.iter().find(|a| a.id == *id) else {
            out.push(format!(
                "rollout {} completed with unknown agent {id}",
                r.id
            ));
            continue;
        };
        let action = if restore {
            OrderAction::Rollback
        } else {
            OrderAction::Deploy
        };
        let deployed = a
            .obeyed
            .iter()
            .any(|o| o.rollout == r.id && o.action == action && o.version == r.version);
        if !deployed {
            out.push(format!(
                "rollout {} ({}) completed, but {id} never obeyed its order",
                r.id, r.version
            ));
        }
        if restore {
            continue;
        }
        let running = a.core.state().current.version == r.version;
        if running && a.core.samples() < MIN_SAMPLES {
            out.push(format!(
                "rollout {} completed, but {id} took only {} of {MIN_SAMPLES} samples of {}",
                r.id,
                a.core.samples(),
                r.version
            ));
        }
        if a.degrades_on(&r.version, &r.units) {
            out.push(format!(
                "rollout {} completed, but {id} degrades on {}",
                r.id, r.version
            ));
        }
    }
    out
}
