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
use scbe_core::governance::ledger::{LedgerConfig, StateDigest};
use scbe_core::governance::manifest::{Metrics, Provider};
use scbe_core::governance::release::Unit;
use scbe_core::governance::{FusedRelease, Gates, Operation};
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
/// Samples an agent's report covers.
const REPORT_WINDOW: usize = (MIN_SAMPLES * 2) as usize;
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

/// What a report signed with a retired (leaked) agent key claims as its task rate, so that the
/// `agent-keys` checker recognises it wherever a ledger kept it.
pub const LEAKED_KEY_TASKS_PER_MINUTE: f64 = 4_242.0;

/// The key the requester's script re-keys agent `id` to (membership seeds), and that its
/// operator restarts it with once the change is approved.
pub fn rekeyed_key(id: &str) -> Keypair {
    Keypair::from_label(&format!("sim/rekeyed/{id}"))
}

/// A report body claiming agent `agent` is healthy on `version` over a whole window, as the
/// forgers of this module sign it.
fn healthy_body(agent: &str, rollout: u64, version: &str) -> HealthBody {
    HealthBody {
        agent: agent.into(),
        rollout,
        version: version.into(),
        report: 1,
        samples: MIN_SAMPLES * 3,
        window: MIN_SAMPLES,
        coherence_mean: 0.95,
        error_rate_mean: 0.0,
        response_ms_p95: 50.0,
        safety_min: 0.99,
        tasks_per_minute: 60.0,
        latest: vec![],
    }
}

/// A healthy report for `rollout` on `version` signed under agent `agent`'s name with `key`
/// (a retired key an attacker kept), marked with [`LEAKED_KEY_TASKS_PER_MINUTE`].
pub fn leaked_key_report(agent: &str, rollout: u64, version: &str, key: &Keypair) -> HealthReport {
    let body = HealthBody {
        tasks_per_minute: LEAKED_KEY_TASKS_PER_MINUTE,
        ..healthy_body(agent, rollout, version)
    };
    HealthReport::sign(&body, key)
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
    /// The genesis's validator keys and quorum, which the agent starts from (again, on a
    /// restart).
    pub genesis: (Vec<Verifier>, usize),
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
                        REPORT_WINDOW,
                    ),
                    genesis: (verifiers.clone(), quorum),
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

    /// Its operator restarts it with `key` (an approved re-key): it keeps what it runs and the
    /// validator set it followed (its state file), as `agent.rekeyed = true` does; its
    /// samples start again. Returns the key it signed with before.
    pub fn restart_with(&mut self, key: Keypair) -> Keypair {
        let state = self.core.state().clone();
        let (verifiers, quorum) = self.genesis.clone();
        self.core = AgentCore::new(
            self.id.clone(),
            key.clone(),
            verifiers,
            quorum,
            state,
            REPORT_WINDOW,
        );
        std::mem::replace(&mut self.key, key)
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
    ///
    /// `leaked` are retired agent keys (an agent re-keyed because its old key leaked): the
    /// liar also submits the step's evidence signed with them under those agents' names.
    pub fn forge(
        &self,
        rng: &mut ChaCha8Rng,
        key: &Keypair,
        step: &StepView,
        leaked: &[(String, Keypair)],
    ) -> Option<Operation> {
        if !step.promote {
            return None;
        }
        let agents: Vec<&String> = step.remaining().collect();
        if agents.is_empty() {
            return None;
        }
        let healthy = |agent: &str| healthy_body(agent, step.rollout, &step.version);
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
        let leaked: Vec<&(String, Keypair)> = leaked
            .iter()
            .filter(|(id, _)| agents.contains(&id))
            .collect();
        // A fifth way only where a leaked key can sign (other seeds draw as before).
        let ways = if leaked.is_empty() { 4 } else { 5 };
        match rng.random_range(0..ways) {
            // Evidence signed with retired keys under their agents' names.
            4 => Some(progress(
                leaked
                    .iter()
                    .map(|(a, k)| DeployAck::sign(&ack(a), k))
                    .collect(),
                leaked
                    .iter()
                    .map(|(a, k)| leaked_key_report(a, step.rollout, &step.version, k))
                    .collect(),
            )),
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
