//! What `Status` returns: the ledger summary as one typed, serde-serialised value. Validators
//! build it ([`StatusSummary::of`]) from their ledger and the latest verified health of every
//! agent; `scbe status` and `scbe watch`, the simulator's demo and the tests read the same type,
//! so a field cannot be renamed on one side only. Its JSON is what `scbe status --json` prints.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use scbe_core::governance::ledger::{
    Ledger, ProposalKind, ProposalStatus, RolloutKind, RolloutStatus, Settings, VoteRecord,
};
use scbe_core::governance::Stage;
use scbe_core::rollout::baseline::Comparison;
use scbe_core::rollout::evidence::HealthBody;
use scbe_core::rollout::health::{HealthThresholds, Verdict};

/// Proposals and rollouts listed (the most recent).
const RECENT: usize = 20;
/// Releases listed by name (the most recently registered, and every one a stage serves). The
/// summary used to list every release: with 100,000 registered it passed 4 MiB and a client's
/// status call failed on its message size limit (found by the registration bench).
pub const RELEASES_LISTED: usize = 256;

/// The ledger as `scbe status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusSummary {
    /// Version -> stage of the releases listed: those a stage serves and the
    /// [`RELEASES_LISTED`] most recently registered.
    pub releases: BTreeMap<String, Stage>,
    /// Every release the ledger holds.
    pub releases_total: usize,
    /// Which version each stage serves.
    pub current: BTreeMap<Stage, String>,
    pub known_good: BTreeSet<String>,
    pub open_proposals: Vec<u64>,
    /// The most recent proposals, newest first.
    pub proposals: Vec<ProposalSummary>,
    /// The most recent rollouts, newest first.
    pub rollouts: Vec<RolloutSummary>,
    /// Every agent of the fleet, in the ledger's order.
    pub agents: Vec<AgentSummary>,
    pub fleet: FleetSummary,
    /// Ledger events so far (`scbe watch --from` counts from 0).
    pub events: u64,
    /// Per notification sink of the genesis: the events before this index were delivered.
    #[serde(default)]
    pub notified: BTreeMap<String, u64>,
    /// The quality gates and health thresholds in force (the genesis's until a settings
    /// proposal is approved).
    #[serde(default)]
    pub settings: Settings,
    /// The requesters in force (the genesis's until a requester proposal changes them): name
    /// -> public key (hex).
    #[serde(default)]
    pub requesters: BTreeMap<String, String>,
}

/// One proposal and its tally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposalSummary {
    pub id: u64,
    /// "promote r1 canary -> production", "rollback to v0".
    pub what: String,
    pub status: ProposalStatus,
    pub approvals: usize,
    pub rejections: usize,
    /// Every validator's vote so far, by validator id.
    pub votes: BTreeMap<u32, VoteRecord>,
    pub rollout: Option<u64>,
}

/// One rollout and its batch progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutSummary {
    pub id: u64,
    pub proposal: u64,
    pub version: String,
    /// The stage it promotes to, or "restore".
    pub stage: String,
    pub status: RolloutStatus,
    /// Agents per batch.
    pub batches: Vec<usize>,
    pub batches_done: u32,
    pub agents: usize,
    /// Agents of the current batch recorded so far.
    pub recorded_in_batch: usize,
    /// The batch being deployed, if the rollout is in progress.
    pub current_batch: Option<Vec<String>>,
    pub rollback_agents: Vec<String>,
    pub rollback_to: String,
    pub rollback_pending: BTreeSet<String>,
    /// Why it failed or rolled back.
    pub reason: String,
    pub planned_seq: u64,
    pub ended_seq: Option<u64>,
    /// The canary-against-baseline comparison, once its step ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The batch it waits to be approved for (`scbe approve --rollout R`), while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_before: Option<u32>,
}

