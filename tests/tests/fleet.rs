//! End to end with a fleet: 4 `scbe-node` and 6 `scbe-agent` processes on loopback (synthetic
//! health, three specialties, monitoring windows of 3 s). What each agent runs is read from the
//! agent itself (`Describe`), not from the ledger, so these tests see what really happened.

use std::time::Duration;

use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::RolloutStatus;
use scbe_core::governance::{Operation, Stage};
use scbe_core::rollout::baseline::BaselineVerdict;
use scbe_core::rollout::evidence::Refusal;
use scbe_core::rollout::evidence::{AckBody, AckOutcome, DeployAck, OrderAction};
use scbe_core::rollout::order::{Endorsement, Order, SignedOrder};
use scbe_proto::v1 as pb;
use scbe_tests::{fleet_options, rollout_is, series_value, Harness};
use scbe_wire::fleet_wire::{agent_signed_from_proto, signed_order_to_proto};
use scbe_wire::status_summary::HealthVerdict;

/// Long enough for a few monitoring windows on a busy 2-core machine.
const ROLLOUT_DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_release_reaches_every_agent_through_canary_and_production() {
    let mut h = Harness::start(fleet_options()).await;
    h.register_and_promote("r1", Stage::Canary).await;
    let s = h
        .wait_summary(1, "canary completed", ROLLOUT_DEADLINE, |s| {
            rollout_is(s, 0, RolloutStatus::Completed)
        })
        .await;
    assert_eq!(s.rollout(0).map(|r| r.batches.clone()), Some(vec![3]));
    assert_eq!(s.serving(Stage::Canary), Some("r1"));
    // The canary was compared with the three agents still on v0, and held up.
    let comparison = s.rollout(0).and_then(|r| r.comparison.clone());
    assert!(
        matches!(
            comparison.as_ref().map(|c| &c.verdict),
            Some(BaselineVerdict::Pass { .. })
        ),
        "{comparison:?}"
    );
    for i in 0..3 {
        assert_eq!(
            h.describe(i).await.current_version,
            "r1",
            "canary agent {i}"
        );
    }
    for i in 3..6 {
        assert_eq!(
            h.describe(i).await.current_version,
            "v0",
            "agent {i} is not in the canary"
        );
    }
    // Production in the shape the requester asked for: 17%, 50%, then everyone.
    let o = h.scbe(
        1,
        &[
            "propose",
            "promote",
            "--release",
            "r1",
            "--to",
            "production",
            "--rollback-to",
            "v0",
            "--steps",
            "17,50,100",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let s = h
        .wait_summary(2, "production completed", ROLLOUT_DEADLINE, |s| {
            rollout_is(s, 1, RolloutStatus::Completed)
        })
        .await;
    assert_eq!(s.rollout(1).map(|r| r.batches.clone()), Some(vec![2, 1, 3]));
    assert_eq!(s.serving(Stage::Production), Some("r1"));
    assert!(s.known_good.contains("r1"));
    for i in 0..6 {
        let d = h.describe(i).await;
        assert_eq!(
            (d.current_version.as_str(), d.previous_version.as_str()),
            ("r1", "v0"),
            "agent {i}"
        );
    }
    // Agents obey the quorum, not the leader: an order signed by validator 0 alone is refused
    // with a signed refusal, and nothing runs.
    let leader =
        scbe_wire::key_file::read_key_file(&h.cluster.dir.join("keys/node0.key")).expect("key");
    let order = Order {
        rollout: 1,
        action: OrderAction::Deploy,
        batch: 2,
        issued_seq: u64::MAX / 2,
        version: "r-evil".into(),
        release_digest: String::new(),
        units: vec![],
        agents: vec!["agent-04".into()],
    };
    let bytes = order.to_bytes();
    let signed = SignedOrder {
        endorsements: vec![Endorsement::sign(&bytes, &leader); 3],
        order: bytes,
        epochs: Vec::new(),
    };
    // The attacker holds a stolen validator key, so its TLS certificate is accepted.
    let mut c = pb::fleet_agent_client::FleetAgentClient::new(
        h.cluster
            .agent_channel(4, Duration::from_secs(10))
            .expect("agent channel"),
    );
    // An order that does not name the agent's genesis is refused before it is read.
    let unnamed = c
        .deploy(signed_order_to_proto(&signed))
        .await
        .expect_err("no genesis presented");
    assert_eq!(unnamed.code(), tonic::Code::FailedPrecondition);
    let mut request = tonic::Request::new(signed_order_to_proto(&signed));
    scbe_wire::genesis::present(&mut request, &h.cluster.genesis);
    let reply = c.deploy(request).await.expect("answers").into_inner();
    let ack: DeployAck = agent_signed_from_proto(reply).expect("signed ack");
    let agent_key = scbe_wire::key_file::read_key_file(&h.cluster.dir.join("keys/agent-04.key"))
        .expect("agent key")
        .public();
    let body: AckBody = ack.open(|_| Some(&agent_key)).expect("signed by the agent");
    assert_eq!(body.outcome, AckOutcome::Refused);
    assert_eq!(
        body.refusal,
        Some(Refusal::NotEnoughEndorsements),
        "{}",
        body.detail
    );
    assert_eq!(h.describe(4).await.current_version, "r1");

    // Junk no key is needed for (1,024 forged endorsements naming validator 0 on a 1 MiB order)
    // floods agent-04 from two connections through the rollback below: each is refused as
    // malformed before any signature is checked, and the quorum's orders still get through.
    let junk = {
        let mut order = order.clone();
        while order.to_bytes().len() < 1000 * 1024 {
            order
                .agents
                .push(format!("padding-{:07}", order.agents.len()));
        }
        order.agents.sort();
        let bytes = order.to_bytes();
        signed_order_to_proto(&SignedOrder {
            endorsements: vec![Endorsement::sign(&bytes, &Keypair::from_label("stranger")); 1024]
                .into_iter()
                .map(|e| Endorsement {
                    signer: leader.public(),
                    ..e
                })
                .collect(),
            order: bytes,
            epochs: Vec::new(),
        })
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..2)
        .map(|_| {
            let mut c = pb::fleet_agent_client::FleetAgentClient::new(
                h.cluster
                    .agent_channel(4, Duration::from_secs(10))
                    .expect("agent channel"),
            );
            let (junk, stop, genesis, key) =
                (junk.clone(), stop.clone(), h.cluster.genesis, agent_key);
            tokio::spawn(async move {
                let mut refused = 0u32;
                // Bounded in count as well as by the flag.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && refused < 20_000 {
                    let mut request = tonic::Request::new(junk.clone());
                    scbe_wire::genesis::present(&mut request, &genesis);
                    let reply = c.deploy(request).await.expect("answers").into_inner();
                    let ack: DeployAck = agent_signed_from_proto(reply).expect("signed ack");
                    let body: AckBody = ack.open(|_| Some(&key)).expect("signed by the agent");
                    assert_eq!(body.outcome, AckOutcome::Refused);
                    assert_eq!(body.refusal, Some(Refusal::Malformed), "{}", body.detail);
                    assert!(body.detail.contains("1024 endorsements"), "{}", body.detail);
                    refused += 1;
                }
                refused
            })
        })
        .collect();

    // Manual rollback, approved by vote: every agent goes back to v0, with r1 as its previous
    // version, and "current production" follows.
    let r = h
        .submit(
            0,
            Operation::Rollback {
                target_version: "v0".into(),
                reason: "manual".into(),
            },
        )
        .await;
    assert!(r.accepted, "{:?}", r.reasons);
    let s = h
        .wait_summary(3, "manual rollback completed", ROLLOUT_DEADLINE, |s| {
            rollout_is(s, 2, RolloutStatus::Completed)
        })
        .await;
    assert_eq!(s.serving(Stage::Production), Some("v0"), "{s:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flood {
        let refused = f.await.expect("flood task");
        assert!(refused > 0, "the flood reached the agent");
    }
    for i in 0..6 {
        let d = h.describe(i).await;
        assert_eq!(
            (d.current_version.as_str(), d.previous_version.as_str()),
            ("v0", "r1"),
            "agent {i} after the manual rollback"
        );
    }
    // The flooded agent's own /metrics counts what it did: the junk refused as malformed, the
    // deploy and the rollback done, and what it runs now.
    let page = h.agent_metrics_text(4);
    let of = |outcome: &str, reason: &str| {
        series_value(
            &page,
            &format!("scbe_agent_orders_total{{agent=\"agent-04\",action=\"deploy\",outcome=\"{outcome}\",reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(of("refused", "Malformed") >= 1.0, "{page}");
    assert!(of("done", "") >= 1.0, "{page}");
    assert!(
        page.contains("scbe_agent_version{agent=\"agent-04\",current=\"v0\",previous=\"r1\"} 1"),
        "{page}"
    );
    assert!(
        series_value(&page, "scbe_agent_reports_total{agent=\"agent-04\"}").unwrap_or(0.0) > 0.0,
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degrading_canary_is_rolled_back_and_forged_reports_are_refused() {
    // agent-05's host is compromised: its daemon signs with a key the validators do not know
    // (the daemon itself refuses to start with a key its genesis does not list, so the forger is
    // the real service run in-process with its key swapped after validation). Its reports must
    // be refused.
    let mut h = Harness::start(fleet_options()).await;
    let forger = h
        .cluster
        .agents
        .iter()
        .position(|a| a.id == "agent-05")
        .expect("agent-05");
    h.cluster.kill_agent(forger);
    let config = h.cluster.agents[forger].config.clone();
    let _forger = tokio::spawn(async move {
        let base = config.parent().expect("config dir").to_path_buf();
        // Its port was just released; retry the bind for a while rather than race it.
        for _ in 0..100 {
            let mut v = scbe_agent::config::AgentConfig::load(&config)
                .and_then(|c| c.validate(&base))
                .expect("agent-05's config");
            v.key = Keypair::from_label("not agent-05");
            if scbe_agent::service::run(v).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    h.register_and_promote("r2-bad", Stage::Canary).await;
    let s = h
        .wait_summary(0, "canary rolled back", ROLLOUT_DEADLINE, |s| {
            rollout_is(s, 0, RolloutStatus::RolledBack)
        })
        .await;
    let r = s.rollout(0).expect("rollout 0");
    assert!(r.reason.contains("consecutive sample"), "{r:?}");
    assert_eq!(s.serving(Stage::Canary), None, "{s:?}");
    assert_eq!(s.releases.get("r2-bad"), Some(&Stage::Staging));
    for i in 0..3 {
        let d = h.describe(i).await;
        assert_eq!(
            (d.current_version.as_str(), d.previous_version.as_str()),
            ("v0", "r2-bad"),
            "touched agent {i} is back on the old version"
        );
    }
    let metrics = h.metrics_text(0);
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("scbe_health_reports_refused_total") && l.contains("bad signature"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(refused > 0, "no refused report counted:\n{metrics}");
    // The genuine agent-05 may have reported before it was killed (the harness waits for every
    // validator to serve, and monitors start sampling meanwhile); that report has aged out by
    // now, a monitoring window later. A forged report counted as health would be fresh.
    let agent_05 = s
        .agents
        .iter()
        .find(|x| x.id == "agent-05")
        .expect("listed");
    assert!(
        agent_05
            .health
            .as_ref()
            .is_none_or(|h| h.verdict == HealthVerdict::Stale),
        "a forged report never counts as the agent's health: {agent_05:?}"
    );
    // The operator sees which agent and the fix, in the status, not only in a log line.
    let s = h
        .wait_summary(0, "agent-05 flagged", ROLLOUT_DEADLINE, |s| {
            s.agents
                .iter()
                .any(|a| a.id == "agent-05" && a.warning.is_some())
        })
        .await;
    let warning = s
        .agents
        .iter()
        .find(|a| a.id == "agent-05")
        .and_then(|a| a.warning.clone())
        .unwrap_or_default();
    assert!(
        warning.contains("signed with a key the fleet does not list"),
        "{warning}"
    );
    assert!(
        s.agents
            .iter()
            .filter(|a| a.id != "agent-05")
            .all(|a| a.warning.is_none()),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifting_canary_inside_every_threshold_is_rolled_back_by_the_baseline_comparison() {
    let mut h = Harness::start(fleet_options()).await;
    h.register_and_promote("r4-drift", Stage::Canary).await;
    let s = h
        .wait_summary(0, "drifting canary rolled back", ROLLOUT_DEADLINE, |s| {
            rollout_is(s, 0, RolloutStatus::RolledBack)
        })
        .await;
    let r = s.rollout(0).expect("rollout 0");
    // Not the thresholds: the comparison, naming the metric, both medians and the p-value.
    assert!(
        r.reason.starts_with("canary worse than its baseline")
            && r.reason.contains("coherence: canary median")
            && r.reason.contains("p = "),
        "{r:?}"
    );
    let c = r.comparison.as_ref().expect("comparison recorded");
    assert!(matches!(c.verdict, BaselineVerdict::Fail { .. }), "{c:?}");
    assert_eq!(s.serving(Stage::Canary), None, "{s:?}");
    for i in 0..3 {
        let d = h.describe(i).await;
        assert_eq!(
            (d.current_version.as_str(), d.previous_version.as_str()),
            ("v0", "r4-drift"),
            "canary agent {i} is back on v0"
        );
    }
    // What the operator reads in `scbe status`.
    let text = scbe_cli::render::rollout_line(r);
    assert!(text.contains("against the baseline: failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_canary_waits_for_scbe_approve_and_scbe_abort_rolls_it_back() {
    let mut h = Harness::start(fleet_options()).await;
    let voted = |o: std::process::Output| {
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success() && stdout.contains("votes:") && stdout.contains("APPROVED"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    h.register(0, "r6").await;
    voted(h.scbe(
        1,
        &[
            "propose",
            "promote",
            "--release",
            "r6",
            "--to",
            "canary",
            "--rollback-to",
            "v0",
            "--pause-before",
            "1",
        ],
    ));
    h.wait_summary(0, "canary paused before batch 1", ROLLOUT_DEADLINE, |s| {
        s.rollout(0).is_some_and(|r| r.paused_before == Some(1))
    })
    .await;
    let status = String::from_utf8_lossy(&h.scbe(2, &["status"]).stdout).to_string();
    assert!(
        status.contains("paused before batch 1: scbe approve --rollout 0"),
        "{status}"
    );
    // Paused means no order: once every validator shows the pause, every agent still runs v0
    // (the ledger derives no order while paused: ledger_pause_tests).
    for v in 1..4 {
        h.wait_summary(v, "paused everywhere", ROLLOUT_DEADLINE, |s| {
            s.rollout(0).is_some_and(|r| r.paused_before == Some(1))
        })
        .await;
    }
    for i in 0..6 {
        assert_eq!(h.describe(i).await.current_version, "v0", "agent {i}");
    }
    voted(h.scbe(1, &["approve", "--rollout", "0"]));
    h.wait_agent_version(0, "r6", ROLLOUT_DEADLINE).await;
    // Aborted by vote mid-canary: what it touched goes back to v0.
    voted(h.scbe(
        1,
        &["abort", "--rollout", "0", "--reason", "wrong tokenizer"],
    ));
    let s = h
        .wait_summary(0, "aborted canary rolled back", ROLLOUT_DEADLINE, |s| {
            rollout_is(s, 0, RolloutStatus::RolledBack)
        })
        .await;
    let r = s.rollout(0).expect("rollout 0");
    assert!(
        r.reason
            .starts_with("aborted by vote (proposal 2): wrong tokenizer"),
        "{r:?}"
    );
    assert_eq!(s.serving(Stage::Canary), None);
    for i in 0..6 {
        assert_eq!(h.describe(i).await.current_version, "v0", "agent {i}");
    }
    // Nothing left to abort or approve: refused, exit 1, with the reason.
    for (args, why) in [
        (&["abort", "--rollout", "0"][..], "not in progress"),
        (&["approve", "--rollout", "0"][..], "not paused"),
    ] {
        let o = h.scbe(1, args);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains(why), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_primary_resumes_a_rollout_whose_primary_was_killed() {
    let mut h = Harness::start(fleet_options()).await;
    h.register_and_promote("r3", Stage::Canary).await;
    // Mid-rollout: the first agent runs r3 and is being monitored.
    h.wait_agent_version(0, "r3", ROLLOUT_DEADLINE).await;
    h.cluster.kill(0); // primary of view 0
    let s = h
        .wait_summary(
            1,
            "canary completed under a new primary",
            ROLLOUT_DEADLINE,
            |s| rollout_is(s, 0, RolloutStatus::Completed),
        )
        .await;
    assert_eq!(s.serving(Stage::Canary), Some("r3"));
    let status = h.status(1, None).await;
    assert!(
        status.view > 0,
        "a view change elected a new primary: {status:?}"
    );
    for i in 0..3 {
        assert_eq!(h.describe(i).await.current_version, "r3");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_canary_gives_no_data_and_the_batch_rolls_back() {
    let mut h = Harness::start(fleet_options()).await;
    h.register_and_promote("r4", Stage::Canary).await;
    h.wait_agent_version(1, "r4", ROLLOUT_DEADLINE).await;
    h.cluster.kill_agent(1);
    let s = h
        .wait_summary(2, "rollback on no data", ROLLOUT_DEADLINE, |s| {
            s.rollout(0).is_some_and(|r| {
                matches!(
                    r.status,
                    RolloutStatus::RollingBack | RolloutStatus::RolledBack
                )
            })
        })
        .await;
    let r = s.rollout(0).expect("rollout 0");
    assert!(
        r.reason.contains("no healthy data") && r.reason.contains("agent-01"),
        "{r:?}"
    );
    for i in [0, 2] {
        h.wait_agent_version(i, "v0", ROLLOUT_DEADLINE).await;
    }
    // The silent agent is rolled back once it is back.
    h.cluster.start_agent(1).expect("restart agent");
    h.wait_summary(2, "rolled back", ROLLOUT_DEADLINE, |s| {
        rollout_is(s, 0, RolloutStatus::RolledBack)
    })
    .await;
    assert_eq!(h.describe(1).await.current_version, "v0");
}
