//! The genesis file's sections, as TOML: everything the validators of one cluster must agree on
//! (the validator set, requesters, agents, gates, health thresholds, rollout timing, consensus
//! sizes, known-good versions). Every key is documented in `configs/genesis.toml`.
//! [`crate::genesis::Genesis`] reads, digests and checks it.

use std::collections::BTreeMap;
use std::time::Duration;

use scbe_core::governance::Gates;
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
}

impl Default for LedgerSection {
    fn default() -> Self {
        Self {
            vote_window_seqs: d_vote_window(),
            known_good: d_known_good(),
            known_good_units: BTreeMap::new(),
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
}

impl Default for RolloutSection {
    fn default() -> Self {
        Self {
            window: d_window_rollout(),
            sample_interval: d_sample_interval(),
            deploy_deadline: d_deploy_deadline(),
            agent_call_timeout: d_agent_call_timeout(),
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

    /// From when a validator sees a step until it claims missing data: the deploy deadline,
    /// the window, and three sample intervals of slack.
    pub fn step_deadline(&self) -> Duration {
        self.deploy_deadline + self.window + self.sample_interval * 3
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
