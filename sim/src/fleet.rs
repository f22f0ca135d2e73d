//! The fleet in the simulator: agents that run the real agent core (`scbe_core::agent`) with the
//! seeded synthetic health model, the primary's executor (endorsements from the validators' own
//! ledgers, orders to the agents), a release requester following a script, and Byzantine
//! validators that lie about the fleet. What each validator decides about the fleet is its
//! `ValidatorStep`'s (`fleet_driver.rs` drives it as the runtime does).
//!
//! What the runtime does over gRPC happens here as events with network delays. Endorsements
//! are collected without delay from the validators that are up and reachable: what matters to
//! the checkers is which ledgers agree on an order, not how long the asking takes.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use scbe_core::agent::synthetic::SyntheticModel;
use scbe_core::agent::AgentCore;
use scbe_core::agent::AgentState;
use scbe_core::crypto::{Keypair, PublicKey, Verifier};
use scbe_core::governance::ledger::{
    AgentChange, Ledger, LedgerConfig, ProposalStatus, SettingsChange, StateDigest, ValidatorChange,
};
use scbe_core::governance::manifest::{Metrics, Provider};
use scbe_core::governance::release::Unit;
use scbe_core::governance::{FusedRelease, Gates, Operation, Stage};
use scbe_core::rollout::baseline::{Analysis, AnalysisSettings, BaselineSettings, OnInconclusive};
use scbe_core::rollout::evidence::{
    AckBody, AckOutcome, AgentSigned, DeployAck, HealthBody, HealthReport, OrderAction, Sample,
};
use scbe_core::rollout::health::HealthThresholds;
use scbe_core::rollout::plan::FleetAgent;
use scbe_core::rollout::watcher::{StepView, WatchSettings};

use crate::scenario::{AgentBehaviour, FleetScenario};

/// Virtual milliseconds between fleet ticks (validators decide, the executor delivers).
pub const TICK_MS: u64 = 100;
/// Agents sample every this many ticks.
pub const SAMPLE_TICKS: u64 = 2;
/// Samples a healthy verdict needs (the monitoring window is 600 virtual ms).
pub const MIN_SAMPLES: u32 = 3;
/// Consecutive bad samples that prove degradation.
pub const BREACH_SAMPLES: u32 = 2;
/// How often the executor sends an unanswered order again.
pub const ORDER_RETRY_MS: u64 = 400;

/// The watcher's pacing (its thresholds come from the ledger with each step).
pub fn watch_settings() -> WatchSettings {
    WatchSettings {
        step_deadline_ms: 2_500,
        resubmit_ms: 600,
        leader_grace_ms: 600,
        stall_ms: 1_000,
        max_op_bytes: scbe_core::governance::operation::MAX_OPERATION_BYTES / 2,
    }
}

/// The ledger's thresholds; `min_samples` is [`MIN_SAMPLES`] unless a test weakens it.
pub fn thresholds(min_samples: u32) -> HealthThresholds {
    HealthThresholds {
        min_samples,
        breach_samples: BREACH_SAMPLES,
        ..HealthThresholds::default()
    }
}

/// The ledger every simulated validator runs (identical configuration everywhere), starting
/// with `state_digest` (membership seeds start with the walk and move to the tree by their
/// settings proposal, as an upgraded cluster does).
pub fn ledger_config(
    validators: Vec<PublicKey>,
    agents: &[SimAgent],
    min_samples: u32,
    state_digest: StateDigest,
    requesters: std::collections::BTreeMap<String, PublicKey>,
) -> LedgerConfig {
    LedgerConfig {
        validators,
        known_good: vec!["v0".into()],
        known_good_units: Default::default(),
        gates: Gates::default(),
        vote_window_seqs: 10_000,
        agents: agents
            .iter()
            .map(|a| FleetAgent {
                id: a.id.clone(),
                specialty: a.specialty.clone(),
                key: a.key.public(),
                address: String::new(),
            })
            .collect(),
        health: thresholds(min_samples),
        analysis: analysis(min_samples),
        notify_sinks: Vec::new(),
        state_digest,
        requesters,
    }
}

/// The canary is compared with its baseline as by default, on two windows' worth of samples
/// per side; an inconclusive comparison (a scenario's few agents, silent ones) lets the
/// thresholds decide, so liveness is judged on the thresholds as before.
pub fn analysis(min_samples: u32) -> AnalysisSettings {
    AnalysisSettings {
        analysis: Analysis::Both,
        baseline: BaselineSettings {
            min_samples: u64::from(min_samples) * 2,
            ..BaselineSettings::default()
        },
        on_inconclusive: OnInconclusive::Proceed,
    }
}

