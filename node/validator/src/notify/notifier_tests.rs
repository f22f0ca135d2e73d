//! The notifier against a stand-in core (applies `Notified` records to the view as the ledger
//! would), a stand-in event reader, and a real HTTP sink on loopback.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scbe_core::governance::event::Event;
use scbe_core::governance::Tongue;
use scbe_wire::http_sink::HttpSink;
use scbe_wire::notify_entry::NotifyEntry;
use tokio::sync::{mpsc, watch};

use super::*;

fn event(kind: &str) -> Event {
    Event {
        seq: 1,
        tongue: Tongue::KO,
        kind: kind.into(),
        subject: "rollout:0".into(),
        detail: format!("{kind} detail"),
    }
}

/// The ledger's events and what the core saw.
struct Core {
    events: Arc<Mutex<Vec<Event>>>,
    reads: Arc<AtomicU64>,
    records: Arc<Mutex<Vec<(String, u64)>>>,
    views: watch::Sender<NotifyView>,
}

impl Core {
    /// A core whose ledger holds `events`, and a context whose notifier talks to it.
    fn start(
        events: Vec<Event>,
        view: NotifyView,
    ) -> (Core, Arc<NotifyContext>, watch::Receiver<NotifyView>) {
        let (tx, mut rx) = mpsc::channel::<Inbound>(16);
        let (views, views_rx) = watch::channel(view);
        let core = Core {
            events: Arc::new(Mutex::new(events)),
            reads: Arc::default(),
            records: Arc::default(),
            views,
        };
        let (events, reads, records, views) = (
            Arc::clone(&core.events),
            Arc::clone(&core.reads),
            Arc::clone(&core.records),
            core.views.clone(),
        );
        let read: EventReader = Arc::new(move |from| {
            reads.fetch_add(1, Ordering::SeqCst);
            let all = events.lock().expect("events").clone();
            let chunk = (from..all.len() as u64)
                .map(|i| (i, all[i as usize].clone()))
                .collect();
            Box::pin(async move { chunk })
        });
        tokio::spawn(async move {
            while let Some(input) = rx.recv().await {
                if let Inbound::Notified { sink, through } = input {
                    records
                        .lock()
                        .expect("records")
                        .push((sink.clone(), through));
                    views.send_modify(|v| {
                        let at = v.notified.entry(sink).or_default();
                        *at = (*at).max(through);
                    });
                }
            }
        });
        let ctx = Arc::new(NotifyContext {
            node: 0,
            genesis_hex: "cd".repeat(32),
            cluster: "test".into(),
            inbound: tx,
            events: read,
            tls: scbe_wire::tls::web_pki_client_config().expect("tls"),
            metrics: Arc::default(),
            call_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_millis(100),
        });
        (core, ctx, views_rx)
    }
}

fn sink(url: String) -> Sink {
    let entry = NotifyEntry {
        name: "ops".into(),
        url,
        events: Vec::new(),
    };
    Sink {
        name: entry.name.clone(),
        url: entry.uri().expect("url"),
        takes: entry.takes(),
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(http: &HttpSink) -> Vec<String> {
    http.received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_delivers_what_the_sink_takes_in_order_through_failures_and_records_the_point() {
    let http = HttpSink::start().await.expect("sink");
    http.fail_next(2);
    let events = [
        "rollout_planned",
        "batch_healthy",
        "vote",
        "rollout_completed",
    ]
    .map(event)
    .to_vec();
    let view = NotifyView {
        leading: true,
        events: 4,
        notified: BTreeMap::new(),
    };
    let (core, ctx, views) = Core::start(events, view);
    tokio::spawn(serve_sink(Arc::clone(&ctx), sink(http.url("/hook")), views));
    until("the point recorded", || {
        core.records
            .lock()
            .expect("records")
            .contains(&("ops".into(), 4))
    })
    .await;
    let prefix = "cd".repeat(8);
    // Not the plan or the vote (not in the default filter); the two failures were retried.
    assert_eq!(
        ids(&http),
        vec![format!("{prefix}-1"), format!("{prefix}-3")]
    );
    assert_eq!(http.refused(), 2);
    let first = &http.received()[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(
        first.header("idempotency-key"),
        Some(format!("{prefix}-1").as_str())
    );
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.json()["event"], "batch_healthy");
    assert_eq!(ctx.metrics.notifications_sent.load(Ordering::SeqCst), 2);
    assert_eq!(ctx.metrics.notification_retries.load(Ordering::SeqCst), 2);
    // One record for the whole pass.
    assert_eq!(core.records.lock().expect("records").len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_backup_sends_nothing_and_a_new_leader_resends_from_the_recorded_point() {
    let http = HttpSink::start().await.expect("sink");
    let events = [
        "batch_healthy",
        "batch_healthy",
        "rollout_paused",
        "rollout_completed",
    ]
    .map(event)
    .to_vec();
    // Another leader delivered (and had recorded) the first two, then died.
    let view = NotifyView {
        leading: false,
        events: 4,
        notified: BTreeMap::from([("ops".to_string(), 2)]),
    };
    let (core, ctx, views) = Core::start(events, view);
    tokio::spawn(serve_sink(ctx, sink(http.url("/")), views));
    // On this single-threaded runtime the notifier runs to its next wait at each yield: as a
    // backup it must not even read the ledger's events, whatever the view says meanwhile.
    for more in 0..3 {
        core.views.send_modify(|v| v.events = 4 + more);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(core.reads.load(Ordering::SeqCst), 0);
    core.views.send_modify(|v| {
        v.events = 4;
        v.leading = true;
    });
    until("the rest delivered", || http.received().len() == 2).await;
    let prefix = "cd".repeat(8);
    assert_eq!(
        ids(&http),
        vec![format!("{prefix}-2"), format!("{prefix}-3")]
    );
    until("the point recorded", || {
        core.records
            .lock()
            .expect("records")
            .contains(&("ops".into(), 4))
    })
    .await;
}
