//! What `scbe status` shows, as JSON built from the ledger and the fleet monitor: releases and
//! stages, proposals with their tallies, rollouts with batch progress, every agent with the
//! version the ledger put it on and its latest verified health, and fleet-wide figures.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::governance::ledger::{Ledger, ProposalKind, ProposalStatus, RolloutKind};
use crate::metrics::FleetFigures;
use crate::rollout::monitor::AgentHealth;

/// Proposals and rollouts listed (the most recent).
const RECENT: usize = 20;
/// Releases listed by name (the most recently registered, and every one a stage serves). The
/// summary used to list every release: with 100,000 registered it passed 4 MiB and a client's
/// status call failed on its message size limit (found by the registration bench).
pub const RELEASES_LISTED: usize = 256;

/// Version -> stage of the releases the summary lists: those a stage currently serves and the
/// [`RELEASES_LISTED`] most recently registered (ties by version).
fn listed_releases(ledger: &Ledger) -> BTreeMap<String, Value> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let s = ledger.state();
    // The newest by (registered_seq, version): a min-heap of the best RELEASES_LISTED so far.
    let mut newest = BinaryHeap::with_capacity(RELEASES_LISTED + 1);
    for (version, entry) in s.releases.iter() {
        newest.push(Reverse((entry.registered_seq, version)));
        if newest.len() > RELEASES_LISTED {
            newest.pop();
        }
    }
    let mut listed: BTreeMap<String, Value> = newest
        .into_iter()
        .map(|Reverse((_, v))| (v.clone(), json!(s.releases[v].stage)))
        .collect();
    for version in s.current.values() {
        if let Some(e) = s.releases.get(version) {
            listed.insert(version.clone(), json!(e.stage));
        }
    }
    listed
}

/// Share of validators that voted with the outcome, over the last decided proposals (1.0 when
/// none has been decided yet: nobody disagreed).
pub fn consensus_rate(ledger: &Ledger) -> f64 {
    let n = ledger.config().validators.len().max(1);
    let decided: Vec<_> = ledger
        .state()
        .proposals
        .values()
        .rev()
        .filter(|p| {
            matches!(
                p.status,
                ProposalStatus::Approved | ProposalStatus::Rejected
            )
        })
        .take(RECENT)
        .collect();
    if decided.is_empty() {
        return 1.0;
    }
    let with: usize = decided
        .iter()
        .map(|p| {
            let approved = p.status == ProposalStatus::Approved;
            p.votes.values().filter(|v| v.approve == approved).count()
        })
        .sum();
    with as f64 / (n * decided.len()) as f64
}

/// The whole summary.
pub fn summary(ledger: &Ledger, health: &BTreeMap<String, AgentHealth>) -> Value {
    let s = ledger.state();
    let proposals: Vec<Value> = s
        .proposals
        .values()
        .rev()
        .take(RECENT)
        .map(|p| {
            let what = match &p.kind {
                ProposalKind::Promote {
                    version, from, to, ..
                } => format!("promote {version} {from} -> {to}"),
                ProposalKind::Rollback { target_version, .. } => {
                    format!("rollback to {target_version}")
                }
            };
            json!({
                "id": p.id,
                "what": what,
                "status": p.status,
                "approvals": p.approvals(),
                "rejections": p.rejections(),
                "votes": p.votes,
                "rollout": p.rollout,
            })
        })
        .collect();
    let rollouts: Vec<Value> = s
        .rollouts
        .values()
        .rev()
        .take(RECENT)
        .map(|r| {
            let target = match &r.kind {
                RolloutKind::Promote { to, .. } => to.name().to_string(),
                RolloutKind::Restore { .. } => "restore".to_string(),
            };
            json!({
                "id": r.id,
                "proposal": r.proposal,
                "version": r.version,
                "stage": target,
                "status": r.status,
                "batches": r.batches.iter().map(Vec::len).collect::<Vec<_>>(),
                "batches_done": r.completed,
                "agents": r.total_agents(),
                "recorded_in_batch": r.recorded.len(),
                "current_batch": r.current_batch(),
                "rollback_agents": r.rollback_agents,
                "rollback_to": r.rollback_to,
                "rollback_pending": r.rollback_pending,
                "reason": r.reason,
                "planned_seq": r.planned_seq,
                "ended_seq": r.ended_seq,
            })
        })
        .collect();
    let agents: Vec<Value> = ledger
        .config()
        .agents
        .iter()
        .map(|a| {
            let h = health.get(&a.id);
            json!({
                "id": a.id,
                "specialty": a.specialty,
                "assigned": s.assigned.get(&a.id),
                "version": h.map(|h| h.body.version.clone()),
                "health": h.map(|h| json!({
                    "coherence": h.body.coherence_mean,
                    "error_rate": h.body.error_rate_mean,
                    "response_ms_p95": h.body.response_ms_p95,
                    "safety": h.body.safety_min,
                    "tasks_per_minute": h.body.tasks_per_minute,
                    "samples": h.body.samples,
                    "age_ms": h.received.elapsed().as_millis() as u64,
                    "verdict": match ledger.config().health.judge(&h.body) {
                        crate::rollout::health::Verdict::Healthy => "healthy".to_string(),
                        crate::rollout::health::Verdict::Degraded(_) => "degraded".to_string(),
                        crate::rollout::health::Verdict::NotYet(_) => "warming up".to_string(),
                    },
                })),
            })
        })
        .collect();
    let f = FleetFigures::of(health);
    json!({
        "releases": listed_releases(ledger),
        "releases_total": s.releases.len(),
        "current": s.current,
        "known_good": s.known_good,
        "open_proposals": s.proposals.values().filter(|p| p.status == ProposalStatus::Pending).map(|p| p.id).collect::<Vec<_>>(),
        "proposals": proposals,
        "rollouts": rollouts,
        "agents": agents,
        "fleet": {
            "min_samples": ledger.config().health.min_samples,
            "consensus_rate": consensus_rate(ledger),
            "agents_reporting": f.agents_reporting,
            "safety_score_min": f.safety_min,
            "safety_score_mean": f.safety_mean,
            "task_throughput": f.tasks_per_minute,
        },
        "events": ledger.journal().events.total(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::ledger_world::{release, World};
    use crate::governance::Operation;

    /// The summary stays bounded however many releases the ledger holds: it names the newest
    /// and the ones a stage serves, and counts the rest.
    #[test]
    fn the_summary_lists_a_bounded_number_of_releases_newest_first() {
        let mut w = World::new();
        let n = RELEASES_LISTED + 40;
        for i in 0..n {
            let o = w.request(Operation::RegisterRelease {
                release: release(&format!("r{i:04}")),
            });
            assert!(o.accepted, "{:?}", o.reasons);
        }
        let s = summary(&w.ledger, &BTreeMap::new());
        let listed = s["releases"].as_object().expect("releases");
        let serving: Vec<&String> = w.ledger.state().current.values().collect();
        assert_eq!(s["releases_total"], json!(w.ledger.state().releases.len()));
        assert!(
            listed.len() <= RELEASES_LISTED + serving.len(),
            "{}",
            listed.len()
        );
        assert!(listed.len() >= RELEASES_LISTED);
        assert_eq!(
            listed[&format!("r{:04}", n - 1)],
            "staging",
            "the newest is listed"
        );
        assert!(!listed.contains_key("r0000"), "the oldest is not");
        for v in serving {
            if w.ledger.state().releases.contains_key(v) {
                assert!(listed.contains_key(v), "{v} serves a stage");
            }
        }
    }
}
