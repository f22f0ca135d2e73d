//! Across hosts: 4 validators and 3 agents, each in its own Linux network namespace with its
//! own address, started from `scbe-node testnet`'s per-host folders and reaching each other by
//! host name over TLS (the defaults). Partitions are blackhole routes inside the namespaces.
//! Five scenarios, each asserting agreement (no two validators decided different batches at
//! one sequence number), liveness after healing, and what the agents run:
//!
//! 1. a rollout to production across hosts;
//! 2. one validator isolated: the other three keep deciding, it catches up after healing;
//! 3. the primary isolated: a new view, and the old primary rejoins;
//! 4. an agent cut off from the leader only: its rollout ends (never hangs), agents agree (seen
//!    so far: no answer by the deploy deadline, the ledger replaces the leader, and the next
//!    one, which reaches the agent, completes the canary);
//! 5. a 2-2 split: no decision during it, everything resumes after.
//!
//! Needs root (namespaces); without it the test fails and says how to run it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::RolloutStatus;
use scbe_core::governance::{Operation, Stage};
use scbe_proto::v1 as pb;
use scbe_tests::netns::Hosts;
use scbe_tests::release;
use scbe_wire::genesis::Genesis;
use scbe_wire::governance_client::Client;
use scbe_wire::status_summary::StatusSummary;
use scbe_wire::tls::{Dial, Link, PinnedKeys};

const VALIDATORS: usize = 4;
const AGENTS: usize = 3;
/// Generous: a shared 2-core machine, and view changes after partitions.
const DEADLINE: Duration = Duration::from_secs(90);

struct Cluster {
    hosts: Hosts,
    genesis: Genesis,
    requester: scbe_core::crypto::Keypair,
    out: std::path::PathBuf,
}

impl Cluster {
    fn validator_key(&self, i: usize) -> PublicKey {
        self.genesis.directory().validators()[i]
    }

    fn dial(&self, i: usize) -> Dial {
        let addr = format!("{}:{}", self.hosts.hosts[i].ip, 7000 + i);
        Dial::tls(
            &addr,
            PinnedKeys::new([self.validator_key(i)], format!("validator {i}")),
        )
        .expect("dial")
    }

