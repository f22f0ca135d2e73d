//! One task per notification sink: while this validator leads, deliver the sink's events in
//! ledger order, then have the delivered point recorded by the cluster.
//!
//! Where a sink starts: the ledger's record for it (`LedgerState::notified`), or further if this
//! process delivered further and its record is still being ordered. So a new leader resends
//! only what no leader recorded: at most the notifications a leader delivered just before it
//! died, which carry the same ids as the first time. A sink that is down is retried with capped
//! exponential backoff, in order, for as long as this validator leads; a sink that refuses a
//! body (a 4xx other than 408/429) would refuse it again, so that one is logged, counted and
//! passed over.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use tokio::sync::{mpsc, watch};

use scbe_core::governance::event::Event;
use scbe_wire::notify_entry::NotifyEntry;
use scbe_wire::supervisor::Supervisor;

use super::notification::Notification;
use super::webhook::{post_json, Answer};
use super::NotifyView;
use crate::inbound::Inbound;
use crate::metrics::Metrics;

/// First wait before a failed delivery is tried again (doubling up to `max_backoff`).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How often a leader whose delivered point is not yet recorded asks again (its `Notified`
/// may have been lost with a view change).
const RESUBMIT_EVERY: Duration = Duration::from_secs(5);

/// Reads one chunk of ledger events from a position (the read path, off the core task).
pub type EventReader = Arc<
    dyn Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<(u64, Event)>> + Send>>
        + Send
        + Sync,
>;

/// What every sink's task shares.
pub struct NotifyContext {
    pub node: u32,
    /// The cluster's genesis digest in hex (the prefix of every notification id).
    pub genesis_hex: String,
    pub cluster: String,
    /// The core task: `Notified` records.
    pub inbound: mpsc::Sender<Inbound>,
    /// The ledger's events, read off the core.
    pub events: EventReader,
    /// Trust for `https://` sinks.
    pub tls: Arc<rustls::ClientConfig>,
    pub metrics: Arc<Metrics>,
    /// One call, connect to answer.
    pub call_timeout: Duration,
    /// Longest wait between two tries of one notification.
    pub max_backoff: Duration,
}

/// A sink as its task uses it (checked when the genesis loaded).
struct Sink {
    name: String,
    url: Uri,
    takes: BTreeSet<String>,
}

/// Starts one task per sink under `tasks`.
pub fn start_notifiers(
    tasks: &mut Supervisor,
    ctx: Arc<NotifyContext>,
    sinks: &[NotifyEntry],
    views: watch::Receiver<NotifyView>,
) {
    for entry in sinks {
        let Ok(url) = entry.uri() else {
            // The genesis check refuses such a URL before a node starts.
            continue;
        };
        let sink = Sink {
            name: entry.name.clone(),
            url,
            takes: entry.takes(),
        };
        tasks.spawn(
            format!("notifier for sink {}", entry.name),
            serve_sink(Arc::clone(&ctx), sink, views.clone()),
        );
    }
}

/// Serves one sink until the core task is gone.
async fn serve_sink(ctx: Arc<NotifyContext>, sink: Sink, mut views: watch::Receiver<NotifyView>) {
    // Every event before this was delivered (or passed over) by this process.
    let mut delivered = 0u64;
    loop {
        let Some(from) = wait_for_work(&ctx, &sink.name, delivered, &mut views).await else {
            return;
        };
        let chunk = (ctx.events)(from).await;
        if chunk.is_empty() {
            if views.changed().await.is_err() {
                return;
            }
            continue;
        }
        let mut through = from;
        let mut sent = 0usize;
        for (index, event) in chunk {
            if sink.takes.contains(&event.kind) {
                if !views.borrow().leading {
                    break;
                }
                let n = Notification::new(&ctx.genesis_hex, &ctx.cluster, index, &event);
                if !deliver(&ctx, &sink, &n, &mut views).await {
                    break;
                }
                sent += 1;
            }
            through = index + 1;
        }
        delivered = delivered.max(through);
        if sent > 0 {
            record(&ctx, &sink.name, delivered).await;
        }
    }
}

/// Waits until this validator leads and the ledger holds events after what was delivered;
/// returns where to start. Meanwhile, asks again for a delivered point the ledger has not
/// recorded. `None`: the core task is gone.
async fn wait_for_work(
    ctx: &NotifyContext,
    name: &str,
    delivered: u64,
    views: &mut watch::Receiver<NotifyView>,
) -> Option<u64> {
    loop {
        let (leading, events, recorded) = {
            let v = views.borrow_and_update();
            (
                v.leading,
                v.events,
                v.notified.get(name).copied().unwrap_or(0),
            )
        };
        let from = recorded.max(delivered);
        if leading && events > from {
            return Some(from);
        }
        if leading && recorded < delivered {
            tokio::select! {
                changed = views.changed() => changed.ok()?,
                () = tokio::time::sleep(RESUBMIT_EVERY) => record(ctx, name, delivered).await,
            }
        } else {
            views.changed().await.ok()?;
        }
    }
}

/// Asks the core to have `through` recorded for `sink`.
async fn record(ctx: &NotifyContext, sink: &str, through: u64) {
    let _ = ctx
        .inbound
        .send(Inbound::Notified {
            sink: sink.to_string(),
            through,
        })
        .await;
}

/// Posts `n` until the sink takes it (or refuses it for good): `true`. `false`: this validator
/// stopped leading first (the next leader resends it).
async fn deliver(
    ctx: &NotifyContext,
    sink: &Sink,
    n: &Notification,
    views: &mut watch::Receiver<NotifyView>,
) -> bool {
    let body = n.to_json();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let answer = post_json(&sink.url, &ctx.tls, &n.id, body.clone(), ctx.call_timeout).await;
        let why = match answer.map(Answer::of) {
            Ok(Answer::Delivered) => {
                ctx.metrics
                    .notifications_sent
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    node = ctx.node,
                    sink = sink.name,
                    id = n.id,
                    event = n.event,
                    "notified"
                );
                return true;
            }
            Ok(Answer::Refused(status)) => {
                ctx.metrics
                    .notifications_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    node = ctx.node,
                    sink = sink.name,
                    id = n.id,
                    event = n.event,
                    %status,
                    "the sink refused this notification; passed over"
                );
                return true;
            }
            Ok(Answer::Retry(status)) => format!("answered {status}"),
            Err(e) => e.to_string(),
        };
        ctx.metrics
            .notification_retries
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            node = ctx.node,
            sink = sink.name,
            id = n.id,
            retry_in_ms = backoff.as_millis() as u64,
            "notification not delivered: {why}"
        );
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                changed = views.changed() => {
                    if changed.is_err() || !views.borrow().leading {
                        return false;
                    }
                }
            }
        }
        backoff = (backoff * 2).min(ctx.max_backoff);
    }
}

#[cfg(test)]
#[path = "notifier_tests.rs"]
mod tests;
