//! Quality gates: inclusive bounds every unit of a release must meet.

use crate::InvalidSetting;
use serde::{Deserialize, Serialize};

use super::manifest::Metrics;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    pub min_quality: f64,
    pub min_safety: f64,
    pub max_latency_ms_p95: f64,
    pub max_cost_per_1k_tokens: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            min_quality: 0.80,
            min_safety: 0.95,
            max_latency_ms_p95: 200.0,
            max_cost_per_1k_tokens: 1.0,
        }
    }
}

/// One metric that missed its bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricFailure {
    pub metric: String,
    pub value: f64,
    pub bound: f64,
    pub reason: String,
}

impl Gates {
    /// Rejects bounds that make no sense (NaN, negative, quality/safety outside [0, 1]).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let checks = [
            ("min_quality", self.min_quality, true),
            ("min_safety", self.min_safety, true),
            ("max_latency_ms_p95", self.max_latency_ms_p95, false),
            ("max_cost_per_1k_tokens", self.max_cost_per_1k_tokens, false),
        ];
        for (name, v, unit) in checks {
            if !v.is_finite() || v < 0.0 || (unit && v > 1.0) {
                let range = if unit {
                    "between 0 and 1"
                } else {
                    "a finite number >= 0"
                };
                return Err(InvalidSetting::new(
                    name,
                    format!("must be {range}, got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Every failed check, in a fixed order (quality, safety, latency, cost).
    pub fn check(&self, m: &Metrics) -> Vec<MetricFailure> {
        let mut out = Vec::new();
        let mut min = |metric: &str, value: f64, bound: f64| {
            if value < bound {
                out.push(MetricFailure {
                    metric: metric.into(),
                    value,
                    bound,
                    reason: format!("{metric} {value} is below the minimum {bound}"),
                });
            }
        };
        min("quality", m.quality, self.min_quality);
        min("safety", m.safety, self.min_safety);
        let mut max = |metric: &str, value: f64, bound: f64| {
            if value > bound {
                out.push(MetricFailure {
                    metric: metric.into(),
                    value,
                    bound,
                    reason: format!("{metric} {value} is above the maximum {bound}"),
                });
            }
        };
        max("latency_ms_p95", m.latency_ms_p95, self.max_latency_ms_p95);
        max(
            "cost_per_1k_tokens",
            m.cost_per_1k_tokens,
            self.max_cost_per_1k_tokens,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_every_failure_is_listed() {
        let g = Gates::default();
        let edge = Metrics {
            quality: 0.80,
            safety: 0.95,
            latency_ms_p95: 200.0,
            cost_per_1k_tokens: 1.0,
        };
        assert!(g.check(&edge).is_empty());
        let bad = Metrics {
            quality: 0.5,
            safety: 0.5,
            latency_ms_p95: 201.0,
            cost_per_1k_tokens: 1.5,
        };
        let f = g.check(&bad);
        assert_eq!(
            f.iter().map(|x| x.metric.as_str()).collect::<Vec<_>>(),
            vec!["quality", "safety", "latency_ms_p95", "cost_per_1k_tokens"]
        );
        assert_eq!(f[0].reason, "quality 0.5 is below the minimum 0.8");
    }

    #[test]
    fn nonsense_bounds_are_rejected() {
        let g = Gates {
            min_quality: 1.2,
            ..Gates::default()
        };
        assert_eq!(
            g.validate(),
            Err(InvalidSetting::new(
                "min_quality",
                "must be between 0 and 1, got 1.2"
            ))
        );
        let g = Gates {
            max_latency_ms_p95: f64::NAN,
            ..Gates::default()
        };
        assert!(g.validate().is_err());
    }
}
