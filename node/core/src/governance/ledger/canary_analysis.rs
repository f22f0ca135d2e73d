//! The canary judged against its baseline: while the first batch of a promotion to canary is
//! monitored, the agents of the same specialties still on the running version are its
//! baseline. Validators carry their latest signed reports alongside `RolloutProgress`; when the
//! step's last agent is recorded, every replica compares the canary agents' samples with the
//! baseline's (`rollout::baseline`, integer arithmetic only) and reaches the same verdict: a
//! canary worse than its baseline rolls back naming the metric, both medians and the p-value.
//!
//! The ledger has no clock, so it cannot check that a baseline report is recent; it keeps the
//! newest report of each agent (the agent's report counter only grows) and at most
//! [`MAX_BASELINE_AGENTS`] agents, chosen by the validators that submit them.

use std::collections::{BTreeMap, BTreeSet};

use super::state::{Rollout, RolloutKind};
use super::Ledger;
use crate::governance::stage::{Stage, Tongue};
use crate::rollout::baseline::{compare, Analysis, BaselineVerdict, OnInconclusive};
use crate::rollout::evidence::{HealthBody, HealthReport, Sample};
use crate::rollout::health::HealthThresholds;

/// Most baseline agents a rollout keeps reports of (plenty of samples; bounded memory).
pub const MAX_BASELINE_AGENTS: usize = 64;

/// Why a baseline report does not count.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaselineEvidenceError {
    #[error("rollout {rollout}'s current step is not compared with a baseline")]
    NotCompared { rollout: u64 },
    #[error(transparent)]
    Unverified(#[from] crate::rollout::evidence::EvidenceError),
    #[error("{agent} is not a baseline agent of rollout {rollout} (another specialty, or it runs or receives the new version)")]
    NotBaseline { agent: String, rollout: u64 },
    #[error("report from {agent} is about {version}, but the ledger has it on {assigned}")]
    OtherVersion {
        agent: String,
        version: String,
        assigned: String,
    },
}

/// What the comparison at the end of a canary step decided.
pub(super) enum CanaryJudgement {
    /// Not compared, passed, or inconclusive with `proceed`: the step completes.
    Proceed,
    /// Roll back, with the event kind and the reason.
    RollBack { kind: &'static str, reason: String },
    /// Inconclusive with `pause`: the step completes, then the rollout waits for approval.
    Pause,
}

impl Ledger {
    /// Whether `r`'s current step is a canary step compared with a baseline: the first batch
    /// of a promotion to canary, with `analysis = "both"` or `"baseline"`.
    pub(super) fn compares(&self, r: &Rollout) -> bool {
        self.cfg.analysis.analysis != Analysis::Thresholds
            && r.completed == 0
            && matches!(
                r.kind,
                RolloutKind::Promote {
                    to: Stage::Canary,
                    ..
                }
            )
            && r.current_batch().is_some()
    }

    /// The health thresholds `r`'s current step is judged by: those in force, or only their
    /// floor in a compared canary step with `analysis = "baseline"` (the comparison judges
    /// the rest). Every validator and the watcher use the same.
    pub fn step_thresholds(&self, r: &Rollout) -> HealthThresholds {
        if self.compares(r) {
            self.canary_thresholds()
        } else {
            self.health()
        }
    }

    /// The thresholds a completed canary step of a promotion was judged by (the production
    /// proposal re-checks its reports with them).
    pub(super) fn canary_thresholds(&self) -> HealthThresholds {
        if self.cfg.analysis.analysis == Analysis::Baseline {
            self.health().floor_only()
        } else {
            self.health()
        }
    }

    /// The baseline agents of rollout `id`'s current step, each with the version the ledger has
    /// it on: agents of the canary agents' specialties that neither run nor receive the new
    /// version. Empty when the step is not compared.
    pub fn baseline_agents(&self, id: u64) -> BTreeMap<String, String> {
        let Some(r) = self.state.rollouts.get(&id) else {
            return BTreeMap::new();
        };
        if !self.compares(r) {
            return BTreeMap::new();
        }
        let at_risk = self.at_risk(id);
        let batch: BTreeSet<&String> = r.current_batch().unwrap_or_default().iter().collect();
        let specialties: BTreeSet<&str> = self
            .state
            .agents
            .iter()
            .filter(|a| batch.contains(&a.id))
            .map(|a| a.specialty.as_str())
            .collect();
        self.state
            .agents
            .iter()
            .filter(|a| specialties.contains(a.specialty.as_str()) && !at_risk.contains(&a.id))
            .filter_map(|a| Some((a.id.clone(), self.state.assigned.get(&a.id)?.clone())))
            .collect()
    }

