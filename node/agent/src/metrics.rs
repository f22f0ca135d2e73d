//! The agent's own `/metrics` (prometheus-client, OpenMetrics text; `[agent] metrics_listen`):
//! orders obeyed, failed and refused (by reason), hook run time, signed reports, failed health
//! samples, the versions it runs and its latest sample. Every series carries `agent`.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use scbe_core::rollout::evidence::Sample;

/// What an order came to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrderLabels {
    /// `deploy` or `rollback`.
    pub action: String,
    /// `done`, `failed` or `refused`.
    pub outcome: String,
    /// The refusal's reason as the signed ack states it (empty otherwise).
    pub reason: String,
}

/// What the agent runs and last sampled, read at scrape time.
#[derive(Clone, Debug, Default)]
struct Now {
    current: String,
    previous: String,
    latest: Option<Sample>,
}

/// The agent's figures.
pub struct AgentMetrics {
    orders: Family<OrderLabels, Counter>,
    hook_seconds: Histogram,
    reports: Counter,
    sample_failures: Counter,
    now: Arc<Mutex<Now>>,
}

/// Hook run-time buckets, in seconds (a rollout's hooks run from well under a second to the
/// several minutes a `kubectl rollout status` may wait).
pub const HOOK_BOUNDS_S: [f64; 9] = [0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 150.0, 300.0];

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            orders: Family::default(),
            hook_seconds: Histogram::new(HOOK_BOUNDS_S),
            reports: Counter::default(),
            sample_failures: Counter::default(),
            now: Arc::default(),
        }
    }
}

impl AgentMetrics {
    /// An order of `action` ("deploy"/"rollback") came to `outcome`, for `reason` if refused.
    pub fn order(&self, action: &str, outcome: &str, reason: &str) {
        self.orders
            .get_or_create(&OrderLabels {
                action: action.into(),
                outcome: outcome.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn hook_ran(&self, took: Duration) {
        self.hook_seconds.observe(took.as_secs_f64());
    }

    /// A sample was taken and a report signed.
    pub fn reported(&self, sample: Sample) {
        self.reports.inc();
        if let Ok(mut n) = self.now.lock() {
            n.latest = Some(sample);
        }
    }

    pub fn sample_failed(&self) {
        self.sample_failures.inc();
    }

    /// The versions the agent runs now.
    pub fn versions(&self, current: &str, previous: Option<&str>) {
        if let Ok(mut n) = self.now.lock() {
            n.current = current.to_string();
            n.previous = previous.unwrap_or_default().to_string();
        }
    }

    /// What `/metrics` encodes for agent `agent`.
    pub fn registry(&self, agent: &str) -> Registry {
        let mut r = Registry::with_labels(std::iter::once((
            Cow::Borrowed("agent"),
            Cow::Owned(agent.to_string()),
        )));
        // The registry adds each help text's final full stop.
        r.register(
            "scbe_agent_orders",
            "Orders answered, by action, outcome and refusal reason",
            self.orders.clone(),
        );
        r.register_with_unit(
            "scbe_agent_hook",
            "Run time of deploy and rollback hooks",
            Unit::Seconds,
            self.hook_seconds.clone(),
        );
        r.register(
            "scbe_agent_reports",
            "Health reports sampled and signed",
            self.reports.clone(),
        );
        r.register(
            "scbe_agent_sample_failures",
            "Health samples the source could not give",
            self.sample_failures.clone(),
        );
        r.register_collector(Box::new(NowCollector(Arc::clone(&self.now))));
        r
    }
}

struct NowCollector(Arc<Mutex<Now>>);

impl fmt::Debug for NowCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NowCollector")
    }
}

impl Collector for NowCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let now = self.0.lock().map(|n| n.clone()).unwrap_or_default();
        {
            let mut info = e.encode_descriptor(
                "scbe_agent_version",
                "The version the agent runs (1) and the one before it.",
                None,
                MetricType::Gauge,
            )?;
            let labels = [
                ("current", now.current.as_str()),
                ("previous", now.previous.as_str()),
            ];
            ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        }
        let Some(s) = now.latest else {
            return Ok(());
        };
        for (name, help, v) in [
            (
                "scbe_agent_sample_coherence",
                "Coherence of the latest sample.",
                s.coherence,
            ),
            (
                "scbe_agent_sample_error_rate",
                "Error rate of the latest sample.",
                s.error_rate,
            ),
            (
                "scbe_agent_sample_response_ms",
                "p95 response time of the latest sample, milliseconds.",
                s.response_ms,
            ),
            (
                "scbe_agent_sample_safety",
                "Safety score of the latest sample.",
                s.safety,
            ),
            (
                "scbe_agent_sample_tasks_per_minute",
                "Tasks per minute of the latest sample.",
                s.tasks_per_minute,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_says_what_the_agent_did_and_runs() {
        let m = AgentMetrics::default();
        m.order("deploy", "done", "");
        m.order("deploy", "refused", "NotEnoughEndorsements");
        m.hook_ran(Duration::from_millis(700));
        m.versions("r2", Some("v0"));
        m.reported(Sample {
            coherence: 0.91,
            error_rate: 0.02,
            response_ms: 110.0,
            safety: 0.99,
            tasks_per_minute: 31.0,
        });
        let page = scbe_wire::metrics_http::encode(&m.registry("agent-07"));
        for line in [
            "scbe_agent_orders_total{agent=\"agent-07\",action=\"deploy\",outcome=\"done\",reason=\"\"} 1",
            "scbe_agent_orders_total{agent=\"agent-07\",action=\"deploy\",outcome=\"refused\",reason=\"NotEnoughEndorsements\"} 1",
            "scbe_agent_hook_seconds_bucket{agent=\"agent-07\",le=\"1.0\"} 1",
            "scbe_agent_reports_total{agent=\"agent-07\"} 1",
            "scbe_agent_version{agent=\"agent-07\",current=\"r2\",previous=\"v0\"} 1",
            "scbe_agent_sample_coherence{agent=\"agent-07\"} 0.91",
            "# EOF",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} not in:\n{page}");
        }
    }
}
