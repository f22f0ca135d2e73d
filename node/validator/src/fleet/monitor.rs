//! Every validator's health monitor (runtime side): one `WatchHealth` stream per agent with an
//! address, reconnecting with backoff ([`super::roster`] starts and stops them as the fleet
//! changes). Each report's signature is checked against the agent's current key before anything in it is parsed; refused reports are counted by reason.
//! Verified reports go to the core task (the watcher decides on them) and into [`FleetHealth`],
//! the latest figures per agent that `scbe status` and `/metrics` show.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scbe_core::rollout::evidence::{AgentBody, AgentSigned, EvidenceError, HealthBody};
use scbe_wire::fleet_client;
use scbe_wire::fleet_wire::FleetWireError;

use super::executor::FleetContext;
use crate::inbound::FleetInput;

/// The latest verified report of one agent.
#[derive(Clone, Debug)]
pub struct AgentHealth {
    pub body: HealthBody,
    pub received: Instant,
}

/// Reports kept per agent for the dashboard's sparklines.
pub const HISTORY_KEPT: usize = 120;

/// One verified report's figures, for the dashboard's sparklines.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HealthPoint {
    /// When it was received (milliseconds since the Unix epoch).
    pub at_ms: u64,
    pub coherence: f64,
    pub error_rate: f64,
    pub response_ms_p95: f64,
    pub safety: f64,
}

/// Latest health per agent and refusal counters, shared with status and metrics.
#[derive(Default)]
pub struct FleetHealth {
    latest: Mutex<BTreeMap<String, AgentHealth>>,
    /// The last [`HISTORY_KEPT`] reports' figures per agent.
    history: Mutex<BTreeMap<String, std::collections::VecDeque<HealthPoint>>>,
    /// What is wrong with an agent, and the fix, until its next verified report.
    warnings: Mutex<BTreeMap<String, String>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    reports: std::sync::atomic::AtomicU64,
}