/// One agent: the version the ledger put it on and its latest verified health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    pub id: String,
    pub specialty: String,
    /// The version the ledger assigned.
    pub assigned: Option<String>,
    /// The version its latest signed report is about.
    pub version: Option<String>,
    pub health: Option<AgentHealthSummary>,
    /// What this validator sees wrong with the agent, and the fix (its reports are refused,
    /// it refuses orders, it runs another genesis, it cannot be reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// An agent's latest verified report, judged against the ledger's thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentHealthSummary {
    pub coherence: f64,
    pub error_rate: f64,
    pub response_ms_p95: f64,
    pub safety: f64,
    pub tasks_per_minute: f64,
    pub samples: u32,
    /// How long ago this validator received it.
    pub age_ms: u64,
    pub verdict: HealthVerdict,
}

/// The thresholds' verdict on a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthVerdict {
    #[serde(rename = "healthy")]
    Healthy,
    #[serde(rename = "degraded")]
    Degraded,
    #[serde(rename = "warming up")]
    WarmingUp,
    /// The latest report is older than [`STALE_AFTER_INTERVALS`] sample intervals: the agent or
    /// its health source stopped answering, and what it last said no longer counts as health.
    #[serde(rename = "stale")]
    Stale,
}

/// A report older than this many sample intervals reads "stale", whatever its figures.
pub const STALE_AFTER_INTERVALS: u32 = 3;

impl HealthVerdict {
    pub fn name(self) -> &'static str {
        match self {
            HealthVerdict::Healthy => "healthy",
            HealthVerdict::Degraded => "degraded",
            HealthVerdict::WarmingUp => "warming up",
            HealthVerdict::Stale => "stale",
        }
    }
}

/// Fleet-wide figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetSummary {
    /// Samples a healthy verdict needs (the monitoring window).
    pub min_samples: u32,
    /// Share of validators that voted with the outcome over recent proposals.
    pub consensus_rate: f64,
    pub agents_reporting: usize,
    pub safety_score_min: f64,
    pub safety_score_mean: f64,
    /// Tasks per minute across agents reporting.
    pub task_throughput: f64,
}

/// An agent's latest verified report and its age, as a validator's health monitor has it.
#[derive(Clone, Debug, PartialEq)]
pub struct LatestReport {
    pub body: HealthBody,
    pub age_ms: u64,
}

/// Fleet-wide figures from the latest report of every agent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FleetFigures {
    pub agents_reporting: usize,
    pub safety_min: f64,
    pub safety_mean: f64,
    pub tasks_per_minute: f64,
}

impl FleetFigures {
    pub fn of<'a>(latest: impl IntoIterator<Item = &'a HealthBody>) -> Self {
        let bodies: Vec<&HealthBody> = latest.into_iter().collect();
        let n = bodies.len();
        if n == 0 {
            return FleetFigures::default();
        }
        let safety: Vec<f64> = bodies.iter().map(|b| b.safety_min).collect();
        FleetFigures {
            agents_reporting: n,
            safety_min: safety.iter().copied().fold(f64::INFINITY, f64::min),
            safety_mean: safety.iter().sum::<f64>() / n as f64,
            tasks_per_minute: bodies.iter().map(|b| b.tasks_per_minute).sum(),
        }
    }
}

/// Version -> stage of the releases the summary lists: those a stage currently serves and the
/// [`RELEASES_LISTED`] most recently registered (ties by version).
/// The [`RELEASES_LISTED`] newest registrations, as (registered seq, version). O(releases): a
/// validator computes it once, then follows registrations as they happen.
pub fn newest_releases(ledger: &Ledger) -> Vec<(u64, String)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // The newest by (registered_seq, version): a min-heap of the best RELEASES_LISTED so far.
    let mut newest = BinaryHeap::with_capacity(RELEASES_LISTED + 1);
    for (version, entry) in ledger.state().releases.iter() {
        newest.push(Reverse((entry.registered_seq, version)));
        if newest.len() > RELEASES_LISTED {
            newest.pop();
        }
    }
    newest
        .into_iter()
        .map(|Reverse((seq, v))| (seq, v.to_string()))
        .collect()
}

