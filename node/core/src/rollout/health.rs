//! Health judgement, pure and deterministic: every validator reaches the same verdict on the same
//! signed report, so the ledger can decide on evidence without trusting who brought it.
//!
//! Three outcomes (DESIGN §5): healthy, degraded, or not enough data yet. "Not enough data" is
//! never a pass: a batch completes only on healthy reports, and a batch with no healthy report by
//! its deadline rolls back.

use crate::InvalidSetting;
use serde::{Deserialize, Serialize};

use super::evidence::{HealthBody, Sample, MAX_LATEST_SAMPLES};

/// When an agent counts as healthy or degraded. Identical on every validator (ledger config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthThresholds {
    /// Healthy needs mean coherence above this.
    pub min_coherence: f64,
    /// Healthy needs mean error rate below this.
    pub max_error_rate: f64,
    /// Healthy needs p95 response time at or below this (the release's latency gate).
    pub max_response_ms_p95: f64,
    /// Healthy needs every sample's safety at or above this (the canary's safety re-check).
    pub min_safety: f64,
    /// A healthy verdict needs at least this many samples since the deploy: the monitoring
    /// window divided by the sample interval.
    pub min_samples: u32,
    /// Degradation is proven by this many consecutive latest samples that each break a
    /// threshold (1 reacts to the first bad sample; more tolerate noise).
    pub breach_samples: u32,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            min_coherence: 0.7,
            max_error_rate: 0.05,
            max_response_ms_p95: 200.0,
            min_safety: 0.95,
            // 5 minutes at one sample every 10 s.
            min_samples: 30,
            breach_samples: 2,
        }
    }
}

/// What a report proves.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Healthy,
    /// Enough samples and a threshold crossed; the reason names agent, figure and bound.
    Degraded(String),
    /// Too few samples to say either way yet.
    NotYet(String),
}

impl HealthThresholds {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let unit = [
            ("min_coherence", self.min_coherence),
            ("max_error_rate", self.max_error_rate),
            ("min_safety", self.min_safety),
        ];
        for (k, v) in unit {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(InvalidSetting::new(
                    k,
                    format!("must be between 0 and 1, got {v}"),
                ));
            }
        }
        if !self.max_response_ms_p95.is_finite() || self.max_response_ms_p95 <= 0.0 {
            return Err(InvalidSetting::new(
                "max_response_ms_p95",
                format!(
                    "must be a positive number, got {}",
                    self.max_response_ms_p95
                ),
            ));
        }
        if self.min_samples == 0 {
            return Err(InvalidSetting::new("min_samples", "must be at least 1"));
        }
        if self.breach_samples == 0 || self.breach_samples as usize > MAX_LATEST_SAMPLES {
            return Err(InvalidSetting::new(
                "breach_samples",
                format!(
                    "must be between 1 and {MAX_LATEST_SAMPLES}, got {}",
                    self.breach_samples
                ),
            ));
        }
        Ok(())
    }

    /// The first threshold this sample breaks, if any.
    pub fn breach(&self, s: &Sample) -> Option<String> {
        if s.coherence <= self.min_coherence {
            return Some(format!(
                "coherence {} <= {}",
                s.coherence, self.min_coherence
            ));
        }
        if s.error_rate >= self.max_error_rate {
            return Some(format!(
                "error rate {} >= {}",
                s.error_rate, self.max_error_rate
            ));
        }
        if s.response_ms > self.max_response_ms_p95 {
            return Some(format!(
                "response time {} ms > {} ms",
                s.response_ms, self.max_response_ms_p95
            ));
        }
        if s.safety < self.min_safety {
            return Some(format!("safety {} < {}", s.safety, self.min_safety));
        }
        None
    }

    /// The verdict on one (already authenticated and range-checked) report.
    pub fn judge(&self, b: &HealthBody) -> Verdict {
        let k = self.breach_samples as usize;
        if b.latest.len() >= k {
            let tail = &b.latest[b.latest.len() - k..];
            let breaches: Vec<String> = tail.iter().filter_map(|s| self.breach(s)).collect();
            if breaches.len() == k {
                let last = breaches.last().cloned().unwrap_or_default();
                return Verdict::Degraded(format!(
                    "{}: {last} ({k} consecutive sample{} over the threshold)",
                    b.agent,
                    if k == 1 { "" } else { "s" }
                ));
            }
        }
        if b.samples < self.min_samples {
            return Verdict::NotYet(format!(
                "{}: {} of {} samples",
                b.agent, b.samples, self.min_samples
            ));
        }
        // The whole monitoring window has passed: judge its aggregates.
        let aggregate = Sample {
            coherence: b.coherence_mean,
            error_rate: b.error_rate_mean,
            response_ms: b.response_ms_p95,
            safety: b.safety_min,
            tasks_per_minute: b.tasks_per_minute,
        };
        match self.breach(&aggregate) {
            Some(why) => Verdict::Degraded(format!(
                "{}: {why} over a window of {} samples",
                b.agent, b.window
            )),
            None => Verdict::Healthy,
        }
    }

    pub fn healthy(&self, b: &HealthBody) -> bool {
        self.judge(b) == Verdict::Healthy
    }

    /// These thresholds reduced to the floor every agent must meet whatever else judges it:
    /// the safety bound and the samples a verdict needs. Coherence, error rate and response
    /// time never breach (a canary step judged by its baseline comparison alone).
    pub fn floor_only(&self) -> Self {
        Self {
            min_coherence: f64::NEG_INFINITY,
            max_error_rate: f64::INFINITY,
            max_response_ms_p95: f64::INFINITY,
            ..*self
        }
    }
}

