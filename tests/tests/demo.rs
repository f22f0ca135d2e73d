//! The main job as a smoke test: `scbe-sim demo --fast` must pass, and what its summary claims
//! must be what the ledger holds (its final status JSON) and what the agents run.

use std::process::Command;

use serde_json::Value;

fn read(path: &std::path::Path) -> Value {
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
    let summary = read(&dir.path().join("summary.json"));
    let ledger = read(&dir.path().join("status.json"));
    assert_eq!(summary["current"], ledger["current"]);
    assert_eq!(summary["current"]["production"], "r3");
    // Every agent: what the summary says it runs = what it reported to the ledger's monitor =
    // what the ledger put it on.
    let agents = ledger["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 12);
    for a in summary["agents"].as_array().expect("agents") {
        let l = agents
            .iter()
            .find(|x| x["id"] == a["id"])
            .expect("same agent");
        assert_eq!(a["runs"], l["version"], "{a}");
        assert_eq!(l["version"], "r3", "{l}");
        assert_eq!(l["assigned"], "r3", "{l}");
    }
    let statuses = |v: &Value| -> Vec<String> {
        let mut s: Vec<(u64, String)> = v["rollouts"]
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
        s.sort();
        s.into_iter().map(|(_, x)| x).collect()
    };
    assert_eq!(statuses(&summary), statuses(&ledger));
    assert_eq!(
        statuses(&ledger),
        [
            "completed",
            "completed",
            "rolled_back",
            "completed",
            "completed"
        ]
    );
    let approved = ledger["proposals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"] == "approved")
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
