//! The validator's TOML configuration, validated at start-up with errors that name the key.
//! Every key is documented in `configs/node.toml`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use scbe_core::consensus::{Directory, ReplicaConfig, ReplicaId};
use scbe_core::crypto::Keypair;
use scbe_core::governance::{Gates, LedgerConfig};
use scbe_core::rollout::health::HealthThresholds;
use scbe_core::rollout::plan::FleetAgent;
use scbe_wire::key_file::{parse_public_key, read_key_file};

pub use scbe_wire::config_error::ConfigError;
use scbe_wire::config_error::{invalid, load_toml, parse_toml};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub id: u32,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    /// Prometheus `/metrics` over plain HTTP; omit to disable.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    pub id: u32,
    pub public_key: String,
    /// gRPC address (consensus and governance services).
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterEntry {
    pub name: String,
    pub public_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    pub id: String,
    pub specialty: String,
    pub public_key: String,
    /// gRPC address of the agent's FleetAgent service; without one the agent cannot be reached
    /// (its batches then fail on no data).
    #[serde(default)]
    pub address: Option<SocketAddr>,
}

fn d_request() -> Duration {
    Duration::from_millis(500)
}
fn d_view_change() -> Duration {
    Duration::from_millis(1000)
}
fn d_status() -> Duration {
    Duration::from_millis(500)
}
fn d_heartbeat() -> Duration {
    Duration::from_millis(50)
}
fn d_silence() -> u32 {
    4
}
/// 32, not PBFT's 128: a view change re-proposes every batch above the last stable checkpoint,
/// and with 128 that redo work was about a third of a failover (`scbe-sim bench
/// --checkpoint-interval`: failover median 298 → 230 ms, saturation unchanged; BENCHMARKS.md).
fn d_checkpoint() -> u64 {
    32
}
fn d_window() -> u64 {
    64
}
fn d_batch() -> usize {
    256
}
fn d_inflight() -> u64 {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSection {
    #[serde(default = "d_request", with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(default = "d_view_change", with = "humantime_serde")]
    pub view_change_timeout: Duration,
    #[serde(default = "d_status", with = "humantime_serde")]
    pub status_interval: Duration,
    #[serde(default = "d_heartbeat", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    #[serde(default = "d_silence")]
    pub silence_ticks: u32,
    #[serde(default = "d_checkpoint")]
    pub checkpoint_interval: u64,
    #[serde(default = "d_window")]
    pub window: u64,
    #[serde(default = "d_batch")]
    pub max_batch: usize,
    #[serde(default = "d_inflight")]
    pub max_inflight_batches: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        Self {
            request_timeout: d_request(),
            view_change_timeout: d_view_change(),
            status_interval: d_status(),
            heartbeat_interval: d_heartbeat(),
            silence_ticks: d_silence(),
            checkpoint_interval: d_checkpoint(),
            window: d_window(),
            max_batch: d_batch(),
            max_inflight_batches: d_inflight(),
        }
    }
}

fn d_vote_window() -> u64 {
    10_000
}
fn d_known_good() -> Vec<String> {
    vec!["v0".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    #[serde(default = "d_vote_window")]
    pub vote_window_seqs: u64,
    #[serde(default = "d_known_good")]
    pub known_good: Vec<String>,
}

impl Default for LedgerSection {
    fn default() -> Self {
        Self {
            vote_window_seqs: d_vote_window(),
            known_good: d_known_good(),
        }
    }
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

/// How rollouts are executed and watched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    /// How long each batch is monitored before it may count as healthy.
    #[serde(default = "d_window_rollout", with = "humantime_serde")]
    pub window: Duration,
    /// How often agents sample their health (must match the agents' `sample_interval`).
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

/// When an agent counts as healthy or degraded (the response-time bound is the latency gate).
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub validators: Vec<ValidatorEntry>,
    #[serde(default)]
    pub requesters: Vec<RequesterEntry>,
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
    #[serde(default)]
    pub consensus: ConsensusSection,
    #[serde(default)]
    pub gates: Option<Gates>,
    #[serde(default)]
    pub ledger: LedgerSection,
    #[serde(default)]
    pub rollout: RolloutSection,
    #[serde(default)]
    pub health: HealthSection,
    #[serde(default)]
    pub quotas: QuotaSection,
}

/// Per-requester limits at this validator's client API (see `services::quota`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSection {
    #[serde(default = "d_quota_requests")]
    pub requests_per_window: u32,
    #[serde(default = "d_quota_bytes")]
    pub bytes_per_window: u64,
    #[serde(default = "d_quota_window", with = "humantime_serde")]
    pub window: Duration,
}

