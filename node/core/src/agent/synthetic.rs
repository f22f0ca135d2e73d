//! A seeded synthetic health model for demos, tests and the simulator: healthy figures with
//! noise, and a degradation that starts after `degrade_after` samples on any release whose
//! version, unit ids or unit URIs contain the `degrade` pattern. A release matching `drift`
//! instead runs measurably worse than a healthy one yet inside every absolute threshold
//! (what only the comparison with a baseline catches). Deterministic: the same seed,
//! agent and sample number always give the same figures (noise is derived from sha256).

use crate::InvalidSetting;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::rollout::evidence::Sample;
use crate::rollout::order::OrderUnit;

fn d_after() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticModel {
    /// Seed of the noise.
    #[serde(default)]
    pub seed: u64,
    /// Releases whose version, unit ids or unit URIs contain this text degrade.
    #[serde(default)]
    pub degrade: Option<String>,
    /// Samples on such a release before the degradation shows.
    #[serde(default = "d_after")]
    pub degrade_after: u32,
    /// Releases matching this text drift: worse than healthy, inside every threshold.
    #[serde(default)]
    pub drift: Option<String>,
}

impl SyntheticModel {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.degrade.as_deref() == Some("") {
            return Err(InvalidSetting::new(
                "degrade",
                "must not be empty (omit it for a model that never degrades)",
            ));
        }
        if self.drift.as_deref() == Some("") {
            return Err(InvalidSetting::new(
                "drift",
                "must not be empty (omit it for a model that never drifts)",
            ));
        }
        Ok(())
    }

    /// Whether a release degrades under this model.
    pub fn degrades(&self, version: &str, units: &[OrderUnit]) -> bool {
        matches(self.degrade.as_deref(), version, units)
    }

    /// Whether a release drifts under this model.
    pub fn drifts(&self, version: &str, units: &[OrderUnit]) -> bool {
        matches(self.drift.as_deref(), version, units)
    }

    /// Noise in [-1, 1] for (agent, sample number, figure).
    fn noise(&self, agent: &str, n: u64, figure: u8) -> f64 {
        let h = Sha256::new()
            .chain_update(self.seed.to_be_bytes())
            .chain_update(agent.as_bytes())
            .chain_update(n.to_be_bytes())
            .chain_update([figure])
            .finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        (u64::from_be_bytes(b) as f64 / u64::MAX as f64) * 2.0 - 1.0
    }

    /// The `k`-th sample (0-based) since `version` was deployed; `n` numbers every sample the
    /// agent ever took (so noise differs between deployments).
    pub fn sample(
        &self,
        agent: &str,
        version: &str,
        units: &[OrderUnit],
        k: u32,
        n: u64,
    ) -> Sample {
        let degraded = self.degrades(version, units) && k >= self.degrade_after;
        let z = |f| self.noise(agent, n, f);
        let drifted = !degraded && self.drifts(version, units);
        let s = if degraded {
            Sample {
                coherence: 0.45 + 0.05 * z(0),
                error_rate: 0.12 + 0.03 * z(1),
                response_ms: 320.0 + 40.0 * z(2),
                safety: 0.92 + 0.01 * z(3),
                tasks_per_minute: 14.0 + 3.0 * z(4),
            }
        } else if drifted {
            // Every figure inside the default thresholds (coherence > 0.7, errors < 0.05,
            // p95 <= 200 ms, safety >= 0.95) even at the worst noise, yet clearly worse.
            Sample {
                coherence: 0.78 + 0.03 * z(0),
                error_rate: 0.035 + 0.005 * z(1),
                response_ms: 160.0 + 15.0 * z(2),
                safety: 0.975 + 0.005 * z(3),
                tasks_per_minute: 24.0 + 5.0 * z(4),
            }
        } else {
            Sample {
                coherence: 0.9 + 0.03 * z(0),
                error_rate: 0.01 + 0.005 * z(1),
                response_ms: 90.0 + 15.0 * z(2),
                safety: 0.985 + 0.005 * z(3),
                tasks_per_minute: 30.0 + 5.0 * z(4),
            }
        };
        // Round so reports stay short and every figure prints exactly.
        let r = |x: f64, d: f64| (x * d).round() / d;
        Sample {
            coherence: r(s.coherence, 1e4),
            error_rate: r(s.error_rate, 1e4),
            response_ms: r(s.response_ms, 10.0),
            safety: r(s.safety, 1e4),
            tasks_per_minute: r(s.tasks_per_minute, 10.0),
        }
    }
}

