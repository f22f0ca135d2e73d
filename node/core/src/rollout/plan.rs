//! Rollout plans. Every replica derives the same plan from the same fleet: agents in id order,
//! batch 1 is the first agent of every specialty, later batches double in size until the
//! stage's target share of the fleet is reached (canary: 10%, at least one per specialty;
//! production: everyone). A restore (a manual rollback to a known-good version) skips that
//! shape: it puts back what already ran, so it goes in batches of up to
//! [`RESTORE_BATCH_AGENTS`], in id order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::crypto::PublicKey;
use crate::governance::stage::Stage;

/// An agent of the fleet (from the genesis, or admitted later by an approved proposal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetAgent {
    pub id: String,
    pub specialty: String,
    pub key: PublicKey,
    /// `host:port` of its FleetAgent service ("" when it has none: it cannot be reached).
    #[serde(default)]
    pub address: String,
}

/// A plan: the agent ids of each batch, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub batches: Vec<Vec<String>>,
}

pub fn plan_batches(agents: &[FleetAgent], stage: Stage) -> Plan {
    let total = agents.len();
    let share = (total * stage.target_percent() as usize).div_ceil(100);
    Plan {
        batches: batches_of(agents.iter().collect(), share),
    }
}

/// Batches over a subset of the fleet (a manual rollback restores only the agents not on the
/// target version): the same shape, covering all of the subset.
pub fn plan_agents(agents: &[FleetAgent], subset: &BTreeSet<String>) -> Vec<Vec<String>> {
    let chosen: Vec<&FleetAgent> = agents.iter().filter(|a| subset.contains(&a.id)).collect();
    let all = chosen.len();
    batches_of(chosen, all)
}

/// Largest batch of a restore. An order naming 1,000 agents is ~20 KB, well inside an order's
/// limit, and the leader delivers a batch with bounded concurrency whatever its size.
pub const RESTORE_BATCH_AGENTS: usize = 1000;

/// A restore's batches over `subset`: the agents in id order, up to [`RESTORE_BATCH_AGENTS`] at
/// a time (a restore of 1,000 agents is one batch; the promotion shape would take nine).
pub fn plan_restore(agents: &[FleetAgent], subset: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut chosen: Vec<&str> = agents
        .iter()
        .filter(|a| subset.contains(&a.id))
        .map(|a| a.id.as_str())
        .collect();
    chosen.sort_unstable();
    chosen
        .chunks(RESTORE_BATCH_AGENTS)
        .map(|c| c.iter().map(|a| a.to_string()).collect())
        .collect()
}

/// Batch 1 is the first agent (by id) of every specialty; later batches double until `share`
/// agents are planned (never fewer than batch 1).
fn batches_of(mut sorted: Vec<&FleetAgent>, share: usize) -> Vec<Vec<String>> {
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut first_of: BTreeMap<&str, &str> = BTreeMap::new();
    for a in &sorted {
        first_of
            .entry(a.specialty.as_str())
            .or_insert(a.id.as_str());
    }
    let first: BTreeSet<&str> = first_of.values().copied().collect();
    let total = sorted.len();
    let target = share.max(first.len()).min(total);
    let mut batches: Vec<Vec<String>> = Vec::new();
    if target == 0 {
        return batches;
    }
    let batch1: Vec<String> = sorted
        .iter()
        .filter(|a| first.contains(a.id.as_str()))
        .map(|a| a.id.clone())
        .collect();
    let mut rest = sorted
        .iter()
        .filter(|a| !first.contains(a.id.as_str()))
        .map(|a| a.id.clone());
    let mut size = batch1.len().max(1);
    let mut planned = batch1.len();
    batches.push(batch1);
    while planned < target {
        size *= 2;
        let take = size.min(target - planned);
        let batch: Vec<String> = rest.by_ref().take(take).collect();
        if batch.is_empty() {
            break;
        }
        planned += batch.len();
        batches.push(batch);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(n: usize) -> Vec<FleetAgent> {
        let specialties = ["code_execute", "doc_plan", "memory_storage"];
        (0..n)
            .map(|i| FleetAgent {
                id: format!("agent-{i:03}"),
                specialty: specialties[i % 3].to_string(),
                key: PublicKey([i as u8; 32]),
                address: String::new(),
            })
            .collect()
    }

    #[test]
    fn canary_starts_with_one_per_specialty_and_reaches_ten_percent() {
        let p = plan_batches(&fleet(100), Stage::Canary);
        assert_eq!(p.batches[0], vec!["agent-000", "agent-001", "agent-002"]);
        let total: usize = p.batches.iter().map(Vec::len).sum();
        assert_eq!(total, 10);
    }

    #[test]
    fn production_covers_everyone_once_with_growing_batches() {
        let p = plan_batches(&fleet(50), Stage::Production);
        let all: Vec<&String> = p.batches.iter().flatten().collect();
        let unique: BTreeSet<&String> = all.iter().copied().collect();
        assert_eq!(all.len(), 50);
        assert_eq!(unique.len(), 50);
        // Batches grow, except that the last one takes only what is left.
        let growing = &p.batches[..p.batches.len() - 1];
        assert!(growing.windows(2).all(|w| w[1].len() >= w[0].len()));
        assert_eq!(p.batches[0].len(), 3);
    }

    #[test]
    fn a_subset_is_planned_whole_in_the_same_shape() {
        let subset: BTreeSet<String> = (10..30).map(|i| format!("agent-{i:03}")).collect();
        let b = plan_agents(&fleet(50), &subset);
        assert_eq!(b[0], vec!["agent-010", "agent-011", "agent-012"]);
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 20);
        assert!(plan_agents(&fleet(5), &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_restore_goes_in_batches_of_up_to_a_thousand_in_id_order() {
        let everyone: BTreeSet<String> = fleet(2500).into_iter().map(|a| a.id).collect();
        let mut fleet = fleet(2500);
        fleet.reverse();
        let b = plan_restore(&fleet, &everyone);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        assert_eq!(b[0][0], "agent-000");
        let all: Vec<&String> = b.iter().flatten().collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "id order, each once");
        let thousand: BTreeSet<String> = (0..1000).map(|i| format!("agent-{i:03}")).collect();
        assert_eq!(plan_restore(&fleet, &thousand).len(), 1);
        // The promotion shape would take nine batches for the same thousand.
        assert_eq!(plan_agents(&fleet, &thousand).len(), 9);
        assert!(plan_restore(&fleet, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn small_fleet_canary_still_has_one_per_specialty() {
        let p = plan_batches(&fleet(4), Stage::Canary);
        assert_eq!(p.batches, vec![vec!["agent-000", "agent-001", "agent-002"]]);
    }
}
