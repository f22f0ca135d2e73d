//! Rollout plans. Every replica derives the same plan from the same fleet: agents in id order,
//! batch 1 is the first agent of every specialty, later batches double in size until the
//! stage's target share of the fleet is reached (canary: 10%, at least one per specialty;
//! production: everyone). A restore (a manual rollback to a known-good version) skips that
//! shape: it puts back what already ran, so it goes in batches of up to
//! [`RESTORE_BATCH_AGENTS`], in id order.

use std::collections::BTreeSet;

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
        batches: batches_of(agents, share),
    }
}

/// Most steps a rollout's shape may have.
pub const MAX_STEPS: usize = 20;

/// Why `steps` is not a shape for `stage` (`None`: it is): strictly increasing percents of the
/// fleet, the last being the stage's share.
pub fn check_steps(steps: &[u32], stage: Stage) -> Option<String> {
    let share = stage.target_percent();
    if steps.len() > MAX_STEPS {
        return Some(format!("steps: at most {MAX_STEPS}, not {}", steps.len()));
    }
    if steps.iter().any(|&p| p == 0 || p > 100) || steps.windows(2).any(|w| w[0] >= w[1]) {
        return Some("steps must be strictly increasing percents from 1 to 100".into());
    }
    match steps.last() {
        Some(&last) if last != share => Some(format!(
            "steps: the last must be {share}, the {stage} stage's share of the fleet, not {last}"
        )),
        _ => None,
    }
}

/// A rollout with the given shape: after step `k`, `steps[k]` percent of the fleet (rounded
/// up) has the release. A canary keeps one agent per specialty as its first batch; a step that
/// adds nobody (a small fleet) is skipped. Empty `steps`: [`plan_batches`].
pub fn plan_steps(agents: &[FleetAgent], stage: Stage, steps: &[u32]) -> Plan {
    if steps.is_empty() {
        return plan_batches(agents, stage);
    }
    let (order, mut planned) = if stage == Stage::Canary {
        specialty_first(agents)
    } else {
        let mut ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        ids.sort_unstable();
        (ids, 0)
    };
    let mut batches: Vec<Vec<String>> = Vec::new();
    if planned > 0 {
        batches.push(owned(&order[..planned]));
    }
    for &p in steps {
        let target = (order.len() * p as usize).div_ceil(100).min(order.len());
        if target > planned {
            batches.push(owned(&order[planned..target]));
            planned = target;
        }
    }
    Plan { batches }
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

/// The fleet in planning order: the first agent (by id) of every specialty, then everyone
/// else, each group in id order; and the size of the first group (a canary's first batch).
fn specialty_first(agents: &[FleetAgent]) -> (Vec<&str>, usize) {
    let mut sorted: Vec<&FleetAgent> = agents.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut seen = BTreeSet::new();
    let (first, rest): (Vec<&FleetAgent>, Vec<&FleetAgent>) = sorted
        .into_iter()
        .partition(|a| seen.insert(a.specialty.as_str()));
    let firsts = first.len();
    let order = first
        .into_iter()
        .chain(rest)
        .map(|a| a.id.as_str())
        .collect();
    (order, firsts)
}

fn owned(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|a| a.to_string()).collect()
}

/// Batch 1 is the first agent (by id) of every specialty; later batches double until `share`
/// agents are planned (never fewer than batch 1).
fn batches_of(agents: &[FleetAgent], share: usize) -> Vec<Vec<String>> {
    let (order, firsts) = specialty_first(agents);
    let target = share.max(firsts).min(order.len());
    if target == 0 {
        return Vec::new();
    }
    let mut batches = vec![owned(&order[..firsts])];
    let (mut size, mut planned) = (firsts.max(1), firsts);
    while planned < target {
        size *= 2;
        let end = (planned + size).min(target);
        batches.push(owned(&order[planned..end]));
        planned = end;
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
        assert_eq!(
            plan_batches(&fleet[1500..], Stage::Production)
                .batches
                .len(),
            9
        );
        assert!(plan_restore(&fleet, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn steps_shape_the_batches_by_cumulative_percent() {
        let p = plan_steps(&fleet(100), Stage::Production, &[10, 25, 50, 100]);
        assert_eq!(
            p.batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 15, 25, 50]
        );
        assert_eq!(p.batches[0][0], "agent-000");
        // A canary keeps one per specialty first; steps that add nobody are skipped.
        let p = plan_steps(&fleet(100), Stage::Canary, &[1, 2, 5, 10]);
        assert_eq!(
            p.batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 2, 5]
        );
        assert_eq!(p.batches[0], vec!["agent-000", "agent-001", "agent-002"]);
        let all: BTreeSet<&String> = p.batches.iter().flatten().collect();
        assert_eq!(all.len(), 10);
        assert_eq!(
            plan_steps(&fleet(6), Stage::Production, &[17, 50, 100])
                .batches
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            vec![2, 1, 3]
        );
        assert_eq!(
            plan_steps(&fleet(50), Stage::Production, &[]),
            plan_batches(&fleet(50), Stage::Production)
        );
    }

    #[test]
    fn a_shape_must_increase_and_end_at_the_stage_share() {
        assert_eq!(check_steps(&[10, 25, 50, 100], Stage::Production), None);
        assert_eq!(check_steps(&[5, 10], Stage::Canary), None);
        assert_eq!(check_steps(&[], Stage::Canary), None);
        for (steps, stage, why) in [
            (vec![10, 50], Stage::Production, "the last must be 100"),
            (vec![5, 20], Stage::Canary, "the last must be 10"),
            (vec![50, 50, 100], Stage::Production, "strictly increasing"),
            (vec![0, 100], Stage::Production, "strictly increasing"),
            (vec![50, 101], Stage::Production, "strictly increasing"),
            ((1..=21).collect(), Stage::Production, "at most 20"),
        ] {
            let got = check_steps(&steps, stage).unwrap_or_default();
            assert!(got.contains(why), "{steps:?}: {got}");
        }
    }

    #[test]
    fn small_fleet_canary_still_has_one_per_specialty() {
        let p = plan_batches(&fleet(4), Stage::Canary);
        assert_eq!(p.batches, vec![vec!["agent-000", "agent-001", "agent-002"]]);
    }
}
