//! The leader's executor (runtime side): carries out the current order of the active rollout.
//!
//! Only the current primary executes. For each step the ledger makes current it collects a
//! quorum of endorsements (its own and its peers', each peer signing only an order its own ledger
//! derived), then delivers the signed order to every agent of the step that is not recorded yet:
//! bounded concurrency, retries with capped exponential backoff, and a deploy deadline for
//! promotions (a silent agent then becomes a no-data claim; rollbacks and restores keep trying,
//! since they must eventually reach every agent). Verified acks go to the core task, where the
//! [`super::watcher::Watcher`] records progress or rolls back. A new primary after a view
//! change does the same from the ledger's state; agents already on the version ack at once.

use scbe_core::consensus::config::quorum_for;
use scbe_core::consensus::EpochChain;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use scbe_core::consensus::Digest;
use scbe_core::crypto::{Keypair, PublicKey, Verifier};
use scbe_core::rollout::evidence::{AckOutcome, EvidenceError, OrderAction, Refusal};
use scbe_core::rollout::order::{Endorsement, SignedOrder, ORDER_KIND};
use scbe_core::rollout::watcher::StepView;
use scbe_core::validator_step::FleetView;
use scbe_wire::fleet_client::{self, FleetClientError};
use scbe_wire::tls::Transport;

use super::channel_cache::ChannelCache;
use super::monitor::FleetHealth;
use super::roster::{AgentInfo, Roster};
use crate::inbound::FleetInput;

/// Orders delivered at once.
const DELIVERY_CONCURRENCY: usize = 64;
/// Longest wait between two delivery attempts to one agent.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the executor and the monitor need to know about the cluster and the fleet.
pub struct FleetContext {
    pub id: u32,
    pub key: Keypair,
    /// Where this validator reaches every other one, by id (their keys are the set in
    /// force's, from the fleet view).
    pub peers: BTreeMap<u32, String>,
    /// The cluster's genesis digest, presented on every call to a peer or an agent.
    pub genesis: Digest,
    /// The fleet as the ledger has it now (published by the core task).
    pub roster: watch::Receiver<Roster>,
    /// What the core task publishes for the fleet tasks: read here for the chain of validator
    /// sets a health watch carries (the executor follows its own receiver's changes).
    pub view: watch::Receiver<FleetView>,
    /// How long the leader keeps trying to deliver a deploy before leaving it to the deadline.
    pub deploy_deadline: Duration,
    /// Timeout of one call to an agent (covers its hook).
    pub agent_call_timeout: Duration,
    pub input: mpsc::Sender<FleetInput>,
    /// Where warnings about agents go (`scbe status`, `scbe watch`).
    pub health: Arc<FleetHealth>,
    /// How calls leave this validator: TLS pinned to the callee's key, or plaintext.
    pub transport: Transport,
    /// Channels kept across steps (`super::channel_cache`).
    pub channels: ChannelCache,
    /// Test hook: the executor panics as it starts (the supervisor must stop the validator).
    #[cfg(test)]
    pub panic_on_start: bool,
}

impl FleetContext {
    pub fn agent_key(&self, id: &str) -> Option<PublicKey> {
        self.roster.borrow().get(id).map(|a| a.key)
    }

    /// The validator set in force and the links from the genesis that prove it.
    pub fn chain(&self) -> Arc<EpochChain> {
        Arc::clone(&self.view.borrow().chain)
    }

    pub fn agent(&self, id: &str) -> Option<AgentInfo> {
        self.roster.borrow().get(id).cloned()
    }

    /// A channel to the node at `addr` that must hold `key` (`who` names it when refused),
    /// kept for the next call to the same callee.
    pub fn channel(
        &self,
        key: PublicKey,
        who: String,
        addr: &str,
        call_timeout: Duration,
    ) -> Option<tonic::transport::Channel> {
        let made = self.channels.get_or_make(key, addr, call_timeout, || {
            self.transport
                .link_to(key, who)
                .map_err(|e| e.to_string())
                .and_then(|link| {
                    fleet_client::channel(&link, addr, call_timeout).map_err(|e| e.to_string())
                })
        });
        match made {
            Ok(ch) => Some(ch),
            Err(e) => {
                tracing::warn!(%addr, "no channel: {e}");
                None
            }
        }
    }
}