/// A release whose unit ids carry the version (so "bad" versions degrade the model), fused
/// against the default gates.
pub fn release(version: &str) -> FusedRelease {
    release_under(version, Gates::default())
}

/// [`release`] fused against `gates` (a ledger refuses a release fused against other gates).
pub fn release_under(version: &str, gates: Gates) -> FusedRelease {
    let unit = |p: &str, role: &str| Unit {
        id: format!("{role}-{version}"),
        role: role.into(),
        uri: format!("{p}://models/{role}-{version}"),
        metrics: Metrics {
            quality: 0.85,
            safety: 0.98,
            latency_ms_p95: 90.0,
            cost_per_1k_tokens: 0.5,
        },
    };
    let units = BTreeMap::from([
        (Provider::Hf, unit("hf", "textgen")),
        (Provider::Gcp, unit("gcp", "embed")),
        (Provider::Aws, unit("aws", "runtime")),
    ]);
    FusedRelease::new(units, gates, Some(version.into()), "sim".into())
}

/// One order an agent carried out (ground truth for the checkers).
#[derive(Clone, Debug)]
pub struct Obeyed {
    pub rollout: u64,
    pub action: OrderAction,
    pub version: String,
    pub issued_seq: u64,
}

pub struct SimAgent {
    pub id: String,
    pub specialty: String,
    pub key: Keypair,
    pub core: AgentCore,
    pub behaviour: AgentBehaviour,
    pub model: SyntheticModel,
    pub obeyed: Vec<Obeyed>,
}

impl SimAgent {
    pub fn fleet(
        seed: u64,
        fleet: &FleetScenario,
        validators: &[Keypair],
        quorum: usize,
    ) -> Vec<Self> {
        let verifiers: Vec<Verifier> = validators
            .iter()
            .filter_map(|k| Verifier::new(k.public()).ok())
            .collect();
        fleet
            .agents
            .iter()
            .enumerate()
            .map(|(i, (specialty, behaviour))| {
                let id = format!("agent-{i:02}");
                let key = Keypair::from_label(&format!("sim/{seed}/agent/{i}"));
                SimAgent {
                    core: AgentCore::new(
                        id.clone(),
                        key.clone(),
                        verifiers.clone(),
                        quorum,
                        AgentState::initial("v0"),
                        (MIN_SAMPLES * 2) as usize,
                    ),
                    id,
                    specialty: specialty.clone(),
                    key,
                    behaviour: behaviour.clone(),
                    model: SyntheticModel {
                        seed: seed ^ i as u64,
                        degrade: Some("bad".into()),
                        degrade_after: fleet.degrade_after,
                        drift: None,
                    },
                    obeyed: Vec::new(),
                }
            })
            .collect()
    }

    /// Takes one sample of what the agent runs and signs a report of it.
    pub fn sample(&mut self) -> Option<HealthReport> {
        let serving = self.core.state().current.clone();
        let s = self.model.sample(
            &self.id,
            &serving.version,
            &serving.units,
            self.core.samples(),
            self.core.taken(),
        );
        self.core.record(s);
        self.core.report()
    }

    /// Whether the model degrades on `version` (ground truth).
    pub fn degrades_on(
        &self,
        version: &str,
        units: &[scbe_core::rollout::order::OrderUnit],
    ) -> bool {
        self.model.degrades(version, units)
    }

    /// What a Byzantine agent sends besides its honest reports: garbage (a report signed by a
    /// key that is not its own) or a validly signed report for another rollout.
    pub fn lie(&self, rng: &mut ChaCha8Rng) -> Option<HealthReport> {
        let body = HealthBody {
            agent: self.id.clone(),
            rollout: self.core.state().rollout + 1_000,
            version: self.core.state().current.version.clone(),
            report: 0,
            samples: 50,
            window: 1,
            coherence_mean: 0.1,
            error_rate_mean: 0.9,
            response_ms_p95: 900.0,
            safety_min: 0.1,
            tasks_per_minute: 0.0,
            latest: vec![Sample {
                coherence: 0.1,
                error_rate: 0.9,
                response_ms: 900.0,
                safety: 0.1,
                tasks_per_minute: 0.0,
            }],
        };
        if rng.random_bool(0.5) {
            Some(HealthReport::sign(&body, &self.key))
        } else {
            Some(HealthReport::sign(
                &body,
                &Keypair::from_label(&format!("not {}", self.id)),
            ))
        }
    }
}

