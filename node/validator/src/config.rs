//! The validator's own TOML configuration (`node.toml`): what is this node's alone (its id,
//! key, data directory, where it listens, how it reaches its peers, its timeouts and quotas).
//! Everything the validators must agree on is in the genesis file it names, never here.
//! Validated at start-up with errors that name the key; every key is documented in
//! `configs/node.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use scbe_core::consensus::{ReplicaConfig, ReplicaId};
use scbe_core::crypto::Keypair;
use scbe_core::governance::LedgerConfig;
use scbe_wire::genesis::{check_address, Genesis};
use scbe_wire::key_file::read_key_file;
use scbe_wire::tls::{TlsSection, Transport};

pub use scbe_wire::config_error::ConfigError;
use scbe_wire::config_error::{invalid, load_toml, parse_toml};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub id: u32,
    /// The cluster's genesis file (relative paths are relative to this config).
    pub genesis: PathBuf,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    /// Where the gRPC services listen. Default: the genesis address when it is an IP address,
    /// otherwise every interface on its port.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Prometheus `/metrics` over plain HTTP; omit to disable.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The key file holds a key a `propose validator rotate` gave this validator, not the one
    /// the genesis lists: the node starts anyway. With a data directory that executed the
    /// rotation it takes part at once; with a fresh one (a replaced machine) it observes, catches
    /// up from its peers, and takes part from the epoch that put the key in force. Off, a key
    /// the genesis does not list is refused (most often a wrong key file).
    #[serde(default)]
    pub rekeyed: bool,
    /// This validator is not in the genesis: `scbe propose validator add` added it (the id is
    /// the one its approval printed, `node.listen` is required). It observes, catches up from
    /// the genesis's validators (and those added since), and takes part from the epoch that
    /// added its key. Off, an id the genesis does not list is refused.
    #[serde(default)]
    pub added: bool,
    /// Keep registered releases' bodies in the record store and read one when it is needed
    /// (a promotion's evaluation, a rollout, a snapshot, a proof), instead of in memory: about
    /// 1 KB less per release, and persisted snapshots that name the bodies (a seventh of the
    /// JSON). On by default: in `scbe-sim bench --workload register` the largest validator
    /// held 0.40 of the memory after 256,000-295,000 registrations, for 0.91 of the
    /// registrations/s and about twice the disk per registration (each body is written in its
    /// turn besides its batch; BENCHMARKS.md, issue 27, seventeenth part). Off keeps new bodies
    /// in memory. Node-local: validators of one cluster may differ, and turning it off later
    /// keeps the bodies readable.
    #[serde(default = "yes")]
    pub release_bodies_in_store: bool,
}

