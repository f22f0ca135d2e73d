//! The canonical JSON of a release's content (what its digest covers), written straight from
//! the release: [`CanonicalContent`].
//!
//! Why: a release's digest is the SHA-256 of its content's JSON with every object's keys in
//! order and no whitespace. That JSON used to be made by converting the release into a
//! `serde_json::Value` (a sorted map per object, a `String` per key and value) and printing
//! it. A validator checks the digest of every release it registers, and the profile of
//! registrations put that conversion at ~7% of a validator's CPU (BENCHMARKS.md, issue 27).
//! Here the same bytes are written by structs that borrow the release and declare their fields
//! in key order, so serde writes them in one pass.
//!
//! Each struct's fields are the sorted keys of the type it mirrors. Each is built by
//! destructuring that type without `..`, so a field added to a release, its gates, a unit or
//! its metrics does not compile until it is placed here too; the tests compare these bytes
//! with the `Value` route for arbitrary releases.

use std::collections::BTreeMap;

use serde::Serialize;

use super::gates::Gates;
use super::manifest::{Metrics, Provider};
use super::release::{FusedRelease, Unit};

/// A release's content (all but `digest` and `generated_at`), keys in canonical order.
#[derive(Serialize)]
pub struct CanonicalContent<'a> {
    fused_model_id: &'a str,
    gates: CanonicalGates,
    providers: &'a [Provider],
    /// Keyed by the provider's name: a JSON object's keys sort as strings ("aws" < "gcp" <
    /// "hf"), not in the providers' declared order.
    units: BTreeMap<&'static str, CanonicalUnit<'a>>,
    version: &'a str,
}

#[derive(Serialize)]
struct CanonicalGates {
    max_cost_per_1k_tokens: f64,
    max_latency_ms_p95: f64,
    min_quality: f64,
    min_safety: f64,
}

#[derive(Serialize)]
struct CanonicalUnit<'a> {
    id: &'a str,
    metrics: CanonicalMetrics,
    role: &'a str,
    uri: &'a str,
}

#[derive(Serialize)]
struct CanonicalMetrics {
    cost_per_1k_tokens: f64,
    latency_ms_p95: f64,
    quality: f64,
    safety: f64,
}

impl<'a> CanonicalContent<'a> {
    pub fn of(release: &'a FusedRelease) -> Self {
        let FusedRelease {
            fused_model_id,
            version,
            generated_at: _,
            providers,
            gates,
            units,
            digest: _,
        } = release;
        Self {
            fused_model_id,
            gates: CanonicalGates::of(gates),
            providers,
            units: units
                .iter()
                .map(|(p, u)| (p.name(), CanonicalUnit::of(u)))
                .collect(),
            version,
        }
    }

    /// The canonical JSON: compact, keys in order.
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings, finite or non-finite floats (written as `null`, as the `Value` route
        // does) and maps with string keys: nothing here fails to encode.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl CanonicalGates {
    fn of(gates: &Gates) -> Self {
        let Gates {
            min_quality,
            min_safety,
            max_latency_ms_p95,
            max_cost_per_1k_tokens,
        } = *gates;
        Self {
            max_cost_per_1k_tokens,
            max_latency_ms_p95,
            min_quality,
            min_safety,
        }
    }
}

impl<'a> CanonicalUnit<'a> {
    fn of(unit: &'a Unit) -> Self {
        let Unit {
            id,
            role,
            uri,
            metrics,
        } = unit;
        Self {
            id,
            metrics: CanonicalMetrics::of(metrics),
            role,
            uri,
        }
    }
}

impl CanonicalMetrics {
    fn of(metrics: &Metrics) -> Self {
        let Metrics {
            quality,
            safety,
            latency_ms_p95,
            cost_per_1k_tokens,
        } = *metrics;
        Self {
            cost_per_1k_tokens,
            latency_ms_p95,
            quality,
            safety,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::Digest as _;

    use super::*;

    /// The canonical JSON as it was made before this module: through a `serde_json::Value`,
    /// whose maps are ordered by key.
    fn through_value(release: &FusedRelease) -> Vec<u8> {
        let mut v = serde_json::to_value(release).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(m) = &mut v {
            m.remove("digest");
            m.remove("generated_at");
        }
        v.to_string().into_bytes()
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(0.0),
            Just(-0.0),
            Just(1.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(1e21),
            Just(1e-7),
            (0u32..1000).prop_map(|n| f64::from(n) / 1000.0),
        ]
    }

    fn metrics() -> impl Strategy<Value = Metrics> {
        (float(), float(), float(), float()).prop_map(|(quality, safety, latency, cost)| Metrics {
            quality,
            safety,
            latency_ms_p95: latency,
            cost_per_1k_tokens: cost,
        })
    }

    /// Any text, quotes, escapes and non-ASCII included.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z0-9\"\\\\/\n\t\u{0}\u{1f}é€😀-]{0,12}"]
    }

    fn unit() -> impl Strategy<Value = Unit> {
        (text(), text(), text(), metrics()).prop_map(|(id, role, uri, metrics)| Unit {
            id,
            role,
            uri,
            metrics,
        })
    }

    fn release() -> impl Strategy<Value = FusedRelease> {
        let providers = proptest::collection::vec(
            prop_oneof![Just(Provider::Hf), Just(Provider::Gcp), Just(Provider::Aws)],
            0..5,
        );
        let units = proptest::collection::btree_map(
            prop_oneof![Just(Provider::Hf), Just(Provider::Gcp), Just(Provider::Aws)],
            unit(),
            0..4,
        );
        (
            (text(), text(), text(), text()),
            providers,
            (float(), float(), float(), float()),
            units,
        )
            .prop_map(
                |((id, version, at, digest), providers, (q, s, l, c), units)| FusedRelease {
                    fused_model_id: id,
                    version,
                    generated_at: at,
                    providers,
                    gates: Gates {
                        min_quality: q,
                        min_safety: s,
                        max_latency_ms_p95: l,
                        max_cost_per_1k_tokens: c,
                    },
                    units,
                    digest,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Byte for byte what the `Value` route makes, so every digest already signed, stored
        /// or written in a release file stays the same.
        #[test]
        fn the_canonical_json_is_what_the_value_route_made(r in release()) {
            let direct = String::from_utf8_lossy(&CanonicalContent::of(&r).to_json()).into_owned();
            let through = String::from_utf8_lossy(&through_value(&r)).into_owned();
            prop_assert_eq!(direct, through);
        }
    }

    /// The ledger's fixture release digests as it did when its digest was made through a
    /// `Value` (this literal was printed by that route), and its digest still checks.
    #[test]
    fn a_fixture_release_keeps_its_digest() {
        let r = crate::governance::ledger_world::release("r1");
        let digest = crate::governance::release::hex(&sha2::Sha256::digest(through_value(&r)));
        assert_eq!(
            digest,
            "660901fb8923387a89b23c3f35ed50862f7ba61d93e66a0df4bee5b975d6cc7a"
        );
        assert_eq!(r.content_digest(), digest);
        assert_eq!(r.digest, digest);
        assert_eq!(r.verify(), Ok(()));
    }
}
