//! The validator runtime: wires the pure core to storage, the network, the ledger and the clock.
//!
//! One task owns the `Replica` (and through it the ledger) and the record store. Each turn it
//! takes every input that is waiting (up to a cap), runs them through the core, makes all the
//! resulting `Persist` records durable in one commit, and only then lets the turn's messages
//! leave, so nothing the replica signed can be on the wire before its vote guard is on disk.
//! gRPC handlers decode and verify on their own tasks and only enqueue.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scbe_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};

use crate::config::Validated;
use crate::consensus::{
    Action, Envelope, Input, Message, Replica, RestoreError, Signed, Timer, TimerKind,
};
use crate::consensus::{ConfigError as CoreConfigError, Request};
use crate::crypto::PublicKey;
use crate::governance::ledger::Outcome;
use crate::governance::Ledger;
use crate::net::consensus_service::ConsensusService;
use crate::net::governance_service::GovernanceService;
use crate::net::peer::spawn_peer;
use crate::net::wire::VerifiedCache;
use crate::net::{ProtoCodec, MAX_ENVELOPE_BYTES};
use crate::storage::{RecordStore, StorageError};

/// Inputs waiting for the core; beyond this, peers' messages are dropped (and counted).
pub const INBOUND_QUEUE: usize = 16_384;
/// Most inputs handled in one turn (one commit).
pub const MAX_TURN: usize = 512;
/// Envelope digests remembered as verified (about 6 MB at most).
pub const VERIFIED_CACHE: usize = 65_536;

/// What the core task receives.
pub enum Inbound {
    Peer(Signed<Message>),
    Client {
        request: Signed<Request>,
        reply: oneshot::Sender<Result<ClientReply, String>>,
    },
    Timer(Timer),
    /// A request this validator signed itself (its votes), ordered like any other.
    Own(Signed<Request>),
    Status {
        proposal: Option<u64>,
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
        reply: oneshot::Sender<Result<AuditChunk, String>>,
    },
}

/// (sequence number, encoded commit certificate) pairs, in order.
pub type AuditChunk = Vec<(u64, Vec<u8>)>;

/// A client waiting for its request: when it arrived, and where the reply goes.
type Waiter = (
    std::time::Instant,
    oneshot::Sender<Result<ClientReply, String>>,
);

/// A decided client request.
pub struct ClientReply {
    pub seq: u64,
    pub outcome: Outcome,
}

/// Counters for logs and `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub decisions: AtomicU64,
    pub view: AtomicU64,
    pub view_changes: AtomicU64,
    pub sync_micros_total: AtomicU64,
    pub syncs: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    /// The core's own drop counters, copied after every turn.
    core_dropped: Mutex<BTreeMap<&'static str, u64>>,
    /// Submit-to-decided latency of client requests: counts per bucket (upper bounds below).
    latency_buckets: [AtomicU64; LATENCY_BOUNDS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

/// Histogram bucket upper bounds, in milliseconds.
pub const LATENCY_BOUNDS_MS: [f64; 10] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
];

impl Metrics {
    pub fn observe_latency(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1e3;
        for (i, bound) in LATENCY_BOUNDS_MS.iter().enumerate() {
            if ms <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: &'static str) {
        if let Ok(mut m) = self.dropped.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self, node: u32) -> String {
        let core_drops = self
            .core_dropped
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let mut s = String::new();
        let mut line = |name: &str, help: &str, kind: &str, value: String| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}\n"
            ));
        };
        line(
            "scbe_decisions_total",
            "Batches decided and executed.",
            "counter",
            self.decisions.load(Ordering::Relaxed).to_string(),
        );
        line(
            "scbe_view",
            "Current view.",
            "gauge",
            self.view.load(Ordering::Relaxed).to_string(),
        );
        line(
            "scbe_view_changes_total",
            "Views entered after the first.",
            "counter",
            self.view_changes.load(Ordering::Relaxed).to_string(),
        );
        line(
            "scbe_storage_sync_seconds_total",
            "Time spent committing records.",
            "counter",
            format!(
                "{:.6}",
                self.sync_micros_total.load(Ordering::Relaxed) as f64 / 1e6
            ),
        );
        line(
            "scbe_storage_syncs_total",
            "Record commits (one per loop turn with records).",
            "counter",
            self.syncs.load(Ordering::Relaxed).to_string(),
        );
        s.push_str("# HELP scbe_messages_dropped_total Inputs dropped, by reason.\n# TYPE scbe_messages_dropped_total counter\n");
        let edge = self.dropped.lock().map(|m| m.clone()).unwrap_or_default();
        for (reason, n) in edge.iter().chain(core_drops.iter()) {
            s.push_str(&format!(
                "scbe_messages_dropped_total{{node=\"{node}\",reason=\"{reason}\"}} {n}\n"
            ));
        }
        s
    }
}

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

