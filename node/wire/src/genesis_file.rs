//! The genesis file's sections, as TOML: everything the validators of one cluster must agree on
//! (the validator set, requesters, agents, gates, health thresholds, rollout timing, consensus
//! sizes, known-good versions). Every key is documented in `configs/genesis.toml`.
//! [`crate::genesis::Genesis`] reads, digests and checks it.

use std::collections::BTreeMap;
use std::time::Duration;

use scbe_core::governance::ledger::StateDigest;
use scbe_core::governance::Gates;
use scbe_core::rollout::baseline::{
    Alpha, Analysis, AnalysisSettings, BaselineSettings, Metric, OnInconclusive,
};
use scbe_core::rollout::evidence::MAX_LATEST_SAMPLES;
use scbe_core::rollout::order::OrderUnit;
use serde::{Deserialize, Serialize};

fn d_checkpoint() -> u64 {
    32
}
fn d_window() -> u64 {
    64
}
fn d_batch() -> usize {
    256
}
fn d_vote_window() -> u64 {
    10_000
}
fn d_known_good() -> Vec<String> {
    vec!["v0".into()]
}
fn d_window_rollout() -> Duration {
    Duration::from_secs(300)
}
fn d_sample_interval() -> Duration {
    Duration::from_secs(10)
}
fn d_deploy_deadline() -> Duration {
    Duration::from_secs(120)
}
fn d_agent_call_timeout() -> Duration {
    Duration::from_secs(150)
}
fn d_min_coherence() -> f64 {
    0.7
}
fn d_max_error_rate() -> f64 {
    0.05
}
fn d_min_safety() -> f64 {
    0.95
}
fn d_breach_samples() -> u32 {
    2
}

/// The whole genesis file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// A name for the cluster, for humans (logs, `scbe status`).
    pub cluster: String,
    pub validators: Vec<ValidatorEntry>,
    #[serde(default)]
    pub requesters: Vec<RequesterEntry>,
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
    #[serde(default)]
    pub consensus: ConsensusSizes,
    #[serde(default)]
    pub gates: Gates,
    #[serde(default)]
    pub ledger: LedgerSection,
    #[serde(default)]
    pub rollout: RolloutSection,
    #[serde(default)]
    pub health: HealthSection,
    #[serde(default)]
    pub analysis: AnalysisSection,
    /// Webhooks the leader posts ledger events to (`[[notify]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notify_entry::NotifyEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    pub id: u32,
    pub public_key: String,
    /// Where peers, agents' operators and clients reach its gRPC services: `host:port`, a host
    /// name (DNS, a Kubernetes service name) or an IP address. A validator's own `node.toml` may
    /// listen elsewhere (`listen`) and see peers elsewhere (`[peers]`).
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterEntry {
    pub name: String,
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub id: String,
    pub specialty: String,
    pub public_key: String,
    /// `host:port` of the agent's FleetAgent service; without one it cannot be reached (its
    /// batches then fail on no data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Sizes every replica must share: checkpoints fall at the same sequence numbers and every
/// message limit is derived from them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSizes {
    /// 32, not PBFT's 128: a view change re-proposes every batch above the last stable
    /// checkpoint, and with 128 that redo work was about a third of a failover (BENCHMARKS.md).
    #[serde(default = "d_checkpoint")]
    pub checkpoint_interval: u64,
    #[serde(default = "d_window")]
    pub window: u64,
    #[serde(default = "d_batch")]
    pub max_batch: usize,
}

