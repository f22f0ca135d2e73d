//! The validator's counters and gauges at `/metrics` (prometheus-client, OpenMetrics text):
//! consensus (decisions, views, drops, storage syncs, submit latency), notifications, and the
//! fleet (reports received and refused, per-agent health, consensus rate, safety score, task
//! throughput). The hot path bumps plain atomics; a [`Collector`] reads them at scrape time, and
//! the fleet's figures are read from the monitor then too. Every series carries `node`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use scbe_wire::status_summary::FleetFigures;

use crate::fleet::monitor::FleetHealth;

/// Counters for logs and `/metrics`.
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
    /// Submit-to-decided latency of client requests, in seconds.
    latency: Histogram,
}

/// Histogram bucket upper bounds, in seconds (1 ms to 5 s).
pub const LATENCY_BOUNDS_S: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

impl Default for Metrics {
    fn default() -> Self {
        Self {
            consensus_rate_bits: AtomicU64::default(),
            decisions: AtomicU64::default(),
            view: AtomicU64::default(),
            view_changes: AtomicU64::default(),
            notifications_sent: AtomicU64::default(),
            notifications_refused: AtomicU64::default(),
            notification_retries: AtomicU64::default(),
            sync_micros_total: AtomicU64::default(),
            syncs: AtomicU64::default(),
            dropped: Mutex::default(),
            core_dropped: Mutex::default(),
            latency: Histogram::new(LATENCY_BOUNDS_S),
        }
    }
}

impl Metrics {
    pub fn observe_latency(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
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

    /// What `/metrics` encodes for validator `node`.
    pub fn registry(self: &Arc<Self>, node: u32, fleet: Arc<FleetHealth>) -> Registry {
        let mut r = Registry::with_labels(std::iter::once((
            Cow::Borrowed("node"),
            Cow::Owned(node.to_string()),
        )));
        r.register_with_unit(
            "scbe_submit_latency",
            // The registry adds the final full stop.
            "Submit-to-decided latency of client requests",
            Unit::Seconds,
            self.latency.clone(),
        );
        r.register_collector(Box::new(CoreFigures(Arc::clone(self))));
        r.register_collector(Box::new(FleetFiguresNow {
            fleet,
            metrics: Arc::clone(self),
        }));
        r
    }
}

/// One unlabelled counter.
pub(crate) fn counter<N: prometheus_client::encoding::EncodeCounterValue + fmt::Debug>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// One unlabelled gauge.
pub(crate) fn gauge<N: prometheus_client::encoding::EncodeGaugeValue + fmt::Debug>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// The consensus and notification counters, read at scrape time.
struct CoreFigures(Arc<Metrics>);

impl fmt::Debug for CoreFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CoreFigures")
    }
}

impl Collector for CoreFigures {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let m = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut e,
            "scbe_decisions",
            "Batches decided and executed.",
            load(&m.decisions),
        )?;
        gauge(&mut e, "scbe_view", "Current view.", load(&m.view) as i64)?;
        counter(
            &mut e,
            "scbe_view_changes",
            "Views entered after the first.",
            load(&m.view_changes),
        )?;
        for (name, help, value) in [
            (
                "scbe_notifications_sent",
                "Notifications a webhook sink accepted (sent while this validator led).",
                &m.notifications_sent,
            ),
            (
                "scbe_notifications_refused",
                "Notifications a sink refused for good (4xx) and that were passed over.",
                &m.notifications_refused,
            ),
            (
                "scbe_notification_retries",
                "Failed notification attempts that were retried.",
                &m.notification_retries,
            ),
        ] {
            counter(&mut e, name, help, load(value))?;
        }
        counter(
            &mut e,
            "scbe_storage_sync_seconds",
            "Time spent committing records.",
            load(&m.sync_micros_total) as f64 / 1e6,
        )?;
        counter(
            &mut e,
            "scbe_storage_syncs",
            "Record commits (one per loop turn with records).",
            load(&m.syncs),
        )?;
        let edge = m.dropped.lock().map(|d| d.clone()).unwrap_or_default();
        let core = m.core_dropped.lock().map(|d| d.clone()).unwrap_or_default();
        let mut family = e.encode_descriptor(
            "scbe_messages_dropped",
            "Inputs dropped, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in edge.iter().chain(core.iter()) {
            ConstCounter::new(*n).encode(family.encode_family(&[("reason", *reason)])?)?;
        }
        Ok(())
    }
}

