//! `scbe fuse` end to end: the real binary, real files, exit codes 0 / 1 / 2.

use std::path::{Path, PathBuf};
use std::process::Command;

const HF: &str = r#"{"provider": "hf", "artifacts": [{"id": "spiralverse/textgen-lora-v1", "role": "textgen",
  "metrics": {"quality": 0.82, "safety": 0.97, "latency_ms_p95": 140, "cost_per_1k_tokens": 0.9},
  "uri": "hf://issdandavis/spiralverse/textgen-lora-v1"}]}"#;
const GCP: &str = r#"{"provider": "gcp", "artifacts": [{"id": "spiralverse/embedder-v2", "role": "embed",
  "metrics": {"quality": 0.86, "safety": 0.99, "latency_ms_p95": 90, "cost_per_1k_tokens": 0.6},
  "uri": "gs://scbe-vertex-staging/spiralverse/embedder-v2"}]}"#;
const AWS: &str = r#"{"provider": "aws", "artifacts": [{"id": "spiralverse/runtime-distilled-v3", "role": "runtime",
  "metrics": {"quality": 0.8, "safety": 0.98, "latency_ms_p95": 70, "cost_per_1k_tokens": 0.5},
  "uri": "s3://scbe-training-data/models/runtime-distilled-v3"}]}"#;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let d = Dir {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        d.write("hf.json", HF);
        d.write("gcp.json", GCP);
        d.write("aws.json", AWS);
        d
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }
}

fn scbe(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scbe"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("scbe runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_three_example_manifests_fuse_into_a_release() {
    let d = Dir::new();
    let (code, err) = scbe(
        d.dir.path(),
        &[
            "fuse",
            "--manifests",
            "hf.json",
            "gcp.json",
            "aws.json",
            "--output",
            "release.json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(d.path("release.json")).expect("output written");
    let release = scbe_core::governance::FusedRelease::parse(&text).expect("valid release");
    assert_eq!(release.units.len(), 3);
    assert!(err.contains("written to release.json"));
}

#[test]
fn a_stricter_gate_fails_with_a_report_and_no_output() {
    let d = Dir::new();
    let (code, err) = scbe(
        d.dir.path(),
        &[
            "fuse",
            "--hf-manifest",
            "hf.json",
            "--gcp-manifest",
            "gcp.json",
            "--aws-manifest",
            "aws.json",
            "--output",
            "release.json",
            "--report",
            "report.json",
            "--min-quality",
            "0.81",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        !d.path("release.json").exists(),
        "a failed run writes no output"
    );
    assert!(
        err.contains("aws spiralverse/runtime-distilled-v3 quality: value 0.8 bound 0.81"),
        "{err}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path("report.json")).expect("report"))
            .expect("json");
    let check = &report["failed_checks"][0];
    assert_eq!(check["provider"], "aws");
    assert_eq!(check["artifact"], "spiralverse/runtime-distilled-v3");
    assert_eq!(check["metric"], "quality");
    assert_eq!(check["value"], 0.8);
    assert_eq!(check["bound"], 0.81);
}

#[test]
fn unusable_input_exits_2_naming_file_and_field() {
    let d = Dir::new();
    d.write("bad.json", r#"{"provider": "aws", "artifacts": [{"id": "x", "role": "runtime", "uri": "u", "metrics": {"quality": -1, "safety": 1, "latency_ms_p95": 1, "cost_per_1k_tokens": 1}}]}"#);
    let (code, err) = scbe(
        d.dir.path(),
        &[
            "fuse",
            "--manifests",
            "hf.json",
            "gcp.json",
            "bad.json",
            "--output",
            "release.json",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.json: artifacts[0].metrics.quality: must not be negative, got -1"),
        "{err}"
    );
    assert!(!d.path("release.json").exists());

    let (code, err) = scbe(
        d.dir.path(),
        &[
            "fuse",
            "--manifests",
            "hf.json",
            "aws.json",
            "--output",
            "release.json",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("no manifest for provider gcp"), "{err}");

    let (code, err) = scbe(
        d.dir.path(),
        &[
            "fuse",
            "--hf-manifest",
            "aws.json",
            "--gcp-manifest",
            "gcp.json",
            "--aws-manifest",
            "aws.json",
            "--output",
            "r.json",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("given as the hf manifest but declares provider aws"),
        "{err}"
    );

    let (code, err) = scbe(
        d.dir.path(),
        &[
            "fuse",
            "--manifests",
            "hf.json",
            "gcp.json",
            "aws.json",
            "--output",
            "r.json",
            "--min-safety",
            "2",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--min-safety must be between 0 and 1"),
        "{err}"
    );
}