impl Default for ConsensusSizes {
    fn default() -> Self {
        Self {
            checkpoint_interval: d_checkpoint(),
            window: d_window(),
            max_batch: d_batch(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// A proposal not decided within this many sequence numbers expires.
    #[serde(default = "d_vote_window")]
    pub vote_window_seqs: u64,
    /// Versions the fleet runs at genesis (a promotion's rollback plan may name them).
    #[serde(default = "d_known_good")]
    pub known_good: Vec<String>,
    /// The units (provider, id, URI) of known-good versions, so a rollback to one gives hooks
    /// the same `SCBE_UNIT_*` variables as a rollback to any registered release.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub known_good_units: BTreeMap<String, Vec<OrderUnit>>,
    /// How the state digest is computed: `"tree"` (a Merkle tree updated where entries
    /// changed; what `scbe-node testnet` and `scbe-sim up` write) or `"walk"` (every entry at
    /// every checkpoint; what a genesis without this key gets, so a cluster started before the
    /// tree keeps its digests).
    #[serde(default)]
    pub state_digest: StateDigest,
}

impl Default for LedgerSection {
    fn default() -> Self {
        Self {
            vote_window_seqs: d_vote_window(),
            known_good: d_known_good(),
            known_good_units: BTreeMap::new(),
            state_digest: StateDigest::Walk,
        }
    }
}

impl LedgerSection {
    /// What a new cluster's genesis holds: the defaults, with the digest tree.
    pub fn for_new_cluster() -> Self {
        Self {
            state_digest: StateDigest::Tree,
            ..Self::default()
        }
    }
}

/// How rollouts are executed and watched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    /// How long each batch is monitored before it may count as healthy.
    #[serde(default = "d_window_rollout", with = "humantime_serde")]
    pub window: Duration,
    /// How often agents sample their health (every agent takes it from here).
    #[serde(default = "d_sample_interval", with = "humantime_serde")]
    pub sample_interval: Duration,
    /// How long the leader keeps delivering a deploy order before leaving it to the deadline.
    #[serde(default = "d_deploy_deadline", with = "humantime_serde")]
    pub deploy_deadline: Duration,
    /// Timeout of one call to an agent (must cover its hook's timeout).
    #[serde(default = "d_agent_call_timeout", with = "humantime_serde")]
    pub agent_call_timeout: Duration,
    /// Progress deadline of each step of a promotion: a batch that has neither completed nor
    /// failed this long after a validator saw it start is claimed stuck, and `f + 1` claims
    /// roll the rollout back. Unset: deploy_deadline + window + 3 sample intervals.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub progress_deadline: Option<Duration>,
}

impl Default for RolloutSection {
    fn default() -> Self {
        Self {
            window: d_window_rollout(),
            sample_interval: d_sample_interval(),
            deploy_deadline: d_deploy_deadline(),
            agent_call_timeout: d_agent_call_timeout(),
            progress_deadline: None,
        }
    }
}

impl RolloutSection {
    /// Samples a monitoring window holds: the minimum for a healthy verdict.
    pub fn min_samples(&self) -> u32 {
        let n = self
            .window
            .as_nanos()
            .div_ceil(self.sample_interval.as_nanos().max(1));
        n.clamp(1, u32::MAX as u128) as u32
    }

    /// From when a validator sees a step until it claims the step stuck: `progress_deadline`,
    /// or by default the deploy deadline, the window, and three sample intervals of slack.
    pub fn step_deadline(&self) -> Duration {
        self.progress_deadline
            .unwrap_or(self.deploy_deadline + self.window + self.sample_interval * 3)
    }

    /// The shortest progress deadline that leaves a batch time to earn a healthy verdict: a
    /// window of samples and two sample intervals of slack.
    pub fn shortest_progress_deadline(&self) -> Duration {
        self.window + self.sample_interval * 2
    }
}

/// When an agent counts as healthy or degraded (the response-time bound is the latency gate).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    #[serde(default = "d_min_coherence")]
    pub min_coherence: f64,
    #[serde(default = "d_max_error_rate")]
    pub max_error_rate: f64,
    #[serde(default = "d_min_safety")]
    pub min_safety: f64,
    #[serde(default = "d_breach_samples")]
    pub breach_samples: u32,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            min_coherence: d_min_coherence(),
            max_error_rate: d_max_error_rate(),
            min_safety: d_min_safety(),
            breach_samples: d_breach_samples(),
        }
    }
}

