//! `scbe`: the release requester's client: fuse manifests into a release, then propose it,
//! promote it, roll back, and read status from a validator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use scbe_cli::render;
use scbe_core::governance::{
    check_provider_set, fuse, parse_manifest, FusedRelease, Gates, Manifest, Operation, Provider,
    Stage,
};
use scbe_wire::governance_client::Client;

#[derive(Parser)]
#[command(
    name = "scbe",
    version,
    about = "SCBE Fleet client: fuse provider manifests into a release, propose and track promotions"
)]
struct Cli {
    /// Validator to talk to (any validator of the cluster answers).
    #[arg(
        long,
        global = true,
        env = "SCBE_NODE",
        default_value = "http://127.0.0.1:7000",
        value_name = "URL"
    )]
    node: String,
    /// Requester secret key file (from `scbe keygen`), for commands that sign requests.
    #[arg(long, global = true, env = "SCBE_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Audit {
    /// Download every decided batch with its commit certificate into FILE (protobuf AuditLog).
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// First sequence number to export.
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Check every certificate in FILE offline: signatures, a quorum of distinct validators,
    /// batch digests, sequence order. The validator set comes from --config (a node.toml), never
    /// from the file being checked.
    Verify {
        file: PathBuf,
        #[arg(long, value_name = "NODE_TOML")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum Propose {
    /// Register a fused release (from `scbe fuse`); it enters staging.
    Register {
        #[arg(long, value_name = "FILE")]
        release: PathBuf,
    },
    /// Propose promoting a release one stage up; validators vote on it.
    Promote {
        /// Release version.
        #[arg(long, value_name = "VERSION")]
        release: String,
        /// Target stage.
        #[arg(long, value_parser = ["canary", "production"])]
        to: String,
        /// Known-good version to fall back to if the rollout degrades.
        #[arg(long, value_name = "VERSION")]
        rollback_to: String,
    },
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
    /// Create a requester key: the secret goes to --out (mode 0600), the public key is printed
    /// for an operator to add to the cluster's [[requesters]].
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Submit a proposal and wait for the answer.
    ///
    /// `register` answers accepted or rejected; `promote` then waits for the validators' votes
    /// and prints each as it arrives and the decision with its tally. Exit status: 0 accepted /
    /// approved, 1 rejected or expired, 2 error.
    Propose {
        #[command(subcommand)]
        what: Propose,
    },
    /// Propose putting a known-good version back on the whole fleet; waits for the votes.
    ///
    /// Exit status: 0 approved (the restore then runs batch by batch: follow it with
    /// `scbe watch --rollout N`), 1 rejected or expired, 2 error.
    Rollback {
        #[arg(long, value_name = "VERSION")]
        target_version: String,
        #[arg(long, default_value = "manual rollback")]
        reason: String,
    },
    /// Follow the ledger's events (Sacred Tongue tagged) and rollouts' progress live.
    ///
    /// With --rollout N, follow that rollout until it ends: exit 0 completed, 1 rolled back or
    /// failed. Otherwise follow everything until Ctrl-C.
    Watch {
        /// Start from this event index (0 replays everything).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Follow one rollout until it ends.
        #[arg(long, value_name = "N")]
        rollout: Option<u64>,
    },
    /// Export or verify the audit trail (every decided batch with its commit certificate).
    Audit {
        #[command(subcommand)]
        what: Audit,
    },
    /// Show stages, releases, proposals, rollouts with batch progress and fleet health.
    Status {
        /// Show one proposal with every validator's vote and reasons.
        #[arg(long)]
        proposal: Option<u64>,
        /// Print the ledger summary as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
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

fn load_key(path: &Option<PathBuf>) -> Result<Option<scbe_core::crypto::Keypair>, Unusable> {
    path.as_ref()
        .map(|p| scbe_wire::key_file::read_key_file(p).map_err(|e| Unusable(e.into())))
        .transpose()
}

fn runtime() -> Result<tokio::runtime::Runtime, Unusable> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Unusable(e.into()))
}

async fn client(node: &str, key: &Option<PathBuf>) -> Result<Client, Unusable> {
    Client::connect(node, load_key(key)?)
        .await
        .map_err(|e| Unusable(e.into()))
}

/// Writes a line to stdout; false once stdout is closed (e.g. piped into `head`).
fn out(line: &str) -> bool {
    use std::io::Write as _;
    writeln!(std::io::stdout(), "{line}").is_ok()
}

/// How long `propose promote` and `rollback` wait for the votes.
const VOTE_WAIT: Duration = Duration::from_secs(120);

