//! The demo's requester: a client of the cluster that submits, follows rollouts with progress
//! bars, reads what agents run from the agents themselves, and watches their health streams.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use scbe_cli::progress::{Ended, RolloutProgress};
use scbe_cli::render;
use scbe_core::governance::{Operation, Stage};
use scbe_core::rollout::evidence::{HealthBody, HealthReport};
use scbe_core::rollout::health::HealthThresholds;
use scbe_wire::fleet_client;
use scbe_wire::governance_client::Client;
use scbe_wire::status_summary::StatusSummary;

use super::report::DemoSummary;
use super::{say, STEP_DEADLINE, VALIDATORS};
use crate::local::LocalCluster;

pub(super) struct Demo {
    pub(super) cluster: LocalCluster,
    pub(super) client: Client,
    pub(super) summary: DemoSummary,
    pub(super) thresholds: HealthThresholds,
    /// Agent keys, to verify what agents report to the demo.
    pub(super) agent_keys: BTreeMap<String, scbe_core::crypto::PublicKey>,
}

impl Demo {
    /// A client of the first validator that is up.
    pub(super) async fn reconnect(&mut self) -> anyhow::Result<()> {
        for i in 0..self.cluster.nodes.len() {
            if !self.cluster.is_running(i) {
                continue;
            }
            let key = scbe_wire::key_file::read_key_file(&self.cluster.requester_key)?;
            if let Ok(c) = Client::connect(&self.cluster.dial(i), Some(key)).await {
                self.client = c;
                return Ok(());
            }
        }
        bail!("no validator answers")
    }

    pub(super) async fn summary(&mut self) -> anyhow::Result<StatusSummary> {
        Ok(self.client.summary().await?)
    }

    pub(super) async fn submit(
        &mut self,
        op: &Operation,
    ) -> anyhow::Result<scbe_proto::v1::SubmitReply> {
        let start = Instant::now();
        let r = self.client.submit(op).await?;
        self.summary.submit_latencies.push(start.elapsed());
        if !r.accepted {
            bail!("{} was rejected: {}", op.name(), r.reasons.join("; "));
        }
        Ok(r)
    }

    /// Promotes and waits for the vote, printing each vote as it arrives. Returns the rollout.
    pub(super) async fn promote(
        &mut self,
        version: &str,
        to: Stage,
        rollback_to: &str,
    ) -> anyhow::Result<u64> {
        let r = self
            .submit(&Operation::Promote {
                version: version.into(),
                to,
                rollback_to: rollback_to.into(),
                pause_before: None,
                steps: Vec::new(),
            })
            .await?;
        let p = r.proposal.ok_or_else(|| anyhow!("no proposal opened"))?;
        say(
            "UM",
            &format!("proposal {p}: promote {version} to {to}, rollback plan {rollback_to} (decided at seq {})", r.seq),
        );
        let decided = self
            .client
            .wait_decision(p, STEP_DEADLINE, |v, vote| {
                say("RU", &format!("  {}", render::vote_line(v, vote)));
            })
            .await?;
        let (line, approved) = render::decision_text(&decided);
        say("RU", &line);
        self.summary.decisions.push(format!(
            "proposal {p} ({version} -> {to}): {}",
            decided.status.name()
        ));
        if !approved {
            bail!("the validators did not approve promoting {version} to {to}");
        }
        decided
            .rollout
            .ok_or_else(|| anyhow!("approved proposal {p} has no rollout"))
    }