fn d_analysis() -> String {
    "both".into()
}
fn d_alpha() -> f64 {
    0.01
}
fn d_analysis_min_samples() -> u64 {
    20
}
fn d_on_inconclusive() -> String {
    "rollback".into()
}

/// How a canary step is judged: the thresholds, and the canary compared with agents of the
/// same specialties still on the running version (a Mann-Whitney U test per metric).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSection {
    /// `"both"` (thresholds and the comparison) or `"thresholds"`.
    #[serde(default = "d_analysis")]
    pub analysis: String,
    /// One-sided significance level: 0.1, 0.05, 0.025, 0.01, 0.005 or 0.001.
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Fewer samples on either side makes the comparison inconclusive.
    #[serde(default = "d_analysis_min_samples")]
    pub min_samples: u64,
    /// `"rollback"`, `"proceed"` (the thresholds decide alone) or `"pause"` (wait for an
    /// approval).
    #[serde(default = "d_on_inconclusive")]
    pub on_inconclusive: String,
    #[serde(default)]
    pub tolerance: ToleranceSection,
}

impl Default for AnalysisSection {
    fn default() -> Self {
        Self {
            analysis: d_analysis(),
            alpha: d_alpha(),
            min_samples: d_analysis_min_samples(),
            on_inconclusive: d_on_inconclusive(),
            tolerance: ToleranceSection::default(),
        }
    }
}

/// Per metric, the difference of medians below which a significant difference does not count
/// (in the metric's unit).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceSection {
    pub coherence: f64,
    pub error_rate: f64,
    pub response_ms: f64,
    pub safety: f64,
    pub tasks_per_minute: f64,
}

impl Default for ToleranceSection {
    fn default() -> Self {
        let d = BaselineSettings::default();
        let of = |m: Metric| {
            d.tolerance
                .iter()
                .find(|(t, _)| *t == m)
                .map_or(0.0, |(_, v)| *v)
        };
        Self {
            coherence: of(Metric::Coherence),
            error_rate: of(Metric::ErrorRate),
            response_ms: of(Metric::ResponseMs),
            safety: of(Metric::Safety),
            tasks_per_minute: of(Metric::Throughput),
        }
    }
}

/// What the fleet can feed a comparison: the canary is one agent per specialty, the baseline
/// the other agents, and each report carries at most `per_agent` samples.
#[derive(Debug, Clone, Copy)]
pub struct SampleSupply {
    pub per_agent: u64,
    pub specialties: u64,
    pub agents: u64,
}

/// Fewest samples a side of a comparison is fitted down to in generated configurations.
pub const FITTED_MIN_SAMPLES_FLOOR: u64 = 10;

impl SampleSupply {
    /// What `agents` supply with `rollout`'s window: each report carries the window's samples,
    /// at most [`MAX_LATEST_SAMPLES`].
    pub fn of(rollout: &RolloutSection, agents: &[AgentEntry]) -> Self {
        let specialties: std::collections::BTreeSet<&str> =
            agents.iter().map(|a| a.specialty.as_str()).collect();
        Self::new(rollout, specialties.len() as u64, agents.len() as u64)
    }

    /// What `agents` agents of `specialties` specialties supply with `rollout`'s window.
    pub fn new(rollout: &RolloutSection, specialties: u64, agents: u64) -> Self {
        SampleSupply {
            per_agent: u64::from(rollout.min_samples()).min(MAX_LATEST_SAMPLES as u64),
            specialties,
            agents,
        }
    }
}