/// The step being delivered: its identity and its delivery task (`None` once it finished).
type Job = (StepKey, Option<tokio::task::JoinHandle<()>>);

/// What an operator does about an agent that refuses orders.
fn refusal_fix(refusal: Option<Refusal>) -> Option<&'static str> {
    match refusal? {
        Refusal::NotEnoughEndorsements => Some(
            "its genesis does not list this cluster's validator keys; give it the cluster's \
             genesis.toml",
        ),
        Refusal::NotForThisAgent => Some("it runs under another id than the fleet lists"),
        Refusal::Malformed | Refusal::WrongCall => {
            Some("it runs another version of scbe-agent; upgrade it")
        }
        Refusal::Stale => None,
    }
}

/// Runs the executor until the view channel closes. A delivery task that panics takes the
/// executor down with it (and the supervisor the validator), instead of vanishing silently.
pub async fn run_executor(ctx: Arc<FleetContext>, mut views: watch::Receiver<FleetView>) {
    #[cfg(test)]
    if ctx.panic_on_start {
        panic!("injected executor panic");
    }
    let mut job: Option<Job> = None;
    loop {
        let view = views.borrow_and_update().clone();
        let wanted = match (&view.step, view.primary) {
            (Some(step), true) => Some(StepKey::of(step)),
            _ => None,
        };
        let current = job.as_ref().map(|(k, _)| k.clone());
        if wanted != current {
            if let Some((_, Some(handle))) = job.take() {
                handle.abort();
            }
            if let (Some(key), Some(step)) = (wanted, view.step.clone()) {
                tracing::info!(
                    node = ctx.id,
                    rollout = step.rollout,
                    batch = step.order.batch,
                    action = ?step.order.action,
                    agents = step.order.agents.len(),
                    "executing"
                );
                let handle = tokio::spawn(execute_step(Arc::clone(&ctx), step, views.clone()));
                job = Some((key, Some(handle)));
            }
        }
        let active = job.as_ref().is_some_and(|(_, h)| h.is_some());
        let delivering = job.as_mut().and_then(|(_, h)| h.as_mut());
        tokio::select! {
            changed = views.changed() => {
                if changed.is_err() {
                    if let Some((_, Some(handle))) = job.take() {
                        handle.abort();
                    }
                    return;
                }
            }
            done = async { delivering?.await.err() }, if active => {
                if let Some((_, h)) = job.as_mut() {
                    *h = None; // finished: every agent answered or was given up on
                }
                if let Some(e) = done.filter(|e| e.is_panic()) {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }
}

/// Why a call to a peer or an agent gave nothing the executor can use (logged; it retries).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Call(#[from] FleetClientError),
    #[error("validator {validator} sent an invalid endorsement")]
    InvalidEndorsement { validator: u32 },
    #[error("the answer is not the agent's: {0}")]
    Evidence(#[from] EvidenceError),
}

/// Identity of a step: a new one restarts delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StepKey {
    rollout: u64,
    issued_seq: u64,
    action: OrderAction,
}

impl StepKey {
    fn of(s: &StepView) -> Self {
        StepKey {
            rollout: s.rollout,
            issued_seq: s.order.issued_seq,
            action: s.order.action,
        }
    }
}

async fn execute_step(ctx: Arc<FleetContext>, step: StepView, views: watch::Receiver<FleetView>) {
    let bytes = step.order.to_bytes();
    let chain = Arc::clone(&views.borrow().chain);
    let signed = Arc::new(collect_endorsements(&ctx, &chain, step.rollout, bytes).await);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(DELIVERY_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let targets: BTreeSet<String> = step.remaining().cloned().collect();
    for agent in targets {
        let Some(info) = ctx.agent(&agent) else {
            continue;
        };
        let Some(addr) = info.address.clone() else {
            tracing::warn!(%agent, "agent has no address in the config; it cannot be reached");
            continue;
        };
        tasks.spawn(deliver(
            Arc::clone(&ctx),
            agent,
            info.key,
            addr,
            Arc::clone(&signed),
            step.order.action,
            // Deploys of a promotion give up at the deadline (the no-data claim takes over);
            // rollbacks and restores must reach everyone eventually.
            (step.promote && step.order.action == OrderAction::Deploy)
                .then_some(started + ctx.deploy_deadline),
            Arc::clone(&gate),
            views.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// Own endorsement plus those of the other validators of the set in force until a quorum of
/// it; retries peers that are behind or unreachable. The order carries the chain that proves
/// the set, for agents that trust an earlier one.
async fn collect_endorsements(
    ctx: &FleetContext,
    chain: &EpochChain,
    rollout: u64,
    bytes: Vec<u8>,
) -> SignedOrder {
    let mut got: BTreeMap<u32, Endorsement> = BTreeMap::new();
    got.insert(ctx.id, Endorsement::sign(&bytes, &ctx.key));
    let quorum = quorum_for(chain.set.n().max(1));
    let channels: BTreeMap<u32, (Verifier, tonic::transport::Channel)> = chain
        .set
        .members
        .iter()
        .filter(|(id, _)| id.0 != ctx.id)
        .filter_map(|(id, key)| {
            let addr = ctx.peers.get(&id.0)?;
            let v = Verifier::new(*key).ok()?;
            let who = format!("validator {id}'s key in the validator set in force");
            ctx.channel(*key, who, addr, Duration::from_secs(2))
                .map(|c| (id.0, (v, c)))
        })
        .collect();
    let mut pause = Duration::from_millis(50);
    while got.len() < quorum {
        let mut asks = JoinSet::new();
        for (id, (v, ch)) in &channels {
            if got.contains_key(id) {
                continue;
            }
            let (id, v, ch, bytes) = (*id, v.clone(), ch.clone(), bytes.clone());
            let genesis = ctx.genesis;
            asks.spawn(async move {
                let e = fleet_client::endorse(ch, &genesis, rollout, &bytes).await?;
                if e.signer != *v.public() || v.verify(ORDER_KIND, &bytes, &e.signature).is_err() {
                    return Err(CallError::InvalidEndorsement { validator: id });
                }
                Ok((id, e))
            });
        }
        while let Some(r) = asks.join_next().await {
            match r {
                Ok(Ok((id, e))) => {
                    got.insert(id, e);
                }
                Ok(Err(e)) => tracing::debug!("endorsement not yet given: {e}"),
                Err(_) => {}
            }
        }
        if got.len() < quorum {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
    SignedOrder {
        order: bytes,
        endorsements: got.into_values().collect(),
        epochs: chain.links.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    ctx: Arc<FleetContext>,
    agent: String,
    key: PublicKey,
    addr: String,
    order: Arc<SignedOrder>,
    action: OrderAction,
    give_up_at: Option<Instant>,
    gate: Arc<Semaphore>,
    views: watch::Receiver<FleetView>,
) {
    let who = format!("agent {agent}'s registered key");
    let Some(ch) = ctx.channel(key, who, &addr, ctx.agent_call_timeout) else {
        return;
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        // Recorded meanwhile (e.g. by an earlier leader's acks): nothing left to do.
        let recorded = views
            .borrow()
            .step
            .as_ref()
            .is_some_and(|s| s.recorded.contains(&agent));
        if recorded {
            return;
        }
        let result = {
            let Ok(_permit) = gate.acquire().await else {
                return;
            };
            fleet_client::deliver(ch.clone(), &ctx.genesis, &order, action).await
        };
        let answer = result.map_err(CallError::from).and_then(|ack| {
            let body = ack.open(|id| (id == agent).then_some(&key))?;
            Ok((ack, body))
        });
        match answer {
            Ok((ack, body)) if body.outcome != AckOutcome::Refused => {
                tracing::info!(%agent, outcome = ?body.outcome, detail = %body.detail, "agent answered");
                let _ = ctx.input.send(FleetInput::Ack(ack, body)).await;
                return;
            }
            Ok((_, body)) => {
                tracing::warn!(%agent, reason = %body.detail, "agent refused the order");
                if body.refusal == Some(Refusal::Stale) {
                    return; // it already obeyed a newer one
                }
                if let Some(fix) = refusal_fix(body.refusal) {
                    ctx.health.warn(
                        &agent,
                        format!("it refused the order ({}): {fix}", body.detail),
                    );
                }
            }
            Err(e) => tracing::debug!(%agent, "delivery failed: {e}"),
        }
        if give_up_at.is_some_and(|t| Instant::now() + backoff > t) {
            tracing::warn!(%agent, "no answer by the deploy deadline");
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
