//! The agent daemon: the `FleetAgent` gRPC service around [`AgentCore`], the hooks that carry
//! out orders, and the sampler that reads the health source and signs a report per sample.
//!
//! An order is decoded and its endorsements verified first, on a blocking thread and before any
//! lock, so junk costs no one else anything; then orders are carried out one at a time (a lock
//! around the state checks and hook execution), so two orders never race on what the agent runs.
//! The state file is rewritten (and fsynced, on a blocking thread) before an order is answered:
//! an ack the agent signed always matches what a restarted agent reports. The server and the
//! sampler run under a supervisor: if either ends, the agent stops with an error naming it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use scbe_proto::v1 as pb;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use scbe_core::agent::{AgentCore, AgentState, HookOutcome, OrderChecker, OrderRefusal, Step};
use scbe_core::consensus::Digest;
use scbe_core::rollout::evidence::{DeployAck, HealthReport, OrderAction};
use scbe_core::rollout::order::{Order, OrderError};
use scbe_wire::fleet_wire::{
    agent_signed_to_proto, epoch_links_from_caller, signed_order_from_proto, FleetWireError,
};
use scbe_wire::genesis::check_presented;
use scbe_wire::supervisor::{Supervisor, TaskEnded};
use scbe_wire::tls::{caller_in, incoming, remote_addr, ClientAuth, PinnedKeys};