/// Aggregates of a window of samples, as an agent reports them: means of coherence, error rate
/// and throughput, p95 of response time, minimum of safety.
pub fn aggregate(window: &[Sample]) -> Option<Sample> {
    if window.is_empty() {
        return None;
    }
    let n = window.len() as f64;
    let mut response: Vec<f64> = window.iter().map(|s| s.response_ms).collect();
    response.sort_by(f64::total_cmp);
    // Nearest-rank p95.
    let rank = ((0.95 * n).ceil() as usize).clamp(1, response.len());
    Some(Sample {
        coherence: window.iter().map(|s| s.coherence).sum::<f64>() / n,
        error_rate: window.iter().map(|s| s.error_rate).sum::<f64>() / n,
        response_ms: response[rank - 1],
        safety: window
            .iter()
            .map(|s| s.safety)
            .fold(f64::INFINITY, f64::min),
        tasks_per_minute: window.iter().map(|s| s.tasks_per_minute).sum::<f64>() / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Sample {
        Sample {
            coherence: 0.9,
            error_rate: 0.01,
            response_ms: 90.0,
            safety: 0.98,
            tasks_per_minute: 12.0,
        }
    }

    fn bad() -> Sample {
        Sample {
            coherence: 0.4,
            ..good()
        }
    }

    fn body(samples: u32, window: &[Sample]) -> HealthBody {
        let agg = aggregate(window).unwrap_or_else(good);
        let latest = window[window.len().saturating_sub(MAX_LATEST_SAMPLES)..].to_vec();
        HealthBody {
            agent: "a".into(),
            rollout: 1,
            version: "v1".into(),
            report: 1,
            samples,
            window: window.len() as u32,
            coherence_mean: agg.coherence,
            error_rate_mean: agg.error_rate,
            response_ms_p95: agg.response_ms,
            safety_min: agg.safety,
            tasks_per_minute: agg.tasks_per_minute,
            latest,
        }
    }

    fn t() -> HealthThresholds {
        HealthThresholds {
            min_samples: 5,
            breach_samples: 2,
            ..HealthThresholds::default()
        }
    }

    #[test]
    fn three_outcomes() {
        assert!(matches!(
            t().judge(&body(3, &[good(); 3])),
            Verdict::NotYet(_)
        ));
        assert_eq!(t().judge(&body(5, &[good(); 5])), Verdict::Healthy);
        let mut w = vec![good(); 4];
        w.extend([bad(), bad()]);
        assert!(
            matches!(t().judge(&body(6, &w)), Verdict::Degraded(r) if r.contains("coherence 0.4"))
        );
    }

    #[test]
    fn degradation_is_proven_before_the_window_ends_but_not_by_one_noisy_sample() {
        // Two consecutive bad samples prove it after 3 samples, before min_samples.
        assert!(matches!(
            t().judge(&body(3, &[good(), bad(), bad()])),
            Verdict::Degraded(_)
        ));
        // One bad sample among good ones does not.
        assert!(matches!(
            t().judge(&body(3, &[good(), good(), bad()])),
            Verdict::NotYet(_)
        ));
        let one = HealthThresholds {
            breach_samples: 1,
            ..t()
        };
        assert!(matches!(
            one.judge(&body(1, &[bad()])),
            Verdict::Degraded(_)
        ));
    }

    #[test]
    fn a_window_that_fails_on_aggregate_is_degraded() {
        // Error rate just under the bound per sample except a spike: mean crosses.
        let mut w = vec![
            Sample {
                error_rate: 0.04,
                ..good()
            };
            5
        ];
        w[1].error_rate = 0.2;
        let v = t().judge(&body(5, &w));
        assert!(
            matches!(v, Verdict::Degraded(ref r) if r.contains("error rate")),
            "{v:?}"
        );
        // p95 response over the bound, no single latest breach pair.
        let mut w = vec![good(); 5];
        w[0].response_ms = 500.0;
        assert!(matches!(t().judge(&body(5, &w)), Verdict::Degraded(_)));
    }

    #[test]
    fn bounds_are_as_documented() {
        let th = t();
        let at = |f: fn(&mut Sample)| {
            let mut s = good();
            f(&mut s);
            th.breach(&s)
        };
        assert!(
            at(|s| s.coherence = 0.7).is_some(),
            "coherence must be > 0.7"
        );
        assert!(at(|s| s.coherence = 0.7001).is_none());
        assert!(
            at(|s| s.error_rate = 0.05).is_some(),
            "error rate must be < 0.05"
        );
        assert!(
            at(|s| s.response_ms = 200.0).is_none(),
            "p95 within the gate is inclusive"
        );
        assert!(at(|s| s.response_ms = 200.1).is_some());
        assert!(at(|s| s.safety = 0.95).is_none(), "safety >= 0.95");
        assert!(at(|s| s.safety = 0.9499).is_some());
    }

    #[test]
    fn p95_is_nearest_rank() {
        let w: Vec<Sample> = (1..=20)
            .map(|i| Sample {
                response_ms: i as f64,
                ..good()
            })
            .collect();
        assert_eq!(aggregate(&w).map(|a| a.response_ms), Some(19.0));
        assert_eq!(aggregate(&w[..1]).map(|a| a.response_ms), Some(1.0));
        assert_eq!(aggregate(&[]), None);
    }
}