/// Verified agent evidence travelling to a validator.
#[derive(Clone, Debug)]
pub enum Evidence {
    Report(HealthReport, HealthBody),
    Ack(DeployAck, AckBody),
}

/// What a simulated validator keeps beside its step: the executor's delivery state, and what
/// a fleet liar collects to forge with (lost on a crash, like the runtime's).
#[derive(Default)]
pub struct NodeFleet {
    /// The step the executor is delivering and when it last sent each agent its order.
    pub step_key: Option<(u64, u64, OrderAction)>,
    pub sent: BTreeMap<String, u64>,
    /// For a fleet liar: the first report and the acks it saw per agent.
    pub first_reports: BTreeMap<String, HealthReport>,
    pub acks_seen: BTreeMap<String, DeployAck>,
}

impl NodeFleet {
    /// Keeps what a liar forges with: each agent's first report and latest ack.
    pub fn collect(&mut self, ev: &Evidence) {
        match ev {
            Evidence::Report(s, b) => {
                self.first_reports
                    .entry(b.agent.clone())
                    .or_insert_with(|| s.clone());
            }
            Evidence::Ack(s, b) => {
                self.acks_seen.insert(b.agent.clone(), s.clone());
            }
        }
    }

    /// What a fleet liar submits instead of honest decisions: rollout progress or rollbacks
    /// backed by forged, edited or premature evidence. The ledger must refuse all of it.
    pub fn forge(&self, rng: &mut ChaCha8Rng, key: &Keypair, step: &StepView) -> Option<Operation> {
        if !step.promote {
            return None;
        }
        let agents: Vec<&String> = step.remaining().collect();
        if agents.is_empty() {
            return None;
        }
        let healthy = |agent: &str| HealthBody {
            agent: agent.into(),
            rollout: step.rollout,
            version: step.version.clone(),
            report: 1,
            samples: MIN_SAMPLES * 3,
            window: MIN_SAMPLES,
            coherence_mean: 0.95,
            error_rate_mean: 0.0,
            response_ms_p95: 50.0,
            safety_min: 0.99,
            tasks_per_minute: 60.0,
            latest: vec![],
        };
        let ack = |agent: &str| AckBody {
            agent: agent.into(),
            rollout: step.rollout,
            action: OrderAction::Deploy,
            issued_seq: step.order.issued_seq,
            version: step.version.clone(),
            outcome: AckOutcome::Done,
            detail: String::new(),
            refusal: None,
        };
        let progress = |acks, reports| Operation::RolloutProgress {
            rollout: step.rollout,
            batch: step.order.batch,
            acks,
            reports,
            baseline: Vec::new(),
        };
        match rng.random_range(0..4) {
            // Evidence signed by the liar itself under the agents' names.
            0 => Some(progress(
                agents
                    .iter()
                    .map(|a| DeployAck::sign(&ack(a), key))
                    .collect(),
                agents
                    .iter()
                    .map(|a| HealthReport::sign(&healthy(a), key))
                    .collect(),
            )),
            // Real acks and the agents' first reports, from before the window ended.
            1 => Some(progress(
                agents
                    .iter()
                    .filter_map(|a| self.acks_seen.get(*a).cloned())
                    .collect(),
                agents
                    .iter()
                    .filter_map(|a| self.first_reports.get(*a).cloned())
                    .collect(),
            )),
            // Real reports edited to claim the window is over.
            2 => Some(progress(
                agents
                    .iter()
                    .filter_map(|a| self.acks_seen.get(*a).cloned())
                    .collect(),
                agents
                    .iter()
                    .filter_map(|a| self.first_reports.get(*a))
                    .map(|r| {
                        AgentSigned::from_parts(
                            r.agent.clone(),
                            r.payload.replace("\"samples\":1,", "\"samples\":99,"),
                            r.signature.clone(),
                        )
                    })
                    .collect(),
            )),
            // A rollback on degradation nobody measured.
            _ => Some(Operation::AutoRollback {
                rollout: step.rollout,
                reports: agents
                    .iter()
                    .map(|a| {
                        let mut b = healthy(a);
                        b.latest = vec![
                            Sample {
                                coherence: 0.1,
                                error_rate: 0.5,
                                response_ms: 900.0,
                                safety: 0.5,
                                tasks_per_minute: 0.0,
                            };
                            BREACH_SAMPLES as usize
                        ];
                        HealthReport::sign(&b, key)
                    })
                    .collect(),
                acks: vec![],
            }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Propose the scenario's next membership or settings change before this release.
    Membership,
    AwaitMembership,
    Register,
    Canary,
    AwaitCanary,
    Production,
    AwaitProduction,
    /// Propose the scenario's validator change (while a rollout is in flight, or at the end),
    /// then go back to the step before.
    Validators,
    Done,
}

/// The release requester: registers each release, promotes it to canary, and (if it stays
/// healthy and the scenario says so) on to production; waits for every rollout to end.
#[derive(Debug)]
pub struct ReleaseScript {
    releases: Vec<String>,
    to_production: bool,
    membership: bool,
    /// Changes still to propose before this release, in order.
    changes: Vec<Change>,
    idx: usize,
    step: Step,
    /// Nonce of the request whose outcome decides the next step.
    pending: Option<u64>,
    proposal: Option<u64>,
    attempts: u32,
    not_before_ms: u64,
    /// The scenario's validator change, until its proposal is decided (or given up).
    validators: Option<ValidatorChange>,
    /// The validator change's proposal, once accepted.
    validators_proposal: Option<u64>,
    /// The step to go back to once the validator change is proposed.
    resume: Step,
}

/// A change the requester proposes between releases (membership seeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// New gates, which every later release must be fused against: the quality gate raised
    /// to 0.82 and the cost gate loosened to 1.5 (the script's units pass both); and the state
    /// digest moved from the walk to the tree.
    Gates,
    /// The genesis's last agent leaves the fleet.
    RemoveLast,
    /// The genesis's last agent joins again (same id, key and specialty).
    AddLast,
}

/// Promotions refused (one rollout at a time) are retried this many times, then skipped.
const MAX_ATTEMPTS: u32 = 40;

impl ReleaseScript {
    pub fn new(fleet: &FleetScenario, validators: Option<ValidatorChange>) -> Self {
        ReleaseScript {
            step: if fleet.releases.is_empty() {
                Step::Done
            } else {
                Step::Register
            },
            releases: fleet.releases.clone(),
            to_production: fleet.to_production,
            membership: fleet.membership,
            changes: Vec::new(),
            idx: 0,
            pending: None,
            proposal: None,
            attempts: 0,
            not_before_ms: 0,
            validators,
            validators_proposal: None,
            resume: Step::Done,
        }
    }

    /// Every release went its way, and the validator change was decided.
    pub fn done(&self) -> bool {
        self.step == Step::Done && self.validators.is_none()
    }

    /// Proposes the validator change now (if it is still to be proposed), coming back to the
    /// current step afterwards.
    fn propose_validators(&mut self) -> Option<Operation> {
        let change = self.validators.clone()?;
        if self.validators_proposal.is_some() {
            return None;
        }
        if self.step != Step::Validators {
            self.resume = self.step;
            self.step = Step::Validators;
        }
        Some(Operation::ProposeValidator { change })
    }

    fn next_release(&mut self) {
        self.idx += 1;
        self.attempts = 0;
        self.proposal = None;
        self.changes = match (self.membership, self.idx) {
            (true, 1) => vec![Change::Gates, Change::RemoveLast],
            (true, 2) => vec![Change::AddLast],
            _ => Vec::new(),
        };
        self.step = if self.idx >= self.releases.len() {
            Step::Done
        } else if !self.changes.is_empty() {
            Step::Membership
        } else {
            Step::Register
        };
    }

    /// The next operation to submit, if any, given the most advanced honest ledger.
    pub fn next(&mut self, ledger: &Ledger, key: &PublicKey, now_ms: u64) -> Option<Operation> {
        if let Some(nonce) = self.pending {
            let outcome = ledger.outcome(key, nonce)?.clone();
            self.pending = None;
            match self.step {
                Step::Register => self.step = Step::Canary,
                Step::Validators => match outcome.proposal {
                    Some(p) if outcome.accepted => {
                        self.validators_proposal = Some(p);
                        self.attempts = 0;
                        self.step = self.resume;
                    }
                    // Refused (another proposal is being voted on): retry, then give up.
                    _ => {
                        self.attempts += 1;
                        self.not_before_ms = now_ms + 500;
                        if self.attempts >= MAX_ATTEMPTS {
                            self.attempts = 0;
                            self.validators = None;
                            self.step = self.resume;
                        }
                    }
                },
                Step::Membership => match outcome.proposal {
                    Some(p) if outcome.accepted => {
                        self.proposal = Some(p);
                        self.step = Step::AwaitMembership;
                    }
                    // Refused (a rollout still holds the fleet): retry, then go on without it.
                    _ => {
                        self.attempts += 1;
                        self.not_before_ms = now_ms + 500;
                        if self.attempts >= MAX_ATTEMPTS {
                            self.attempts = 0;
                            self.changes.clear();
                            self.step = Step::Register;
                        }
                    }
                },
                Step::Canary | Step::Production => match outcome.proposal {
                    Some(p) if outcome.accepted => {
                        self.proposal = Some(p);
                        self.step = if self.step == Step::Canary {
                            Step::AwaitCanary
                        } else {
                            Step::AwaitProduction
                        };
                    }
                    _ => {
                        self.attempts += 1;
                        self.not_before_ms = now_ms + 500;
                        if self.attempts >= MAX_ATTEMPTS {
                            self.next_release();
                        }
                    }
                },
                _ => {}
            }
        }
        if now_ms < self.not_before_ms {
            return None;
        }
        if let Some(p) = self.validators_proposal {
            let decided = ledger
                .state()
                .proposals
                .get(&p)
                .is_some_and(|p| p.status != ProposalStatus::Pending);
            if decided {
                self.validators = None;
            }
        }
        if matches!(self.step, Step::Validators | Step::Done) {
            return self.propose_validators();
        }
        let version = self.releases.get(self.idx)?.clone();
        match self.step {
            Step::Membership => {
                // Before the second release: new gates, then the genesis's last agent leaves;
                // before the third it is admitted again.
                let a = ledger.config().agents.last()?;
                let change = match self.changes.first()? {
                    Change::Gates => {
                        return Some(Operation::ProposeSettings {
                            change: SettingsChange {
                                min_quality: Some(0.82),
                                max_cost_per_1k_tokens: Some(1.5),
                                state_digest: Some(StateDigest::Tree),
                                ..SettingsChange::default()
                            },
                        })
                    }
                    Change::RemoveLast => AgentChange::Remove { id: a.id.clone() },
                    Change::AddLast => AgentChange::Add {
                        id: a.id.clone(),
                        specialty: a.specialty.clone(),
                        public_key: a.key,
                        address: "sim-agent:7100".into(),
                    },
                };
                Some(Operation::ProposeAgent { change })
            }
            Step::AwaitMembership => {
                let p = ledger.state().proposals.get(&self.proposal?)?;
                if p.status != ProposalStatus::Pending {
                    self.proposal = None;
                    self.attempts = 0;
                    if !self.changes.is_empty() {
                        self.changes.remove(0);
                    }
                    self.step = if self.changes.is_empty() {
                        Step::Register
                    } else {
                        Step::Membership
                    };
                }
                None
            }
            // Fused against the gates in force (they may have changed by proposal).
            Step::Register => Some(Operation::RegisterRelease {
                release: release_under(&version, ledger.gates()),
            }),
            Step::Canary | Step::Production => Some(Operation::Promote {
                version,
                to: if self.step == Step::Canary {
                    Stage::Canary
                } else {
                    Stage::Production
                },
                rollback_to: "v0".into(),
                pause_before: None,
                steps: Vec::new(),
            }),
            Step::AwaitCanary | Step::AwaitProduction => {
                let p = ledger.state().proposals.get(&self.proposal?)?;
                match p.status {
                    ProposalStatus::Pending => return None,
                    ProposalStatus::Rejected | ProposalStatus::Expired => {
                        self.next_release();
                        return None;
                    }
                    ProposalStatus::Approved => {}
                }
                let r = ledger.state().rollouts.get(&p.rollout?)?;
                if r.status.is_active() {
                    // The validator set changes while this rollout is in flight.
                    return self.propose_validators();
                }
                let completed = r.status == scbe_core::governance::ledger::RolloutStatus::Completed;
                if self.step == Step::AwaitCanary && completed && self.to_production {
                    self.step = Step::Production;
                    self.attempts = 0;
                } else {
                    self.next_release();
                }
                None
            }
            Step::Validators | Step::Done => None,
        }
    }

    /// The script's request was sent with this nonce.
    pub fn sent(&mut self, nonce: u64) {
        self.pending = Some(nonce);
    }
}
