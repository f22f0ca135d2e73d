//! Start-up and wiring: opens the store, rebuilds the validator step from it, starts the gRPC
//! server, the dashboard, the peer links, the fleet side, the heartbeat pacer and the metrics server under one
//! [`Supervisor`], then runs the core task ([`Runtime`]) until the process is stopped or a
//! supervised task ends (an error naming it: a validator that can no longer do its job stops
//! rather than look healthy).
//!
//! One task owns the step and the record store. Each turn it takes every input that is waiting
//! (up to a cap), runs them through the step, makes all the resulting `Persist` records durable
//! in one commit, and only then lets the turn's messages leave, so nothing the replica signed can
//! be on the wire before its vote guard is on disk. gRPC handlers decode and verify on their own
//! tasks and only enqueue.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scbe_core::consensus::{
    ConfigError as CoreConfigError, Envelope, ReplicaId, RestoreError, TimerKind,
};
use scbe_core::governance::Ledger;
use scbe_core::rollout::watcher::WatchSettings;
use scbe_core::validator_step::{FleetView, ValidatorStep};
use scbe_wire::ProtoCodec;
use tokio::sync::{mpsc, watch};

use crate::config::Validated;
use crate::dashboard::{serve_dashboard, Dashboard};
use crate::edge_directory::EdgeDirectory;
use crate::fleet::executor::{run_executor, FleetContext};
use crate::fleet::monitor::FleetHealth;
use crate::fleet::roster::{keep_health_streams, roster_of, Roster};
use crate::heartbeat_pacer::HeartbeatPacer;
use crate::inbound::Inbound;
use crate::links::Links;
use crate::metrics::Metrics;
use crate::notify::{start_notifiers, NotifyContext, NotifyView};
use crate::peer_dialer::PeerDialer;
use crate::reads::Published;
use crate::reads::Reads;
use crate::runtime::Runtime;
use crate::services::grpc_server::{grpc_server, ServerParts};
use crate::storage::{RecordStore, StorageError, StoredBodies};
use crate::timeouts::Timeouts;
use crate::timer_queue::TimerQueue;
use scbe_wire::metrics_http::serve_metrics;
use scbe_wire::supervisor::{Supervisor, TaskEnded};