fn yes() -> bool {
    true
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
fn d_inflight() -> u64 {
    8
}

/// This node's pacing: timers and how many batches it keeps in flight when it leads. Safety
/// never depends on them; liveness is best when the cluster's validators use similar values.
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
            max_inflight_batches: d_inflight(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeSection,
    /// Where this node reaches a peer when not at its genesis address (a private network, a
    /// relay): validator id -> `host:port`.
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    #[serde(default)]
    pub consensus: ConsensusSection,
    #[serde(default)]
    pub quotas: QuotaSection,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub dashboard: DashboardSection,
}

/// The operators' dashboard in the browser (read-only; see `crate::dashboard`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSection {
    /// Where it is served over HTTP; omit to disable.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// A file holding the bearer token every request must present (`Authorization: Bearer`, or
    /// `?token=` in the page's address). Required when `listen` is not a loopback address.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Shortest token accepted: a guessable token is no protection.
pub const MIN_DASHBOARD_TOKEN_CHARS: usize = 16;

/// The dashboard as this node serves it, checked.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

impl DashboardSection {
    fn settings(&self, base: &Path) -> Result<Option<DashboardSettings>, ConfigError> {
        let Some(listen) = self.listen else {
            if self.token_file.is_some() {
                return Err(invalid(
                    "dashboard.token_file",
                    "is set but dashboard.listen is not: set both, or neither",
                ));
            }
            return Ok(None);
        };
        let token = match &self.token_file {
            Some(f) => {
                let path = base.join(f);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(
                        "dashboard.token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let token = text.trim().to_string();
                if token.chars().count() < MIN_DASHBOARD_TOKEN_CHARS
                    || token.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(invalid(
                        "dashboard.token_file",
                        format!(
                            "{} must hold one token of at least {MIN_DASHBOARD_TOKEN_CHARS} \
                             characters, without spaces (e.g. `openssl rand -hex 32`)",
                            path.display()
                        ),
                    ));
                }
                Some(token)
            }
            None if listen.ip().is_loopback() => None,
            None => {
                return Err(invalid(
                    "dashboard.token_file",
                    format!(
                        "required when dashboard.listen ({listen}) is not a loopback address: \
                         anyone who can reach it would read the cluster's state"
                    ),
                ))
            }
        };
        Ok(Some(DashboardSettings { listen, token }))
    }
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
    pub genesis: Genesis,
    pub key: Keypair,
    pub replica: ReplicaConfig,
    pub ledger: LedgerConfig,
    /// Where the gRPC services listen.
    pub listen: SocketAddr,
    /// Where each other validator is reached (`[peers]` over the genesis).
    pub peers: BTreeMap<u32, String>,
    /// TLS with this node's key as its certificate, or plaintext on loopback.
    pub transport: Transport,
    /// The browser dashboard, if served.
    pub dashboard: Option<DashboardSettings>,
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

    /// Validates everything, reads the genesis and the key; `base` resolves relative paths.
    pub fn validate(self, base: &Path) -> Result<Validated, ConfigError> {
        let genesis = Genesis::load(&base.join(&self.node.genesis))?;
        self.validate_with(base, genesis)
    }

    /// [`Self::validate`] with the genesis already read.
    pub fn validate_with(self, base: &Path, genesis: Genesis) -> Result<Validated, ConfigError> {
        let id = self.node.id;
        let n = genesis.directory().n();
        let genesis_key = genesis.validator_key(id).copied();
        match (genesis_key, self.node.added) {
            (None, false) => {
                return Err(invalid(
                    "node.id",
                    format!(
                        "{id} is not a validator of genesis {} (ids 0..{n}; if `scbe propose validator add` added this validator as {id}, set node.added = true)",
                        genesis.path().display()
                    ),
                ))
            }
            (Some(_), true) => {
                return Err(invalid(
                    "node.added",
                    format!(
                        "validator {id} is in genesis {}: node.added is for a validator the quorum added after it, with the id its approval printed",
                        genesis.path().display()
                    ),
                ))
            }
            (None, true) if self.node.listen.is_none() => {
                return Err(invalid(
                    "node.listen",
                    "an added validator has no address in the genesis: set node.listen",
                ))
            }
            _ => {}
        }
        let key_path = base.join(&self.node.key_file);
        let key = read_key_file(&key_path)?;
        if let Some(genesis_key) = genesis_key.filter(|k| key.public() != *k && !self.node.rekeyed)
        {
            return Err(invalid(
                "node.key_file",
                format!(
                    "{} holds key {}, but the genesis lists {} for validator {id} (if `scbe propose validator rotate` gave validator {id} this key, set node.rekeyed = true)",
                    key_path.display(),
                    key.public(),
                    genesis_key
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
        let mut replica = if self.node.added {
            genesis.joining_replica_config(ReplicaId(id))
        } else {
            genesis.replica_config(ReplicaId(id))
        }
        .map_err(|e| invalid("node.id", e))?;
        replica.max_inflight_batches = c.max_inflight_batches;
        replica.silence_ticks = c.silence_ticks;
        replica.validate().map_err(|e| invalid("consensus", e))?;
        let mut peers = BTreeMap::new();
        for v in &genesis.file().validators {
            if v.id != id {
                peers.insert(v.id, v.address.clone());
            }
        }
        for (k, addr) in &self.peers {
            let key = format!("peers.{k}");
            // Another validator of the genesis, or one the quorum added (reached here at
            // another address than the one its addition named).
            let peer: u32 = k
                .parse()
                .ok()
                .filter(|p| *p != id)
                .ok_or_else(|| invalid(&key, "must be the id of another validator"))?;
            check_address(addr).map_err(|p| invalid(&key, p))?;
            peers.insert(peer, addr.clone());
        }
        let listen = match self.node.listen {
            Some(addr) => addr,
            None => default_listen(genesis.validator_address(id).unwrap_or_default()).ok_or_else(
                || {
                    invalid(
                        "node.listen",
                        "the genesis address has no usable port: set node.listen",
                    )
                },
            )?,
        };
        let transport = self.tls.transport(
            &key,
            std::iter::once(listen.to_string()).chain(peers.values().cloned()),
            base,
        )?;
        let ledger = genesis.ledger_config().clone();
        let dashboard = self.dashboard.settings(base)?;
        Ok(Validated {
            dashboard,
            raw: self,
            genesis,
            key,
            replica,
            ledger,
            listen,
            peers,
            transport,
            #[cfg(test)]
            inject_executor_panic: false,
        })
    }
}

/// The genesis address when it is an IP address; every interface on its port when it is a host
/// name (the name is how others reach this node, not something it can bind).
fn default_listen(address: &str) -> Option<SocketAddr> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Some(addr);
    }
    let port = address.rsplit_once(':')?.1.parse::<u16>().ok()?;
    Some(SocketAddr::from(([0, 0, 0, 0], port)))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