fn submit(cli_node: &str, key: &Option<PathBuf>, op: Operation) -> Result<ExitCode, Unusable> {
    let wants_votes = matches!(op, Operation::Promote { .. } | Operation::Rollback { .. });
    runtime()?.block_on(async {
        let mut c = client(cli_node, key).await?;
        let r = c.submit(&op).await.map_err(|e| Unusable(e.into()))?;
        let when = if r.already_decided {
            format!("already decided at seq {}", r.seq)
        } else {
            format!("decided at seq {}", r.seq)
        };
        if !r.accepted {
            out(&format!("rejected ({when}):"));
            for reason in &r.reasons {
                out(&format!("  - {reason}"));
            }
            return Ok(ExitCode::from(1));
        }
        let mut what = String::new();
        if let Some(p) = r.proposal {
            what.push_str(&format!(": proposal {p}"));
        }
        out(&format!("accepted ({when}){what}"));
        let (Some(p), true) = (r.proposal, wants_votes) else {
            return Ok(ExitCode::SUCCESS);
        };
        out("votes:");
        let decided = c
            .wait_decision(p, VOTE_WAIT, |v, vote| {
                out(&format!("  {}", render::vote_line(v, vote)));
            })
            .await
            .map_err(|e| Unusable(e.into()))?;
        let (line, approved) = render::decision_text(&decided);
        out(&line);
        Ok(if approved {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

fn run_status(node: &str, proposal: Option<u64>, json: bool) -> Result<ExitCode, Unusable> {
    runtime()?.block_on(async {
        let mut c = client(node, &None).await?;
        if let Some(p) = proposal {
            let p = c.proposal(p).await.map_err(|e| Unusable(e.into()))?;
            if json {
                out(&serde_json::to_string(&p).map_err(|e| Unusable(e.into()))?);
            } else {
                out(&render::decision_text(&p).0);
                for (id, vote) in &p.votes {
                    out(&format!("  {}", render::vote_line(*id, vote)));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let (reply, summary) = c.status_summary().await.map_err(|e| Unusable(e.into()))?;
        if json {
            out(&serde_json::to_string(&summary).map_err(|e| Unusable(e.into()))?);
        } else {
            out(render::status_text(&reply, &summary).trim_end());
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn event_line(e: &scbe_proto::v1::LedgerEvent) -> String {
    format!(
        "#{:<5} seq {:<6} {} {:<9} {:<8} {:<20} {} {}",
        e.index, e.seq, e.tag, e.tongue, e.phase, e.kind, e.subject, e.detail
    )
}

fn run_watch(node: &str, from: u64, follow: Option<u64>) -> Result<ExitCode, Unusable> {
    use scbe_cli::progress::{Ended, RolloutProgress};
    runtime()?.block_on(async {
        let mut c = client(node, &None).await?;
        let mut poll = client(node, &None).await?;
        let mut stream = c.watch(from).await.map_err(|e| Unusable(e.into()))?;
        let mut progress: Option<RolloutProgress> = follow.map(RolloutProgress::new);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut health = render::HealthChanges::default();
        loop {
            tokio::select! {
                e = stream.message() => {
                    let Some(e) = e.map_err(|s| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message())))? else {
                        return Ok(ExitCode::SUCCESS);
                    };
                    if let Some(r) = follow {
                        if e.subject != format!("rollout:{r}") {
                            continue;
                        }
                    }
                    if e.kind == "rollout_planned" && follow.is_none() {
                        if let Some(id) = e.subject.strip_prefix("rollout:").and_then(|x| x.parse().ok()) {
                            progress = Some(RolloutProgress::new(id));
                        }
                    }
                    let line = event_line(&e);
                    match &progress {
                        Some(p) => p.println(&line),
                        None => {
                            if !out(&line) {
                                return Ok(ExitCode::SUCCESS); // stdout closed
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    let summary = poll.summary().await.map_err(|e| Unusable(e.into()))?;
                    // Fleet health as AV-tagged lines: every change of an agent's verdict.
                    for line in health.changes(&summary) {
                        match &progress {
                            Some(p) => p.println(&line),
                            None => {
                                if !out(&line) {
                                    return Ok(ExitCode::SUCCESS);
                                }
                            }
                        }
                    }
                    let Some(p) = progress.as_mut() else { continue };
                    let Some(ended) = p.update(&summary) else { continue };
                    let line = match &ended {
                        Ended::Completed => "rollout completed".to_string(),
                        Ended::RolledBack(why) => format!("rollout rolled back: {why}"),
                        Ended::Failed(why) => format!("rollout failed: {why}"),
                    };
                    out(&line);
                    if follow.is_some() {
                        return Ok(if ended == Ended::Completed { ExitCode::SUCCESS } else { ExitCode::from(1) });
                    }
                    progress = None;
                }
            }
        }
    })
}

fn audit_export(node: &str, out: &Path, from: u64) -> Result<ExitCode, Unusable> {
    use prost::Message as _;
    let rt = runtime()?;
    let log = rt.block_on(async {
        let mut c = scbe_proto::v1::audit_client::AuditClient::connect(node.to_string())
            .await
            .map_err(|e| Unusable(anyhow::anyhow!("cannot reach validator at {node}: {e}")))?
            .max_decoding_message_size(scbe_wire::MAX_ENVELOPE_BYTES);
        let mut stream = c
            .export(scbe_proto::v1::AuditRequest { from_seq: from })
            .await
            .map_err(|s| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message())))?
            .into_inner();
        let mut log = scbe_proto::v1::AuditLog {
            decided: Vec::new(),
        };
        while let Some(cert) = stream
            .message()
            .await
            .map_err(|s| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message())))?
        {
            log.decided.push(cert);
        }
        Ok::<_, Unusable>(log)
    })?;
    let n = log.decided.len();
    std::fs::write(out, log.encode_to_vec())
        .with_context(|| format!("cannot write {}", out.display()))
        .map_err(Unusable)?;
    println!("exported {n} commit certificates to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(file: &Path, config: &Path) -> Result<ExitCode, Unusable> {
    use prost::Message as _;
    use scbe_core::consensus::{certificate::check_commit_cert, ReplicaConfig, ReplicaId};
    let cfg =
        scbe_wire::membership::MembershipFile::load(config).map_err(|e| Unusable(e.into()))?;
    let dir = cfg.directory().map_err(|e| Unusable(e.into()))?;
    let rcfg = ReplicaConfig::new(ReplicaId(0), dir.clone()).map_err(|e| Unusable(e.into()))?;
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Unusable)?;
    let log = scbe_proto::v1::AuditLog::decode(bytes.as_slice()).map_err(|e| {
        Unusable(anyhow::anyhow!(
            "{} is not an audit log: {e}",
            file.display()
        ))
    })?;
    let mut last = 0u64;
    let total = log.decided.len();
    for (i, p) in log.decided.into_iter().enumerate() {
        let cert = match scbe_wire::open_commit_cert(p, &dir) {
            Ok(c) => c,
            Err(e) => {
                println!("INVALID certificate #{i}: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        let seq = cert.seq().0;
        if let Err(e) = check_commit_cert(&rcfg, &cert) {
            println!("INVALID certificate for seq {seq}: {e}");
            return Ok(ExitCode::from(1));
        }
        if seq <= last {
            println!("INVALID: seq {seq} follows seq {last}; the log must be in increasing order");
            return Ok(ExitCode::from(1));
        }
        if last != 0 && seq != last + 1 {
            println!(
                "note: seqs {}..{} are missing from this log",
                last + 1,
                seq - 1
            );
        }
        last = seq;
    }
    println!(
        "verified {total} commit certificates (last seq {last}) against {} validators, quorum {}",
        rcfg.n(),
        rcfg.quorum()
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fuse(a) => run_fuse(a),
        Command::Keygen { out } => scbe_wire::key_file::write_new_key(&out)
            .map(|k| {
                println!("{}", scbe_wire::key_file::encode_hex(k.public().as_bytes()));
                ExitCode::SUCCESS
            })
            .map_err(|e| Unusable(e.into())),
        Command::Propose { what } => {
            let op = match what {
                Propose::Register { release } => std::fs::read_to_string(&release)
                    .with_context(|| format!("cannot read {}", release.display()))
                    .map_err(Unusable)
                    .and_then(|t| {
                        FusedRelease::parse(&t)
                            .map_err(|e| Unusable(anyhow::anyhow!("{}: {e}", release.display())))
                    })
                    .map(|release| Operation::RegisterRelease { release }),
                Propose::Promote {
                    release,
                    to,
                    rollback_to,
                } => Ok(Operation::Promote {
                    version: release,
                    to: if to == "canary" {
                        Stage::Canary
                    } else {
                        Stage::Production
                    },
                    rollback_to,
                }),
            };
            op.and_then(|op| submit(&cli.node, &cli.key, op))
        }
        Command::Rollback {
            target_version,
            reason,
        } => submit(
            &cli.node,
            &cli.key,
            Operation::Rollback {
                target_version,
                reason,
            },
        ),
        Command::Status { proposal, json } => run_status(&cli.node, proposal, json),
        Command::Watch { from, rollout } => run_watch(&cli.node, from, rollout),
        Command::Audit {
            what: Audit::Export { out, from },
        } => audit_export(&cli.node, &out, from),
        Command::Audit {
            what: Audit::Verify { file, config },
        } => audit_verify(&file, &config),
    };
    match result {
        Ok(code) => code,
        Err(Unusable(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