struct Runtime {
    id: u32,
    key: crate::crypto::Keypair,
    /// Last nonce this validator used for its own requests.
    own_nonce: u64,
    replica: Replica,
    store: RecordStore,
    peers: BTreeMap<u32, mpsc::Sender<Arc<Envelope>>>,
    waiters: BTreeMap<(PublicKey, u64), Waiter>,
    inbound: mpsc::Sender<Inbound>,
    timeouts: BTreeMap<TimerKind, Duration>,
    metrics: Arc<Metrics>,
    /// Number of ledger events, published after every turn for `Watch` streams.
    events: tokio::sync::watch::Sender<u64>,
}

impl Runtime {
    fn duration(&self, t: &Timer) -> Duration {
        let base = self
            .timeouts
            .get(&t.kind)
            .copied()
            .unwrap_or(Duration::from_secs(1));
        base * (1u32 << t.backoff.min(6))
    }

    fn ledger(&self) -> Option<&Ledger> {
        self.replica.app().as_any().downcast_ref::<Ledger>()
    }

    fn send(&self, to: u32, env: &Arc<Envelope>) {
        if let Some(p) = self.peers.get(&to) {
            if p.try_send(Arc::clone(env)).is_err() {
                self.metrics.dropped("peer queue full");
            }
        }
    }

