//! The validator runtime: wires the pure core to storage, the network, the ledger and the clock.
//!
//! One task owns the `Replica` (and through it the ledger) and the record store (`runtime.rs`).
//! Each turn it takes every input that is waiting (up to a cap), runs them through the core,
//! makes all the resulting `Persist` records durable in one commit, and only then lets the turn's
//! messages leave, so nothing the replica signed can be on the wire before its vote guard is on
//! disk. gRPC handlers decode and verify on their own tasks and only enqueue.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scbe_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Validated;
use crate::consensus::{ConfigError as CoreConfigError, Request};
use crate::consensus::{Envelope, Message, RestoreError, Signed, Timer, TimerKind};
use crate::governance::Ledger;
use crate::heartbeat_pacer::HeartbeatPacer;
use crate::metrics::{serve_metrics, Metrics};
use crate::net::consensus_service::ConsensusService;
use crate::net::governance_service::GovernanceService;
use crate::net::orders_service::OrdersService;
use crate::net::peer::spawn_peer;
use crate::net::wire::VerifiedCache;
use crate::net::{ProtoCodec, MAX_ENVELOPE_BYTES};
use crate::rollout::executor::{run_executor, AgentInfo, FleetContext, FleetInput};
use crate::rollout::monitor::{spawn_monitor, FleetHealth};
use crate::rollout::order::{EndorseRefusal, Endorsement};
use crate::rollout::watcher::WatchSettings;
use crate::runtime::Runtime;
use crate::storage::{RecordStore, StorageError};
use crate::timeouts::Timeouts;
use crate::validator_step::{ClientReply, FleetView, SubmitRefusal, ValidatorStep};

/// Inputs waiting for the core; beyond this, peers' messages are dropped (and counted).
pub const INBOUND_QUEUE: usize = 16_384;

/// Most inputs handled in one turn (one commit).
pub const MAX_TURN: usize = 512;
/// Envelope digests remembered as verified (about 6 MB at most).
pub const VERIFIED_CACHE: usize = 65_536;
/// How often the watcher is asked what to submit, besides after every fleet input.
pub const FLEET_TICK: Duration = Duration::from_millis(250);
/// Agent evidence waiting for the core; beyond this, reports are dropped (and counted).
pub const FLEET_QUEUE: usize = 4096;

/// What the core task receives.
pub enum Inbound {
    Peer(Signed<Message>),
    Client {
        request: Signed<Request>,
        reply: oneshot::Sender<Result<ClientReply, SubmitRefusal>>,
    },
    Timer(Timer),
    Status {
        proposal: Option<u64>,
        /// A requester asking for the highest nonce executed for its key.
        signer: Option<crate::crypto::PublicKey>,
        reply: oneshot::Sender<pb::StatusReply>,
    },
    /// Ledger events from index `from` on (at most one chunk).
    Events {
        from: u64,
        reply: oneshot::Sender<Vec<pb::LedgerEvent>>,
    },
    /// A chunk of the audit trail (encoded commit certificates) from `from` on.
    Audit {
        from: u64,
        reply: oneshot::Sender<Result<AuditChunk, StorageError>>,
    },
    /// Verified agent evidence from the monitor or the executor.
    Fleet(FleetInput),
    /// Time to ask the watcher what to submit.
    FleetTick,
    /// The leader asks this validator to endorse an order.
    Endorse {
        rollout: u64,
        order: Vec<u8>,
        reply: oneshot::Sender<Result<Endorsement, EndorseRefusal>>,
    },
}

/// (sequence number, encoded commit certificate) pairs, in order.
pub type AuditChunk = Vec<(u64, Vec<u8>)>;

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
}

