//! One genesis for the whole cluster, checked, never assumed: the walkthrough's split (one
//! operator added an agent to one validator's copy) is now refused at the link, with both
//! digests and the peer named in `scbe status`, while the others keep deciding; and a data
//! directory written under one genesis does not open under another.

use std::process::Command;

use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::ProposalStatus;
use scbe_core::governance::Operation;
use scbe_sim::local::{LocalOptions, GENESIS};
use scbe_tests::{release, Harness};
use scbe_wire::key_file::encode_hex;

/// Validator 3's operator added an agent to their copy of the genesis.
fn split_validator_3(c: &scbe_sim::local::LocalCluster) {
    let mut file = scbe_wire::genesis::Genesis::load(&c.dir.join(GENESIS))
        .expect("genesis")
        .file()
        .clone();
    file.agents.push(scbe_wire::genesis_file::AgentEntry {
        id: "agent-extra".into(),
        specialty: "textgen".into(),
        public_key: encode_hex(Keypair::from_label("extra").public().as_bytes()),
        address: None,
    });
    let edited = scbe_wire::genesis::Genesis::render(&file);
    run_under(c, &c.nodes[3].config, "genesis-edited.toml", edited);
}

/// Writes `text` as `name` in the cluster's directory and points `config` (a node.toml or an
/// agent.toml) at it instead of the cluster's genesis.
fn run_under(
    c: &scbe_sim::local::LocalCluster,
    config: &std::path::Path,
    name: &str,
    text: String,
) {
    std::fs::write(c.dir.join(name), text).expect("write genesis");
    let before = std::fs::read_to_string(config).expect("config");
    let after = before.replace(
        &format!("genesis = \"{GENESIS}\""),
        &format!("genesis = \"{name}\""),
    );
    assert_ne!(
        before,
        after,
        "{} names the cluster's genesis",
        config.display()
    );
    std::fs::write(config, after).expect("write config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_with_an_edited_genesis_is_refused_and_the_others_keep_deciding() {
    let mut h = Harness::start_with(LocalOptions::default(), split_validator_3).await;
    let ours = h.cluster.genesis;
    let theirs = scbe_wire::genesis::Genesis::load(&h.cluster.dir.join("genesis-edited.toml"))
        .expect("edited genesis")
        .digest();
    assert_ne!(ours, theirs);

    // Three of four share the genesis: a quorum, and they decide.
    let r = h
        .submit(
            0,
            Operation::RegisterRelease {
                release: release("v1"),
            },
        )
        .await;
    assert!(r.accepted, "{:?}", r.reasons);
    let p = h
        .submit(
            0,
            Operation::Promote {
                version: "v1".into(),
                to: scbe_core::governance::Stage::Canary,
                rollback_to: "v0".into(),
                pause_before: None,
                steps: Vec::new(),
            },
        )
        .await
        .proposal
        .expect("a proposal");
    h.wait_proposal(1, p, ProposalStatus::Approved).await;

    // Validator 3 knows its peers refuse it, with their digest; they know whom they refused,
    // and what it presented.
    let hex = |d: &scbe_core::consensus::Digest| encode_hex(d.as_bytes());
    let s3 = h
        .wait_status(3, None, "peers' refusals seen", |s| {
            s.peers
                .iter()
                .filter(|l| l.refused_genesis == hex(&ours))
                .count()
                == 3
        })
        .await;
    assert_eq!(s3.genesis, hex(&theirs));
    assert_eq!(s3.last_executed, 0, "it decided nothing alone");
    let s0 = h
        .wait_status(0, None, "refusal of validator 3 recorded", |s| {
            s.refused
                .iter()
                .any(|c| c.from.starts_with("validator 3 ") && c.presented == hex(&theirs))
        })
        .await;
    assert_eq!(s0.genesis, hex(&ours));
    assert!(
        h.metrics_text(0)
            .lines()
            .any(|l| l.contains("peer stream under another genesis")),
        "the refusal is counted"
    );

    // `scbe status` names the split validator and both digests.
    let o = h.scbe(0, &["status"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    let short = |d: &scbe_core::consensus::Digest| hex(d)[..12].to_string();
    let line3 = text
        .lines()
        .find(|l| l.trim_start().starts_with("3 "))
        .unwrap_or_default();
    assert!(
        line3.contains("SPLIT") && line3.contains(&short(&theirs)),
        "validator 3's line: {line3:?}\n{text}"
    );
    assert!(
        text.contains(&format!(
            "refused validator 3 from 127.0.0.1: it presented genesis {}",
            short(&theirs)
        )) && text.contains(&format!("this cluster's is {}", short(&ours))),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_is_not_opened_under_another_genesis() {
    let mut h = Harness::start(LocalOptions::default()).await;
    h.status(0, None).await; // serving: its store is written
    h.cluster.kill(0);
    split_first(&h.cluster);
    h.cluster.start(0).expect("spawn");
    let started = std::time::Instant::now();
    while h.cluster.is_running(0) {
        assert!(
            started.elapsed() < scbe_tests::DEADLINE,
            "validator 0 kept running on a store of another genesis"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let edited = scbe_wire::genesis::Genesis::load(&h.cluster.dir.join("genesis-edited.toml"))
        .expect("edited genesis")
        .digest();
    let hex = |d: &scbe_core::consensus::Digest| encode_hex(d.as_bytes());
    let log = h.cluster.log(0);
    assert!(
        log.contains(&format!(
            "was written under genesis {}, but this node runs genesis {}",
            hex(&h.cluster.genesis),
            hex(&edited)
        )),
        "{log}"
    );
}

/// Validator 0's node.toml now names an edited genesis.
fn split_first(c: &scbe_sim::local::LocalCluster) {
    let edited = std::fs::read_to_string(c.dir.join(GENESIS))
        .expect("genesis")
        .replacen("cluster = \"scbe-local\"", "cluster = \"scbe-local-2\"", 1);
    run_under(c, &c.nodes[0].config, "genesis-edited.toml", edited);
}

/// `n` consecutive loopback ports that are free now (bind-tested); the first.
fn free_run(n: u16) -> u16 {
    for _ in 0..100 {
        let base = scbe_sim::local::free_port().expect("a free port").port();
        if base.checked_add(n).is_some()
            && (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// Kills its processes when dropped, also when the test fails.
struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_in(dir: &std::path::Path, bin: &std::path::Path, config: &str) -> std::process::Child {
    let log = std::fs::File::create(dir.join("log")).expect("log file");
    Command::new(bin)
        .args(["run", "--config", config])
        .current_dir(dir)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn")
}

/// A cluster started from `scbe-node testnet`'s folders, each process in its own folder as on
/// its own host: the validators decide, and the agent (which holds only its folder) answers
/// the validators' health streams under the shared genesis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_runs_from_the_testnet_folders() {
    let _machine = scbe_tests::exclusive().await;
    let node = scbe_tests::workspace_bin("scbe-node");
    let agent = scbe_tests::workspace_bin("scbe-agent");
    let d = tempfile::tempdir().expect("tmp");
    let out = d.path().join("net");
    // One run of nine ports: 4 validators, 1 agent, 4 metrics.
    let base = free_run(9);
    let (agent_base, metrics_base) = (base + 4, base + 5);
    let o = Command::new(&node)
        .args(["testnet", "--validators", "4", "--agents", "1", "--out"])
        .arg(&out)
        .args(["--base-port", &base.to_string()])
        .args(["--agent-base-port", &agent_base.to_string()])
        .args(["--metrics-base-port", &metrics_base.to_string()])
        .output()
        .expect("scbe-node runs");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut procs = Processes(vec![]);
    for i in 0..4 {
        procs
            .0
            .push(spawn_in(&out.join(format!("node{i}")), &node, "node.toml"));
    }
    procs
        .0
        .push(spawn_in(&out.join("agent-00"), &agent, "agent.toml"));
    let genesis = scbe_wire::genesis::Genesis::load(&out.join("genesis.toml")).expect("genesis");
    assert!(text.contains(&genesis.digest_hex()), "{text}");

    let requester = scbe_wire::key_file::read_key_file(&out.join("requester.key")).expect("key");
    // TLS by default, the certificate checked against the genesis's validator keys.
    let node0 = scbe_wire::tls::Dial::new(
        &format!("https://127.0.0.1:{base}"),
        Some(scbe_wire::tls::PinnedKeys::new(
            genesis.directory().validators().iter().copied(),
            "a validator of the testnet genesis",
        )),
    )
    .expect("dial");
    let started = std::time::Instant::now();
    let logs = || -> String {
        (0..4)
            .map(|i| format!("node{i}/log"))
            .chain(["agent-00/log".to_string()])
            .map(|l| {
                format!(
                    "--- {l}\n{}",
                    std::fs::read_to_string(out.join(&l)).unwrap_or_default()
                )
            })
            .collect()
    };
    let mut client = loop {
        match scbe_wire::governance_client::Client::connect(&node0, Some(requester.clone())).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(started.elapsed() < scbe_tests::DEADLINE, "{e}\n{}", logs());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let r = loop {
        match client
            .submit(&Operation::RegisterRelease {
                release: release("v1"),
            })
            .await
        {
            Ok(r) => break r,
            Err(e) => {
                assert!(started.elapsed() < scbe_tests::DEADLINE, "{e}\n{}", logs());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert!(r.accepted, "{:?}", r.reasons);
    let s = loop {
        let s = client.summary().await.expect("summary");
        if s.releases.contains_key("v1") && s.fleet.agents_reporting == 1 {
            break s;
        }
        assert!(
            started.elapsed() < scbe_tests::DEADLINE,
            "release decided and the agent heard: {s:?}\n{}",
            logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(s.agents.len(), 1);
    assert_eq!(s.agents[0].id, "agent-00");
}

/// An agent started with an edited genesis is refused by the validators' health streams (and
/// refuses their orders); every validator's status names it and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_another_genesis_is_named_in_the_status() {
    let opts = LocalOptions {
        agents: 3,
        ..scbe_tests::fleet_options()
    };
    let mut h = Harness::start_with(opts, |c| {
        let edited = std::fs::read_to_string(c.dir.join(GENESIS))
            .expect("genesis")
            .replacen("cluster = \"scbe-local\"", "cluster = \"elsewhere\"", 1);
        run_under(c, &c.agents[2].config, "genesis-agent.toml", edited);
    })
    .await;
    let s = h
        .wait_summary(1, "agent-02 flagged", scbe_tests::DEADLINE, |s| {
            s.agents.iter().any(|a| {
                a.id == "agent-02"
                    && a.warning
                        .as_deref()
                        .is_some_and(|w| w.contains("runs genesis"))
            })
        })
        .await;
    let w = s.agents[2].warning.clone().unwrap_or_default();
    assert!(w.contains("give it the cluster's genesis.toml"), "{w}");
    assert!(s.agents[2].health.is_none(), "nothing it says counts");
    let o = h.scbe(1, &["status"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("WARNING agent-02: it runs genesis"), "{text}");
}

/// An agent whose health source does not answer says so on its health stream; every validator's
/// status names it and what to check, instead of a health that silently goes stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_health_source_is_down_is_named_with_the_fix() {
    let opts = LocalOptions {
        agents: 3,
        ..scbe_tests::fleet_options()
    };
    let closed = scbe_sim::local::free_port().expect("a port nothing listens on");
    let mut h = Harness::start_with(opts, |c| {
        let config = std::fs::read_to_string(&c.agents[1].config).expect("agent-01.toml");
        let at = config.find("[health]").expect("a [health] section");
        let edited = format!(
            "{}[health]\nsource = \"http\"\nurl = \"http://{closed}/metrics\"\n",
            &config[..at]
        );
        std::fs::write(&c.agents[1].config, edited).expect("write");
    })
    .await;
    // agent-01 flagged, while agent-00 (whose source works) reports and carries no warning once
    // it is up; on validator 0, the one `scbe status` asks below (each validator watches the
    // agents on its own, so another one may know sooner).
    let s = h
        .wait_summary(
            0,
            "agent-01 flagged, agent-00 healthy",
            scbe_tests::DEADLINE,
            |s| {
                let flagged = s.agents.iter().any(|a| {
                    a.id == "agent-01"
                        && a.warning
                            .as_deref()
                            .is_some_and(|w| w.contains("health source is failing"))
                });
                let fine = s
                    .agents
                    .iter()
                    .any(|a| a.id == "agent-00" && a.health.is_some() && a.warning.is_none());
                flagged && fine
            },
        )
        .await;
    let w = s.agents[1].warning.clone().unwrap_or_default();
    assert!(w.contains("check [health] in its agent.toml"), "{w}");
    assert!(s.agents[1].health.is_none(), "no sample was ever taken");
    let o = h.scbe(0, &["status"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("WARNING agent-01: its health source is failing"),
        "{text}"
    );
}
