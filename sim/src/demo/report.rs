//! What the demo measured and saw: its claims held against the ledger's own summary, the table
//! it prints at the end, and `summary.json`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::anyhow;
use scbe_cli::render;
use scbe_core::governance::ledger::RolloutStatus;
use scbe_core::governance::Stage;
use scbe_wire::status_summary::StatusSummary;
use serde_json::{json, Value};

use super::narrator::Demo;

/// What the demo measured and saw, printed as a table and saved as `summary.json`.
#[derive(Default)]
pub struct DemoSummary {
    pub submit_latencies: Vec<Duration>,
    pub reaction: Option<Duration>,
    pub failover: Option<Duration>,
    pub decisions: Vec<String>,
    pub checks: Vec<String>,
}

pub(super) fn p50(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// The narration's claims, held against the ledger's own summary.
pub(super) fn check_against_ledger(
    s: &StatusSummary,
    summary: &mut DemoSummary,
) -> anyhow::Result<()> {
    let expect = |ok: bool, what: &str| -> anyhow::Result<()> {
        if ok {
            Ok(())
        } else {
            Err(anyhow!(
                "the ledger does not show: {what}\n{}",
                serde_json::to_string_pretty(s).unwrap_or_default()
            ))
        }
    };
    expect(
        s.serving(Stage::Production) == Some("r3"),
        "r3 in production",
    )?;
    expect(
        s.serving(Stage::Canary).is_none(),
        "no release left in canary",
    )?;
    let known = &s.known_good;
    expect(
        known.contains("r1")
            && known.contains("r3")
            && !known.contains("r2")
            && !known.contains("r2-drift"),
        "r1 and r3 known good, r2 and r2-drift not",
    )?;
    expect(
        s.releases.get("r2") == Some(&Stage::Staging)
            && s.releases.get("r2-drift") == Some(&Stage::Staging),
        "r2 and r2-drift back in staging",
    )?;
    let statuses: Vec<RolloutStatus> = s.rollouts.iter().rev().map(|r| r.status).collect();
    expect(
        statuses
            == [
                RolloutStatus::Completed,
                RolloutStatus::Completed,
                RolloutStatus::RolledBack,
                RolloutStatus::RolledBack,
                RolloutStatus::Completed,
                RolloutStatus::Completed,
            ],
        "rollouts completed, completed, rolled back, rolled back, completed, completed",
    )?;
    let assigned_r3 = s.agents.iter().all(|a| a.assigned.as_deref() == Some("r3"));
    expect(assigned_r3, "every agent assigned r3")?;
    summary.checks.push(
        "ledger: r3 in production, r2 and r2-drift rolled back to staging, 6 rollouts as narrated"
            .into(),
    );
    Ok(())
}

/// `summary.json`: the demo's figures and decisions beside what the ledger says each agent
/// runs and which rollouts it decided.
pub(super) fn summary_json(d: &DemoSummary, s: &StatusSummary) -> Value {
    json!({
        "current": s.current,
        "rollouts": s.rollouts.iter().rev().map(|r| json!({
            "id": r.id, "version": r.version, "stage": r.stage, "status": r.status,
        })).collect::<Vec<_>>(),
        "agents": s.agents.iter().map(|a| json!({
            "id": a.id, "runs": a.version, "assigned": a.assigned,
        })).collect::<Vec<_>>(),
        "decisions": d.decisions,
        "p50_submit_to_decided_ms": p50(&d.submit_latencies).map(|x| x.as_secs_f64() * 1e3),
        "submits": d.submit_latencies.len(),
        "failover_ms": d.failover.map(|x| x.as_secs_f64() * 1e3),
        "rollback_reaction_ms": d.reaction.map(|x| x.as_secs_f64() * 1e3),
        "checks": d.checks,
    })
}

pub(super) fn print_summary(
    d: &Demo,
    s: &StatusSummary,
    status: &scbe_proto::v1::StatusReply,
    took: Duration,
    replay: &str,
) {
    println!();
    println!("== summary ({:.1} s) ==", took.as_secs_f64());
    println!(
        "stages:     production {}  ·  canary {}",
        s.serving(Stage::Production).unwrap_or("-"),
        s.serving(Stage::Canary).unwrap_or("none")
    );
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in &s.agents {
        runs.entry(a.version.clone().unwrap_or_else(|| "no data".into()))
            .or_default()
            .push(a.id.clone());
    }
    for (v, ids) in runs {
        println!("agents on {v}: {} ({})", ids.len(), ids.join(", "));
    }
    println!("decisions:");
    for line in &d.summary.decisions {
        println!("  {line}");
    }
    println!("rollouts:");
    for r in s.rollouts.iter().rev() {
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
