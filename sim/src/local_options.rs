//! What a local cluster is generated with: consensus timeouts, the fleet and how its synthetic
//! agents behave, rollout timing, analysis settings and notification sinks
//! ([`crate::local::LocalCluster::generate`] writes them into the genesis and the configs).

use std::time::Duration;

use scbe_wire::genesis_file::AnalysisSection;

/// Timeouts written into the generated configs.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    pub request_timeout: Duration,
    pub view_change_timeout: Duration,
    pub status_interval: Duration,
    pub checkpoint_interval: u64,
    /// Extra requester keys (`keys/requester{i}.key`) for load generators: each concurrent client
    /// needs its own key, since a key's nonces must increase.
    pub extra_requesters: usize,
    /// Batches the primary keeps in flight.
    pub max_inflight_batches: u64,
    /// Fleet agents to run (specialties cycle through code_execute, doc_plan, memory_storage).
    pub agents: usize,
    /// Agents degrade on any release whose version or unit ids contain this text.
    pub degrade: Option<String>,
    /// Samples on such a release before it degrades.
    pub degrade_after: u32,
    /// Agents' deploy hook fails for versions containing this text.
    pub fail_deploy: Option<String>,
    /// Monitoring window per batch and the agents' sample interval.
    pub window: Duration,
    pub sample_interval: Duration,
    pub deploy_deadline: Duration,
    /// Consecutive bad samples that prove degradation.
    pub breach_samples: u32,
    /// Requests each requester may submit per quota window at each validator (the node's
    /// default when `None`); load generators raise it.
    pub quota_requests: Option<u32>,
    /// Plaintext gRPC on loopback instead of TLS (`[tls] plaintext = true` in every config).
    pub plaintext: bool,
    /// Validators keep release bodies in their stores (the default), or in memory
    /// (`release_bodies_in_store = false` in every node.toml).
    pub bodies_in_store: bool,
    /// Agents drift (worse than the baseline, inside every threshold) on any release whose
    /// version or unit ids contain this text.
    pub drift: Option<String>,
    /// The genesis's `[analysis]`; `None` fits the defaults to the fleet
    /// ([`AnalysisSection::fitted`]).
    pub analysis: Option<AnalysisSection>,
    /// The genesis's `[[notify]]` webhooks.
    pub notify: Vec<scbe_wire::notify_entry::NotifyEntry>,
    /// Each validator serves its dashboard on a loopback port (off only for validators of a
    /// version that has none, e.g. a benchmark's older build).
    pub dashboards: bool,
    /// Where every validator reaches validator `j`: `peer_relays[j]` (a delaying relay in front
    /// of it, `scbe-sim bench --delay`), written as `[peers]`; empty: the genesis addresses.
    pub peer_relays: Vec<std::net::SocketAddr>,
    /// Where validators reach agent `i`: `agent_relays[i]` (a delaying relay in front of it,
    /// `scbe-sim bench-fleet --delay`), written into the genesis as its address; empty: its own
    /// listen address. Observers next to the agents (the benchmarks) still dial it directly.
    pub agent_relays: Vec<std::net::SocketAddr>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_millis(500),
            view_change_timeout: Duration::from_millis(1000),
            status_interval: Duration::from_millis(500),
            checkpoint_interval: 32,
            extra_requesters: 0,
            max_inflight_batches: 8,
            agents: 0,
            degrade: None,
            degrade_after: 3,
            fail_deploy: None,
            window: Duration::from_secs(6),
            sample_interval: Duration::from_secs(1),
            deploy_deadline: Duration::from_secs(10),
            breach_samples: 2,
            quota_requests: None,
            plaintext: false,
            bodies_in_store: true,
            drift: None,
            analysis: None,
            notify: Vec::new(),
            dashboards: true,
            peer_relays: Vec::new(),
            agent_relays: Vec::new(),
        }
    }
}