impl AnalysisSection {
    /// The defaults, fitted to a fleet a tool generates (`scbe-node testnet`, `scbe-sim up`):
    /// `min_samples` lowered to what the smaller side can supply (not below
    /// [`FITTED_MIN_SAMPLES_FLOOR`]), and where even that is short, `on_inconclusive =
    /// "proceed"` so the thresholds decide alone rather than every canary rolling back.
    pub fn fitted(supply: SampleSupply) -> Self {
        let d = Self::default();
        let side = (supply.per_agent * supply.specialties)
            .min(supply.per_agent * supply.agents.saturating_sub(supply.specialties));
        if side >= d.min_samples {
            return d;
        }
        if side >= FITTED_MIN_SAMPLES_FLOOR {
            return Self {
                min_samples: side,
                ..d
            };
        }
        Self {
            on_inconclusive: "proceed".into(),
            ..d
        }
    }

    /// The ledger's settings, or the key at fault and why. With `on_inconclusive = "rollback"`
    /// a fleet that can never supply `min_samples` on either side is refused here: every
    /// canary would roll back as inconclusive.
    pub fn settings(&self, supply: SampleSupply) -> Result<AnalysisSettings, (String, String)> {
        let bad = |k: &str, p: String| (format!("analysis.{k}"), p);
        let analysis = match self.analysis.as_str() {
            "both" => Analysis::Both,
            "thresholds" => Analysis::Thresholds,
            "baseline" => Analysis::Baseline,
            other => {
                return Err(bad(
                    "analysis",
                    format!("must be \"both\", \"thresholds\" or \"baseline\", got {other:?}"),
                ))
            }
        };
        let on_inconclusive = match self.on_inconclusive.as_str() {
            "rollback" => OnInconclusive::Rollback,
            "proceed" => OnInconclusive::Proceed,
            "pause" => OnInconclusive::Pause,
            other => {
                return Err(bad(
                    "on_inconclusive",
                    format!("must be \"rollback\", \"proceed\" or \"pause\", got {other:?}"),
                ))
            }
        };
        let alpha = [
            Alpha::P10,
            Alpha::P05,
            Alpha::P025,
            Alpha::P01,
            Alpha::P005,
            Alpha::P001,
        ]
        .into_iter()
        .find(|a| a.value() == self.alpha)
        .ok_or_else(|| {
            bad(
                "alpha",
                format!(
                    "must be one of 0.1, 0.05, 0.025, 0.01, 0.005, 0.001 (a fixed table keeps every validator's verdict identical), got {}",
                    self.alpha
                ),
            )
        })?;
        if self.min_samples < 2 {
            return Err(bad(
                "min_samples",
                format!("must be at least 2, got {}", self.min_samples),
            ));
        }
        let t = &self.tolerance;
        let tolerance = vec![
            (Metric::Coherence, t.coherence),
            (Metric::ErrorRate, t.error_rate),
            (Metric::ResponseMs, t.response_ms),
            (Metric::Safety, t.safety),
            (Metric::Throughput, t.tasks_per_minute),
        ];
        if let Some((m, v)) = tolerance.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            return Err(bad(
                &format!("tolerance.{}", m.name()),
                format!("must be a number of at least 0, got {v}"),
            ));
        }
        let s = supply;
        let canary = s.per_agent * s.specialties;
        let baseline = s.per_agent * s.agents.saturating_sub(s.specialties);
        if analysis != Analysis::Thresholds
            && on_inconclusive == OnInconclusive::Rollback
            && s.agents > 0
            && (canary < self.min_samples || baseline < self.min_samples)
        {
            return Err(bad(
                "min_samples",
                format!(
                    "{} is more than this fleet can supply (canary: {} specialties x {} samples = {canary}; baseline: {} other agents x {} = {baseline}), so every canary would roll back as inconclusive; lower it, lengthen rollout.window, or set on_inconclusive = \"proceed\" or analysis = \"thresholds\"",
                    self.min_samples,
                    s.specialties,
                    s.per_agent,
                    s.agents.saturating_sub(s.specialties),
                    s.per_agent
                ),
            ));
        }
        Ok(AnalysisSettings {
            analysis,
            baseline: BaselineSettings {
                alpha,
                tolerance,
                min_samples: self.min_samples,
            },
            on_inconclusive,
        })
    }
}