/// Runs the validator until the process is stopped. `base` resolves relative paths in the config.
pub async fn run(v: Validated, base: &Path) -> Result<(), NodeError> {
    let id = v.replica.id.0;
    let data_dir = base.join(&v.raw.node.data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| NodeError::DataDir {
        path: data_dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let store = RecordStore::open(&data_dir.join("records.redb"), &v.key.public())?;
    let directory = Arc::new(v.replica.directory.clone());
    let records = store.load(&directory)?;
    let mut ledger = Ledger::new(v.ledger.clone());
    ledger.keep_fresh();
    let codec = Arc::new(ProtoCodec);
    let watch = watch_settings(&v);
    let (step, initial) = if records.is_empty() {
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
    let (tx, mut rx) = mpsc::channel(INBOUND_QUEUE);
    let metrics = Arc::new(Metrics::default());
    let fleet_health = Arc::new(FleetHealth::default());
    let listen = v.raw.validators[id as usize].address;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| NodeError::Listen {
            addr: listen,
            detail: e.to_string(),
        })?;
    // Requests are verified once when they arrive, not again inside pre-prepares.
    let verified = Arc::new(VerifiedCache::new(VERIFIED_CACHE));
    let consensus = pb::consensus_server::ConsensusServer::new(ConsensusService {
        inbound: tx.clone(),
        directory: Arc::clone(&directory),
        metrics: Arc::clone(&metrics),
        verified: Arc::clone(&verified),
    })
    .max_decoding_message_size(MAX_ENVELOPE_BYTES);
    let (events_tx, events_rx) = watch::channel(0u64);
    let governance = pb::governance_server::GovernanceServer::new(GovernanceService {
        inbound: tx.clone(),
        directory: Arc::clone(&directory),
        verified,
        events: events_rx,
        max_request_bytes: v.replica.max_request_bytes,
        quotas: Arc::new(crate::net::quota::Quotas::new(v.raw.quotas.limits())),
    })
    .max_decoding_message_size(MAX_ENVELOPE_BYTES);
    let audit = pb::audit_server::AuditServer::new(crate::net::audit_service::AuditService {
        inbound: tx.clone(),
    });
    let orders = pb::orders_server::OrdersServer::new(OrdersService {
        inbound: tx.clone(),
    });
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::governance_server::GovernanceServer<GovernanceService>>()
        .await;
    health_reporter
        .set_serving::<pb::consensus_server::ConsensusServer<ConsensusService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(scbe_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .ok();
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let served = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(consensus)
            .add_service(governance)
            .add_service(audit)
            .add_service(orders)
            .add_service(health)
            .add_optional_service(reflection)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = served {
            tracing::error!("gRPC server stopped: {e}");
        }
    });
    if let Some(addr) = v.raw.node.metrics_listen {
        tokio::spawn(serve_metrics(
            addr,
            Arc::clone(&metrics),
            Arc::clone(&fleet_health),
            id,
        ));
    }
    let peers: BTreeMap<u32, mpsc::Sender<Arc<Envelope>>> = v
        .raw
        .validators
        .iter()
        .filter(|p| p.id != id)
        .map(|p| (p.id, spawn_peer(p.address)))
        .collect();
    let (fleet_view, fleet_views) = watch::channel(FleetView::default());
    spawn_fleet(&v, tx.clone(), fleet_views, Arc::clone(&fleet_health));
    let c = &v.raw.consensus;
    let pacer = Arc::new(HeartbeatPacer::default());
    Arc::clone(&pacer).spawn(peers.values().cloned().collect(), c.heartbeat_interval);
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
        peers,
        pacer,
        waiters: BTreeMap::new(),
        inbound: tx,
        timeouts,
        metrics,
        events: events_tx,
        fleet_view,
        fleet_health,
        consensus_seen: (crate::consensus::Status::Normal, None),
        started: Instant::now(),
    };
    tracing::info!(node = id, %listen, view = rt.step.replica().view().0, executed = rt.step.last_executed().0, "validator running");
    rt.perform(initial)?;
    while let Some(first) = rx.recv().await {
        let mut turn = vec![first];
        while turn.len() < MAX_TURN {
            match rx.try_recv() {
                Ok(x) => turn.push(x),
                Err(_) => break,
            }
        }
        rt.turn(turn)?;
    }
    Ok(())
}

/// How this validator's watcher judges and paces the fleet, from its config.
fn watch_settings(v: &Validated) -> WatchSettings {
    let c = &v.raw.consensus;
    let ro = &v.raw.rollout;
    WatchSettings {
        thresholds: v.ledger.health,
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
        max_op_bytes: crate::governance::operation::MAX_OPERATION_BYTES
            .min(v.replica.max_request_bytes.saturating_sub(1024))
            / 2,
    }
}

/// Starts the fleet side: the executor (acts only while this validator is primary), one health
/// stream per agent, a forwarder for their verified evidence, and the watcher's tick.
fn spawn_fleet(
    v: &Validated,
    inbound: mpsc::Sender<Inbound>,
    views: watch::Receiver<FleetView>,
    health: Arc<FleetHealth>,
) {
    let (input, mut evidence) = mpsc::channel(FLEET_QUEUE);
    let agents = v
        .raw
        .agents
        .iter()
        .zip(&v.ledger.agents)
        .map(|(entry, a)| {
            (
                a.id.clone(),
                AgentInfo {
                    key: a.key,
                    specialty: a.specialty.clone(),
                    address: entry.address,
                },
            )
        })
        .collect();
    let validators = v
        .raw
        .validators
        .iter()
        .zip(v.replica.directory.validators())
        .filter_map(|(entry, key)| {
            crate::crypto::Verifier::new(*key)
                .ok()
                .map(|verifier| (entry.id, verifier, entry.address))
        })
        .collect();
    let ctx = Arc::new(FleetContext {
        id: v.replica.id.0,
        key: v.key.clone(),
        validators,
        quorum: v.replica.quorum(),
        agents,
        deploy_deadline: v.raw.rollout.deploy_deadline,
        agent_call_timeout: v.raw.rollout.agent_call_timeout,
        input,
    });
    spawn_monitor(Arc::clone(&ctx), health);
    tokio::spawn(run_executor(ctx, views));
    let to_core = inbound.clone();
    tokio::spawn(async move {
        while let Some(x) = evidence.recv().await {
            if to_core.send(Inbound::Fleet(x)).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
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