    /// Opens the baseline reports of a `RolloutProgress` and checks each is from a baseline
    /// agent about the version it runs.
    pub(super) fn open_baseline(
        &self,
        r: &Rollout,
        reports: &[HealthReport],
    ) -> Result<Vec<HealthBody>, Vec<String>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        if !self.compares(r) {
            return Err(vec![
                BaselineEvidenceError::NotCompared { rollout: r.id }.to_string()
            ]);
        }
        let eligible = self.baseline_agents(r.id);
        let mut bodies = Vec::new();
        let mut problems = Vec::new();
        for rep in reports {
            let checked = rep
                .open(|id| self.agent_keys.get(id))
                .map_err(BaselineEvidenceError::from)
                .and_then(|b| match eligible.get(&b.agent) {
                    None => Err(BaselineEvidenceError::NotBaseline {
                        agent: b.agent,
                        rollout: r.id,
                    }),
                    Some(v) if *v != b.version => Err(BaselineEvidenceError::OtherVersion {
                        agent: b.agent,
                        version: b.version,
                        assigned: v.clone(),
                    }),
                    Some(_) => Ok(b),
                });
            match checked {
                Ok(b) => bodies.push(b),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            Ok(bodies)
        } else {
            Err(problems)
        }
    }

    /// Keeps the newest report of each baseline agent, up to [`MAX_BASELINE_AGENTS`] agents.
    pub(super) fn keep_baseline(&mut self, id: u64, bodies: Vec<HealthBody>) {
        let Some(r) = self.state.rollouts.get_mut(&id) else {
            return;
        };
        for b in bodies {
            let newer = r
                .baseline
                .get(&b.agent)
                .is_none_or(|old| b.report > old.report);
            let room = r.baseline.contains_key(&b.agent) || r.baseline.len() < MAX_BASELINE_AGENTS;
            if newer && room {
                r.baseline.insert(b.agent.clone(), b);
            }
        }
    }

    /// At the end of a compared canary step: the canary agents' samples against the
    /// baseline's. Records the comparison in the rollout and says whether the step completes.
    pub(super) fn judge_canary(&mut self, seq: u64, id: u64) -> CanaryJudgement {
        let Some(r) = self.state.rollouts.get(&id) else {
            return CanaryJudgement::Proceed;
        };
        if !self.compares(r) {
            return CanaryJudgement::Proceed;
        }
        let batch: BTreeSet<&String> = r.current_batch().unwrap_or_default().iter().collect();
        let samples = |bodies: &mut dyn Iterator<Item = &HealthBody>| -> Vec<Sample> {
            bodies.flat_map(|b| b.latest.iter().copied()).collect()
        };
        let canary = samples(&mut r.reports.values().filter(|b| batch.contains(&b.agent)));
        let baseline = samples(&mut r.baseline.values());
        let settings = &self.cfg.analysis;
        let comparison = compare(&canary, &baseline, &settings.baseline);
        let judgement = match &comparison.verdict {
            BaselineVerdict::Pass { score } => {
                let detail = format!(
                    "canary as good as its baseline (score {score}): {}",
                    comparison
                        .metrics
                        .iter()
                        .map(|m| m.describe())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                self.event(
                    seq,
                    Tongue::AV,
                    "baseline_passed",
                    format!("rollout:{id}"),
                    detail,
                );
                CanaryJudgement::Proceed
            }
            BaselineVerdict::Fail { score } => CanaryJudgement::RollBack {
                kind: "baseline_rollback",
                reason: format!(
                    "canary worse than its baseline (score {score}): {}",
                    comparison.worse().join("; ")
                ),
            },
            BaselineVerdict::Inconclusive { reason } => match settings.on_inconclusive {
                OnInconclusive::Rollback => CanaryJudgement::RollBack {
                    kind: "baseline_inconclusive",
                    reason: format!("canary comparison inconclusive: {reason}"),
                },
                OnInconclusive::Proceed => {
                    self.event(
                        seq,
                        Tongue::AV,
                        "baseline_inconclusive",
                        format!("rollout:{id}"),
                        format!("{reason}; on_inconclusive = proceed: the thresholds decide"),
                    );
                    CanaryJudgement::Proceed
                }
                OnInconclusive::Pause => {
                    self.event(
                        seq,
                        Tongue::AV,
                        "baseline_inconclusive",
                        format!("rollout:{id}"),
                        format!("{reason}; on_inconclusive = pause: waiting for approval"),
                    );
                    CanaryJudgement::Pause
                }
            },
        };
        if let Some(r) = self.state.rollouts.get_mut(&id) {
            r.comparison = Some(comparison);
        }
        judgement
    }
}