impl FleetHealth {
    pub fn latest(&self) -> BTreeMap<String, AgentHealth> {
        self.latest.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn refused(&self) -> BTreeMap<&'static str, u64> {
        self.refused.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn reports(&self) -> u64 {
        self.reports.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Each agent's recent figures, oldest first.
    pub fn history(&self) -> BTreeMap<String, Vec<HealthPoint>> {
        self.history
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(a, h)| (a.clone(), h.iter().cloned().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An agent left the fleet: its figures no longer count.
    pub fn forget(&self, agent: &str) {
        if let Ok(mut m) = self.latest.lock() {
            m.remove(agent);
        }
        if let Ok(mut m) = self.history.lock() {
            m.remove(agent);
        }
        self.clear_warning(agent);
    }

    pub fn warnings(&self) -> BTreeMap<String, String> {
        self.warnings.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Something is wrong with `agent` (shown by `scbe status` and `scbe watch`).
    pub fn warn(&self, agent: &str, warning: String) {
        if let Ok(mut m) = self.warnings.lock() {
            m.insert(agent.to_string(), warning);
        }
    }

    pub fn clear_warning(&self, agent: &str) {
        if let Ok(mut m) = self.warnings.lock() {
            m.remove(agent);
        }
    }

    /// Counts a report refused for `reason`.
    pub fn refuse(&self, reason: &'static str) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Records a report whose signature was verified: the agent's latest health.
    pub fn update(&self, body: &HealthBody) {
        self.reports
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut m) = self.latest.lock() {
            m.insert(
                body.agent.clone(),
                AgentHealth {
                    body: body.clone(),
                    received: Instant::now(),
                },
            );
        }
        if let Ok(mut m) = self.history.lock() {
            let h = m.entry(body.agent.clone()).or_default();
            if h.len() >= HISTORY_KEPT {
                h.pop_front();
            }
            h.push_back(HealthPoint {
                at_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                coherence: body.coherence_mean,
                error_rate: body.error_rate_mean,
                response_ms_p95: body.response_ms_p95,
                safety: body.safety_min,
            });
        }
    }
}

/// The health stream of one agent: reconnects with backoff for as long as the validator runs.
pub async fn watch_agent(
    ctx: Arc<FleetContext>,
    health: Arc<FleetHealth>,
    agent: String,
    addr: String,
) {
    let Some(key) = ctx.agent_key(&agent) else {
        return; // removed from the fleet meanwhile
    };
    // Streams are long-lived: no per-call timeout on the channel.
    let who = format!("agent {agent}'s registered key");
    let Some(ch) = ctx.channel(key, who, &addr, Duration::from_secs(24 * 3600)) else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        // The chain proves this validator's key to an agent that has not heard of it yet.
        let chain = ctx.chain();
        match fleet_client::health_stream(ch.clone(), &ctx.genesis, &chain.links).await {
            Ok(mut stream) => {
                backoff = Duration::from_millis(100);
                while let Ok(Some(update)) = fleet_client::next_update(&mut stream).await {
                    if let Some(report) = update.report {
                        if let Some((signed, body)) = verify(&ctx, &health, &agent, report) {
                            health.clear_warning(&agent);
                            health.update(&body);
                            forward(&ctx, &health, FleetInput::Report(signed, body));
                        }
                    }
                    if let Some(ack) = update.ack {
                        if let Some((signed, body)) = verify(&ctx, &health, &agent, ack) {
                            forward(&ctx, &health, FleetInput::Ack(signed, body));
                        }
                    }
                    if let Some(problem) = update.source_problem {
                        health.warn(&agent, source_warning(&problem));
                    }
                }
            }
            Err(e) => {
                tracing::debug!(%agent, "no health stream: {e}");
                health.warn(&agent, stream_warning(&e, &addr));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// An agent that cannot sample its health source, and what to do about it.
fn source_warning(problem: &str) -> String {
    format!(
        "its health source is failing ({problem}): no new samples, so its health reads stale; \
         check [health] in its agent.toml (url or command) and the model server it reads"
    )
}

/// Why an agent's health stream does not open, and what to do about it.
fn stream_warning(e: &fleet_client::FleetClientError, addr: &str) -> String {
    match e {
        fleet_client::FleetClientError::GenesisMismatch { theirs } => format!(
            "it runs genesis {theirs}, not this cluster's: give it the cluster's genesis.toml"
        ),
        other => format!(
            "no health stream from {addr} ({other}): is scbe-agent running there, and is the \
             address in the fleet right (`scbe propose agent update --address`)?"
        ),
    }
}

fn forward(ctx: &FleetContext, health: &FleetHealth, input: FleetInput) {
    if ctx.input.try_send(input).is_err() {
        health.refuse("core queue full");
    }
}

/// Checks that evidence from the stream of `agent` is signed by that agent; counts refusals.
fn verify<T: AgentBody>(
    ctx: &FleetContext,
    health: &FleetHealth,
    agent: &str,
    item: Result<AgentSigned<T>, FleetWireError>,
) -> Option<(AgentSigned<T>, T)> {
    let signed = match item {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%agent, "malformed evidence: {e}");
            health.refuse("malformed");
            return None;
        }
    };
    let opened = if signed.agent == agent {
        let key = ctx.agent_key(agent);
        signed.open(|_| key.as_ref())
    } else {
        Err(EvidenceError::AgentMismatch {
            signer: agent.to_string(),
            named: signed.agent.clone(),
        })
    };
    match opened {
        Ok(body) => Some((signed, body)),
        Err(e) => {
            tracing::warn!(%agent, "refused agent evidence: {e}");
            if matches!(e, EvidenceError::BadSignature { .. }) {
                health.warn(
                    agent,
                    "its reports are signed with a key the fleet does not list for it: run it \
                     with its listed key, or re-key it (`scbe propose agent update --public-key`)"
                        .into(),
                );
            }
            health.refuse(match e {
                EvidenceError::BadSignature { .. } => "bad signature",
                EvidenceError::UnknownAgent { .. } => "unknown agent",
                EvidenceError::AgentMismatch { .. } => "wrong agent",
                EvidenceError::TooLarge { .. } => "too large",
                EvidenceError::Malformed { .. } => "malformed",
                EvidenceError::Inconsistent { .. } => "inconsistent",
            });
            None
        }
    }
}
