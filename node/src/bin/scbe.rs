//! `scbe`: the release requester's client. Today: `scbe fuse`, which turns provider manifests into
//! a fused release checked against the quality gates. Proposing, voting and watching arrive with
//! the validator node.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use scbe_node::governance::{check_provider_set, fuse, parse_manifest, Gates, Manifest, Provider};

#[derive(Parser)]
#[command(
    name = "scbe",
    version,
    about = "SCBE Fleet client: fuse provider manifests into a release checked against quality gates"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fuse one manifest per provider (hf, gcp, aws) into a release and check its gates.
    ///
    /// For each provider, artifacts of the provider's role (hf: textgen, gcp: embed, aws:
    /// runtime) that pass every gate compete on the score
    /// 0.45 quality + 0.45 safety - 0.0005 latency_ms_p95 - 0.1 cost_per_1k_tokens,
    /// and the first wins a tie.
    ///
    /// Exit status: 0 when the release passes (written to --output); 1 when a provider has no
    /// artifact that passes the gates (report on stderr, and as JSON with --report; no output
    /// file is written); 2 when the input is unusable.
    ///
    /// Example: scbe fuse --manifests hf.json gcp.json aws.json --output release.json
    Fuse(FuseArgs),
}

#[derive(Args)]
struct FuseArgs {
    /// Provider manifests, one per provider, in any order.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    manifests: Vec<PathBuf>,
    /// HuggingFace manifest (the original orchestrator's flag; same as listing it in --manifests).
    #[arg(long, value_name = "FILE")]
    hf_manifest: Option<PathBuf>,
    /// GCP Vertex manifest (original orchestrator's flag).
    #[arg(long, value_name = "FILE")]
    gcp_manifest: Option<PathBuf>,
    /// AWS SageMaker manifest (original orchestrator's flag).
    #[arg(long, value_name = "FILE")]
    aws_manifest: Option<PathBuf>,
    /// Where to write the fused release JSON (only when it passes).
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// Also write the gate report as JSON here (pass or fail).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Minimum quality, inclusive.
    #[arg(long, default_value_t = 0.80)]
    min_quality: f64,
    /// Minimum safety, inclusive.
    #[arg(long, default_value_t = 0.95)]
    min_safety: f64,
    /// Maximum p95 latency in milliseconds, inclusive.
    #[arg(long, default_value_t = 200.0)]
    max_latency_ms_p95: f64,
    /// Maximum cost in dollars per 1K tokens, inclusive.
    #[arg(long, default_value_t = 1.0)]
    max_cost_per_1k_tokens: f64,
    /// Release version (default: derived from the content, `r-<12 hex>`).
    #[arg(long)]
    version: Option<String>,
}

/// Bad input: exit 2 with this message.
struct Unusable(anyhow::Error);

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

fn run_fuse(a: FuseArgs) -> Result<ExitCode, Unusable> {
    let gates = Gates {
        min_quality: a.min_quality,
        min_safety: a.min_safety,
        max_latency_ms_p95: a.max_latency_ms_p95,
        max_cost_per_1k_tokens: a.max_cost_per_1k_tokens,
    };
    gates.validate().map_err(|e| Unusable(anyhow::anyhow!(e)))?;
    if let Some(v) = &a.version {
        if v.trim().is_empty() {
            return Err(Unusable(anyhow::anyhow!("--version must not be empty")));
        }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fuse(a) => run_fuse(a),
    };
    match result {
        Ok(code) => code,
        Err(Unusable(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