    /// Persists the turn's records in one commit, then performs everything else in order.
    fn perform(&mut self, actions: Vec<Action>) -> Result<(), NodeError> {
        let records: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Persist(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let decided: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Deliver(d) => Some(d.certificate.clone()),
                _ => None,
            })
            .collect();
        if !records.is_empty() || !decided.is_empty() {
            let start = std::time::Instant::now();
            tokio::task::block_in_place(|| self.store.commit_turn(&records, &decided))?;
            self.metrics
                .sync_micros_total
                .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
            self.metrics.syncs.fetch_add(1, Ordering::Relaxed);
        }
        for a in actions {
            match a {
                Action::Persist(_) | Action::CancelTimer(_) => {}
                Action::Send { to, envelope } => self.send(to.0, &envelope),
                Action::Broadcast(envelope) => {
                    for to in self.peers.keys().copied().collect::<Vec<_>>() {
                        self.send(to, &envelope);
                    }
                }
                Action::Deliver(d) => {
                    self.vote_on_new_proposals(d.seq.0, &d.executed);
                    self.metrics.decisions.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        node = self.id,
                        seq = d.seq.0,
                        requests = d.executed.len(),
                        "decided"
                    );
                    for r in &d.certificate.pre_prepare.value().batch {
                        let key = (*r.signer(), r.value().nonce);
                        if let Some((since, w)) = self.waiters.remove(&key) {
                            self.metrics.observe_latency(since.elapsed());
                            let outcome = self
                                .ledger()
                                .and_then(|l| l.outcome(&key.0, key.1).cloned());
                            let reply = match outcome {
                                Some(o) if o.seq == d.seq.0 => Ok(ClientReply { seq: d.seq.0, outcome: o }),
                                _ => Err(format!("nonce {} was already used by this key; sign a new request with a higher nonce", key.1)),
                            };
                            let _ = w.send(reply);
                        }
                    }
                }
                Action::Restored { seq, .. } => {
                    tracing::info!(
                        node = self.id,
                        seq = seq.0,
                        "caught up from a peer's checkpoint snapshot"
                    );
                }
                Action::SetTimer(t) => {
                    let d = self.duration(&t);
                    let tx = self.inbound.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        let _ = tx.send(Inbound::Timer(t)).await;
                    });
                }
            }
        }
        let view = self.replica.view().0;
        if self.metrics.view.swap(view, Ordering::Relaxed) != view {
            self.metrics.view_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(node = self.id, view, "entered view");
        }
        // Clients that gave up no longer need a reply.
        self.waiters.retain(|_, (_, w)| !w.is_closed());
        if let Ok(mut m) = self.metrics.core_dropped.lock() {
            m.clone_from(self.replica.dropped());
        }
        let count = self.ledger().map_or(0, |l| l.state().events.len() as u64);
        self.events
            .send_if_modified(|c| std::mem::replace(c, count) != count);
        Ok(())
    }

    /// DESIGN §4: when a promotion or rollback is ordered, every validator evaluates it on its
    /// own and submits a signed vote through consensus.
    fn vote_on_new_proposals(&mut self, seq: u64, executed: &[Signed<Request>]) {
        use crate::consensus::{Codec as _, Kind, Principal};
        use crate::governance::ledger::ProposalStatus;
        let Some(ledger) = self.ledger() else { return };
        let mut votes = Vec::new();
        for r in executed {
            let Some(outcome) = ledger.outcome(r.signer(), r.value().nonce) else {
                continue;
            };
            let Some(p) = outcome.proposal else { continue };
            let opened_here = ledger.state().proposals.get(&p).is_some_and(|prop| {
                prop.opened_seq == seq && prop.status == ProposalStatus::Pending
            });
            if outcome.accepted && opened_here {
                let (approve, reasons) = ledger.evaluate(p);
                votes.push(crate::governance::Operation::Vote {
                    proposal: p,
                    approve,
                    reasons,
                });
            }
        }
        for op in votes {
            // Nonces must increase across restarts too: wall-clock microseconds, never repeated.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            self.own_nonce = now.max(self.own_nonce + 1);
            let request = Signed::seal(
                Request {
                    nonce: self.own_nonce,
                    operation: op.to_bytes(),
                },
                Kind::Request,
                |r| ProtoCodec.encode_request(r),
                &self.key,
                Principal::Validator(crate::consensus::ReplicaId(self.id)),
            );
            tracing::info!(
                node = self.id,
                "voting: {}",
                String::from_utf8_lossy(&request.value().operation)
            );
            if self.inbound.try_send(Inbound::Own(request)).is_err() {
                self.metrics.dropped("own vote: inbound queue full");
            }
        }
    }

    fn events(&self, from: u64) -> Vec<pb::LedgerEvent> {
        let Some(l) = self.ledger() else {
            return Vec::new();
        };
        l.state()
            .events
            .iter()
            .enumerate()
            .skip(from as usize)
            .take(512)
            .map(|(i, e)| pb::LedgerEvent {
                index: i as u64,
                seq: e.seq,
                tag: format!("{:?}", e.tongue),
                tongue: e.tongue.tongue().into(),
                phase: e.tongue.phase().into(),
                kind: e.kind.clone(),
                subject: e.subject.clone(),
                detail: e.detail.clone(),
            })
            .collect()
    }

    fn status(&self, proposal: Option<u64>) -> pb::StatusReply {
        let detail = match (self.ledger(), proposal) {
            (Some(l), Some(p)) => {
                serde_json::to_string(&l.state().proposals.get(&p)).unwrap_or_default()
            }
            (Some(l), None) => {
                let s = l.state();
                serde_json::json!({
                    "releases": s.releases.iter().map(|(v, e)| (v.clone(), e.stage)).collect::<BTreeMap<_, _>>(),
                    "current": s.current,
                    "known_good": s.known_good,
                    "open_proposals": s.proposals.values().filter(|p| p.status == crate::governance::ledger::ProposalStatus::Pending).map(|p| p.id).collect::<Vec<_>>(),
                    "events": s.events.len(),
                })
                .to_string()
            }
            (None, _) => String::new(),
        };
        pb::StatusReply {
            node: self.id,
            view: self.replica.view().0,
            status: format!("{:?}", self.replica.status()),
            last_executed: self.replica.last_executed().0,
            stable_checkpoint: self.replica.stable_checkpoint().seq.0,
            detail_json: detail,
        }
    }
}

