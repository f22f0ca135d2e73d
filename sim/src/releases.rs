//! Releases for the demo and the benchmarks: the provider manifests embedded in the binary
//! (a copy of ../shared/examples/manifests kept under configs/examples/manifests), and the
//! varied releases `scbe-sim bench --workload register` registers one per request.

use anyhow::anyhow;
use scbe_core::governance::{fuse, parse_manifest, FusedRelease, Gates, Manifest};

/// The provider manifests, embedded so the demo needs no file outside the binary.
const MANIFESTS: [(&str, &str); 3] = [
    (
        "hf_manifest.json",
        include_str!("../../configs/examples/manifests/hf_manifest.json"),
    ),
    (
        "gcp_manifest.json",
        include_str!("../../configs/examples/manifests/gcp_manifest.json"),
    ),
    (
        "aws_manifest.json",
        include_str!("../../configs/examples/manifests/aws_manifest.json"),
    ),
];

/// Manifests as the embedded files, with `f` applied to the JSON text of each.
pub fn manifests(f: impl Fn(&str, &str) -> String) -> anyhow::Result<Vec<Manifest>> {
    MANIFESTS
        .iter()
        .map(|(name, text)| parse_manifest(name, &f(name, text)).map_err(|e| anyhow!("{e}")))
        .collect()
}

/// A release fused from the example manifests under `version`, as `scbe-sim bench --workload
/// register` registers one per request. Each artifact gets its own training-run suffix (on its
/// id and URI) and its own metrics within the default gates, drawn from `seed`: releases of one
/// pipeline share their shape but not their content, so what the store makes of them (its
/// compression, above all) is not flattered by thousands of copies of one release.
pub fn bench_release(version: &str, seed: u64) -> FusedRelease {
    use rand::{Rng as _, SeedableRng as _};
    // Parsed once: the bench fuses one release per request, and its clients share the cores
    // with the validators they measure.
    static PARSED: std::sync::OnceLock<Vec<Manifest>> = std::sync::OnceLock::new();
    let mut manifests = PARSED
        .get_or_init(|| manifests(|_, t| t.to_string()).expect("the embedded manifests parse"))
        .clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Metrics as evaluation jobs report them: a few decimals, inside the gates.
    let mut draw =
        |lo: f64, hi: f64, scale: f64| (rng.random_range(lo..hi) * scale).round() / scale;
    for artifact in manifests.iter_mut().flat_map(|m| m.artifacts.iter_mut()) {
        let run = format!("-run-{:08x}", draw(0.0, f64::from(u32::MAX), 1.0) as u32);
        artifact.id.push_str(&run);
        artifact.uri.push_str(&run);
        artifact.metrics.quality = draw(0.80, 0.99, 1_000.0);
        artifact.metrics.safety = draw(0.95, 0.999, 1_000.0);
        artifact.metrics.latency_ms_p95 = draw(20.0, 200.0, 1.0);
        artifact.metrics.cost_per_1k_tokens = draw(0.05, 1.0, 1_000.0);
    }
    fuse(
        &manifests,
        Gates::default(),
        Some(version.into()),
        "bench".into(),
    )
    .0
    .expect("metrics drawn inside the default gates pass them")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_releases_pass_the_gates_differ_by_seed_and_are_about_a_kilobyte() {
        let release = bench_release("b1", 7);
        assert_eq!(release.version, "b1");
        assert_eq!(release, bench_release("b1", 7), "a seed gives one release");
        let other = bench_release("b1", 8);
        assert_ne!(release.units, other.units, "another seed gives other units");
        release.verify().expect("its digest holds");
        let op = scbe_core::governance::Operation::RegisterRelease { release };
        let bytes = op.to_bytes().len();
        // What `scbe-sim bench --workload register` sends per request (BENCHMARKS.md quotes it).
        assert!((1_000..1_150).contains(&bytes), "{bytes} bytes");
    }
}
