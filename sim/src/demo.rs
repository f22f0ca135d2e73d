//! `scbe-sim demo`: the whole mission on one machine. Four validators and twelve agents (three
//! specialties, synthetic health) run as real processes on loopback; the demo then acts as a
//! release requester through the public gRPC API only, and narrates:
//!
//! 1. fuse the embedded provider manifests and check the gates (CA, RU);
//! 2. register a release and promote it staging -> canary -> production, showing the
//!    validators' votes and every batch live (UM, KO, AV);
//! 3. a second release whose canary degrades: the degraded samples, the auto-rollback decided
//!    on agent-signed evidence, every touched agent back on the old version, the reaction time
//!    (DR);
//! 4. a third release, with the primary killed (SIGKILL) in the middle of its production
//!    rollout: the new primary resumes it (KO);
//! 5. a summary, checked against the ledger and against what every agent says it runs.
//!
//! Every step has an expectation; the demo exits non-zero at the first one that fails, so it
//! is a smoke test too. What agents run is read from the agents themselves (`Describe`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use scbe_node::client::progress::{Ended, RolloutProgress};
use scbe_node::client::render;
use scbe_node::governance::{fuse, parse_manifest, Gates, Operation, Stage};
use scbe_node::local::{Launch, LocalCluster, LocalOptions};
use scbe_node::net::fleet_client;
use scbe_node::net::governance_client::Client;
use scbe_node::rollout::evidence::{HealthBody, HealthReport};
use scbe_node::rollout::health::HealthThresholds;
use serde_json::{json, Value};

/// The provider manifests, embedded so the demo needs no file outside the binary (a copy of
/// ../shared/examples/manifests kept under configs/examples/manifests).
const MANIFESTS: [(&str, &str); 3] = [
    (
        "hf_manifest.json",
        include_str!("../../configs/examples/manifests/hf_manifest.json"),
    ),
    (
        "gcp_manifest.json",
        include_str!("../../configs/examples/manifests/gcp_manifest.json"),
    ),
    (
        "aws_manifest.json",
        include_str!("../../configs/examples/manifests/aws_manifest.json"),
    ),
];

const VALIDATORS: usize = 4;
const AGENTS: usize = 12;
/// Waits for one step (generous: a busy 2-core machine runs 16 processes here).
const STEP_DEADLINE: Duration = Duration::from_secs(120);

pub struct DemoOptions {
    /// Keep keys, configs, data, logs and the summary here (a temporary directory otherwise).
    pub dir: Option<PathBuf>,
    /// Monitoring window of every batch.
    pub window: Duration,
    /// How often agents sample their health.
    pub sample_interval: Duration,
    /// The command that replays this run (printed at the end).
    pub replay: String,
}

/// What the demo measured and saw, printed as a table and saved as `summary.json`.
#[derive(Default)]
pub struct DemoSummary {
    pub submit_latencies: Vec<Duration>,
    pub reaction: Option<Duration>,
    pub failover: Option<Duration>,
    pub decisions: Vec<String>,
    pub checks: Vec<String>,
}

fn say(tag: &str, line: &str) {
    println!("[{tag}] {line}");
}