    /// Follows a rollout with progress bars until it ends.
    pub(super) async fn follow(&mut self, rollout: u64) -> anyhow::Result<(Ended, StatusSummary)> {
        let mut bars = RolloutProgress::new(rollout);
        let start = Instant::now();
        loop {
            let s = match self.summary().await {
                Ok(s) => s,
                Err(_) => {
                    // The validator we talk to may just have been killed.
                    self.reconnect().await?;
                    continue;
                }
            };
            if let Some(end) = bars.update(&s) {
                return Ok((end, s));
            }
            if start.elapsed() > STEP_DEADLINE {
                bail!("rollout {rollout} did not end within {STEP_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What agent `i` runs, from the agent itself.
    pub(super) async fn agent_runs(&self, i: usize) -> anyhow::Result<String> {
        let ch = self
            .cluster
            .agent_channel(i, Duration::from_secs(5))
            .map_err(|e| anyhow!(e))?;
        Ok(fleet_client::describe(ch)
            .await
            .map_err(|e| anyhow!(e))?
            .current_version)
    }

    pub(super) async fn expect_agents(
        &mut self,
        which: &[usize],
        version: &str,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let mut wrong = Vec::new();
            for &i in which {
                let runs = self
                    .agent_runs(i)
                    .await
                    .unwrap_or_else(|e| format!("unreachable ({e})"));
                if runs != version {
                    wrong.push(format!("{} runs {runs}", self.cluster.agents[i].id));
                }
            }
            if wrong.is_empty() {
                self.summary
                    .checks
                    .push(format!("{} agents report {version}", which.len()));
                return Ok(());
            }
            if start.elapsed() > STEP_DEADLINE {
                bail!("expected {version}: {}", wrong.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) fn agent_index(&self, id: &str) -> Option<usize> {
        self.cluster.agents.iter().position(|a| a.id == id)
    }

    pub(super) fn print_health(&self, s: &StatusSummary, ids: &[String]) {
        for a in s.agents.iter().filter(|a| ids.contains(&a.id)) {
            let h = a.health.as_ref();
            say(
                "AV",
                &format!(
                    "  {:<9} {:<15} runs {:<6} coherence {:.3} errors {:.3} p95 {:>5.1} ms safety {:.3} over {} samples: {}",
                    a.id,
                    a.specialty,
                    a.version.as_deref().unwrap_or("-"),
                    h.map_or(0.0, |h| h.coherence),
                    h.map_or(0.0, |h| h.error_rate),
                    h.map_or(0.0, |h| h.response_ms_p95),
                    h.map_or(0.0, |h| h.safety),
                    h.map_or(0, |h| h.samples),
                    h.map_or("no data", |h| h.verdict.name()),
                ),
            );
        }
    }

    /// Follows a production rollout and SIGKILLs the primary once its first batch is recorded
    /// (mid-rollout, with orders still to deliver); returns how the rollout ended and the time
    /// from the kill to a new primary in a higher view.
    pub(super) async fn follow_with_failover(
        &mut self,
        rollout: u64,
    ) -> anyhow::Result<(Ended, Duration)> {
        let status = self.client.status(None).await?;
        let (old_view, primary) = (status.view, (status.view % VALIDATORS as u64) as usize);
        let mut bars = RolloutProgress::new(rollout);
        let start = Instant::now();
        let mut killed: Option<Instant> = None;
        let mut failover: Option<Duration> = None;
        loop {
            if start.elapsed() > STEP_DEADLINE {
                bail!("rollout {rollout} did not end within {STEP_DEADLINE:?}");
            }
            let s = match self.client.summary().await {
                Ok(s) => s,
                Err(_) => {
                    self.reconnect().await?;
                    continue;
                }
            };
            let done = s.rollout(rollout).map_or(0, |r| r.batches_done);
            if killed.is_none() && done >= 1 {
                bars.println(&format!(
                    "[KO] SIGKILL of validator {primary}, the primary of view {old_view}, in the middle of the rollout (batch {} next)",
                    done + 1
                ));
                self.cluster.kill(primary);
                killed = Some(Instant::now());
                self.reconnect().await?;
                continue;
            }
            if let (Some(k), None) = (killed, failover) {
                let st = self.client.status(None).await?;
                if st.view > old_view && st.status == "Normal" {
                    failover = Some(k.elapsed());
                    bars.println(&format!(
                        "[KO] view {} elected validator {} as primary {:.2} s after the kill; it resumes the rollout from the ledger",
                        st.view,
                        st.view % VALIDATORS as u64,
                        k.elapsed().as_secs_f64()
                    ));
                }
            }
            if let Some(end) = bars.update(&s) {
                if killed.is_none() {
                    bail!("the rollout ended before the primary could be killed");
                }
                let failover =
                    failover.ok_or_else(|| anyhow!("no new primary was seen after the kill"))?;
                return Ok((end, failover));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Watches the health streams of `agents` for the first sample over a threshold; returns
    /// when it was seen and prints degraded samples as they come.
    pub(super) fn watch_degradation(
        &self,
        agents: &[usize],
    ) -> tokio::sync::mpsc::Receiver<(Instant, HealthBody)> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        for &i in agents {
            let channel = self.cluster.agent_channel(i, Duration::from_secs(600));
            let genesis = self.cluster.genesis;
            let id = self.cluster.agents[i].id.clone();
            let key = self.agent_keys.get(&id).copied();
            let th = self.thresholds;
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(ch) = channel else {
                    return;
                };
                let Ok(mut stream) = fleet_client::health_stream(ch, &genesis, &[]).await else {
                    return;
                };
                while let Ok(Some(u)) = fleet_client::next_update(&mut stream).await {
                    let Some(Ok(report)) = u.report else { continue };
                    let report: HealthReport = report;
                    let Some(key) = key else { return };
                    let Ok(body) = report.open(|_| Some(&key)) else {
                        continue;
                    };
                    let bad = body.latest.last().is_some_and(|s| th.breach(s).is_some());
                    if bad && tx.send((Instant::now(), body)).await.is_err() {
                        return;
                    }
                }
            });
        }
        rx
    }
}