/// [`newest_releases`] from a run of consecutive events alone, when they decide it: the
/// [`RELEASES_LISTED`] newest registrations among them, provided that many were registered
/// after the run's first seq (a registration just before the run, in its first batch, could
/// tie on seq and win on version). `None`: scan the releases instead. Why: a validator that
/// executed more events in one turn than the journal keeps in memory would otherwise scan every
/// release after that turn, which at saturation was ~5% of its time.
pub fn newest_in_events<'a>(
    events: impl IntoIterator<Item = &'a scbe_core::governance::event::Event>,
) -> Option<Vec<(u64, String)>> {
    let mut events = events.into_iter().peekable();
    let first_seq = events.peek()?.seq;
    let mut newest = std::collections::BTreeSet::new();
    for e in events {
        if e.kind == scbe_core::governance::event::RELEASE_REGISTERED && e.seq > first_seq {
            keep_newest(&mut newest, e.seq, e.subject.clone());
        }
    }
    (newest.len() == RELEASES_LISTED).then(|| newest.into_iter().collect())
}

/// Adds a registration (its seq and version) to `newest`, which keeps the
/// [`RELEASES_LISTED`] newest.
pub fn keep_newest(
    newest: &mut std::collections::BTreeSet<(u64, String)>,
    seq: u64,
    version: String,
) {
    newest.insert((seq, version));
    if newest.len() > RELEASES_LISTED {
        newest.pop_first();
    }
}

