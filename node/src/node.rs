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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scbe_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Validated;
use crate::consensus::{
    Action, Envelope, Input, Message, Replica, RestoreError, Signed, Timer, TimerKind,
};
use crate::consensus::{ConfigError as CoreConfigError, Request};
use crate::crypto::PublicKey;
use crate::governance::ledger::Outcome;
use crate::governance::{Ledger, Operation};
use crate::metrics::{serve_metrics, Metrics};
use crate::net::consensus_service::ConsensusService;
use crate::net::governance_service::GovernanceService;
use crate::net::orders_service::OrdersService;
use crate::net::peer::spawn_peer;
use crate::net::wire::VerifiedCache;
use crate::net::{ProtoCodec, MAX_ENVELOPE_BYTES};
use crate::rollout::executor::{run_executor, AgentInfo, FleetContext, FleetInput, FleetView};
use crate::rollout::monitor::{spawn_monitor, FleetHealth};
use crate::rollout::order::{endorse, Endorsement};
use crate::rollout::watcher::{StepView, WatchSettings, Watcher};
use crate::storage::{RecordStore, StorageError};
use crate::timeouts::Timeouts;

/// Inputs waiting for the core; beyond this, peers' messages are dropped (and counted).
pub const INBOUND_QUEUE: usize = 16_384;
/// A storage commit this long is logged (a quarter of the default silence allowed).
const SLOW_COMMIT: Duration = Duration::from_millis(50);

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
        reply: oneshot::Sender<Result<ClientReply, String>>,
    },
    Timer(Timer),
    /// A request this validator signed itself (its votes), ordered like any other.
    Own(Signed<Request>),
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
        reply: oneshot::Sender<Result<AuditChunk, String>>,
    },
    /// Verified agent evidence from the monitor or the executor.
    Fleet(FleetInput),
    /// Time to ask the watcher what to submit.
    FleetTick,
    /// The leader asks this validator to endorse an order.
    Endorse {
        rollout: u64,
        order: Vec<u8>,
        reply: oneshot::Sender<Result<Endorsement, String>>,
    },
}

/// (sequence number, encoded commit certificate) pairs, in order.
pub type AuditChunk = Vec<(u64, Vec<u8>)>;

/// A client waiting for its request: when it arrived, which request (operation digest), and
/// where the reply goes.
type Waiter = (
    Instant,
    String,
    oneshot::Sender<Result<ClientReply, String>>,
);

/// A decided client request.
pub struct ClientReply {
    pub seq: u64,
    pub outcome: Outcome,
    /// Decided before this submission (a resubmission answered from the ledger).
    pub already: bool,
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
    /// Clients waiting per (signer, nonce): more than one when a request is submitted again
    /// (a retry, another stream) before it is decided; each gets its answer.
    waiters: BTreeMap<(PublicKey, u64), Vec<Waiter>>,
    inbound: mpsc::Sender<Inbound>,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
    /// Number of ledger events, published after every turn for `Watch` streams.
    events: watch::Sender<u64>,
    /// Decides what this validator submits about the active rollout.
    watcher: Watcher,
    /// The active step and whether this validator leads, for the executor.
    fleet_view: watch::Sender<FleetView>,
    fleet_health: Arc<FleetHealth>,
    /// (last executed, view) when the fleet view was last refreshed.
    fleet_seen: (u64, u64),
    /// (status, suspected view) after the last turn: changes are logged at debug level, the
    /// timeline of a failover.
    consensus_seen: (crate::consensus::Status, Option<u64>),
    started: Instant,
}