fn matches(pattern: Option<&str>, version: &str, units: &[OrderUnit]) -> bool {
    let Some(p) = pattern else {
        return false;
    };
    version.contains(p) || units.iter().any(|u| u.id.contains(p) || u.uri.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::health::HealthThresholds;

    fn unit(id: &str) -> OrderUnit {
        OrderUnit {
            provider: "hf".into(),
            id: id.into(),
            uri: format!("hf://{id}"),
        }
    }

    #[test]
    fn healthy_by_default_and_deterministic() {
        let m = SyntheticModel {
            seed: 1,
            degrade: Some("bad".into()),
            degrade_after: 2,
            drift: None,
        };
        let t = HealthThresholds::default();
        for k in 0..50 {
            let s = m.sample("a", "v1", &[unit("textgen-v2")], k, k as u64);
            assert!(s.check().is_ok());
            assert!(t.breach(&s).is_none(), "sample {k}: {s:?}");
            assert_eq!(s, m.sample("a", "v1", &[unit("textgen-v2")], k, k as u64));
        }
    }

    #[test]
    fn a_matching_release_degrades_after_k_samples() {
        let m = SyntheticModel {
            seed: 1,
            degrade: Some("bad".into()),
            degrade_after: 2,
            drift: None,
        };
        let t = HealthThresholds::default();
        let units = [unit("textgen-bad-v2")];
        assert!(t.breach(&m.sample("a", "r-1", &units, 1, 1)).is_none());
        for k in 2..20 {
            let s = m.sample("a", "r-1", &units, k, k as u64);
            assert!(s.check().is_ok());
            assert!(t.breach(&s).is_some(), "sample {k}: {s:?}");
        }
        assert!(m.degrades("v-bad", &[]));
        assert!(!SyntheticModel { degrade: None, ..m }.degrades("v-bad", &units));
    }

    /// A drifting release stays inside every threshold at every sample, and the comparison
    /// with healthy agents' samples over a 6-sample window of three agents finds it worse.
    #[test]
    fn a_drifting_release_passes_every_threshold_but_not_the_comparison() {
        use crate::rollout::baseline::{compare, BaselineSettings, BaselineVerdict, Metric};
        let m = SyntheticModel {
            seed: 7,
            degrade: None,
            degrade_after: 3,
            drift: Some("drift".into()),
        };
        let t = HealthThresholds::default();
        let (mut canary, mut baseline) = (Vec::new(), Vec::new());
        for agent in ["a", "b", "c"] {
            for k in 0..6 {
                let s = m.sample(agent, "r-drift", &[], k, u64::from(k));
                assert!(t.breach(&s).is_none(), "drifted sample {k}: {s:?}");
                canary.push(s);
                baseline.push(m.sample(agent, "r1", &[], k, u64::from(k) + 100));
            }
        }
        assert!(m.drifts("r-drift", &[]) && !m.drifts("r1", &[]));
        let settings = BaselineSettings {
            min_samples: 18,
            ..BaselineSettings::default()
        };
        let c = compare(&canary, &baseline, &settings);
        assert!(matches!(c.verdict, BaselineVerdict::Fail { .. }), "{c:?}");
        let worse: Vec<Metric> = c
            .metrics
            .iter()
            .filter(|x| x.worse)
            .map(|x| x.metric)
            .collect();
        assert!(worse.contains(&Metric::Coherence), "{worse:?}");
        // And two healthy groups do not differ.
        let other: Vec<Sample> = (0..18)
            .map(|k| m.sample("d", "r1", &[], k, u64::from(k) + 500))
            .collect();
        let c = compare(&other, &baseline, &settings);
        assert!(matches!(c.verdict, BaselineVerdict::Pass { .. }), "{c:?}");
    }
}