    async fn client(&self, i: usize) -> Result<Client, String> {
        Client::connect(&self.dial(i), Some(self.requester.clone()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn status(&self, i: usize) -> Result<pb::StatusReply, String> {
        let mut c = self.client(i).await?;
        tokio::time::timeout(Duration::from_secs(5), c.status(None))
            .await
            .map_err(|_| "status timed out".to_string())?
            .map_err(|e| e.to_string())
    }

    async fn summary(&self, i: usize) -> Result<StatusSummary, String> {
        let mut c = self.client(i).await?;
        tokio::time::timeout(Duration::from_secs(5), c.summary())
            .await
            .map_err(|_| "summary timed out".to_string())?
            .map_err(|e| e.to_string())
    }

    fn logs(&self) -> String {
        let mut dirs: Vec<String> = (0..VALIDATORS).map(|i| format!("node{i}")).collect();
        dirs.extend((0..AGENTS).map(|i| format!("agent-{i:02}")));
        dirs.iter()
            .map(|d| {
                let log = std::fs::read_to_string(self.out.join(d).join("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- {d}\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// Submits `op` to validator `i` until it is decided (or the deadline).
    async fn submit(&self, i: usize, op: &Operation) -> pb::SubmitReply {
        let start = Instant::now();
        let mut client = None;
        loop {
            if client.is_none() {
                client = self.client(i).await.ok();
            }
            if let Some(c) = client.as_mut() {
                match tokio::time::timeout(Duration::from_secs(10), c.submit(op)).await {
                    Ok(Ok(r)) => return r,
                    Ok(Err(e)) => eprintln!("submit to {i}: {e}"),
                    Err(_) => eprintln!("submit to {i}: not decided within 10 s"),
                }
                // A fresh client signs with a fresh nonce floor.
                client = None;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "validator {i} never decided {op:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Polls validator `i` until `pred` holds on its status.
    async fn wait_status(
        &self,
        i: usize,
        what: &str,
        pred: impl Fn(&pb::StatusReply) -> bool,
    ) -> pb::StatusReply {
        self.wait_for(i, what, async || self.status(i).await, pred)
            .await
    }

    /// Polls validator `i` until `pred` holds on its ledger summary.
    async fn wait_summary(
        &self,
        i: usize,
        what: &str,
        pred: impl Fn(&StatusSummary) -> bool,
    ) -> StatusSummary {
        self.wait_for(i, what, async || self.summary(i).await, pred)
            .await
    }

    /// Polls `fetch` (an answer of validator `i`) until `pred` holds, or fails at the deadline
    /// with the last answer and the cluster's logs.
    async fn wait_for<T: std::fmt::Debug>(
        &self,
        i: usize,
        what: &str,
        fetch: impl AsyncFn() -> Result<T, String>,
        pred: impl Fn(&T) -> bool,
    ) -> T {
        let start = Instant::now();
        loop {
            match fetch().await {
                Ok(x) if pred(&x) => return x,
                last => assert!(
                    start.elapsed() < DEADLINE,
                    "validator {i}: {what} not reached; last {last:?}\n{}",
                    self.logs()
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every validator's decided batches (seq -> batch digest, from its audit export) agree at
    /// every seq two of them decided; returns the highest seq all four decided.
    async fn assert_agreement(&self) -> u64 {
        let mut logs: Vec<BTreeMap<u64, scbe_core::consensus::Digest>> = Vec::new();
        for i in 0..VALIDATORS {
            let ch = self.dial(i).connect().await.expect("reach validator");
            let mut stream = pb::audit_client::AuditClient::new(ch)
                .max_decoding_message_size(scbe_wire::MAX_ENVELOPE_BYTES)
                .export(pb::AuditRequest { from_seq: 1 })
                .await
                .expect("export")
                .into_inner();
            let mut decided = BTreeMap::new();
            while let Some(item) = stream.message().await.expect("export stream") {
                if let Some(pb::audit_entry::Entry::Decided(c)) = item.entry {
                    let cert = scbe_wire::open_commit_cert(c, self.genesis.directory())
                        .expect("a certificate from a quorum");
                    let pp = cert.pre_prepare.value();
                    decided.insert(pp.seq.0, pp.digest);
                }
            }
            logs.push(decided);
        }
        for (i, a) in logs.iter().enumerate() {
            for (j, b) in logs.iter().enumerate().skip(i + 1) {
                for (seq, d) in a {
                    if let Some(e) = b.get(seq) {
                        assert_eq!(
                            d, e,
                            "validators {i} and {j} decided different batches at seq {seq}"
                        );
                    }
                }
            }
        }
        logs.iter()
            .map(|l| l.keys().next_back().copied().unwrap_or(0))
            .min()
            .unwrap_or(0)
    }

    /// What agent `a` runs, from the agent (Describe answers anyone over TLS).
    async fn agent_runs(&self, a: usize) -> Option<String> {
        let key = PublicKey::from_hex(&self.genesis.file().agents[a].public_key)?;
        let link = Link::Tls(
            scbe_wire::tls::client_config(None, PinnedKeys::new([key], "the agent")).ok()?,
        );
        let addr = format!("{}:{}", self.hosts.hosts[VALIDATORS + a].ip, 7100 + a);
        let ch = link.connect_to(&addr).await.ok()?;
        let d = pb::fleet_agent_client::FleetAgentClient::new(ch)
            .describe(pb::DescribeRequest {})
            .await
            .ok()?;
        Some(d.into_inner().current_version)
    }

    async fn wait_agents_run(&self, version: &str) {
        let start = Instant::now();
        for a in 0..AGENTS {
            while self.agent_runs(a).await.as_deref() != Some(version) {
                assert!(
                    start.elapsed() < DEADLINE,
                    "agent {a} runs {:?}, not {version}\n{}",
                    self.agent_runs(a).await,
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// Every validator is in `view` or later and has executed `seq` or more.
    async fn wait_all_caught_up(&self, seq: u64) {
        for i in 0..VALIDATORS {
            self.wait_status(i, &format!("executed {seq}"), |s| s.last_executed >= seq)
                .await;
        }
    }

    async fn promote(&self, version: &str, to: Stage, rollback_to: &str) -> u64 {
        let r = self
            .submit(
                0,
                &Operation::Promote {
                    version: version.into(),
                    to,
                    rollback_to: rollback_to.into(),
                    pause_before: None,
                    steps: Vec::new(),
                },
            )
            .await;
        assert!(r.accepted, "{:?}", r.reasons);
        r.proposal.expect("a proposal")
    }

    async fn register(&self, i: usize, version: &str) {
        let r = self
            .submit(
                i,
                &Operation::RegisterRelease {
                    release: release(version),
                },
            )
            .await;
        assert!(r.accepted, "registering {version}: {:?}", r.reasons);
    }
}

fn rollout_done(s: &StatusSummary, id: u64) -> Option<RolloutStatus> {
    s.rollout(id)
        .map(|r| r.status)
        .filter(|st| !matches!(st, RolloutStatus::InProgress | RolloutStatus::RollingBack))
}

/// `scbe-node testnet` folders for hosts named v0.scbe.test.. and a0.scbe.test.., with
/// monitoring windows short enough for a test.
fn write_testnet(out: &Path) -> Genesis {
    let o = Command::new(scbe_tests::workspace_bin("scbe-node"))
        .args(["testnet", "--validators", "4", "--agents", "3", "--out"])
        .arg(out)
        .args([
            "--validator-hosts",
            "v0.scbe.test,v1.scbe.test,v2.scbe.test,v3.scbe.test",
        ])
        .args(["--agent-hosts", "a0.scbe.test,a1.scbe.test,a2.scbe.test"])
        .output()
        .expect("scbe-node testnet");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let genesis = std::fs::read_to_string(out.join("genesis.toml"))
        .expect("genesis")
        .replace("window = \"5m\"", "window = \"3s\"")
        .replace("sample_interval = \"10s\"", "sample_interval = \"500ms\"")
        .replace("deploy_deadline = \"2m\"", "deploy_deadline = \"5s\"")
        .replace(
            "agent_call_timeout = \"2m 30s\"",
            "agent_call_timeout = \"10s\"",
        );
    // The same bytes on every host (its digest is what they present to each other).
    let mut folders: Vec<String> = (0..VALIDATORS).map(|i| format!("node{i}")).collect();
    folders.extend((0..AGENTS).map(|i| format!("agent-{i:02}")));
    std::fs::write(out.join("genesis.toml"), &genesis).expect("write");
    for f in &folders {
        std::fs::write(out.join(f).join("genesis.toml"), &genesis).expect("write");
    }
    for a in 0..AGENTS {
        let p = out.join(format!("agent-{a:02}/agent.toml"));
        let text = std::fs::read_to_string(&p)
            .expect("agent.toml")
            .replace("report_window = 30", "report_window = 6")
            .replace("degrade_after = 3", "degrade_after = 2");
        std::fs::write(&p, text).expect("write");
    }
    Genesis::load(&out.join("genesis.toml")).expect("genesis loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_across_hosts_survives_partitions() {
    let _machine = scbe_tests::exclusive().await;
    let d = tempfile::tempdir().expect("tmp");
    let out = d.path().join("net");
    let genesis = write_testnet(&out);
    let mut names: Vec<String> = (0..VALIDATORS).map(|i| format!("v{i}.scbe.test")).collect();
    names.extend((0..AGENTS).map(|i| format!("a{i}.scbe.test")));
    let hosts = Hosts::new(&names).unwrap_or_else(|e| panic!("{e}"));
    let requester =
        scbe_wire::key_file::read_key_file(&out.join("requester.key")).expect("requester key");
    let mut c = Cluster {
        hosts,
        genesis,
        requester,
        out: out.clone(),
    };
    let node = scbe_tests::workspace_bin("scbe-node");
    let agent = scbe_tests::workspace_bin("scbe-agent");
    for i in 0..VALIDATORS {
        c.hosts
            .start(i, &node, &out.join(format!("node{i}")), "node.toml");
    }
    for a in 0..AGENTS {
        let dir = out.join(format!("agent-{a:02}"));
        c.hosts.start(VALIDATORS + a, &agent, &dir, "agent.toml");
    }

    // 1. A rollout to production across hosts, over TLS, by host name.
    c.register(0, "r1").await;
    c.promote("r1", Stage::Canary, "v0").await;
    c.wait_summary(1, "canary completed", |s| {
        rollout_done(s, 0) == Some(RolloutStatus::Completed)
    })
    .await;
    c.promote("r1", Stage::Production, "v0").await;
    let s = c
        .wait_summary(2, "production completed", |s| {
            rollout_done(s, 1) == Some(RolloutStatus::Completed)
        })
        .await;
    assert_eq!(s.serving(Stage::Production), Some("r1"));
    c.wait_agents_run("r1").await;
    let all = c.assert_agreement().await;
    c.wait_all_caught_up(all).await;

    // 2. One validator (3, not the primary of view 0) isolated from every other host: the
    // other three keep deciding; after healing it catches up, with no conflicting decision.
    let view = c.status(0).await.expect("status").view;
    let isolated = if view % VALIDATORS as u64 == 3 { 2 } else { 3 };
    for other in 0..VALIDATORS + AGENTS {
        if other != isolated {
            c.hosts.cut(isolated, other);
        }
    }
    let talker = (isolated + 1) % VALIDATORS;
    c.register(talker, "r2").await;
    let decided = c.status(talker).await.expect("status").last_executed;
    assert!(
        c.status(isolated)
            .await
            .expect("still readable from the test")
            .last_executed
            < decided,
        "the isolated validator cannot have decided r2"
    );
    // Its peers notice (HTTP/2 keepalive on a link whose packets vanish) and `scbe status`
    // shows it unreachable, with why.
    let shown = c
        .wait_status(talker, "the isolated validator shown unreachable", |s| {
            s.peers
                .iter()
                .any(|p| p.id == isolated as u32 && !p.connected && !p.problem.is_empty())
        })
        .await;
    eprintln!(
        "scenario 2: validator {talker} shows {isolated} as {:?}",
        shown.peers.iter().find(|p| p.id == isolated as u32)
    );
    c.hosts.heal();
    c.wait_status(isolated, "caught up after healing", |s| {
        s.last_executed >= decided
    })
    .await;
    c.assert_agreement().await;

    // 3. The primary isolated: the others change view and decide; the old primary rejoins.
    let before = c.status(0).await.expect("status");
    let primary = (before.view % VALIDATORS as u64) as usize;
    for other in 0..VALIDATORS + AGENTS {
        if other != primary {
            c.hosts.cut(primary, other);
        }
    }
    let talker = (primary + 1) % VALIDATORS;
    c.register(talker, "r3").await;
    let after = c.status(talker).await.expect("status");
    eprintln!(
        "scenario 3: primary {primary} isolated; view {} -> {}",
        before.view, after.view
    );
    assert!(
        after.view > before.view,
        "a new view: {} then {}",
        before.view,
        after.view
    );
    c.hosts.heal();
    c.wait_status(primary, "the old primary rejoins", |s| {
        s.view >= after.view && s.last_executed >= after.last_executed
    })
    .await;
    c.assert_agreement().await;

    // 4. An agent cut off from the leader (the primary) but not from the other validators: the
    // rollout that includes it ends, never hangs; afterwards every agent runs what the ledger
    // says the fleet serves.
    let view = c.status(0).await.expect("status").view;
    let leader = (view % VALIDATORS as u64) as usize;
    let cut_agent = VALIDATORS + 2;
    c.hosts.cut(leader, cut_agent);
    c.promote("r3", Stage::Canary, "r1").await;
    let ended = c
        .wait_summary((leader + 1) % VALIDATORS, "the canary ends", |s| {
            rollout_done(s, 2).is_some()
        })
        .await;
    c.hosts.heal();
    let status = rollout_done(&ended, 2);
    eprintln!(
        "scenario 4: the canary with agent-02 cut off from leader {leader} ended {status:?}: {:?}; views now {:?}",
        ended.rollout(2),
        [
            c.status(0).await.map(|s| s.view),
            c.status(1).await.map(|s| s.view)
        ]
    );
    // SCBE_MH_LOGS=1 prints the validators' logs here (how the leader handled the cut agent).
    if std::env::var("SCBE_MH_LOGS").is_ok() {
        for i in 0..VALIDATORS {
            let log = std::fs::read_to_string(out.join(format!("node{i}/log"))).unwrap_or_default();
            eprintln!("--- node{i}\n{log}");
        }
    }
    match status {
        Some(RolloutStatus::Completed) => c.wait_agents_run("r3").await,
        _ => c.wait_agents_run("r1").await,
    }
    c.assert_agreement().await;

    // 5. A 2-2 split: neither side has a quorum, nothing is decided (a request submitted
    // during it waits); after healing the cluster decides again and every validator agrees.
    let seq = c.assert_agreement().await;
    c.wait_all_caught_up(seq).await;
    c.hosts.split(&[0, 1], &[2, 3]);
    let during = tokio::spawn({
        let dial = c.dial(0);
        let key = c.requester.clone();
        async move {
            let mut client = Client::connect(&dial, Some(key)).await.ok()?;
            client
                .submit(&Operation::RegisterRelease {
                    release: release("r4"),
                })
                .await
                .ok()
        }
    });
    // Watch the split for a while: no validator executes anything new.
    let watch_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch_until {
        for i in 0..VALIDATORS {
            let s = c.status(i).await.expect("readable from the test");
            assert_eq!(
                s.last_executed, seq,
                "validator {i} decided during a 2-2 split"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.hosts.heal();
    // Decided after healing: a new request, on the other side of the old split.
    c.register(2, "r5").await;
    // The request from the split, if its call returned, was decided like any other.
    if let Ok(Ok(Some(r))) = tokio::time::timeout(Duration::from_secs(20), during).await {
        assert!(r.accepted, "{:?}", r.reasons);
    }
    let seq = c.assert_agreement().await;
    assert!(seq > 0);
    c.wait_all_caught_up(seq).await;
    c.wait_agents_run(match status {
        Some(RolloutStatus::Completed) => "r3",
        _ => "r1",
    })
    .await;
}