impl Runtime {
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
        // Answered before this replica's own commit: a batch that committed here was prepared,
        // durably, by a quorum before any of them sent its commit, so the decision and its
        // (deterministic) outcome stand even if this process dies before its write lands. The
        // client is spared one fsync; nothing a peer receives depends on it.
        let now = Instant::now();
        for a in &actions {
            if let Action::Deliver(d) = a {
                self.answer_waiters(d);
                self.timeouts.executed(d.seq, now);
            }
        }
        let history = self.ledger().map(Ledger::take_new).unwrap_or_default();
        let has_history = !history.events.is_empty() || !history.outcomes.is_empty();
        if !records.is_empty() || !decided.is_empty() || has_history {
            let start = std::time::Instant::now();
            tokio::task::block_in_place(|| self.store.commit_turn(&records, &decided, &history))?;
            let took = start.elapsed();
            if took >= SLOW_COMMIT {
                // The loop (heartbeats included) waited this long: worth seeing next to a view
                // change.
                tracing::warn!(
                    node = self.id,
                    ms = took.as_millis() as u64,
                    records = records.len(),
                    decided = decided.len(),
                    "slow storage commit"
                );
            }
            self.metrics
                .sync_micros_total
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
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
                    self.metrics.decisions.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        node = self.id,
                        seq = d.seq.0,
                        requests = d.executed.len(),
                        "decided"
                    );
                }
                Action::Restored { seq, .. } => {
                    tracing::info!(
                        node = self.id,
                        seq = seq.0,
                        "caught up from a peer's checkpoint snapshot"
                    );
                }
                Action::SetTimer(t) => {
                    let d = self.timeouts.duration(&t);
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
        let seen = (
            self.replica.status(),
            self.replica.suspecting().map(|v| v.0),
        );
        if std::mem::replace(&mut self.consensus_seen, seen) != seen {
            tracing::debug!(node = self.id, view, status = ?seen.0, suspecting = ?seen.1, "consensus status");
        }
        // Clients that gave up no longer need a reply.
        self.waiters.retain(|_, ws| {
            ws.retain(|(_, _, w)| !w.is_closed());
            !ws.is_empty()
        });
        if let Ok(mut m) = self.metrics.core_dropped.lock() {
            m.clone_from(self.replica.dropped());
        }
        let count = self.ledger().map_or(0, |l| l.journal().events.total());
        self.events
            .send_if_modified(|c| std::mem::replace(c, count) != count);
        Ok(())
    }

    /// Replies to every client waiting for a request of this decided batch: its outcome, or,
    /// if the nonce went to another request, an error saying so.
    fn answer_waiters(&mut self, d: &crate::consensus::Decision) {
        for r in &d.certificate.pre_prepare.value().batch {
            let key = (*r.signer(), r.value().nonce);
            for (since, digest, w) in self.waiters.remove(&key).unwrap_or_default() {
                self.metrics.observe_latency(since.elapsed());
                let outcome = self
                    .ledger()
                    .and_then(|l| l.outcome(&key.0, key.1).cloned());
                let reply = match outcome {
                    Some(o) if o.seq == d.seq.0 && o.request == digest => Ok(ClientReply {
                        seq: d.seq.0,
                        outcome: o,
                        already: false,
                    }),
                    _ => Err(format!("nonce {} of this key went to another request; sign yours again with a higher nonce", key.1)),
                };
                let _ = w.send(reply);
            }
        }
    }

    /// Signs an operation of this validator's own (votes and rollout evidence).
    fn own_request(&mut self, op: &Operation) -> Signed<Request> {
        use crate::consensus::{Codec as _, Kind, Principal};
        // Counted from the highest nonce the ledger executed for this validator, never from a
        // clock. After a restart the first one skips a window, past requests signed before the
        // crash that may still be in flight; a replica catching up moves the base along.
        let executed = self.replica.last_nonce(&self.key.public());
        let skip = if self.own_nonce == 0 {
            crate::consensus::nonce::NONCE_WINDOW
        } else {
            0
        };
        self.own_nonce = (self.own_nonce + 1).max(executed + 1 + skip);
        tracing::info!(node = self.id, op = op.name(), "submitting");
        Signed::seal(
            Request {
                nonce: self.own_nonce,
                operation: op.to_bytes(),
            },
            Kind::Request,
            |r| ProtoCodec.encode_request(r),
            &self.key,
            Principal::Validator(crate::consensus::ReplicaId(self.id)),
        )
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// After the turn's inputs: refresh the active step if the ledger or the view moved, then
    /// submit what the watcher decides (the actions join this turn's commit).
    fn fleet_turn(&mut self, decide: bool) -> Vec<Action> {
        let seen = (self.replica.last_executed().0, self.replica.view().0);
        let primary = self.replica.is_primary();
        let now = self.now_ms();
        let moved = seen != self.fleet_seen;
        if moved {
            self.fleet_seen = seen;
            let step = self.ledger().and_then(StepView::of);
            self.watcher.observe(step.clone(), now);
            let view = FleetView {
                primary,
                view: seen.1,
                step,
            };
            self.fleet_view.send_if_modified(|v| {
                let changed = *v != view;
                *v = view;
                changed
            });
            let rate = self.ledger().map_or(1.0, crate::status::consensus_rate);
            self.metrics.set_consensus_rate(rate);
        }
        let mut actions = Vec::new();
        // Votes owed, in the same turn the proposal was executed (and again if one is lost).
        let ledger = self.replica.app().as_any().downcast_ref::<Ledger>();
        let votes = match ledger {
            Some(l) if decide || moved => self.watcher.votes(l, self.id, now),
            _ => Vec::new(),
        };
        for op in votes {
            let r = self.own_request(&op);
            actions.extend(self.replica.handle(Input::ClientRequest(r)));
        }
        // f + 1 validators found the step unexecuted under this view: leave it, together.
        let replace = self
            .watcher
            .step()
            .and_then(|s| s.replace_view)
            .is_some_and(|v| v == seen.1);
        if replace && self.replica.status() == crate::consensus::Status::Normal {
            tracing::warn!(
                node = self.id,
                view = seen.1,
                "the ledger replaces this view's primary"
            );
            actions.extend(self.replica.handle(Input::ReplacePrimary {
                view: crate::consensus::View(seen.1),
            }));
        }
        if decide {
            for op in self.watcher.decide(now, primary, seen.1) {
                let r = self.own_request(&op);
                actions.extend(self.replica.handle(Input::ClientRequest(r)));
            }
        }
        actions
    }

    /// A decided request's outcome: from the ledger's memory while kept there, else from the
    /// store.
    fn decided_outcome(&self, signer: &PublicKey, nonce: u64) -> Option<Outcome> {
        if nonce > self.replica.last_nonce(signer) {
            return None; // not executed yet: the common case, no store read
        }
        if let Some(o) = self.ledger().and_then(|l| l.outcome(signer, nonce)) {
            return Some(o.clone());
        }
        let signer = crate::governance::release::hex(signer.as_bytes());
        self.store.outcome(&signer, nonce).ok().flatten()
    }

    /// Events from position `from` on: from memory while the ledger keeps them, older ones from
    /// the store.
    fn events(&self, from: u64) -> Vec<pb::LedgerEvent> {
        const CHUNK: usize = 512;
        let Some(l) = self.ledger() else {
            return Vec::new();
        };
        let kept = &l.journal().events;
        let events: Vec<(u64, crate::governance::event::Event)> = if from < kept.first() {
            self.store.events_from(from, CHUNK).unwrap_or_else(|e| {
                tracing::warn!(node = self.id, error = %e, "cannot read stored events");
                Vec::new()
            })
        } else {
            kept.since(from)
                .take(CHUNK)
                .map(|(i, e)| (i, e.clone()))
                .collect()
        };
        events
            .into_iter()
            .map(|(i, e)| pb::LedgerEvent {
                index: i,
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
            (Some(l), None) => crate::status::summary(l, &self.fleet_health.latest()).to_string(),
            (None, _) => String::new(),
        };
        pb::StatusReply {
            node: self.id,
            view: self.replica.view().0,
            status: format!("{:?}", self.replica.status()),
            last_executed: self.replica.last_executed().0,
            stable_checkpoint: self.replica.stable_checkpoint().seq.0,
            detail_json: detail,
            last_nonce: 0,
        }
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
    let mut ledger = Ledger::new(v.ledger.clone());
    ledger.keep_fresh();
    let app = Box::new(ledger);
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
    let peers = v
        .raw
        .validators
        .iter()
        .filter(|p| p.id != id)
        .map(|p| (p.id, spawn_peer(p.address)))
        .collect();
    let (fleet_view, fleet_views) = watch::channel(FleetView::default());
    spawn_fleet(&v, tx.clone(), fleet_views, Arc::clone(&fleet_health));
    let c = &v.raw.consensus;
    let timeouts = Timeouts::new(BTreeMap::from([
        (TimerKind::Request, c.request_timeout),
        (TimerKind::ViewChange, c.view_change_timeout),
        (TimerKind::Status, c.status_interval),
        (TimerKind::Heartbeat, c.heartbeat_interval),
    ]));
    let ro = &v.raw.rollout;
    let watcher = Watcher::new(WatchSettings {
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
    });
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
        watcher,
        fleet_view,
        fleet_health,
        fleet_seen: (u64::MAX, u64::MAX),
        consensus_seen: (crate::consensus::Status::Normal, None),
        started: Instant::now(),
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
        let mut decide = false;
        // Client requests of the whole turn are relayed to peers together, at its end.
        rt.replica.begin_turn();
        for input in turn {
            match input {
                Inbound::Peer(m) => {
                    if let Message::PrePrepare(pp) = m.value() {
                        rt.timeouts.pre_prepared(pp.seq, Instant::now());
                    }
                    actions.extend(rt.replica.handle(Input::Message(m)));
                }
                Inbound::Timer(t) => actions.extend(rt.replica.handle(Input::Timeout(t))),
                Inbound::Own(r) => actions.extend(rt.replica.handle(Input::ClientRequest(r))),
                Inbound::Client { request, reply } => {
                    let (signer, nonce) = (*request.signer(), request.value().nonce);
                    let digest =
                        crate::governance::ledger::operation_digest(&request.value().operation);
                    // Decided already: answer from the ledger at once, order nothing again.
                    if let Some(o) = rt.decided_outcome(&signer, nonce) {
                        let _ = reply.send(if o.request == digest {
                            Ok(ClientReply { seq: o.seq, outcome: o, already: true })
                        } else {
                            Err(format!("nonce {nonce} of this key was already used by another request (decided at seq {}); sign yours again with a higher nonce", o.seq))
                        });
                        continue;
                    }
                    if let Err(e) = rt.replica.check_nonce(&signer, nonce) {
                        // It would be dropped at the door and never answered.
                        let _ = reply.send(Err(format!("{e}; sign the request again with a fresh nonce (`scbe` asks the cluster for the highest one)")));
                        continue;
                    }
                    rt.waiters.entry((signer, nonce)).or_default().push((
                        Instant::now(),
                        digest,
                        reply,
                    ));
                    actions.extend(rt.replica.handle(Input::ClientRequest(request)));
                }
                Inbound::Status {
                    proposal,
                    signer,
                    reply,
                } => {
                    let mut s = rt.status(proposal);
                    s.last_nonce = signer.map_or(0, |k| rt.replica.last_nonce(&k));
                    let _ = reply.send(s);
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
                Inbound::Fleet(FleetInput::Report(signed, body)) => {
                    let now = rt.now_ms();
                    rt.watcher.report(signed, body, now);
                    decide = true;
                }
                Inbound::Fleet(FleetInput::Ack(signed, body)) => {
                    rt.watcher.ack(signed, body);
                    decide = true;
                }
                Inbound::FleetTick => decide = true,
                Inbound::Endorse {
                    rollout,
                    order,
                    reply,
                } => {
                    let e = rt
                        .ledger()
                        .ok_or_else(|| "this validator has no ledger".to_string())
                        .and_then(|l| endorse(l, rollout, &order, &rt.key));
                    let _ = reply.send(e);
                }
            }
        }
        actions.extend(rt.fleet_turn(decide));
        actions.extend(rt.replica.end_turn());
        rt.perform(actions)?;
    }
    Ok(())
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
