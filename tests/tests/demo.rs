//! The main job as a smoke test: `scbe-sim demo --fast` must pass, and what its summary claims
//! must be what the ledger holds (its final status JSON) and what the agents run.

use std::process::Command;

use scbe_core::governance::ledger::{ProposalStatus, RolloutStatus};
use scbe_core::governance::Stage;
use scbe_tests::StatusSummary;
use serde_json::Value;

fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_demo_passes_and_its_summary_matches_the_ledger() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(scbe_tests::workspace_bin("scbe-sim"))
        .args(["demo", "--fast", "--dir"])
        .arg(dir.path())
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("demo passed"), "{stdout}");
    let summary: Value = read(&dir.path().join("summary.json"));
    let ledger: StatusSummary = read(&dir.path().join("status.json"));
    assert_eq!(
        summary["current"]["production"].as_str(),
        ledger.serving(Stage::Production)
    );
    assert_eq!(ledger.serving(Stage::Production), Some("r3"));
    // Every agent: what the summary says it runs = what it reported to the ledger's monitor =
    // what the ledger put it on.
    assert_eq!(ledger.agents.len(), 12);
    for a in summary["agents"].as_array().expect("agents") {
        let l = ledger
            .agents
            .iter()
            .find(|x| a["id"] == x.id.as_str())
            .expect("same agent");
        assert_eq!(a["runs"].as_str(), l.version.as_deref(), "{a}");
        assert_eq!(l.version.as_deref(), Some("r3"), "{l:?}");
        assert_eq!(l.assigned.as_deref(), Some("r3"), "{l:?}");
    }
    let mut in_summary: Vec<(u64, String)> = summary["rollouts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["id"].as_u64().unwrap_or(0),
                r["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    in_summary.sort();
    let mut in_ledger: Vec<(u64, RolloutStatus)> =
        ledger.rollouts.iter().map(|r| (r.id, r.status)).collect();
    in_ledger.sort_by_key(|(id, _)| *id);
    assert_eq!(
        in_summary
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>(),
        in_ledger.iter().map(|(_, s)| s.name()).collect::<Vec<_>>()
    );
    assert_eq!(
        in_ledger.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [
            RolloutStatus::Completed,
            RolloutStatus::Completed,
            RolloutStatus::RolledBack,
            RolloutStatus::Completed,
            RolloutStatus::Completed
        ]
    );
    let approved = ledger
        .proposals
        .iter()
        .filter(|p| p.status == ProposalStatus::Approved)
        .count();
    assert_eq!(
        summary["decisions"].as_array().map(Vec::len),
        Some(approved)
    );
    assert!(
        summary["failover_ms"].as_f64().is_some_and(|x| x > 0.0),
        "{summary}"
    );
    assert!(
        summary["rollback_reaction_ms"]
            .as_f64()
            .is_some_and(|x| x > 0.0),
        "{summary}"
    );
}
