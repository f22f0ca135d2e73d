//! The validator's counters and gauges, rendered in Prometheus text format at `/metrics`:
//! consensus (decisions, views, drops, storage syncs, submit latency) and the fleet (reports
//! received and refused, per-agent health, consensus rate, safety score, task throughput).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scbe_wire::status_summary::FleetFigures;

use crate::fleet::monitor::FleetHealth;

/// Counters for logs and `/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Share of validators that voted with the outcome over recent proposals (f64 bits).
    pub consensus_rate_bits: AtomicU64,
    pub decisions: AtomicU64,
    pub view: AtomicU64,
    pub view_changes: AtomicU64,
    /// Notifications a sink took (2xx), refused for good (4xx), or failed and retried.
    pub notifications_sent: AtomicU64,
    pub notifications_refused: AtomicU64,
    pub notification_retries: AtomicU64,
    pub sync_micros_total: AtomicU64,
    pub syncs: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    /// The core's own drop counters, copied after every turn.
    pub(crate) core_dropped: Mutex<BTreeMap<&'static str, u64>>,
    /// Submit-to-decided latency of client requests: counts per bucket (upper bounds below).
    latency_buckets: [AtomicU64; LATENCY_BOUNDS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

/// Histogram bucket upper bounds, in milliseconds.
pub const LATENCY_BOUNDS_MS: [f64; 10] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
];

impl Metrics {
    pub fn observe_latency(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1e3;
        for (i, bound) in LATENCY_BOUNDS_MS.iter().enumerate() {
            if ms <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn set_consensus_rate(&self, rate: f64) {
        self.consensus_rate_bits
            .store(rate.to_bits(), Ordering::Relaxed);
    }

    pub fn consensus_rate(&self) -> f64 {
        f64::from_bits(self.consensus_rate_bits.load(Ordering::Relaxed))
    }

    pub fn dropped(&self, reason: &'static str) {
        if let Ok(mut m) = self.dropped.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self, node: u32, fleet: &FleetHealth) -> String {
        let core_drops = self
            .core_dropped
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let mut s = String::new();
        let mut line = |name: &str, help: &str, kind: &str, value: String| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}\n"
            ));
        };
        line(
            "scbe_decisions_total",
            "Batches decided and executed.",
            "counter",
            self.decisions.load(Ordering::Relaxed).to_string(),
        );
        line(
            "scbe_view",
            "Current view.",
            "gauge",
            self.view.load(Ordering::Relaxed).to_string(),
        );
        line(
            "scbe_view_changes_total",
            "Views entered after the first.",
            "counter",
            self.view_changes.load(Ordering::Relaxed).to_string(),
        );
        for (name, help, value) in [
            (
                "scbe_notifications_sent_total",
                "Notifications a webhook sink accepted (sent while this validator led).",
                &self.notifications_sent,
            ),
            (
                "scbe_notifications_refused_total",
                "Notifications a sink refused for good (4xx) and that were passed over.",
                &self.notifications_refused,
            ),
            (
                "scbe_notification_retries_total",
                "Failed notification attempts that were retried.",
                &self.notification_retries,
            ),
        ] {
            line(
                name,
                help,
                "counter",
                value.load(Ordering::Relaxed).to_string(),
            );
        }
        line(
            "scbe_storage_sync_seconds_total",
            "Time spent committing records.",
            "counter",
            format!(
                "{:.6}",
                self.sync_micros_total.load(Ordering::Relaxed) as f64 / 1e6
            ),
        );
        line(
            "scbe_storage_syncs_total",
            "Record commits (one per loop turn with records).",
            "counter",
            self.syncs.load(Ordering::Relaxed).to_string(),
        );
        s.push_str("# HELP scbe_messages_dropped_total Inputs dropped, by reason.\n# TYPE scbe_messages_dropped_total counter\n");
        let edge = self.dropped.lock().map(|m| m.clone()).unwrap_or_default();
        for (reason, n) in edge.iter().chain(core_drops.iter()) {
            s.push_str(&format!(
                "scbe_messages_dropped_total{{node=\"{node}\",reason=\"{reason}\"}} {n}\n"
            ));
        }
        render_fleet(&mut s, node, fleet, self.consensus_rate());
        s
    }
}

/// Serves `/metrics` in Prometheus text format over plain HTTP/1.0 on `listener` (bound at
/// start-up, so a metrics address that cannot be bound stops the validator from starting).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    fleet: Arc<FleetHealth>,
    node: u32,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        let fleet = Arc::clone(&fleet);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let body = metrics.render(node, &fleet);
            let resp = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

/// Fleet health: what this validator's monitor last verified from each agent.
fn render_fleet(s: &mut String, node: u32, fleet: &FleetHealth, consensus_rate: f64) {
    let latest = fleet.latest();
    let head = |s: &mut String, name: &str, help: &str, kind: &str| {
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    };
    head(
        s,
        "scbe_health_reports_total",
        "Agent health reports received with a valid signature.",
        "counter",
    );
    s.push_str(&format!(
        "scbe_health_reports_total{{node=\"{node}\"}} {}\n",
        fleet.reports()
    ));
    head(
        s,
        "scbe_health_reports_refused_total",
        "Agent health reports refused, by reason (bad signature, wrong agent, malformed).",
        "counter",
    );
    for (reason, n) in fleet.refused() {
        s.push_str(&format!(
            "scbe_health_reports_refused_total{{node=\"{node}\",reason=\"{reason}\"}} {n}\n"
        ));
    }
    type Figure = fn(&scbe_core::rollout::evidence::HealthBody) -> f64;
    let gauges: [(&str, &str, Figure); 5] = [
        (
            "scbe_agent_coherence",
            "Mean coherence over the agent's report window.",
            |b| b.coherence_mean,
        ),
        (
            "scbe_agent_error_rate",
            "Mean error rate over the agent's report window.",
            |b| b.error_rate_mean,
        ),
        (
            "scbe_agent_response_ms_p95",
            "p95 response time over the agent's report window.",
            |b| b.response_ms_p95,
        ),
        (
            "scbe_agent_safety",
            "Minimum safety over the agent's report window.",
            |b| b.safety_min,
        ),
        (
            "scbe_agent_tasks_per_minute",
            "Tasks per minute over the agent's report window.",
            |b| b.tasks_per_minute,
        ),
    ];
    for (name, help, get) in gauges {
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (agent, h) in &latest {
            s.push_str(&format!(
                "{name}{{node=\"{node}\",agent=\"{agent}\",version=\"{}\"}} {}\n",
                h.body.version,
                get(&h.body)
            ));
        }
    }
    let f = FleetFigures::of(latest.values().map(|h| &h.body));
    for (name, help, v) in [
        (
            "scbe_fleet_consensus_rate",
            "Share of validators that voted with the outcome over recent proposals.",
            consensus_rate,
        ),
        (
            "scbe_fleet_safety_score_min",
            "Lowest safety among agents reporting.",
            f.safety_min,
        ),
        (
            "scbe_fleet_safety_score_mean",
            "Mean safety among agents reporting.",
            f.safety_mean,
        ),
        (
            "scbe_fleet_task_throughput",
            "Tasks per minute across agents reporting.",
            f.tasks_per_minute,
        ),
    ] {
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{node=\"{node}\"}} {v}\n"
        ));
    }
}