/// Fleet health as this validator's monitor has it at scrape time.
struct FleetFiguresNow {
    fleet: Arc<FleetHealth>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for FleetFiguresNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetFiguresNow")
    }
}

impl Collector for FleetFiguresNow {
    fn encode(&self, e: DescriptorEncoder) -> fmt::Result {
        encode_fleet(e, &self.fleet, self.metrics.consensus_rate())
    }
}

/// Fleet health: what this validator's monitor last verified from each agent.
fn encode_fleet(mut e: DescriptorEncoder, fleet: &FleetHealth, consensus_rate: f64) -> fmt::Result {
    let latest = fleet.latest();
    counter(
        &mut e,
        "scbe_health_reports",
        "Agent health reports received with a valid signature.",
        fleet.reports(),
    )?;
    {
        let mut family = e.encode_descriptor(
            "scbe_health_reports_refused",
            "Agent health reports refused, by reason (bad signature, wrong agent, malformed).",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in fleet.refused() {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason)])?)?;
        }
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
        let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (agent, h) in &latest {
            let labels = [
                ("agent", agent.as_str()),
                ("version", h.body.version.as_str()),
            ];
            ConstGauge::new(get(&h.body)).encode(family.encode_family(&labels)?)?;
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
        gauge(&mut e, name, help, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::rollout::evidence::HealthBody;

    /// The exposition keeps the names and labels dashboards and tests read, in OpenMetrics
    /// form: counters end in `_total`, the latency is a histogram in seconds, every series
    /// carries the node, the page ends in `# EOF`.
    #[test]
    fn the_page_carries_every_figure_with_its_node() {
        let m = Arc::new(Metrics::default());
        m.decisions.fetch_add(7, Ordering::Relaxed);
        m.notifications_sent.fetch_add(2, Ordering::Relaxed);
        m.dropped("peer stream under another genesis");
        m.observe_latency(Duration::from_millis(3));
        m.set_consensus_rate(0.75);
        let fleet = Arc::new(FleetHealth::default());
        fleet.refuse("bad signature");
        fleet.update(&HealthBody {
            agent: "agent-01".into(),
            rollout: 0,
            version: "r1".into(),
            report: 1,
            samples: 4,
            window: 4,
            coherence_mean: 0.9,
            error_rate_mean: 0.01,
            response_ms_p95: 120.0,
            safety_min: 0.99,
            tasks_per_minute: 30.0,
            latest: Vec::new(),
        });
        let page = scbe_wire::metrics_http::encode(&m.registry(3, fleet));
        for line in [
            "scbe_decisions_total{node=\"3\"} 7",
            "scbe_notifications_sent_total{node=\"3\"} 2",
            "scbe_messages_dropped_total{node=\"3\",reason=\"peer stream under another genesis\"} 1",
            "scbe_submit_latency_seconds_bucket{node=\"3\",le=\"0.005\"} 1",
            "scbe_submit_latency_seconds_count{node=\"3\"} 1",
            "scbe_health_reports_total{node=\"3\"} 1",
            "scbe_health_reports_refused_total{node=\"3\",reason=\"bad signature\"} 1",
            "scbe_agent_coherence{node=\"3\",agent=\"agent-01\",version=\"r1\"} 0.9",
            "scbe_fleet_consensus_rate{node=\"3\"} 0.75",
            "# EOF",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} not in:\n{page}");
        }
    }
}