fn p50(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// Manifests as the embedded files, with `f` applied to the JSON text of each.
fn manifests(
    f: impl Fn(&str, &str) -> String,
) -> anyhow::Result<Vec<scbe_node::governance::Manifest>> {
    MANIFESTS
        .iter()
        .map(|(name, text)| parse_manifest(name, &f(name, text)).map_err(|e| anyhow!("{e}")))
        .collect()
}

/// A release fused from the example manifests under `version`, as `scbe-sim bench --workload
/// register` registers one per request. Each artifact gets its own training-run suffix (on its
/// id and URI) and its own metrics within the default gates, drawn from `seed`: releases of one
/// pipeline share their shape but not their content, so what the store makes of them (its
/// compression, above all) is not flattered by thousands of copies of one release.
pub(crate) fn bench_release(version: &str, seed: u64) -> scbe_node::governance::FusedRelease {
    use rand::{Rng as _, SeedableRng as _};
    // Parsed once: the bench fuses one release per request, and its clients share the cores
    // with the validators they measure.
    static PARSED: std::sync::OnceLock<Vec<scbe_node::governance::Manifest>> =
        std::sync::OnceLock::new();
    let mut manifests = PARSED
        .get_or_init(|| manifests(|_, t| t.to_string()).expect("the embedded manifests parse"))
        .clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Metrics as evaluation jobs report them: a few decimals, inside the gates.
    let mut draw =
        |lo: f64, hi: f64, scale: f64| (rng.random_range(lo..hi) * scale).round() / scale;
    for artifact in manifests.iter_mut().flat_map(|m| m.artifacts.iter_mut()) {
        let run = format!("-run-{:08x}", draw(0.0, f64::from(u32::MAX), 1.0) as u32);
        artifact.id.push_str(&run);
        artifact.uri.push_str(&run);
        artifact.metrics.quality = draw(0.80, 0.99, 1_000.0);
        artifact.metrics.safety = draw(0.95, 0.999, 1_000.0);
        artifact.metrics.latency_ms_p95 = draw(20.0, 200.0, 1.0);
        artifact.metrics.cost_per_1k_tokens = draw(0.05, 1.0, 1_000.0);
    }
    fuse(
        &manifests,
        Gates::default(),
        Some(version.into()),
        "bench".into(),
    )
    .0
    .expect("metrics drawn inside the default gates pass them")
}

struct Demo {
    cluster: LocalCluster,
    client: Client,
    summary: DemoSummary,
    thresholds: HealthThresholds,
    /// Agent keys, to verify what agents report to the demo.
    agent_keys: BTreeMap<String, scbe_node::crypto::PublicKey>,
}

impl Demo {
    /// A client of the first validator that is up.
    async fn reconnect(&mut self) -> anyhow::Result<()> {
        for i in 0..self.cluster.nodes.len() {
            if !self.cluster.is_running(i) {
                continue;
            }
            let key = scbe_node::config::read_key_file(&self.cluster.requester_key)?;
            if let Ok(c) = Client::connect(&self.cluster.url(i), Some(key)).await {
                self.client = c;
                return Ok(());
            }
        }
        bail!("no validator answers")
    }

    async fn summary_json(&mut self) -> anyhow::Result<Value> {
        Ok(self.client.summary().await?)
    }

    async fn submit(&mut self, op: &Operation) -> anyhow::Result<scbe_proto::v1::SubmitReply> {
        let start = Instant::now();
        let r = self.client.submit(op).await?;
        self.summary.submit_latencies.push(start.elapsed());
        if !r.accepted {
            bail!("{} was rejected: {}", op.name(), r.reasons.join("; "));
        }
        Ok(r)
    }

    /// Promotes and waits for the vote, printing each vote as it arrives. Returns the rollout.
    async fn promote(
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
            decided["status"].as_str().unwrap_or("?")
        ));
        if !approved {
            bail!("the validators did not approve promoting {version} to {to}");
        }
        decided["rollout"]
            .as_u64()
            .ok_or_else(|| anyhow!("approved proposal {p} has no rollout"))
    }

    /// Follows a rollout with progress bars until it ends.
    async fn follow(&mut self, rollout: u64) -> anyhow::Result<(Ended, Value)> {
        let mut bars = RolloutProgress::new(rollout);
        let start = Instant::now();
        loop {
            let s = match self.summary_json().await {
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
    async fn agent_runs(&self, i: usize) -> anyhow::Result<String> {
        let ch = fleet_client::channel(self.cluster.agents[i].addr, Duration::from_secs(5))
            .map_err(|e| anyhow!(e))?;
        Ok(fleet_client::describe(ch)
            .await
            .map_err(|e| anyhow!(e))?
            .current_version)
    }

    async fn expect_agents(&mut self, which: &[usize], version: &str) -> anyhow::Result<()> {
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

    fn agent_index(&self, id: &str) -> Option<usize> {
        self.cluster.agents.iter().position(|a| a.id == id)
    }

    fn print_health(&self, s: &Value, ids: &[String]) {
        for a in s["agents"].as_array().into_iter().flatten() {
            let Some(id) = a["id"].as_str() else { continue };
            if !ids.iter().any(|x| x == id) {
                continue;
            }
            let h = &a["health"];
            say(
                "AV",
                &format!(
                    "  {id:<9} {:<15} runs {:<6} coherence {:.3} errors {:.3} p95 {:>5.1} ms safety {:.3} over {} samples: {}",
                    a["specialty"].as_str().unwrap_or(""),
                    a["version"].as_str().unwrap_or("-"),
                    h["coherence"].as_f64().unwrap_or(0.0),
                    h["error_rate"].as_f64().unwrap_or(0.0),
                    h["response_ms_p95"].as_f64().unwrap_or(0.0),
                    h["safety"].as_f64().unwrap_or(0.0),
                    h["samples"],
                    h["verdict"].as_str().unwrap_or("no data"),
                ),
            );
        }
    }

    /// Follows a production rollout and SIGKILLs the primary once its first batch is recorded
    /// (mid-rollout, with orders still to deliver); returns how the rollout ended and the time
    /// from the kill to a new primary in a higher view.
    async fn follow_with_failover(&mut self, rollout: u64) -> anyhow::Result<(Ended, Duration)> {
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
            let done = s["rollouts"]
                .as_array()
                .and_then(|a| a.iter().find(|r| r["id"].as_u64() == Some(rollout)))
                .and_then(|r| r["batches_done"].as_u64())
                .unwrap_or(0);
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
    fn watch_degradation(
        &self,
        agents: &[usize],
    ) -> tokio::sync::mpsc::Receiver<(Instant, HealthBody)> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        for &i in agents {
            let addr = self.cluster.agents[i].addr;
            let id = self.cluster.agents[i].id.clone();
            let key = self.agent_keys.get(&id).copied();
            let th = self.thresholds;
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(ch) = fleet_client::channel(addr, Duration::from_secs(600)) else {
                    return;
                };
                let Ok(mut stream) = fleet_client::health_stream(ch).await else {
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

/// Runs the demo; an error names the step whose expectation failed.
pub async fn run(launch: &Launch, opts: &DemoOptions) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    let temp = tempfile::tempdir()?;
    let dir: PathBuf = opts
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let local = LocalOptions {
        request_timeout: Duration::from_millis(400),
        view_change_timeout: Duration::from_millis(800),
        status_interval: Duration::from_millis(200),
        checkpoint_interval: 16,
        agents: AGENTS,
        degrade: Some("bad".into()),
        degrade_after: 2,
        window: opts.window,
        sample_interval: opts.sample_interval,
        deploy_deadline: Duration::from_secs(8),
        breach_samples: 2,
        ..LocalOptions::default()
    };
    say("--", &format!(
        "starting {VALIDATORS} validators and {AGENTS} agents (3 specialties, synthetic health) on loopback in {}",
        dir.display()
    ));
    let mut cluster = LocalCluster::generate(launch, &dir, VALIDATORS, &local)?;
    cluster.start_all()?;
    let agent_keys = cluster
        .agents
        .iter()
        .map(|a| {
            let k = scbe_node::config::read_key_file(&dir.join(format!("keys/{}.key", a.id)))?;
            Ok((a.id.clone(), k.public()))
        })
        .collect::<anyhow::Result<_>>()?;
    let key = scbe_node::config::read_key_file(&cluster.requester_key)?;
    let client = loop {
        match Client::connect(&cluster.url(0), Some(key.clone())).await {
            Ok(c) => break c,
            Err(_) if started.elapsed() < STEP_DEADLINE => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e).context("validator 0 does not start"),
        }
    };
    let min_samples = (opts.window.as_millis() / opts.sample_interval.as_millis().max(1)) as u32;
    let mut d = Demo {
        cluster,
        client,
        summary: DemoSummary::default(),
        thresholds: HealthThresholds {
            min_samples,
            breach_samples: 2,
            ..HealthThresholds::default()
        },
        agent_keys,
    };
    // Every agent reports before anything is proposed.
    let start = Instant::now();
    loop {
        if let Ok(s) = d.summary_json().await {
            if s["fleet"]["agents_reporting"].as_u64() == Some(AGENTS as u64) {
                break;
            }
        }
        if start.elapsed() > STEP_DEADLINE {
            bail!("the fleet did not come up: see {}/logs", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say(
        "--",
        &format!(
            "quorum and fleet up in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    );

    // 1. Build and test.
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let (release, report) = fuse(
        &manifests(|_, t| t.to_string())?,
        Gates::default(),
        Some("r1".into()),
        now.clone(),
    );
    for line in report.to_text().lines() {
        say("RU", line);
    }
    let release = release.ok_or_else(|| anyhow!("the example manifests did not pass the gates"))?;
    say(
        "CA",
        &format!(
            "fused release {} ({}), sha256:{}",
            release.version, release.fused_model_id, release.digest
        ),
    );
    let r = d.submit(&Operation::RegisterRelease { release }).await?;
    say(
        "UM",
        &format!("r1 registered and in staging (decided at seq {})", r.seq),
    );

    // 2. Canary, then production.
    let rollout = d.promote("r1", Stage::Canary, "v0").await?;
    let (end, s) = d.follow(rollout).await?;
    if end != Ended::Completed {
        bail!("the canary of r1 did not complete: {end:?}");
    }
    let canary_ids: Vec<String> = s["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["assigned"] == "r1")
        .filter_map(|a| a["id"].as_str().map(String::from))
        .collect();
    say(
        "AV",
        &format!(
            "canary healthy on {} agents (one per specialty):",
            canary_ids.len()
        ),
    );
    d.print_health(&s, &canary_ids);
    let canary_idx: Vec<usize> = canary_ids
        .iter()
        .filter_map(|id| d.agent_index(id))
        .collect();
    d.expect_agents(&canary_idx, "r1").await?;
    let rollout = d.promote("r1", Stage::Production, "v0").await?;
    let (end, s) = d.follow(rollout).await?;
    if end != Ended::Completed {
        bail!("the production rollout of r1 did not complete: {end:?}");
    }
    let all: Vec<usize> = (0..AGENTS).collect();
    d.expect_agents(&all, "r1").await?;
    say("AV", &format!(
        "r1 serves production on all {AGENTS} agents · fleet safety min {:.3} · {:.0} tasks/min · consensus rate {:.2}",
        s["fleet"]["safety_score_min"].as_f64().unwrap_or(0.0),
        s["fleet"]["task_throughput"].as_f64().unwrap_or(0.0),
        s["fleet"]["consensus_rate"].as_f64().unwrap_or(0.0)
    ));

    // 3. A release whose canary degrades.
    let bad = manifests(|name, t| {
        if name.starts_with("hf") {
            t.replace("textgen-lora-v1", "textgen-bad-v2")
        } else {
            t.to_string()
        }
    })?;
    let (release, _) = fuse(&bad, Gates::default(), Some("r2".into()), now.clone());
    let release = release.ok_or_else(|| anyhow!("the second release did not pass the gates"))?;
    say(
        "CA",
        &format!(
            "fused release r2 with hf unit {} (it passes the gates; in service it degrades)",
            release.units.values().next().map_or("", |u| u.id.as_str())
        ),
    );
    d.submit(&Operation::RegisterRelease { release }).await?;
    let mut degraded = d.watch_degradation(&canary_idx);
    let rollout = d.promote("r2", Stage::Canary, "r1").await?;
    let (end, s) = d.follow(rollout).await?;
    let Ended::RolledBack(why) = end else {
        bail!("the degrading canary of r2 was not rolled back: {end:?}");
    };
    let mut first: Option<Instant> = None;
    while let Ok((at, b)) = degraded.try_recv() {
        if first.is_none() {
            let s = b.latest.last();
            say(
                "AV",
                &format!(
                    "first degraded sample: {} on {}: coherence {:.3} errors {:.3} p95 {:.0} ms",
                    b.agent,
                    b.version,
                    s.map_or(0.0, |x| x.coherence),
                    s.map_or(0.0, |x| x.error_rate),
                    s.map_or(0.0, |x| x.response_ms)
                ),
            );
        }
        first = Some(first.map_or(at, |f: Instant| f.min(at)));
    }
    say(
        "DR",
        &format!("auto-rollback decided on agent-signed evidence: {why}"),
    );
    d.expect_agents(&canary_idx, "r1").await?;
    let back = Instant::now();
    if let Some(f) = first {
        let reaction = back.saturating_duration_since(f);
        d.summary.reaction = Some(reaction);
        say(
            "DR",
            &format!(
                "every touched agent back on r1 {:.2} s after the first degraded sample",
                reaction.as_secs_f64()
            ),
        );
    }
    drop(s);

    // 4. A third release; the primary dies in the middle of its production rollout.
    let (release, _) = fuse(
        &manifests(|_, t| t.to_string())?,
        Gates::default(),
        Some("r3".into()),
        now,
    );
    let release = release.ok_or_else(|| anyhow!("the third release did not pass the gates"))?;
    d.submit(&Operation::RegisterRelease { release }).await?;
    let rollout = d.promote("r3", Stage::Canary, "r1").await?;
    if d.follow(rollout).await?.0 != Ended::Completed {
        bail!("the canary of r3 did not complete");
    }
    let rollout = d.promote("r3", Stage::Production, "r1").await?;
    let (end, failover) = d.follow_with_failover(rollout).await?;
    d.summary.failover = Some(failover);
    if end != Ended::Completed {
        bail!("the production rollout of r3 did not complete after the failover: {end:?}");
    }
    d.expect_agents(&all, "r3").await?;

    // 5. Summary, checked against the ledger and the agents.
    let s = d.summary_json().await?;
    let status = d.client.status(None).await?;
    std::fs::write(dir.join("status.json"), serde_json::to_string_pretty(&s)?)?;
    check_against_ledger(&s, &mut d.summary)?;
    print_summary(&d, &s, &status, started.elapsed(), &opts.replay);
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary_json(&d.summary, &s))?,
    )?;
    Ok(std::mem::take(&mut d.summary))
}

/// The narration's claims, held against the ledger's own summary.
fn check_against_ledger(s: &Value, summary: &mut DemoSummary) -> anyhow::Result<()> {
    let expect = |ok: bool, what: &str| -> anyhow::Result<()> {
        if ok {
            Ok(())
        } else {
            Err(anyhow!("the ledger does not show: {what}\n{s:#}"))
        }
    };
    expect(s["current"]["production"] == "r3", "r3 in production")?;
    expect(
        s["current"].get("canary").is_none(),
        "no release left in canary",
    )?;
    let known: Vec<&str> = s["known_good"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    expect(
        known.contains(&"r1") && known.contains(&"r3") && !known.contains(&"r2"),
        "r1 and r3 known good, r2 not",
    )?;
    expect(s["releases"]["r2"] == "staging", "r2 back in staging")?;
    let statuses: Vec<&str> = s["rollouts"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .filter_map(|r| r["status"].as_str())
        .collect();
    expect(
        statuses
            == [
                "completed",
                "completed",
                "rolled_back",
                "completed",
                "completed",
            ],
        "rollouts completed, completed, rolled back, completed, completed",
    )?;
    let assigned_r3 = s["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|a| a["assigned"] == "r3");
    expect(assigned_r3, "every agent assigned r3")?;
    summary
        .checks
        .push("ledger: r3 in production, r2 rolled back to staging, 5 rollouts as narrated".into());
    Ok(())
}

fn summary_json(d: &DemoSummary, s: &Value) -> Value {
    json!({
        "current": s["current"],
        "rollouts": s["rollouts"].as_array().into_iter().flatten().rev().map(|r| json!({
            "id": r["id"], "version": r["version"], "stage": r["stage"], "status": r["status"],
        })).collect::<Vec<_>>(),
        "agents": s["agents"].as_array().into_iter().flatten().map(|a| json!({
            "id": a["id"], "runs": a["version"], "assigned": a["assigned"],
        })).collect::<Vec<_>>(),
        "decisions": d.decisions,
        "p50_submit_to_decided_ms": p50(&d.submit_latencies).map(|x| x.as_secs_f64() * 1e3),
        "submits": d.submit_latencies.len(),
        "failover_ms": d.failover.map(|x| x.as_secs_f64() * 1e3),
        "rollback_reaction_ms": d.reaction.map(|x| x.as_secs_f64() * 1e3),
        "checks": d.checks,
    })
}

fn print_summary(
    d: &Demo,
    s: &Value,
    status: &scbe_proto::v1::StatusReply,
    took: Duration,
    replay: &str,
) {
    println!();
    println!("== summary ({:.1} s) ==", took.as_secs_f64());
    println!(
        "stages:     production {}  ·  canary {}",
        s["current"]["production"].as_str().unwrap_or("-"),
        s["current"]["canary"].as_str().unwrap_or("none")
    );
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in s["agents"].as_array().into_iter().flatten() {
        runs.entry(a["version"].as_str().unwrap_or("no data").to_string())
            .or_default()
            .push(a["id"].as_str().unwrap_or("").to_string());
    }
    for (v, ids) in runs {
        println!("agents on {v}: {} ({})", ids.len(), ids.join(", "));
    }
    println!("decisions:");
    for line in &d.summary.decisions {
        println!("  {line}");
    }
    println!("rollouts:");
    for r in s["rollouts"].as_array().into_iter().flatten().rev() {
        println!("  {}", render::rollout_line(r).replace('\n', "\n  "));
    }
    let ms = |x: Option<Duration>| {
        x.map_or("-".to_string(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1e3)
        })
    };
    println!("| measure | value |\n|---|---|");
    println!(
        "| p50 submit-to-decided ({} submits) | {} |",
        d.summary.submit_latencies.len(),
        ms(p50(&d.summary.submit_latencies))
    );
    println!(
        "| failover: SIGKILL of the primary to a new primary in view {} | {} |",
        status.view,
        ms(d.summary.failover)
    );
    println!("| rollback reaction: first degraded sample to every touched agent on the old version | {} |", ms(d.summary.reaction));
    println!("checks passed:");
    for c in &d.summary.checks {
        println!("  ok  {c}");
    }
    println!("replay: {replay}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_releases_pass_the_gates_differ_by_seed_and_are_about_a_kilobyte() {
        let release = super::bench_release("b1", 7);
        assert_eq!(release.version, "b1");
        assert_eq!(
            release,
            super::bench_release("b1", 7),
            "a seed gives one release"
        );
        let other = super::bench_release("b1", 8);
        assert_ne!(release.units, other.units, "another seed gives other units");
        release.verify().expect("its digest holds");
        let op = scbe_node::governance::Operation::RegisterRelease { release };
        let bytes = op.to_bytes().len();
        // What `scbe-sim bench --workload register` sends per request (BENCHMARKS.md quotes it).
        assert!((1_000..1_150).contains(&bytes), "{bytes} bytes");
    }
}