use crate::config::{HooksSection, ValidatedAgent};
use crate::hooks;
use crate::metrics::AgentMetrics;
use crate::source::{HealthSource, SourceError};
use crate::state_file::{StateError, StateFile};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot listen on {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },
    #[error("health source: {0}")]
    Source(#[from] SourceError),
    #[error("cannot set up TLS: {0}")]
    Tls(scbe_wire::tls::TlsError),
    #[error("{0}; the agent stops rather than run without it")]
    TaskEnded(#[from] TaskEnded),
}

struct Shared {
    core: Mutex<AgentCore>,
    /// Checks endorsements without holding `core`.
    checker: OrderChecker,
    state_file: Arc<StateFile>,
    hooks: HooksSection,
    specialty: String,
    /// Validators must present this genesis to give orders or watch health.
    genesis: Digest,
    /// Under TLS, the keys of the validator set trusted now: only their certificates may give
    /// orders or watch health (`Describe` answers anyone). They follow the set the checker
    /// trusts (`Shared::follow`).
    callers: Option<PinnedKeys>,
    /// Serialises orders: one hook at a time.
    orders: tokio::sync::Mutex<()>,
    /// The newest signed report and order ack (after every sample and every order).
    latest: watch::Sender<Published>,
    metrics: Arc<AgentMetrics>,
}

/// What watchers receive.
#[derive(Clone, Default)]
struct Published {
    report: Option<HealthReport>,
    ack: Option<DeployAck>,
    /// Why the latest sample failed (None once one succeeds).
    source_problem: Option<String>,
}

impl Published {
    fn to_proto(&self) -> pb::HealthUpdate {
        pb::HealthUpdate {
            report: self.report.as_ref().map(agent_signed_to_proto),
            ack: self.ack.as_ref().map(agent_signed_to_proto),
            source_problem: self.source_problem.clone().unwrap_or_default(),
        }
    }
}

pub struct FleetAgentService {
    shared: Arc<Shared>,
}

fn lock(core: &Mutex<AgentCore>) -> std::sync::MutexGuard<'_, AgentCore> {
    // A panic while holding the lock cannot leave the core half-updated in a way that matters
    // more than stopping would; keep serving.
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// A wire-level defect of an order, as the refusal the agent signs.
fn malformed(e: FleetWireError) -> OrderRefusal {
    OrderRefusal::Unauthorised(OrderError::Malformed(e.to_string()))
}

impl Shared {
    /// Orders and health streams are for the validators of this agent's genesis only: a
    /// validator of another cluster is refused, naming both digests (`Describe` answers anyone).
    /// Under TLS the caller's certificate must hold a key of the set the agent trusts; a caller
    /// it does not know (a validator re-keyed since the agent last heard of the set) is admitted
    /// once `links`, the chain its call carries, proves a later set holding its key.
    async fn admit<T>(&self, request: &Request<T>, links: &[pb::EpochLink]) -> Result<(), Status> {
        let unknown = caller_in(request, self.callers.as_ref()).is_err();
        // Another cluster's chain costs nothing: it is not even opened.
        if unknown && !links.is_empty() && check_presented(request, &self.genesis).is_ok() {
            let from = self.checker.set().epoch;
            let (checker, links) = (self.checker.clone(), links.to_vec());
            let learned = tokio::task::spawn_blocking(move || {
                let opened =
                    epoch_links_from_caller(&links, &checker.set()).map_err(|e| e.to_string())?;
                checker.learn(&opened).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            match learned {
                Ok(()) => self.follow(from),
                Err(e) => tracing::warn!(
                    from = ?remote_addr(request),
                    "an unknown caller's chain of validator sets proves nothing: {e}"
                ),
            }
        }
        caller_in(request, self.callers.as_ref()).inspect_err(|refused| {
            tracing::warn!(
                from = ?remote_addr(request),
                "refused a call: {}",
                refused.message()
            );
        })?;
        check_presented(request, &self.genesis).map_err(|m| {
            tracing::warn!(
                from = ?remote_addr(request),
                "refused a call from another cluster: {m}"
            );
            m.to_status()
        })
    }

    /// After the trusted set may have moved on from epoch `from`: its keys are the validator
    /// certificates accepted from now on.
    fn follow(&self, from: u64) {
        let set = self.checker.set();
        if set.epoch == from {
            return;
        }
        tracing::info!(
            epoch = set.epoch,
            from,
            validators = set.n(),
            "following a new validator set"
        );
        if let Some(callers) = &self.callers {
            callers.replace(set.members.iter().map(|(_, k)| *k));
        }
    }

    /// Decodes and verifies an order on a blocking thread, before any lock is taken (only the
    /// links of its chain past the set trusted now are opened).
    async fn verified(&self, p: pb::SignedOrder) -> Result<Order, OrderRefusal> {
        let checker = self.checker.clone();
        tokio::task::spawn_blocking(move || {
            let signed = signed_order_from_proto(&p, &checker.set()).map_err(malformed)?;
            checker.verify(&signed)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    fn refuse(&self, rpc: OrderAction, refusal: &OrderRefusal) -> DeployAck {
        tracing::warn!(reason = %refusal, "refused an order");
        self.metrics.order(
            action_name(rpc),
            "refused",
            &format!("{:?}", refusal.reason()),
        );
        lock(&self.core).refuse(rpc, refusal)
    }

    /// Writes the state durably, on a blocking thread.
    async fn store(&self, state: AgentState) -> Result<(), StateError> {
        let file = Arc::clone(&self.state_file);
        tokio::task::spawn_blocking(move || file.store(&state))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    async fn obey(&self, p: pb::SignedOrder, rpc: OrderAction) -> Result<DeployAck, Status> {
        let from = self.checker.set().epoch;
        let verified = self.verified(p).await;
        // The order's chain may have proved a later validator set.
        self.follow(from);
        let order = match verified {
            Ok(o) => o,
            Err(refusal) => return Ok(self.refuse(rpc, &refusal)),
        };
        let _one_at_a_time = self.orders.lock().await;
        let (step, current) = {
            let core = lock(&self.core);
            if let Err(refusal) = core.admit(&order, rpc) {
                drop(core);
                return Ok(self.refuse(rpc, &refusal));
            }
            (core.step(&order), core.state().current.clone())
        };
        let result = match step {
            Step::AlreadyThere => Ok(()),
            Step::RunHook => {
                let id = lock(&self.core).id.clone();
                tracing::info!(version = %order.version, rollout = order.rollout, ?rpc, "running hook");
                let started = std::time::Instant::now();
                let ran = hooks::obey(&self.hooks, &id, &order, rpc, &current).await;
                self.metrics.hook_ran(started.elapsed());
                ran
            }
        };
        self.metrics.order(
            action_name(rpc),
            if result.is_ok() { "done" } else { "failed" },
            "",
        );
        let outcome = match result {
            Ok(()) => HookOutcome::Done,
            Err(e) => {
                tracing::warn!(version = %order.version, "hook failed: {e}");
                HookOutcome::Failed(e)
            }
        };
        let (ack, state) = {
            let mut core = lock(&self.core);
            let ack = core.finish(&order, outcome);
            (ack, core.state().clone())
        };
        self.store(state.clone()).await.map_err(|e| {
            tracing::error!("{e}");
            Status::internal(format!("cannot record the new state: {e}"))
        })?;
        tracing::info!(current = %state.current.version, rollout = state.rollout, "order done");
        self.metrics.versions(
            &state.current.version,
            state.previous.as_ref().map(|p| p.version.as_str()),
        );
        let a = ack.clone();
        self.latest.send_modify(|p| p.ack = Some(a));
        Ok(ack)
    }
}

impl FleetAgentService {
    /// Deploy and Rollback: the caller's genesis, then the order, then the signed ack.
    async fn answer(
        &self,
        request: Request<pb::SignedOrder>,
        action: OrderAction,
    ) -> Result<Response<pb::AgentSigned>, Status> {
        self.shared
            .admit(&request, &request.get_ref().epochs)
            .await?;
        let ack = self.shared.obey(request.into_inner(), action).await?;
        Ok(Response::new(agent_signed_to_proto(&ack)))
    }
}

#[tonic::async_trait]
impl pb::fleet_agent_server::FleetAgent for FleetAgentService {
    async fn deploy(
        &self,
        request: Request<pb::SignedOrder>,
    ) -> Result<Response<pb::AgentSigned>, Status> {
        self.answer(request, OrderAction::Deploy).await
    }

    async fn rollback(
        &self,
        request: Request<pb::SignedOrder>,
    ) -> Result<Response<pb::AgentSigned>, Status> {
        self.answer(request, OrderAction::Rollback).await
    }

    async fn health(
        &self,
        request: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthUpdate>, Status> {
        self.shared
            .admit(&request, &request.get_ref().epochs)
            .await?;
        Ok(Response::new(self.shared.latest.borrow().to_proto()))
    }

    type WatchHealthStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::HealthUpdate, Status>>;

    async fn watch_health(
        &self,
        request: Request<pb::HealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        self.shared
            .admit(&request, &request.get_ref().epochs)
            .await?;
        let mut rx = self.shared.latest.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let update = rx.borrow_and_update().to_proto();
                let any = update.report.is_some()
                    || update.ack.is_some()
                    || !update.source_problem.is_empty();
                if any && tx.send(Ok(update)).await.is_err() {
                    return; // the watcher hung up
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            out,
        )))
    }

    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeReply>, Status> {
        let core = lock(&self.shared.core);
        let s = core.state();
        Ok(Response::new(pb::DescribeReply {
            agent: core.id.clone(),
            specialty: self.shared.specialty.clone(),
            current_version: s.current.version.clone(),
            previous_version: s
                .previous
                .as_ref()
                .map(|p| p.version.clone())
                .unwrap_or_default(),
            rollout: s.rollout,
            last_order_seq: s.last_order_seq,
            public_key: core.key().public().as_bytes().to_vec().into(),
            samples: core.samples(),
        }))
    }
}

/// Samples the source forever, signing a report after every sample.
async fn sample_forever(shared: Arc<Shared>, source: HealthSource, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (id, serving, k, n) = {
            let core = lock(&shared.core);
            (
                core.id.clone(),
                core.state().current.clone(),
                core.samples(),
                core.taken(),
            )
        };
        match source.sample(&id, &serving, k, n).await {
            Ok(sample) => {
                let report = {
                    let mut core = lock(&shared.core);
                    // A deploy may have finished meanwhile: that sample was of the old version.
                    if core.state().current != serving {
                        continue;
                    }
                    core.record(sample);
                    core.report()
                };
                shared.metrics.reported(sample);
                shared.latest.send_modify(|p| {
                    p.report = report;
                    p.source_problem = None;
                });
            }
            Err(e) => {
                tracing::warn!("no health sample: {e}");
                shared.metrics.sample_failed();
                // Tell the validators watching (once per change: an unchanged problem sends
                // nothing new), so `scbe status` can say why this agent's health is stale.
                let problem = e.to_string();
                shared.latest.send_if_modified(|p| {
                    let changed = p.source_problem.as_deref() != Some(problem.as_str());
                    p.source_problem = Some(problem);
                    changed
                });
            }
        }
    }
}

/// The metrics label of an order's action.
fn action_name(a: OrderAction) -> &'static str {
    match a {
        OrderAction::Deploy => "deploy",
        OrderAction::Rollback => "rollback",
    }
}

/// Runs the agent until the process is stopped.
/// Calls one connection may have in flight (orders, health, describe).
const CALLS_PER_CONNECTION: usize = 16;

pub async fn run(v: ValidatedAgent) -> Result<(), AgentError> {
    let a = &v.raw.agent;
    let state_file = StateFile::new(&v.data_dir);
    let state = state_file.load(&v.initial_install())?;
    // Record the starting state so the data directory always holds one.
    state_file.store(&state)?;
    let source = HealthSource::from_config(&v.raw.health)?;
    let core = AgentCore::new(
        a.id.clone(),
        v.key.clone(),
        v.validators.clone(),
        v.quorum,
        state,
        a.report_window as usize,
    );
    if v.admitted_later {
        tracing::warn!(
            agent = %a.id,
            key = %v.key.public(),
            "this agent is not in the genesis: validators send it orders and count its reports \
             only once `scbe propose agent add` admitted it with this key"
        );
    }
    let (latest, _) = watch::channel(Published::default());
    let metrics = Arc::new(AgentMetrics::default());
    metrics.versions(
        &core.state().current.version,
        core.state().previous.as_ref().map(|p| p.version.as_str()),
    );
    // The set the agent trusts now (the genesis one, or a later one an order proved): its
    // keys are the certificates accepted from validators, and they follow the orders' chain.
    let validators = PinnedKeys::new(
        core.order_checker().set().members.iter().map(|(_, k)| *k),
        "a validator of the set this agent trusts",
    );
    let shared = Arc::new(Shared {
        checker: core.order_checker(),
        core: Mutex::new(core),
        state_file: Arc::new(state_file),
        hooks: v.hooks.clone(),
        specialty: v.specialty.clone(),
        genesis: v.genesis.digest(),
        callers: v.transport.is_tls().then_some(validators),
        orders: tokio::sync::Mutex::new(()),
        latest,
        metrics: Arc::clone(&metrics),
    });
    let listener =
        tokio::net::TcpListener::bind(v.listen)
            .await
            .map_err(|e| AgentError::Listen {
                addr: v.listen,
                detail: e.to_string(),
            })?;
    let mut tasks = Supervisor::default();
    if let Some(addr) = a.metrics_listen {
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| AgentError::Listen {
                    addr,
                    detail: e.to_string(),
                })?;
        let registry = metrics.registry(&a.id);
        tasks.spawn(
            "metrics server",
            scbe_wire::metrics_http::serve_metrics(
                listener,
                Arc::new(move || scbe_wire::metrics_http::encode(&registry)),
            ),
        );
    }
    tasks.spawn(
        "health sampler",
        sample_forever(Arc::clone(&shared), source, v.sample_interval),
    );
    {
        let core = lock(&shared.core);
        tracing::info!(
            agent = %a.id,
            listen = %v.listen,
            genesis = %v.genesis.digest_hex(),
            current = %core.state().current.version,
            key = %core.key().public(),
            "agent running"
        );
    }
    let tls = v
        .transport
        // Any key completes the handshake; `Shared::admit` decides what it may call.
        .server(ClientAuth::Identified)
        .map_err(AgentError::Tls)?;
    let incoming = incoming(listener, tls);
    // grpc.health.v1 for container health checks (`scbe-agent health`).
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::fleet_agent_server::FleetAgentServer<FleetAgentService>>()
        .await;
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // A connection's calls beyond this wait their turn: one caller cannot fill the blocking
        // pool with order checks (validators send one order per agent at a time).
        .concurrency_limit_per_connection(CALLS_PER_CONNECTION)
        .http2_keepalive_interval(Some(scbe_wire::tls::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(scbe_wire::tls::KEEPALIVE_TIMEOUT))
        .add_service(pb::fleet_agent_server::FleetAgentServer::new(
            FleetAgentService { shared },
        ))
        .add_service(health)
        .serve_with_incoming(incoming);
    tasks.spawn("FleetAgent gRPC server", async move {
        if let Err(e) = server.await {
            tracing::error!("FleetAgent gRPC server stopped: {e}");
        }
    });
    Err(tasks.first_ended().await.into())
}