/// The releases listed: `newest` and every one a stage serves, with their stages.
fn listed_releases<'a>(
    ledger: &Ledger,
    newest: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, Stage> {
    let s = ledger.state();
    let mut listed: BTreeMap<String, Stage> = newest
        .into_iter()
        .filter_map(|v| s.releases.get(v.as_str()).map(|e| (v.clone(), e.stage)))
        .collect();
    for v in s.current.values() {
        if let Some(e) = s.releases.get(v.as_str()) {
            listed.insert(v.clone(), e.stage);
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

impl StatusSummary {
    /// The summary of `ledger`, with `health` the latest verified report of each agent (a
    /// report older than `stale_after_ms` reads [`HealthVerdict::Stale`]) and `warnings` what
    /// this validator sees wrong with agents.
    pub fn of(
        ledger: &Ledger,
        health: &BTreeMap<String, LatestReport>,
        warnings: &BTreeMap<String, String>,
        stale_after_ms: u64,
    ) -> Self {
        let mut summary = Self::of_ledger(ledger);
        summary.add_health(&ledger.health(), health, warnings, stale_after_ms);
        summary
    }

    /// The ledger's part of the summary: agents listed without health, fleet figures empty.
    /// A validator builds it once per executed batch for its read model and adds the health it
    /// monitors when a reader asks ([`StatusSummary::add_health`]): health changes between
    /// batches, the ledger does not.
    pub fn of_ledger(ledger: &Ledger) -> Self {
        let newest = newest_releases(ledger);
        Self::of_ledger_listing(ledger, newest.iter().map(|(_, v)| v))
    }

    /// [`Self::of_ledger`] with the newest registrations already known (a validator follows
    /// them from the ledger's events instead of scanning every release each time).
    pub fn of_ledger_listing<'a>(
        ledger: &Ledger,
        newest: impl IntoIterator<Item = &'a String>,
    ) -> Self {
        let s = ledger.state();
        let proposals = s
            .proposals
            .values()
            .rev()
            .take(RECENT)
            .map(|p| ProposalSummary {
                id: p.id,
                what: match &p.kind {
                    ProposalKind::Promote {
                        version, from, to, ..
                    } => format!("promote {version} {from} -> {to}"),
                    ProposalKind::Rollback { target_version, .. } => {
                        format!("rollback to {target_version}")
                    }
                    ProposalKind::Agent { change } => change.describe(),
                    ProposalKind::Settings { change } => change.describe(),
                    ProposalKind::Requester { change } => change.describe(),
                    ProposalKind::Validator { change } => change.describe(),
                    ProposalKind::Abort { rollout, reason } => {
                        format!("abort rollout {rollout}: {reason}")
                    }
                    ProposalKind::Approve { rollout, batch } => {
                        format!("approve batch {batch} of rollout {rollout}")
                    }
                },
                status: p.status,
                approvals: p.approvals(),
                rejections: p.rejections(),
                votes: p.votes.clone(),
                rollout: p.rollout,
            })
            .collect();
        let rollouts = s
            .rollouts
            .values()
            .rev()
            .take(RECENT)
            .map(|r| RolloutSummary {
                id: r.id,
                proposal: r.proposal,
                version: r.version.clone(),
                stage: match &r.kind {
                    RolloutKind::Promote { to, .. } => to.name().to_string(),
                    RolloutKind::Restore { .. } => "restore".to_string(),
                },
                status: r.status,
                batches: r.batches.iter().map(Vec::len).collect(),
                batches_done: r.completed,
                agents: r.total_agents(),
                recorded_in_batch: r.recorded.len(),
                current_batch: r.current_batch().map(<[String]>::to_vec),
                rollback_agents: r.rollback_agents.clone(),
                rollback_to: r.rollback_to.clone(),
                rollback_pending: r.rollback_pending.clone(),
                reason: r.reason.clone(),
                planned_seq: r.planned_seq,
                ended_seq: r.ended_seq,
                comparison: r.comparison.clone(),
                paused_before: r.paused_before(),
            })
            .collect();
        let thresholds = &ledger.health();
        let agents = s
            .agents
            .iter()
            .map(|a| AgentSummary {
                id: a.id.clone(),
                specialty: a.specialty.clone(),
                assigned: s.assigned.get(&a.id).cloned(),
                version: None,
                warning: None,
                health: None,
            })
            .collect();
        StatusSummary {
            releases: listed_releases(ledger, newest),
            releases_total: s.releases.len(),
            current: s.current.clone(),
            known_good: s.known_good.clone(),
            open_proposals: s.proposals.open_values().map(|p| p.id).collect(),
            proposals,
            rollouts,
            agents,
            fleet: FleetSummary {
                min_samples: thresholds.min_samples,
                consensus_rate: consensus_rate(ledger),
                ..FleetSummary::default()
            },
            events: ledger.journal().events.total(),
            notified: ledger
                .config()
                .notify_sinks
                .iter()
                .map(|name| (name.clone(), ledger.notified_through(name)))
                .collect(),
            settings: ledger.settings(),
            requesters: ledger
                .requesters()
                .into_iter()
                .map(|(name, key)| (name, key.to_hex()))
                .collect(),
        }
    }

    /// Adds what a validator's health monitor has: each agent's version, figures and verdict
    /// under `thresholds` (a report older than `stale_after_ms` reads
    /// [`HealthVerdict::Stale`]), the warnings it has about agents, and the fleet's figures.
    pub fn add_health(
        &mut self,
        thresholds: &HealthThresholds,
        health: &BTreeMap<String, LatestReport>,
        warnings: &BTreeMap<String, String>,
        stale_after_ms: u64,
    ) {
        for a in &mut self.agents {
            let h = health.get(&a.id);
            a.version = h.map(|h| h.body.version.clone());
            a.warning = warnings.get(&a.id).cloned();
            a.health = h.map(|h| AgentHealthSummary {
                coherence: h.body.coherence_mean,
                error_rate: h.body.error_rate_mean,
                response_ms_p95: h.body.response_ms_p95,
                safety: h.body.safety_min,
                tasks_per_minute: h.body.tasks_per_minute,
                samples: h.body.samples,
                age_ms: h.age_ms,
                verdict: match thresholds.judge(&h.body) {
                    _ if h.age_ms > stale_after_ms => HealthVerdict::Stale,
                    Verdict::Healthy => HealthVerdict::Healthy,
                    Verdict::Degraded(_) => HealthVerdict::Degraded,
                    Verdict::NotYet(_) => HealthVerdict::WarmingUp,
                },
            });
        }
        let f = FleetFigures::of(health.values().map(|h| &h.body));
        self.fleet.agents_reporting = f.agents_reporting;
        self.fleet.safety_score_min = f.safety_min;
        self.fleet.safety_score_mean = f.safety_mean;
        self.fleet.task_throughput = f.tasks_per_minute;
    }

    /// The rollout with this id, if the summary lists it.
    pub fn rollout(&self, id: u64) -> Option<&RolloutSummary> {
        self.rollouts.iter().find(|r| r.id == id)
    }

    /// The version a stage serves.
    pub fn serving(&self, stage: Stage) -> Option<&str> {
        self.current.get(&stage).map(String::as_str)
    }
}

#[cfg(test)]
#[path = "status_summary_tests.rs"]
mod tests;
