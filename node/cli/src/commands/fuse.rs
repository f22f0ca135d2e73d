//! `scbe fuse`: provider manifests into one release, checked against the gates, offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use scbe_core::governance::{check_provider_set, fuse, parse_manifest, Gates, Manifest, Provider};

use super::Unusable;

#[derive(Args)]
pub struct FuseArgs {
    /// Provider manifests, one per provider, in any order.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub manifests: Vec<PathBuf>,
    /// HuggingFace manifest (the original orchestrator's flag; same as listing it in --manifests).
    #[arg(long, value_name = "FILE")]
    pub hf_manifest: Option<PathBuf>,
    /// GCP Vertex manifest (original orchestrator's flag).
    #[arg(long, value_name = "FILE")]
    pub gcp_manifest: Option<PathBuf>,
    /// AWS SageMaker manifest (original orchestrator's flag).
    #[arg(long, value_name = "FILE")]
    pub aws_manifest: Option<PathBuf>,
    /// Where to write the fused release JSON (only when it passes).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Also write the gate report as JSON here (pass or fail).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Minimum quality, inclusive.
    #[arg(long, default_value_t = 0.80)]
    pub min_quality: f64,
    /// Minimum safety, inclusive.
    #[arg(long, default_value_t = 0.95)]
    pub min_safety: f64,
    /// Maximum p95 latency in milliseconds, inclusive.
    #[arg(long, default_value_t = 200.0)]
    pub max_latency_ms_p95: f64,
    /// Maximum cost in dollars per 1K tokens, inclusive.
    #[arg(long, default_value_t = 1.0)]
    pub max_cost_per_1k_tokens: f64,
    /// Release version (default: derived from the content, `r-<12 hex>`).
    #[arg(long)]
    pub version: Option<String>,
}

fn read_manifest(path: &Path, expect: Option<Provider>) -> Result<Manifest, Unusable> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))
        .map_err(Unusable)?;
    let m = parse_manifest(&path.display().to_string(), &text).map_err(|e| Unusable(e.into()))?;
    if let Some(p) = expect {
        if m.provider != p {
            return Err(Unusable(anyhow::anyhow!(
                "{}: provider: given as the {p} manifest but declares provider {}",
                path.display(),
                m.provider
            )));
        }
    }
    Ok(m)
}

/// Writes via a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp-scbe");
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}

pub fn run_fuse(a: FuseArgs) -> Result<ExitCode, Unusable> {
    let gates = Gates {
        min_quality: a.min_quality,
        min_safety: a.min_safety,
        max_latency_ms_p95: a.max_latency_ms_p95,
        max_cost_per_1k_tokens: a.max_cost_per_1k_tokens,
    };
    // Named as the flag that set it.
    gates.validate().map_err(|e| {
        Unusable(anyhow::anyhow!(
            "--{} {}",
            e.setting.replace('_', "-"),
            e.problem
        ))
    })?;
    if let Some(v) = &a.version {
        // The ledger's rule, checked here so a release is never fused only to be refused.
        scbe_core::governance::admission::check_version("--version", v)
            .map_err(|e| Unusable(anyhow::anyhow!(e)))?;
    }
    let mut manifests = Vec::new();
    for path in &a.manifests {
        manifests.push(read_manifest(path, None)?);
    }
    for (flag, provider) in [
        (&a.hf_manifest, Provider::Hf),
        (&a.gcp_manifest, Provider::Gcp),
        (&a.aws_manifest, Provider::Aws),
    ] {
        if let Some(path) = flag {
            manifests.push(read_manifest(path, Some(provider))?);
        }
    }
    if manifests.is_empty() {
        return Err(Unusable(anyhow::anyhow!(
            "no manifests given: use --manifests FILE... or --hf-manifest/--gcp-manifest/--aws-manifest"
        )));
    }
    check_provider_set(&manifests).map_err(|e| Unusable(e.into()))?;
    let generated_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let (release, report) = fuse(&manifests, gates, a.version.clone(), generated_at);
    if let Some(path) = &a.report {
        write_atomically(path, &report.to_json_pretty()).map_err(Unusable)?;
    }
    eprint!("{}", report.to_text());
    let Some(release) = release else {
        return Ok(ExitCode::from(1));
    };
    // What the ledger would refuse besides the gates (identifiers, URIs, ranges).
    let refused = scbe_core::governance::admission::check_release(&release, &gates);
    if !refused.is_empty() {
        eprintln!("the ledger would refuse this release:");
        for r in &refused {
            eprintln!("  {r}");
        }
        return Ok(ExitCode::from(1));
    }
    write_atomically(&a.output, &(release.to_json_pretty() + "\n")).map_err(Unusable)?;
    eprintln!(
        "fused release {} ({}) written to {}\n  digest sha256:{}",
        release.version,
        release.fused_model_id,
        a.output.display(),
        release.digest
    );
    Ok(ExitCode::SUCCESS)
}
