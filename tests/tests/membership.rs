//! Membership by governance, end to end with real processes: a running cluster with 3 agents
//! admits a 4th by `scbe propose agent add` (validators vote; none restarts), and the next
//! production rollout reaches all 4; a removal approved the same way takes it out of every
//! validator's fleet (that later plans leave it out is a ledger test:
//! `scbe_core::governance::ledger_membership_tests`); new gates by `scbe propose settings`;
//! a requester admitted by `scbe propose requester add` and removed again.

use std::process::Command;
use std::time::Duration;

use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::RolloutStatus;
use scbe_core::governance::Stage;
use scbe_proto::v1 as pb;
use scbe_sim::local::LocalOptions;
use scbe_tests::{fleet_options, rollout_is, Harness};
use scbe_wire::key_file::encode_hex;

const ROLLOUT_DEADLINE: Duration = Duration::from_secs(90);

/// Kills the process when dropped, also when the test fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scbe(h: &Harness, args: &[&str]) -> (Option<i32>, String) {
    h.scbe_text(1, args)
}

/// What the agent holding `key` at `addr` runs (over TLS pinned to that key).
async fn current_version(h: &Harness, key: PublicKey, addr: &str) -> Option<String> {
    let link = h.cluster.agent_link(key).ok()?;
    let ch = scbe_wire::fleet_client::channel(&link, addr, Duration::from_secs(5)).ok()?;
    let mut c = pb::fleet_agent_client::FleetAgentClient::new(ch);
    let d = c.describe(pb::DescribeRequest {}).await.ok()?.into_inner();
    Some(d.current_version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_admitted_by_proposal_gets_the_next_production_rollout() {
    let mut h = Harness::start(LocalOptions {
        agents: 3,
        ..fleet_options()
    })
    .await;
    h.status(0, None).await;

    // The new agent's operator: a key, a config like agent-00's with its own id, specialty
    // and port, and the daemon started before it is admitted (it waits to be).
    let dir = h.cluster.dir.clone();
    let key = scbe_wire::key_file::write_new_key(&dir.join("keys/agent-new.key")).expect("key");
    let addr = scbe_sim::local::free_port().expect("port");
    let template = std::fs::read_to_string(&h.cluster.agents[0].config).expect("agent-00.toml");
    let listen = format!("listen = \"{}\"", h.cluster.agents[0].addr);
    assert!(template.contains(&listen), "{template}");
    // Its own metrics port too: agent-00's is taken (a copied config that keeps it fails to
    // start, naming the address in its log).
    let metrics = h.cluster.agents[0]
        .metrics
        .map(|m| format!("metrics_listen = \"{m}\""))
        .expect("local agents serve metrics");
    assert!(template.contains(&metrics), "{template}");
    let own_metrics = scbe_sim::local::free_port().expect("port");
    let config = template
        .replace(&listen, &format!("listen = \"{addr}\""))
        .replace(&metrics, &format!("metrics_listen = \"{own_metrics}\""))
        .replace("agent-00", "agent-new")
        .replacen(
            "id = \"agent-new\"",
            "id = \"agent-new\"\nspecialty = \"textgen\"",
            1,
        );
    std::fs::write(dir.join("agent-new.toml"), config).expect("write");
    let log = std::fs::File::create(dir.join("logs/agent-new.log")).expect("log");
    let _agent = Child(
        Command::new(scbe_tests::workspace_bin("scbe-agent"))
            .args(["run", "--config"])
            .arg(dir.join("agent-new.toml"))
            .current_dir(&dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn"),
    );

    let (code, text) = scbe(
        &h,
        &[
            "propose",
            "agent",
            "add",
            "--id",
            "agent-new",
            "--specialty",
            "textgen",
            "--public-key",
            &encode_hex(key.public().as_bytes()),
            "--address",
            &addr.to_string(),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("APPROVED") && text.matches("all checks pass").count() >= 3,
        "{text}"
    );
    let s = h
        .wait_summary(0, "the fleet lists it", ROLLOUT_DEADLINE, |s| {
            s.agents
                .iter()
                .any(|a| a.id == "agent-new" && a.health.is_some())
        })
        .await;
    assert_eq!(s.agents.len(), 4);

    // A proposal that cannot apply is rejected by the proposer's checks, exit 1.
    let (code, text) = scbe(&h, &["propose", "agent", "remove", "--id", "nobody"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not in the fleet"), "{text}");

    h.register_and_promote("r1", Stage::Canary).await;
    h.wait_summary(1, "canary completed", ROLLOUT_DEADLINE, |s| {
        rollout_is(s, 0, RolloutStatus::Completed)
    })
    .await;
    h.register_and_promote("r1", Stage::Production).await;
    let s = h
        .wait_summary(2, "production completed", ROLLOUT_DEADLINE, |s| {
            rollout_is(s, 1, RolloutStatus::Completed)
        })
        .await;
    assert_eq!(s.serving(Stage::Production), Some("r1"));
    for i in 0..3 {
        assert_eq!(h.describe(i).await.current_version, "r1", "agent {i}");
    }
    assert_eq!(
        current_version(&h, key.public(), &addr.to_string())
            .await
            .as_deref(),
        Some("r1"),
        "the admitted agent runs the production release"
    );
    for i in 0..4 {
        assert_eq!(
            h.status(i, None).await.view,
            0,
            "validator {i}: no restart, no failover needed"
        );
    }

    // Removed the same way: the next plan leaves it out.
    let (code, text) = scbe(&h, &["propose", "agent", "remove", "--id", "agent-new"]);
    assert_eq!(code, Some(0), "{text}");
    let s = h
        .wait_summary(0, "the fleet no longer lists it", ROLLOUT_DEADLINE, |s| {
            s.agents.len() == 3
        })
        .await;
    assert!(s.agents.iter().all(|a| a.id != "agent-new"));

    // New gates by proposal, with no restart: every validator reports them in force.
    let (code, text) = scbe(
        &h,
        &[
            "propose",
            "settings",
            "--min-quality",
            "0.85",
            "--breach-samples",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("APPROVED") && text.contains("all checks pass"),
        "{text}"
    );
    for i in 0..4 {
        let s = h
            .wait_summary(i, "the new gates in force", ROLLOUT_DEADLINE, |s| {
                s.settings.gates.min_quality == 0.85
            })
            .await;
        assert_eq!(s.settings.health.breach_samples, 3, "validator {i}");
    }
    let (code, text) = scbe(&h, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("quality >= 0.85"), "{text}");
    // Past a floor no vote can cross: refused by the checks, exit 1, naming the floor.
    let (code, text) = scbe(&h, &["propose", "settings", "--min-safety", "0.5"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("min_safety 0.5 is outside what a proposal may set"),
        "{text}"
    );

    // A requester admitted by proposal, with no restart: its key (from `scbe keygen`) is
    // refused at the door until the validators approve it, heard from then on, and refused
    // again once removed the same way.
    let carol = h.cluster.dir.join("keys/carol.key");
    let carol_arg = carol.to_str().expect("a UTF-8 path");
    let (code, text) = scbe(&h, &["keygen", "--out", carol_arg]);
    assert_eq!(code, Some(0), "{text}");
    let carol_hex = text
        .split_whitespace()
        .last()
        .expect("a public key")
        .to_string();
    let as_carol = |args: &[&str]| {
        let mut all = vec!["--key", carol_arg];
        all.extend_from_slice(args);
        scbe(&h, &all)
    };
    let new_gates = ["propose", "settings", "--min-quality", "0.86"];
    let (code, text) = as_carol(&new_gates);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("is not a requester of this cluster")
            && text.contains("scbe propose requester add"),
        "{text}"
    );
    let add = [
        "propose",
        "requester",
        "add",
        "--name",
        "carol",
        "--public-key",
        &carol_hex,
    ];
    let (code, text) = scbe(&h, &add);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("APPROVED"), "{text}");
    let (code, text) = as_carol(&new_gates);
    assert_eq!(code, Some(0), "carol is heard: {text}");
    assert!(text.contains("APPROVED"), "{text}");
    // `scbe status` (asking the validator that reported the approval) lists her.
    let listed = format!("carol ({})", &carol_hex[..16]);
    let (code, text) = scbe(&h, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&listed), "{text}");
    let (code, text) = scbe(&h, &["propose", "requester", "remove", "--name", "carol"]);
    assert_eq!(code, Some(0), "{text}");
    let (_, text) = scbe(&h, &["status"]);
    assert!(!text.contains(&listed), "removed: {text}");
    let (code, text) = as_carol(&["propose", "settings", "--min-quality", "0.87"]);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("is not a requester of this cluster"),
        "{text}"
    );
    // The last requester cannot remove itself: nobody could propose again.
    let (code, text) = scbe(&h, &["propose", "requester", "remove", "--name", "local"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the last requester cannot be removed"),
        "{text}"
    );
}