fn d_quota_requests() -> u32 {
    6_000
}
fn d_quota_bytes() -> u64 {
    512 * 1024 * 1024
}
fn d_quota_window() -> Duration {
    Duration::from_secs(60)
}

impl Default for QuotaSection {
    fn default() -> Self {
        Self {
            requests_per_window: d_quota_requests(),
            bytes_per_window: d_quota_bytes(),
            window: d_quota_window(),
        }
    }
}

impl QuotaSection {
    pub fn limits(&self) -> crate::services::quota::QuotaLimits {
        crate::services::quota::QuotaLimits {
            requests: self.requests_per_window,
            bytes: self.bytes_per_window,
            window: self.window,
        }
    }
}

/// Everything the runtime needs, checked.
pub struct Validated {
    pub raw: NodeConfig,
    pub key: Keypair,
    pub replica: ReplicaConfig,
    pub ledger: LedgerConfig,
    /// Test hook: the rollout executor panics as it starts.
    #[cfg(test)]
    pub(crate) inject_executor_panic: bool,
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        parse_toml(path, text)
    }

    /// Validates everything and loads the key; `base` resolves relative paths.
    pub fn validate(self, base: &Path) -> Result<Validated, ConfigError> {
        let n = self.validators.len();
        if n < 4 {
            return Err(invalid(
                "validators",
                format!("need at least 4 validators, got {n}"),
            ));
        }
        let mut keys = Vec::with_capacity(n);
        for (i, v) in self.validators.iter().enumerate() {
            if v.id as usize != i {
                return Err(invalid(
                    format!("validators[{i}].id"),
                    format!("must be {i} (ids are 0..n in order), got {}", v.id),
                ));
            }
            keys.push(parse_public_key(&v.public_key).ok_or_else(|| {
                invalid(
                    format!("validators[{i}].public_key"),
                    "must be 64 hex characters",
                )
            })?);
        }
        let mut requesters = Vec::new();
        let mut names = BTreeSet::new();
        for (i, r) in self.requesters.iter().enumerate() {
            if !names.insert(r.name.clone()) {
                return Err(invalid(
                    format!("requesters[{i}].name"),
                    format!("duplicate name {:?}", r.name),
                ));
            }
            requesters.push(parse_public_key(&r.public_key).ok_or_else(|| {
                invalid(
                    format!("requesters[{i}].public_key"),
                    "must be 64 hex characters",
                )
            })?);
        }
        let directory = Directory::new(keys.clone(), requesters)
            .map_err(|e| invalid("validators/requesters", e.to_string()))?;
        if self.node.id as usize >= n {
            return Err(invalid(
                "node.id",
                format!("{} is not a validator id (0..{n})", self.node.id),
            ));
        }
        let key_path = base.join(&self.node.key_file);
        let key = read_key_file(&key_path)?;
        if key.public() != keys[self.node.id as usize] {
            return Err(invalid(
                "node.key_file",
                format!(
                    "{} holds key {}, but validators[{}].public_key is {}",
                    key_path.display(),
                    key.public(),
                    self.node.id,
                    keys[self.node.id as usize]
                ),
            ));
        }
        let c = &self.consensus;
        for (k, d) in [
            ("consensus.request_timeout", c.request_timeout),
            ("consensus.view_change_timeout", c.view_change_timeout),
            ("consensus.status_interval", c.status_interval),
            ("consensus.heartbeat_interval", c.heartbeat_interval),
            ("quotas.window", self.quotas.window),
        ] {
            if d.is_zero() {
                return Err(invalid(k, "must be greater than zero"));
            }
        }
        if self.quotas.requests_per_window == 0 || self.quotas.bytes_per_window == 0 {
            return Err(invalid(
                "quotas",
                "requests_per_window and bytes_per_window must be greater than zero",
            ));
        }
        let mut replica = ReplicaConfig::new(ReplicaId(self.node.id), directory)
            .map_err(|e| invalid("validators", e.to_string()))?;
        replica.checkpoint_interval = c.checkpoint_interval;
        replica.window = c.window;
        replica.derive_byte_limits();
        replica.max_batch = c.max_batch;
        replica.max_inflight_batches = c.max_inflight_batches;
        replica.silence_ticks = c.silence_ticks;
        replica
            .validate()
            .map_err(|e| invalid("consensus", e.to_string()))?;
        let gates = self.gates.unwrap_or_default();
        gates
            .validate()
            .map_err(|e| invalid(format!("gates.{}", e.setting), e.problem))?;
        let mut agents = Vec::new();
        let mut ids = BTreeSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            let id_ok = !a.id.is_empty()
                && a.id.len() <= scbe_core::rollout::evidence::MAX_AGENT_ID_BYTES
                && a.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !id_ok {
                return Err(invalid(
                    format!("agents[{i}].id"),
                    "must be 1 to 128 letters, digits, '-', '_' or '.'",
                ));
            }
            if !ids.insert(a.id.clone()) {
                return Err(invalid(
                    format!("agents[{i}].id"),
                    format!("duplicate agent id {:?}", a.id),
                ));
            }
            agents.push(FleetAgent {
                id: a.id.clone(),
                specialty: a.specialty.clone(),
                key: parse_public_key(&a.public_key).ok_or_else(|| {
                    invalid(
                        format!("agents[{i}].public_key"),
                        "must be 64 hex characters",
                    )
                })?,
            });
        }
        if self.ledger.known_good.is_empty() {
            return Err(invalid(
                "ledger.known_good",
                "needs at least one version the fleet runs today",
            ));
        }
        let ro = &self.rollout;
        for (k, d) in [
            ("rollout.window", ro.window),
            ("rollout.sample_interval", ro.sample_interval),
            ("rollout.deploy_deadline", ro.deploy_deadline),
            ("rollout.agent_call_timeout", ro.agent_call_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(k, "must be greater than zero"));
            }
        }
        if ro.sample_interval > ro.window {
            return Err(invalid(
                "rollout.sample_interval",
                "must not be longer than rollout.window (a window needs at least one sample)",
            ));
        }
        let h = &self.health;
        let health = HealthThresholds {
            min_coherence: h.min_coherence,
            max_error_rate: h.max_error_rate,
            max_response_ms_p95: gates.max_latency_ms_p95,
            min_safety: h.min_safety,
            min_samples: ro.min_samples(),
            breach_samples: h.breach_samples,
        };
        health.validate().map_err(|e| {
            // The response-time bound is the latency gate; the sample count comes from
            // [rollout] (window / sample_interval).
            let key = match e.setting {
                "max_response_ms_p95" => "gates.max_latency_ms_p95".to_string(),
                "min_samples" => "rollout.window".to_string(),
                other => format!("health.{other}"),
            };
            invalid(key, e.problem)
        })?;
        let ledger = LedgerConfig {
            validators: keys,
            known_good: self.ledger.known_good.clone(),
            gates,
            vote_window_seqs: self.ledger.vote_window_seqs,
            agents,
            health,
        };
        Ok(Validated {
            raw: self,
            key,
            replica,
            ledger,
            #[cfg(test)]
            inject_executor_panic: false,
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
