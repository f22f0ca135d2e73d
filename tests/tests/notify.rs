//! Notifications end to end: 4 `scbe-node` and 6 `scbe-agent` processes on loopback and a
//! webhook sink on loopback. A canary rollout paused for approval, its leader killed while it
//! waits, approved under the new leader: the sink receives every notification of the rollout
//! exactly once, in ledger order, though it failed its first calls.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use scbe_core::governance::ledger::RolloutStatus;
use scbe_tests::{fleet_options, rollout_is, Harness};
use scbe_wire::http_sink::HttpSink;
use scbe_wire::notify_entry::NotifyEntry;

const DEADLINE: Duration = Duration::from_secs(90);

/// (index, event kind) of every notification the sink kept.
fn received(sink: &HttpSink) -> Vec<(u64, String)> {
    sink.received()
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["index"].as_u64().unwrap_or(u64::MAX),
                v["event"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn until_received(sink: &HttpSink, what: &str, done: impl Fn(&[(u64, String)]) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = received(sink);
        if done(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has(got: &[(u64, String)], kind: &str) -> Option<u64> {
    got.iter().find(|(_, k)| k == kind).map(|(i, _)| *i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_gets_each_notification_of_a_rollout_once_across_a_leader_failover() {
    let sink = HttpSink::start().await.expect("sink");
    // Down at first: the leader retries; consensus does not wait for it.
    sink.fail_next(3);
    let mut opts = fleet_options();
    opts.notify = vec![NotifyEntry {
        name: "ops".into(),
        url: sink.url("/hooks/scbe"),
        events: Vec::new(),
    }];
    let mut h = Harness::start(opts).await;
    h.register(0, "r8").await;
    let promote = h.scbe(
        1,
        &[
            "propose",
            "promote",
            "--release",
            "r8",
            "--to",
            "canary",
            "--rollback-to",
            "v0",
            "--pause-before",
            "1",
        ],
    );
    assert!(
        promote.status.success(),
        "{}",
        String::from_utf8_lossy(&promote.stdout)
    );
    until_received(&sink, "the pause", |got| {
        has(got, "rollout_paused").is_some()
    })
    .await;
    let paused = has(&received(&sink), "rollout_paused").expect("paused");
    assert!(sink.refused() >= 3, "the first calls failed");
    // Kill the leader only once the cluster recorded the pause as delivered: what it delivered
    // and had recorded must not come again from the next leader.
    h.wait_summary(1, "the pause recorded as notified", DEADLINE, |s| {
        s.notified.get("ops").is_some_and(|t| *t > paused)
    })
    .await;
    let before_failover = received(&sink).len();
    h.cluster.kill(0); // primary of view 0
    let approve = h.scbe(1, &["approve", "--rollout", "0"]);
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stdout)
    );
    let s = h
        .wait_summary(1, "canary completed under a new primary", DEADLINE, |s| {
            rollout_is(s, 0, RolloutStatus::Completed)
        })
        .await;
    let batches = s.rollout(0).expect("rollout 0").batches.len();
    until_received(&sink, "the completion", |got| {
        has(got, "rollout_completed").is_some()
    })
    .await;
    // Whatever a leader delivers is recorded; wait for the record so nothing is in flight.
    let completed = has(&received(&sink), "rollout_completed").expect("completed");
    h.wait_summary(1, "the completion recorded", DEADLINE, |s| {
        s.notified.get("ops").is_some_and(|t| *t > completed)
    })
    .await;

    let got = received(&sink);
    let ids: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "no notification came twice: {got:?}"
    );
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "in ledger order: {got:?}"
    );
    // The whole rollout, with the default filter: the promotion approved, the pause, the
    // approval approved, each batch healthy, the completion; delivered after the failover by
    // another validator.
    let mut expected = vec![
        "proposal_approved".to_string(),
        "rollout_paused".into(),
        "proposal_approved".into(),
    ];
    expected.extend(std::iter::repeat_n("batch_healthy".to_string(), batches));
    expected.push("rollout_completed".into());
    let kinds: Vec<String> = got.iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(kinds, expected);
    assert!(got.len() > before_failover, "the new leader sent the rest");
    let sent_after: u64 = (1..4)
        .map(|i| {
            h.metrics_text(i)
                .lines()
                .find(|l| l.starts_with("scbe_notifications_sent_total"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(sent_after as usize, got.len() - before_failover);
    let first = &sink.received()[0];
    assert_eq!(first.path, "/hooks/scbe");
    assert!(first.json()["text"]
        .as_str()
        .is_some_and(|t| t.contains("scbe-local")));
    let status = String::from_utf8_lossy(&h.scbe(1, &["status"]).stdout).to_string();
    assert!(status.contains("notify:    ops through event"), "{status}");
}
