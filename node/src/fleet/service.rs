//! The agent daemon: the `FleetAgent` gRPC service around [`AgentCore`], the hooks that carry
//! out orders, and the sampler that reads the health source and signs a report per sample.
//!
//! Orders are handled one at a time (a lock around hook execution), so two orders never race
//! on what the agent runs. The state file is rewritten before an order is answered: an ack the
//! agent signed always matches what a restarted agent reports.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use scbe_proto::v1 as pb;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::net::fleet_wire::{agent_signed_to_proto, signed_order_from_proto};
use crate::rollout::evidence::{DeployAck, HealthReport, OrderAction};

use super::config::{HooksSection, ValidatedAgent};
use super::core::{AgentCore, Step};
use super::hooks::{hook_env, run_hook};
use super::source::HealthSource;
use super::state::{StateError, StateFile};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot listen on {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },
    #[error("health source: {0}")]
    Source(String),
}

struct Shared {
    core: Mutex<AgentCore>,
    state_file: StateFile,
    hooks: HooksSection,
    specialty: String,
    /// Serialises orders: one hook at a time.
    orders: tokio::sync::Mutex<()>,
    /// The newest signed report and order ack (after every sample and every order).
    latest: watch::Sender<Published>,
}

/// What watchers receive.
#[derive(Clone, Default)]
struct Published {
    report: Option<HealthReport>,
    ack: Option<DeployAck>,
}

impl Published {
    fn to_proto(&self) -> pb::HealthUpdate {
        pb::HealthUpdate {
            report: self.report.as_ref().map(agent_signed_to_proto),
            ack: self.ack.as_ref().map(agent_signed_to_proto),
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

impl Shared {
    async fn obey(&self, p: pb::SignedOrder, rpc: OrderAction) -> Result<DeployAck, Status> {
        let _one_at_a_time = self.orders.lock().await;
        let signed = match signed_order_from_proto(&p) {
            Ok(s) => s,
            Err(e) => return Ok(lock(&self.core).refuse(rpc, e.to_string())),
        };
        let (order, step, current) = {
            let core = lock(&self.core);
            match core.authorise(&signed, rpc) {
                Ok(o) => {
                    let step = core.step(&o);
                    (o, step, core.state().current.clone())
                }
                Err(reason) => {
                    tracing::warn!(%reason, "refused an order");
                    return Ok(core.refuse(rpc, reason));
                }
            }
        };
        let result = match step {
            Step::AlreadyThere => Ok(()),
            Step::RunHook => {
                let id = lock(&self.core).id.clone();
                let mut env = self.hooks.env.clone();
                env.extend(hook_env(&id, &order, &current));
                let argv = match rpc {
                    OrderAction::Deploy => &self.hooks.deploy,
                    OrderAction::Rollback => &self.hooks.rollback,
                };
                tracing::info!(version = %order.version, rollout = order.rollout, ?rpc, "running hook");
                run_hook(argv, &env, self.hooks.timeout).await
            }
        };
        if let Err(e) = &result {
            tracing::warn!(version = %order.version, "hook failed: {e}");
        }
        let (ack, state) = {
            let mut core = lock(&self.core);
            let ack = core.finish(&order, result);
            (ack, core.state().clone())
        };
        self.state_file.store(&state).map_err(|e| {
            tracing::error!("{e}");
            Status::internal(format!("cannot record the new state: {e}"))
        })?;
        tracing::info!(current = %state.current.version, rollout = state.rollout, "order done");
        let a = ack.clone();
        self.latest.send_modify(|p| p.ack = Some(a));
        Ok(ack)
    }
}

#[tonic::async_trait]
impl pb::fleet_agent_server::FleetAgent for FleetAgentService {
    async fn deploy(
        &self,
        request: Request<pb::SignedOrder>,
    ) -> Result<Response<pb::AgentSigned>, Status> {
        let ack = self
            .shared
            .obey(request.into_inner(), OrderAction::Deploy)
            .await?;
        Ok(Response::new(agent_signed_to_proto(&ack)))
    }

    async fn rollback(
        &self,
        request: Request<pb::SignedOrder>,
    ) -> Result<Response<pb::AgentSigned>, Status> {
        let ack = self
            .shared
            .obey(request.into_inner(), OrderAction::Rollback)
            .await?;
        Ok(Response::new(agent_signed_to_proto(&ack)))
    }

    async fn health(
        &self,
        _request: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthUpdate>, Status> {
        Ok(Response::new(self.shared.latest.borrow().to_proto()))
    }

    type WatchHealthStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::HealthUpdate, Status>>;

    async fn watch_health(
        &self,
        _request: Request<pb::HealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        let mut rx = self.shared.latest.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let update = rx.borrow_and_update().to_proto();
                let any = update.report.is_some() || update.ack.is_some();
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
                shared.latest.send_modify(|p| p.report = report);
            }
            Err(e) => tracing::warn!("no health sample: {e}"),
        }
    }
}

/// Runs the agent until the process is stopped.
pub async fn run(v: ValidatedAgent) -> Result<(), AgentError> {
    let a = &v.raw.agent;
    let state_file = StateFile::new(&v.data_dir);
    let state = state_file.load(&a.initial_version)?;
    // Record the starting state so the data directory always holds one.
    state_file.store(&state)?;
    let source = HealthSource::from_config(&v.raw.health).map_err(AgentError::Source)?;
    let core = AgentCore::new(
        a.id.clone(),
        v.key.clone(),
        v.validators.clone(),
        v.quorum,
        state,
        a.report_window as usize,
    );
    let (latest, _) = watch::channel(Published::default());
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        state_file,
        hooks: v.hooks.clone(),
        specialty: a.specialty.clone(),
        orders: tokio::sync::Mutex::new(()),
        latest,
    });
    let listener =
        tokio::net::TcpListener::bind(a.listen)
            .await
            .map_err(|e| AgentError::Listen {
                addr: a.listen,
                detail: e.to_string(),
            })?;
    tokio::spawn(sample_forever(
        Arc::clone(&shared),
        source,
        a.sample_interval,
    ));
    {
        let core = lock(&shared.core);
        tracing::info!(
            agent = %a.id,
            listen = %a.listen,
            current = %core.state().current.version,
            key = %core.key().public(),
            "agent running"
        );
    }
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(pb::fleet_agent_server::FleetAgentServer::new(
            FleetAgentService { shared },
        ))
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| AgentError::Listen {
            addr: a.listen,
            detail: e.to_string(),
        })
}