/// Serves `/metrics` in Prometheus text format over plain HTTP/1.0.
async fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>, node: u32) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
        tracing::error!(%addr, "cannot bind the metrics listener");
        return;
    };
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let body = metrics.render(node);
            let resp = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
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
    let app = Box::new(Ledger::new(v.ledger.clone()));
    let codec = Arc::new(ProtoCodec);
    let (replica, initial) = if records.is_empty() {
        let mut r = Replica::new(v.replica.clone(), v.key.clone(), codec, app)?;
        let a = r.start();
        (r, a)
    } else {
        tracing::info!(node = id, records = records.len(), "restoring from storage");
        Replica::restore(v.replica.clone(), v.key.clone(), codec, app, &records)?
    };
    let (tx, mut rx) = mpsc::channel(INBOUND_QUEUE);
    let metrics = Arc::new(Metrics::default());
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
    let (events_tx, events_rx) = tokio::sync::watch::channel(0u64);
    let governance = pb::governance_server::GovernanceServer::new(GovernanceService {
        inbound: tx.clone(),
        directory: Arc::clone(&directory),
        verified,
        events: events_rx,
    })
    .max_decoding_message_size(MAX_ENVELOPE_BYTES);
    let audit = pb::audit_server::AuditServer::new(crate::net::audit_service::AuditService {
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
            .add_service(health)
            .add_optional_service(reflection)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = served {
            tracing::error!("gRPC server stopped: {e}");
        }
    });
    if let Some(addr) = v.raw.node.metrics_listen {
        tokio::spawn(serve_metrics(addr, Arc::clone(&metrics), id));
    }
    let peers = v
        .raw
        .validators
        .iter()
        .filter(|p| p.id != id)
        .map(|p| (p.id, spawn_peer(p.address)))
        .collect();
    let c = &v.raw.consensus;
    let timeouts = BTreeMap::from([
        (TimerKind::Request, c.request_timeout),
        (TimerKind::ViewChange, c.view_change_timeout),
        (TimerKind::Status, c.status_interval),
    ]);
    let mut rt = Runtime {
        id,
        key: v.key.clone(),
        own_nonce: 0,
        replica,
        store,
        peers,
        waiters: BTreeMap::new(),
        inbound: tx,
        timeouts,
        metrics,
        events: events_tx,
    };
    tracing::info!(node = id, %listen, view = rt.replica.view().0, executed = rt.replica.last_executed().0, "validator running");
    rt.perform(initial)?;
    while let Some(first) = rx.recv().await {
        let mut turn = vec![first];
        while turn.len() < MAX_TURN {
            match rx.try_recv() {
                Ok(x) => turn.push(x),
                Err(_) => break,
            }
        }
        let mut actions = Vec::new();
        for input in turn {
            match input {
                Inbound::Peer(m) => actions.extend(rt.replica.handle(Input::Message(m))),
                Inbound::Timer(t) => actions.extend(rt.replica.handle(Input::Timeout(t))),
                Inbound::Own(r) => actions.extend(rt.replica.handle(Input::ClientRequest(r))),
                Inbound::Client { request, reply } => {
                    rt.waiters.insert(
                        (*request.signer(), request.value().nonce),
                        (std::time::Instant::now(), reply),
                    );
                    actions.extend(rt.replica.handle(Input::ClientRequest(request)));
                }
                Inbound::Status { proposal, reply } => {
                    let _ = reply.send(rt.status(proposal));
                }
                Inbound::Events { from, reply } => {
                    let _ = reply.send(rt.events(from));
                }
                Inbound::Audit { from, reply } => {
                    let chunk = rt
                        .store
                        .decided_from(from, crate::net::audit_service::AUDIT_CHUNK)
                        .map_err(|e| e.to_string());
                    let _ = reply.send(chunk);
                }
            }
        }
        rt.perform(actions)?;
    }
    Ok(())
}