/// Inputs waiting for the core; beyond this, peers' messages are dropped (and counted).
pub const INBOUND_QUEUE: usize = 16_384;
/// Most inputs handled in one turn (one commit).
pub const MAX_TURN: usize = 512;
/// How often the watcher is asked what to submit, besides after every fleet input.
pub const FLEET_TICK: Duration = Duration::from_millis(250);
/// Agent evidence waiting for the core; beyond this, reports are dropped (and counted).
pub const FLEET_QUEUE: usize = 4096;
/// One webhook call, connect to answer.
pub const NOTIFY_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two tries of one notification.
pub const NOTIFY_MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot restore the replica from its records: {0}")]
    Restore(#[from] RestoreError),
    #[error("invalid consensus configuration: {0}")]
    Core(#[from] CoreConfigError),
    #[error("cannot create data directory {path}: {detail}")]
    DataDir { path: String, detail: String },
    #[error("cannot listen on {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },
    #[error("{0}; the validator stops rather than run without it")]
    TaskEnded(#[from] TaskEnded),
    #[error("cannot set up TLS: {0}")]
    Tls(scbe_wire::tls::TlsError),
    #[error("cannot link to a peer: {0}")]
    Dial(crate::peer_dialer::DialError),
    #[error("the core task's queue closed")]
    QueueClosed,
}

/// Runs the validator until the process is stopped. `base` resolves relative paths in the config.
pub async fn run(v: Validated, base: &Path) -> Result<(), NodeError> {
    let id = v.replica.id.0;
    let data_dir = base.join(&v.raw.node.data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| NodeError::DataDir {
        path: data_dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let store = RecordStore::open(
        &data_dir.join("records.redb"),
        &v.key.public(),
        &v.genesis.digest(),
    )?;
    let records = store.load(&v.replica.directory)?;
    let mut ledger = Ledger::new(v.ledger.clone());
    let bodies = Arc::new(StoredBodies::new(store.reader()));
    if v.raw.node.release_bodies_in_store {
        // Release bodies in the store, read on demand (this keeps fresh history too).
        ledger.store_bodies_in(bodies);
    } else {
        ledger.keep_fresh();
        // Snapshots persisted while the option was on name bodies in the store.
        ledger.read_stored_bodies_from(bodies);
    }
    let codec = Arc::new(ProtoCodec);
    let watch = watch_settings(&v);
    // A fresh store whose key the genesis does not list for this id (a validator the quorum
    // added, or re-keyed, on a new machine) starts like an empty restore: its replica observes
    // until its peers bring it to the epoch that put the key in force.
    let key_in_genesis = v.replica.directory.in_force(ReplicaId(id), &v.key.public());
    let (step, initial) = if records.is_empty() && key_in_genesis {
        ValidatorStep::start(v.replica.clone(), v.key.clone(), codec, ledger, watch)?
    } else {
        tracing::info!(node = id, records = records.len(), "restoring from storage");
        ValidatorStep::restore(
            v.replica.clone(),
            v.key.clone(),
            codec,
            ledger,
            watch,
            &records,
        )?
    };
    let replica = step.replica();
    // The edge resolves and pins the set of the epoch the store reached, and follows the
    // replica's from there (`Runtime::follow_epoch`).
    let genesis_peers = (0..v.genesis.directory().n() as u32).filter(|p| *p != id);
    let directory = Arc::new(EdgeDirectory::new(
        replica.config().directory.clone(),
        genesis_peers,
    ));
    if replica.observing() {
        tracing::warn!(
            node = id,
            epoch = replica.epoch(),
            key = %v.key.public(),
            "this node's key is not validator {id}'s in the validator set its data reached: it observes (catches up from its peers) until a set it reaches puts the key in force"
        );
    }
    let mut tasks = Supervisor::default();
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let metrics = Arc::new(Metrics::default());
    let fleet_health = Arc::new(FleetHealth::default());
    let listen = v.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| NodeError::Listen {
            addr: listen,
            detail: e.to_string(),
        })?;
    let links = Arc::new(Links::default());
    let (published, model) = Published::new(&step, v.raw.consensus.heartbeat_interval);
    let reads = Reads {
        model,
        events: Arc::clone(&published.events),
        index: Arc::clone(&published.index),
        health: Arc::clone(&fleet_health),
        store: store.reader(),
        links: Arc::clone(&links),
        genesis: v.genesis.digest(),
        cluster: v.genesis.cluster().to_string(),
        stale_after: v.genesis.file().rollout.sample_interval
            * scbe_wire::status_summary::STALE_AFTER_INTERVALS,
        cache: Arc::default(),
        digest_wanted: Arc::clone(&published.digest_wanted),
        pace: Arc::default(),
        summary_wanted: Arc::clone(&published.summary_wanted),
        proofs: Arc::clone(&published.proofs),
    };
    tasks.spawn(
        "gRPC server",
        grpc_server(
            listener,
            ServerParts {
                inbound: tx.clone(),
                directory: Arc::clone(&directory),
                metrics: Arc::clone(&metrics),
                reads: reads.clone(),
                max_request_bytes: v.replica.max_request_bytes,
                quotas: v.raw.quotas.limits(),
                genesis: v.genesis.digest(),
                links: Arc::clone(&links),
                transport: v.transport.clone(),
            },
        )
        .await
        .map_err(NodeError::Tls)?,
    );
    if let Some(addr) = v.raw.node.metrics_listen {
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| NodeError::Listen {
                    addr,
                    detail: e.to_string(),
                })?;
        let registry = metrics.registry(id, Arc::clone(&fleet_health));
        tasks.spawn(
            "metrics server",
            serve_metrics(
                listener,
                Arc::new(move || scbe_wire::metrics_http::encode(&registry)),
            ),
        );
    }
    let mut dashboard_peers = None;
    if let Some(d) = &v.dashboard {
        let listener =
            tokio::net::TcpListener::bind(d.listen)
                .await
                .map_err(|e| NodeError::Listen {
                    addr: d.listen,
                    detail: e.to_string(),
                })?;
        let dashboard = Arc::new(Dashboard::new(reads.clone(), d.token.clone()));
        dashboard_peers = Some(Arc::clone(&dashboard.peers));
        let mut asked = Vec::new();
        for (peer, address) in &v.peers {
            // Pinned to the peer's keys in the set in force (they follow epochs).
            if let Some(pins) = directory.peer_pins(*peer) {
                let link = v.transport.link(pins.clone()).map_err(NodeError::Tls)?;
                asked.push((*peer, address.clone(), link));
            }
        }
        tasks.spawn(
            "dashboard's peer poller",
            Arc::clone(&dashboard.peers).poll(
                asked,
                Arc::clone(&dashboard.streams),
                crate::dashboard::dashboard_server::MAX_STREAMS,
            ),
        );
        tasks.spawn("dashboard server", serve_dashboard(listener, dashboard));
        tracing::info!(node = id, url = %format!("http://{}/", d.listen), "dashboard");
    }
    let dialer = PeerDialer::new(
        id,
        v.genesis.digest(),
        v.transport.clone(),
        v.peers.clone(),
        Arc::clone(&links),
        Arc::clone(&directory),
    )
    .with_dashboard(dashboard_peers);
    let mut peers: BTreeMap<u32, mpsc::Sender<Arc<Envelope>>> = BTreeMap::new();
    for (peer, address) in &v.peers {
        // The genesis's other validators; their pins follow the peer's key in the set in force.
        // A validator the quorum added (`[peers]` may name one) is linked once it is in force
        // (`Runtime::link_members`).
        if directory.peer_pins(*peer).is_none() {
            continue;
        }
        let (queue, link) = dialer
            .dial(*peer, address.clone())
            .map_err(NodeError::Dial)?;
        tasks.spawn(format!("peer link to validator {peer} at {address}"), link);
        peers.insert(*peer, queue);
    }
    tasks.spawn(
        "chain fetcher",
        crate::chain_fetcher::ChainFetcher {
            me: id,
            genesis: scbe_core::consensus::ValidatorSet::genesis(
                v.genesis.directory().validators(),
            ),
            peers: v.peers.clone(),
            tls: v.transport.is_tls(),
            edge: Arc::clone(&directory),
            links: Arc::clone(&links),
        }
        .run(),
    );
    let (notify_view, notify_views) = watch::channel(NotifyView::default());
    if !v.genesis.file().notify.is_empty() {
        let ctx = Arc::new(NotifyContext {
            node: id,
            genesis_hex: v.genesis.digest_hex(),
            cluster: v.genesis.cluster().to_string(),
            inbound: tx.clone(),
            events: {
                let reads = reads.clone();
                Arc::new(move |from| {
                    let reads = reads.clone();
                    Box::pin(async move { reads.events_from(from).await })
                })
            },
            tls: scbe_wire::tls::web_pki_client_config().map_err(NodeError::Tls)?,
            metrics: Arc::clone(&metrics),
            call_timeout: NOTIFY_CALL_TIMEOUT,
            max_backoff: NOTIFY_MAX_BACKOFF,
        });
        start_notifiers(&mut tasks, ctx, &v.genesis.file().notify, notify_views);
    }
    let (fleet_view, fleet_views) = watch::channel(FleetView::default());
    let (roster, rosters) = watch::channel(roster_of(&step.ledger().state().agents));
    let fleet_generation = step.ledger().fleet_generation();
    start_fleet(
        &v,
        &mut tasks,
        tx.clone(),
        (fleet_views, rosters),
        Arc::clone(&fleet_health),
    );
    let c = &v.raw.consensus;
    let pacer = Arc::new(HeartbeatPacer::default());
    tasks.spawn(
        "heartbeat pacer",
        Arc::clone(&pacer).run(peers.values().cloned().collect(), c.heartbeat_interval),
    );
    let timeouts = Timeouts::new(BTreeMap::from([
        (TimerKind::Request, c.request_timeout),
        (TimerKind::ViewChange, c.view_change_timeout),
        (TimerKind::Status, c.status_interval),
        (TimerKind::Heartbeat, c.heartbeat_interval),
    ]));
    let mut rt = Runtime {
        id,
        step,
        store,
        encoder: crate::snapshot_encoder::SnapshotEncoder::new(
            crate::snapshot_encoder::ENCODE_INLINE_BELOW,
        ),
        warmer: crate::snapshot_warmer::SnapshotWarmer::default(),
        peers,
        pacer,
        waiters: BTreeMap::new(),
        timers: TimerQueue::default(),
        timeouts,
        metrics,
        reads: published,
        fleet_view,
        notify_view,
        fleet_generation,
        roster,
        consensus_seen: (scbe_core::consensus::Status::Normal, None),
        started: Instant::now(),
        edge: Arc::clone(&directory),
        dialer,
        new_links: Vec::new(),
    };
    tracing::info!(
        node = id,
        cluster = v.genesis.cluster(),
        genesis = %v.genesis.digest_hex(),
        %listen,
        view = rt.step.replica().view().0,
        executed = rt.step.last_executed().0,
        "validator running"
    );
    rt.perform(initial)?;
    // The core task's own sender stays with the tasks that feed it: the queue closes only if
    // all of them ended, which the supervisor reports first.
    drop(tx);
    rt.run(rx, &mut tasks).await
}

/// How this validator's watcher judges and paces the fleet, from its config.
fn watch_settings(v: &Validated) -> WatchSettings {
    let c = &v.raw.consensus;
    let ro = &v.genesis.file().rollout;
    WatchSettings {
        step_deadline_ms: ro.step_deadline().as_millis() as u64,
        resubmit_ms: (c.request_timeout * 4)
            .max(Duration::from_secs(2))
            .as_millis() as u64,
        leader_grace_ms: (c.request_timeout * 4)
            .max(Duration::from_secs(2))
            .as_millis() as u64,
        // Long enough for a slow hook to answer, short enough to replace a dead leader well
        // before the step's deadline.
        stall_ms: (ro.deploy_deadline / 8)
            .max(Duration::from_secs(3))
            .as_millis() as u64,
        // Well under the operation cap: JSON escaping and the request envelope add to it.
        max_op_bytes: scbe_core::governance::operation::MAX_OPERATION_BYTES
            .min(v.replica.max_request_bytes.saturating_sub(1024))
            / 2,
    }
}

/// Starts the fleet side under `tasks`: the executor (acts only while this validator is
/// primary), one health stream per agent with an address, a forwarder for their verified
/// evidence, and the watcher's tick.
fn start_fleet(
    v: &Validated,
    tasks: &mut Supervisor,
    inbound: mpsc::Sender<Inbound>,
    (views, roster): (watch::Receiver<FleetView>, watch::Receiver<Roster>),
    health: Arc<FleetHealth>,
) {
    let (input, mut evidence) = mpsc::channel(FLEET_QUEUE);
    // Every other validator, reached where this node reaches it (`[peers]` or the genesis).
    let peers = v.peers.clone();
    let ctx = Arc::new(FleetContext {
        id: v.replica.id.0,
        key: v.key.clone(),
        peers,
        roster: roster.clone(),
        view: views.clone(),
        genesis: v.genesis.digest(),
        deploy_deadline: v.genesis.file().rollout.deploy_deadline,
        agent_call_timeout: v.genesis.file().rollout.agent_call_timeout,
        input,
        health: Arc::clone(&health),
        transport: v.transport.clone(),
        channels: Default::default(),
        #[cfg(test)]
        panic_on_start: v.inject_executor_panic,
    });
    tasks.spawn(
        "agents' health streams",
        keep_health_streams(Arc::clone(&ctx), health, roster),
    );
    tasks.spawn("rollout executor", run_executor(ctx, views));
    let to_core = inbound.clone();
    tasks.spawn("fleet evidence forwarder", async move {
        while let Some(x) = evidence.recv().await {
            if to_core.send(Inbound::Fleet(x)).await.is_err() {
                return;
            }
        }
    });
    tasks.spawn("fleet tick", async move {
        let mut tick = tokio::time::interval(FLEET_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            // A full queue means the core is busy; the next tick will do.
            if let Err(mpsc::error::TrySendError::Closed(_)) = inbound.try_send(Inbound::FleetTick)
            {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use scbe_core::crypto::Keypair;
    use scbe_wire::genesis::Genesis;
    use scbe_wire::genesis_file::{GenesisFile, ValidatorEntry};
    use scbe_wire::key_file::encode_hex;

    /// A validator whose rollout executor dies stops, with an error naming the executor, instead
    /// of running on with rollouts that would never execute.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_validator_whose_executor_panics_stops_with_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys: Vec<Keypair> = (0..4)
            .map(|i| Keypair::from_label(&format!("sup{i}")))
            .collect();
        std::fs::create_dir_all(dir.path().join("keys")).expect("keys dir");
        std::fs::write(
            dir.path().join("keys/node0.key"),
            encode_hex(&keys[0].secret_bytes()),
        )
        .expect("key");
        // Port 0 for this validator (any free one); the peers are never reached.
        let validators = keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorEntry {
                id: i as u32,
                public_key: encode_hex(k.public().as_bytes()),
                address: format!("127.0.0.1:{}", if i == 0 { 0 } else { 9 }),
            })
            .collect();
        let genesis = GenesisFile {
            cluster: "supervision".into(),
            validators,
            requesters: vec![],
            agents: vec![],
            consensus: Default::default(),
            gates: Default::default(),
            ledger: Default::default(),
            rollout: Default::default(),
            health: Default::default(),
            analysis: Default::default(),
            notify: Vec::new(),
        };
        std::fs::write(dir.path().join("genesis.toml"), Genesis::render(&genesis))
            .expect("genesis");
        let toml = "[node]\nid = 0\ngenesis = \"genesis.toml\"\ndata_dir = \"data\"\n\
                    key_file = \"keys/node0.key\"\n";
        let mut v = NodeConfig::parse(Path::new("node.toml"), toml)
            .and_then(|c| c.validate(dir.path()))
            .expect("valid config");
        v.inject_executor_panic = true;
        let ended = tokio::time::timeout(Duration::from_secs(60), run(v, dir.path()))
            .await
            .expect("the validator stops by itself");
        match ended {
            Err(NodeError::TaskEnded(t)) => {
                assert_eq!(t.task, "rollout executor");
                assert!(t.how.contains("injected executor panic"), "{}", t.how);
            }
            other => panic!("expected the executor's end to stop the validator, got {other:?}"),
        }
    }
}
