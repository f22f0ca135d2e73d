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
//! 4. a release that drifts: worse than the agents still on r1 yet inside every threshold,
//!    rolled back by the canary's comparison with its baseline, naming the metric, the medians
//!    and the p-value (AV, DR);
//! 5. a third release, with the primary killed (SIGKILL) in the middle of its production
//!    rollout: the new primary resumes it (KO);
//! 6. a summary, checked against the ledger and against what every agent says it runs.
//!
//! Every step has an expectation; the demo exits non-zero at the first one that fails, so it
//! is a smoke test too. What agents run is read from the agents themselves (`Describe`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use scbe_cli::progress::Ended;
use scbe_core::governance::{fuse, Gates, Operation, Stage};
use scbe_core::rollout::health::HealthThresholds;
use scbe_wire::governance_client::Client;

use crate::local::{Launch, LocalCluster, LocalOptions};
use crate::releases::manifests;

mod narrator;
mod report;

use narrator::Demo;
pub use report::DemoSummary;
use report::{check_against_ledger, print_summary, summary_json};

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

fn say(tag: &str, line: &str) {
    println!("[{tag}] {line}");
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
        drift: Some("drift".into()),
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
    if let Some(url) = cluster.nodes.first().and_then(|n| n.dashboard_url()) {
        say(
            "--",
            &format!("dashboard (live while the demo runs): {url}"),
        );
    }
    let agent_keys = cluster
        .agents
        .iter()
        .map(|a| {
            let k = scbe_wire::key_file::read_key_file(&dir.join(format!("keys/{}.key", a.id)))?;
            Ok((a.id.clone(), k.public()))
        })
        .collect::<anyhow::Result<_>>()?;
    let key = scbe_wire::key_file::read_key_file(&cluster.requester_key)?;
    let client = loop {
        match Client::connect(&cluster.dial(0), Some(key.clone())).await {
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
        if let Ok(s) = d.summary().await {
            if s.fleet.agents_reporting == AGENTS {
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
    let canary_ids: Vec<String> = s
        .agents
        .iter()
        .filter(|a| a.assigned.as_deref() == Some("r1"))
        .map(|a| a.id.clone())
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
        s.fleet.safety_score_min,
        s.fleet.task_throughput,
        s.fleet.consensus_rate
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

    // 4. A release that drifts: inside every threshold, worse than its baseline.
    let (release, _) = fuse(
        &manifests(|_, t| t.to_string())?,
        Gates::default(),
        Some("r2-drift".into()),
        now.clone(),
    );
    let release = release.ok_or_else(|| anyhow!("the drifting release did not pass the gates"))?;
    say(
        "CA",
        "fused release r2-drift (it passes the gates; in service it is a little worse than r1 on \
         every metric, yet inside every threshold)",
    );
    d.submit(&Operation::RegisterRelease { release }).await?;
    let rollout = d.promote("r2-drift", Stage::Canary, "r1").await?;
    let (end, s) = d.follow(rollout).await?;
    let Ended::RolledBack(why) = end else {
        bail!("the drifting canary of r2-drift was not rolled back: {end:?}");
    };
    if !why.starts_with("canary worse than its baseline") {
        bail!("r2-drift was rolled back, but not by the comparison: {why}");
    }
    let comparison = s
        .rollouts
        .iter()
        .find(|r| r.id == rollout)
        .and_then(|r| r.comparison.clone())
        .ok_or_else(|| anyhow!("rollout {rollout} carries no comparison"))?;
    say(
        "AV",
        "canary against its baseline (the agents of the same specialties still on r1):",
    );
    for m in &comparison.metrics {
        say("AV", &format!("  {}", m.describe()));
    }
    say("DR", &format!("rolled back by the comparison: {why}"));
    d.expect_agents(&canary_idx, "r1").await?;
    drop(s);

    // 5. A third release; the primary dies in the middle of its production rollout.
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

    // 6. Summary, checked against the ledger and the agents.
    let s = d.summary().await?;
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
