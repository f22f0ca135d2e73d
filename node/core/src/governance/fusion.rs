//! Federated fusion: from one manifest per provider, keep the artifacts of the provider's role
//! that pass every gate and pick the best by
//! `0.45 * quality + 0.45 * safety - 0.0005 * latency_ms_p95 - 0.1 * cost_per_1k_tokens`
//! (the first one wins a tie, as in the original orchestrator). The report lists every failed
//! check and every skipped artifact with its reason, as text and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::gates::Gates;
use super::manifest::{Manifest, Metrics, Provider};
use super::release::{FusedRelease, Unit};

/// The selection score.
pub fn score(m: &Metrics) -> f64 {
    0.45 * m.quality + 0.45 * m.safety - 0.0005 * m.latency_ms_p95 - 0.1 * m.cost_per_1k_tokens
}

/// One gate check an artifact failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedCheck {
    pub provider: Provider,
    pub artifact: String,
    pub metric: String,
    pub value: f64,
    pub bound: f64,
    pub reason: String,
}

/// An artifact that did not become its provider's unit, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub provider: Provider,
    pub artifact: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selected {
    pub provider: Provider,
    pub artifact: String,
    pub score: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusionReport {
    pub passed: bool,
    pub gates: Gates,
    pub selected: Vec<Selected>,
    /// Providers left without any artifact that passes: why the release failed.
    pub providers_without_unit: Vec<Provider>,
    pub failed_checks: Vec<FailedCheck>,
    pub skipped: Vec<Skipped>,
}

impl FusionReport {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(s, "release gates {verdict}");
        for p in &self.providers_without_unit {
            let _ = writeln!(
                s,
                "  {p}: no artifact of role {} passes every gate",
                p.expected_role()
            );
        }
        for c in &self.failed_checks {
            let _ = writeln!(
                s,
                "  failed: {} {} {}: value {} bound {} ({})",
                c.provider, c.artifact, c.metric, c.value, c.bound, c.reason
            );
        }
        for k in &self.skipped {
            let _ = writeln!(s, "  skipped: {} {}: {}", k.provider, k.artifact, k.reason);
        }
        for u in &self.selected {
            let _ = writeln!(
                s,
                "  selected: {} {} (score {:.4})",
                u.provider, u.artifact, u.score
            );
        }
        s
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Fuses one manifest per provider (checked by `check_provider_set`). Returns the release when
/// every provider has a unit, and the report either way.
pub fn fuse(
    manifests: &[Manifest],
    gates: Gates,
    version: Option<String>,
    generated_at: String,
) -> (Option<FusedRelease>, FusionReport) {
    let mut units = BTreeMap::new();
    let mut report = FusionReport {
        passed: false,
        gates,
        selected: Vec::new(),
        providers_without_unit: Vec::new(),
        failed_checks: Vec::new(),
        skipped: Vec::new(),
    };
    let mut ordered: Vec<&Manifest> = manifests.iter().collect();
    ordered.sort_by_key(|m| m.provider);
    for m in ordered {
        let p = m.provider;
        let mut best: Option<(usize, f64)> = None;
        let mut eligible = Vec::new();
        for (i, a) in m.artifacts.iter().enumerate() {
            if a.role != p.expected_role() {
                report.skipped.push(Skipped {
                    provider: p,
                    artifact: a.id.clone(),
                    reason: format!(
                        "role {:?} is not {p}'s role {:?}",
                        a.role,
                        p.expected_role()
                    ),
                });
                continue;
            }
            let failures = gates.check(&a.metrics);
            if !failures.is_empty() {
                let reasons: Vec<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
                report.skipped.push(Skipped {
                    provider: p,
                    artifact: a.id.clone(),
                    reason: format!("fails gates: {}", reasons.join("; ")),
                });
                report
                    .failed_checks
                    .extend(failures.into_iter().map(|f| FailedCheck {
                        provider: p,
                        artifact: a.id.clone(),
                        metric: f.metric,
                        value: f.value,
                        bound: f.bound,
                        reason: f.reason,
                    }));
                continue;
            }
            let s = score(&a.metrics);
            eligible.push((i, s));
            // Strictly greater: the first artifact wins a tie.
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        let Some((bi, bs)) = best else {
            report.providers_without_unit.push(p);
            continue;
        };
        for (i, s) in eligible {
            if i != bi {
                report.skipped.push(Skipped {
                    provider: p,
                    artifact: m.artifacts[i].id.clone(),
                    reason: format!("score {s:.4} below the selected {:.4}", bs),
                });
            }
        }
        let a = &m.artifacts[bi];
        report.selected.push(Selected {
            provider: p,
            artifact: a.id.clone(),
            score: bs,
        });
        units.insert(
            p,
            Unit {
                id: a.id.clone(),
                role: a.role.clone(),
                uri: a.uri.clone(),
                metrics: a.metrics,
            },
        );
    }
    report.passed = report.providers_without_unit.is_empty() && units.len() == Provider::ALL.len();
    let release = report
        .passed
        .then(|| FusedRelease::new(units, gates, version, generated_at));
    (release, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::manifest::parse_manifest;

    fn manifest(provider: &str, role: &str, arts: &[(&str, f64, f64, f64, f64)]) -> Manifest {
        let a: Vec<String> = arts
            .iter()
            .map(|(id, q, s, l, c)| {
                format!(r#"{{"id": "{id}", "role": "{role}", "uri": "u://{id}", "metrics": {{"quality": {q}, "safety": {s}, "latency_ms_p95": {l}, "cost_per_1k_tokens": {c}}}}}"#)
            })
            .collect();
        let text = format!(
            r#"{{"provider": "{provider}", "artifacts": [{}]}}"#,
            a.join(",")
        );
        parse_manifest(&format!("{provider}.json"), &text).expect("test manifest")
    }

    fn examples() -> Vec<Manifest> {
        vec![
            manifest(
                "hf",
                "textgen",
                &[("spiralverse/textgen-lora-v1", 0.82, 0.97, 140.0, 0.9)],
            ),
            manifest(
                "gcp",
                "embed",
                &[("spiralverse/embedder-v2", 0.86, 0.99, 90.0, 0.6)],
            ),
            manifest(
                "aws",
                "runtime",
                &[("spiralverse/runtime-distilled-v3", 0.80, 0.98, 70.0, 0.5)],
            ),
        ]
    }

    #[test]
    fn the_examples_fuse_into_three_units_with_a_verifiable_digest() {
        let (release, report) = fuse(&examples(), Gates::default(), None, "t".into());
        let r = release.expect("passes");
        assert!(report.passed);
        assert_eq!(r.units.len(), 3);
        assert!(r.verify().is_ok());
        let again = FusedRelease::parse(&r.to_json_pretty()).expect("round trip");
        assert_eq!(again, r);
        // generated_at is not part of the digest; the content is.
        let (later, _) = fuse(&examples(), Gates::default(), None, "later".into());
        assert_eq!(later.expect("passes").digest, r.digest);
    }

    #[test]
    fn a_stricter_quality_gate_fails_naming_the_aws_artifact() {
        let gates = Gates {
            min_quality: 0.81,
            ..Gates::default()
        };
        let (release, report) = fuse(&examples(), gates, None, "t".into());
        assert!(release.is_none());
        assert!(!report.passed);
        assert_eq!(report.providers_without_unit, vec![Provider::Aws]);
        let c = &report.failed_checks[0];
        assert_eq!(
            (
                c.provider,
                c.artifact.as_str(),
                c.metric.as_str(),
                c.value,
                c.bound
            ),
            (
                Provider::Aws,
                "spiralverse/runtime-distilled-v3",
                "quality",
                0.80,
                0.81
            )
        );
        assert!(report
            .to_text()
            .contains("spiralverse/runtime-distilled-v3 quality: value 0.8 bound 0.81"));
    }

    #[test]
    fn best_score_wins_first_wins_a_tie_and_wrong_roles_are_skipped() {
        let mut ms = examples();
        ms[0] = manifest(
            "hf",
            "textgen",
            &[
                ("a", 0.9, 0.99, 100.0, 0.5),
                ("b", 0.95, 0.99, 100.0, 0.5),
                ("c", 0.95, 0.99, 100.0, 0.5),
            ],
        );
        ms[1] = manifest("gcp", "textgen", &[("wrong-role", 0.9, 0.99, 10.0, 0.1)]);
        let (release, report) = fuse(&ms, Gates::default(), Some("v1".into()), "t".into());
        assert!(release.is_none(), "gcp has no embed artifact");
        assert_eq!(report.selected[0].artifact, "b");
        assert!(report
            .skipped
            .iter()
            .any(|s| s.artifact == "wrong-role" && s.reason.contains("not gcp's role")));
        assert!(report.skipped.iter().any(|s| s.artifact == "c"));
    }

    #[test]
    fn every_failed_check_is_reported() {
        let mut ms = examples();
        ms[2] = manifest("aws", "runtime", &[("bad", 0.1, 0.1, 900.0, 9.0)]);
        let (_, report) = fuse(&ms, Gates::default(), None, "t".into());
        assert_eq!(report.failed_checks.len(), 4);
    }

    #[test]
    fn tampered_release_fails_its_digest() {
        let (release, _) = fuse(&examples(), Gates::default(), None, "t".into());
        let mut r = release.expect("passes");
        r.units
            .get_mut(&Provider::Aws)
            .expect("aws")
            .metrics
            .quality = 0.99;
        assert!(matches!(
            r.verify(),
            Err(crate::governance::release::ReleaseError::Digest { .. })
        ));
    }
}
