//! `scbe`: the release requester's client: fuse manifests into a release, then propose it,
//! promote it, roll back, and read status from a validator.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use scbe_cli::commands::audit::{audit_export, audit_prove, audit_verify};
use scbe_cli::commands::fuse::{run_fuse, FuseArgs};
use scbe_cli::commands::propose::submit;
use scbe_cli::commands::read::{run_status, run_watch};
use scbe_cli::commands::Unusable;
use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::state_proof::ProvenMap;
use scbe_core::governance::ledger::{
    AgentChange, RequesterChange, SettingsChange, StateDigest, ValidatorChange,
};
use scbe_core::governance::{FusedRelease, Operation, Stage};

#[derive(Parser)]
#[command(
    name = "scbe",
    version,
    about = "SCBE Fleet client: fuse provider manifests into a release, propose and track promotions"
)]
struct Cli {
    /// Validator to talk to (any validator of the cluster answers): https://HOST:PORT, its
    /// certificate checked against --genesis or --validator-key; http://HOST:PORT only for a
    /// plaintext test cluster on loopback.
    #[arg(
        long,
        global = true,
        env = "SCBE_NODE",
        default_value = "https://127.0.0.1:7000",
        value_name = "URL"
    )]
    node: String,
    /// The cluster's genesis.toml: the validators' keys a TLS certificate must carry (and, for
    /// `audit verify`, the validator set and ledger rules to check against).
    #[arg(long, global = true, env = "SCBE_GENESIS", value_name = "GENESIS_TOML")]
    genesis: Option<PathBuf>,
    /// The key the validator's certificate must carry (64 hex characters), instead of --genesis.
    #[arg(long, global = true, env = "SCBE_VALIDATOR_KEY", value_name = "HEX")]
    validator_key: Option<String>,
    /// For a cluster whose certificates the operators' CA issued: its roots (PEM). The
    /// certificate must then chain to them and name a key --genesis or --validator-key gives.
    #[arg(long, global = true, env = "SCBE_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Requester secret key file (from `scbe keygen`), for commands that sign requests.
    #[arg(long, global = true, env = "SCBE_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Audit {
    /// Download every decided batch with its commit certificate, and the checkpoints the
    /// validators signed, into FILE (protobuf AuditLog).
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// First sequence number to export.
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Prove what the ledger holds from FILE, offline: the log must hold every seq from 1 with
    /// no gap, each batch decided by a quorum of distinct validators (signatures and batch
    /// digests checked); every batch is replayed through the ledger from the genesis and each
    /// signed checkpoint must match the replayed state. Prints the final state digest, the
    /// stages, releases and rollouts; exits 1 naming the first bad seq. The validator set and
    /// the ledger's rules come from --genesis (the cluster's genesis.toml, the file every
    /// validator's node.toml names), never from the file being checked.
    Verify { file: PathBuf },
    /// Show one release, proposal or rollout as it stood at the validator's stable checkpoint,
    /// proven from --genesis alone: the path from the entry to the state digest, the
    /// checkpoint's signatures (a quorum of the validator set that signed it, reached from the
    /// genesis by the validator-set links) and the digest they name are all checked here, so
    /// the validator that answers is trusted for nothing.
    ///
    /// Exit status: 0 proven (the entry printed); 1 the answer does not prove it (INVALID and
    /// why); 2 refused (no such entry; no checkpoint of the validator's own yet, e.g. just
    /// after a restart; a cluster whose state digest is the walk) or unreachable.
    ///
    /// Example: scbe --genesis genesis.toml audit prove release r3
    Prove {
        /// What to prove.
        #[arg(value_enum)]
        what: ProveWhat,
        /// The release's version, or the proposal's or rollout's id.
        #[arg(value_name = "VERSION_OR_ID")]
        entry: String,
        /// Print the proven entry as JSON, with the checkpoint's seq and signers.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProveWhat {
    Release,
    Proposal,
    Rollout,
}

impl ProveWhat {
    fn map(self) -> ProvenMap {
        match self {
            ProveWhat::Release => ProvenMap::Releases,
            ProveWhat::Proposal => ProvenMap::Proposals,
            ProveWhat::Rollout => ProvenMap::Rollouts,
        }
    }
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
        /// Deploy batches before N as usual, then wait for `scbe approve --rollout R` (a vote
        /// of the validators) before batch N (1 = before anything is deployed).
        #[arg(long, value_name = "N")]
        pause_before: Option<u32>,
        /// The rollout's shape: cumulative percent of the fleet after each step, e.g.
        /// `10,25,50,100` (the last is the stage's share: canary 10, production 100). A canary
        /// keeps one agent per specialty as its first batch. Default: batches that double.
        #[arg(long, value_delimiter = ',', value_name = "PERCENTS")]
        steps: Vec<u32>,
    },
    /// Propose a change to the fleet (admit, remove or update an agent); validators check it
    /// against their ledger's fleet and vote. Applied when approved, with no restart: the next
    /// rollout's plan includes (or leaves out) the agent and validators stream its health.
    Agent {
        #[command(subcommand)]
        change: AgentCommand,
    },
    /// Propose new quality gates or health thresholds; validators check each value (within
    /// floors no vote can cross: quality >= 0.5, safety >= 0.9, error rate <= 0.25, ...) and
    /// vote. Applied when approved, with no restart; not while a rollout is in flight. Flags
    /// left out keep their value; `scbe status` shows those in force.
    Settings(SettingsArgs),
    /// Propose admitting or removing a requester (a key that may submit proposals); validators
    /// check it (name, a valid key nobody else holds, one requester left at least) and vote.
    /// Applied when approved, with no restart: from then on the ledger accepts (or refuses)
    /// what that key signs.
    Requester {
        #[command(subcommand)]
        change: RequesterCommand,
    },
    /// Propose re-keying or removing a validator; validators check it (the id is in force, at
    /// least 4 remain, a new key nobody ever held, no rollout in flight) and vote. Applied
    /// when approved, with no restart of the others: from the next batch on the new set
    /// orders, and every certificate after it counts only its keys (`scbe status` shows the
    /// epoch). A rotated validator then restarts with its new key and `node.rekeyed = true`.
    Validator {
        #[command(subcommand)]
        change: ValidatorCommand,
    },
}

#[derive(Subcommand)]
enum ValidatorCommand {
    /// Add a validator (its operator creates its key with `scbe keygen --out FILE` on its
    /// machine). Approved, it gets the next id never used (the approval's event names it): its
    /// node.toml sets that id and `added = true`, and the node catches up from its peers and
    /// takes part from the change on. The quorum grows with the set.
    Add {
        /// The new validator's public key (64 hex characters, from `scbe keygen`).
        #[arg(long, value_name = "HEX")]
        public_key: String,
        /// Where the other validators dial it: HOST:PORT, a DNS name (a Kubernetes service
        /// name too) or an IP address.
        #[arg(long, value_name = "HOST:PORT")]
        address: String,
    },
    /// Give validator ID a new key (create it with `scbe keygen --out FILE` on the validator's
    /// machine). Its old key stops counting at the change; until it restarts with the new key
    /// it only observes.
    Rotate {
        #[arg(long)]
        id: u32,
        /// The new public key (64 hex characters, from `scbe keygen`).
        #[arg(long, value_name = "HEX")]
        public_key: String,
    },
    /// Take validator ID out of the set: from the change on it orders and votes on nothing.
    Remove {
        #[arg(long)]
        id: u32,
    },
}

#[derive(Subcommand)]
enum RequesterCommand {
    /// Admit a requester. It creates its key with `scbe keygen --out FILE` and sends the
    /// public key printed to a requester already admitted, who runs this.
    Add {
        /// A name for `scbe status` and events: 1 to 64 letters, digits or . - _
        #[arg(long)]
        name: String,
        /// The requester's public key (64 hex characters, from `scbe keygen`).
        #[arg(long, value_name = "HEX")]
        public_key: String,
    },
    /// Remove a requester: what its key signs is refused from the approval on.
    Remove {
        #[arg(long)]
        name: String,
    },
}

/// One flag per gate and health threshold of the genesis.
#[derive(clap::Args)]
#[command(arg_required_else_help = true)]
struct SettingsArgs {
    /// Gate: every unit's quality at least this (0.5 to 1).
    #[arg(long, value_name = "X")]
    min_quality: Option<f64>,
    /// Gate: every unit's safety at least this (0.9 to 1).
    #[arg(long, value_name = "X")]
    min_safety: Option<f64>,
    /// Gate: every unit's p95 latency at most this; also agents' p95 response time.
    #[arg(long, value_name = "MS")]
    max_latency_ms_p95: Option<f64>,
    /// Gate: every unit's cost per 1K tokens at most this, in dollars.
    #[arg(long, value_name = "USD")]
    max_cost_per_1k_tokens: Option<f64>,
    /// Health: an agent's mean coherence above this (0.3 to 1).
    #[arg(long, value_name = "X")]
    min_coherence: Option<f64>,
    /// Health: an agent's mean error rate below this (0 to 0.25).
    #[arg(long, value_name = "X")]
    max_error_rate: Option<f64>,
    /// Health: every sample's safety at least this (`[health] min_safety`, 0.9 to 1).
    #[arg(long, value_name = "X")]
    health_min_safety: Option<f64>,
    /// Health: this many consecutive breaching samples prove degradation.
    #[arg(long, value_name = "N")]
    breach_samples: Option<u32>,
    /// How checkpoints digest the state: `tree` (cost grows with what changed) or `walk`
    /// (every entry, each checkpoint; a genesis that names none). Move an upgraded cluster to
    /// `tree` once every validator runs a build that has it (OPERATIONS.md).
    #[arg(long, value_name = "MODE")]
    state_digest: Option<StateDigest>,
}

impl SettingsArgs {
    fn change(self) -> SettingsChange {
        SettingsChange {
            min_quality: self.min_quality,
            min_safety: self.min_safety,
            max_latency_ms_p95: self.max_latency_ms_p95,
            max_cost_per_1k_tokens: self.max_cost_per_1k_tokens,
            min_coherence: self.min_coherence,
            max_error_rate: self.max_error_rate,
            health_min_safety: self.health_min_safety,
            breach_samples: self.breach_samples,
            state_digest: self.state_digest,
        }
    }
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Admit an agent. Its operator runs `scbe-agent keygen` for the key and starts it with
    /// `agent.specialty` and `agent.listen` set (the genesis does not list it).
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        specialty: String,
        /// The agent's public key (64 hex characters, from `scbe-agent keygen`).
        #[arg(long, value_name = "HEX")]
        public_key: String,
        /// Where validators reach its FleetAgent service: HOST:PORT (a DNS name works).
        #[arg(long, value_name = "HOST:PORT")]
        address: String,
    },
    /// Remove an agent: no later order names it, its reports stop counting.
    Remove {
        #[arg(long)]
        id: String,
    },
    /// Move an agent (a new address) or re-key it (evidence under its old key stops counting).
    Update {
        #[arg(long)]
        id: String,
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

/// A public key given on the command line.
fn public_key_arg(hex: &str) -> Result<PublicKey, Unusable> {
    PublicKey::from_hex(hex.trim()).ok_or_else(|| {
        Unusable(anyhow::anyhow!(
            "--public-key must be 64 hex characters (as `scbe-agent keygen` prints), got {hex:?}"
        ))
    })
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
    /// for the genesis's [[requesters]], or for a requester already admitted to propose with
    /// `scbe propose requester add`.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Submit a proposal and wait for the answer.
    ///
    /// `register` answers accepted or rejected; `promote` and `agent` then wait for the
    /// validators' votes, print each as it arrives and the decision with its tally. Exit
    /// status: 0 accepted / approved, 1 rejected or expired, 2 error.
    Propose {
        #[command(subcommand)]
        what: Propose,
    },
    /// Propose putting a known-good version back on the whole fleet; waits for the votes.
    ///
    /// The target may be any known-good version: the genesis's, and every release that
    /// completed production. A restore skips the canary shape and analysis: it goes in batches
    /// of up to 1,000 agents, each recorded once the agents acknowledge.
    ///
    /// Exit status: 0 approved (the restore then runs batch by batch: follow it with
    /// `scbe watch --rollout N`), 1 rejected or expired, 2 error.
    Rollback {
        #[arg(long, value_name = "VERSION")]
        target_version: String,
        #[arg(long, default_value = "manual rollback")]
        reason: String,
    },
    /// Propose aborting a promotion in progress; waits for the votes. At approval the rollout
    /// rolls back what it touched, as on degraded evidence.
    ///
    /// Exit status: 0 approved (follow the rollback with `scbe watch --rollout N`), 1 refused,
    /// rejected or expired, 2 error.
    Abort {
        #[arg(long, value_name = "N")]
        rollout: u64,
        #[arg(long, default_value = "aborted by an operator")]
        reason: String,
    },
    /// Propose letting a rollout paused for approval (`propose promote --pause-before N`)
    /// deploy its next batch; waits for the votes. At approval the batch starts.
    ///
    /// Exit status: 0 approved, 1 refused (not paused), rejected or expired, 2 error.
    Approve {
        #[arg(long, value_name = "N")]
        rollout: u64,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (node, genesis, validator_key, ca_file) =
        (cli.node, cli.genesis, cli.validator_key, cli.ca_file);
    let dial = || {
        scbe_cli::commands::dial(
            &node,
            genesis.as_deref(),
            validator_key.as_deref(),
            ca_file.as_deref(),
        )
    };
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
                    pause_before,
                    steps,
                } => Ok(Operation::Promote {
                    version: release,
                    to: if to == "canary" {
                        Stage::Canary
                    } else {
                        Stage::Production
                    },
                    rollback_to,
                    pause_before,
                    steps,
                }),
                Propose::Agent { change } => {
                    match change {
                        AgentCommand::Add {
                            id,
                            specialty,
                            public_key,
                            address,
                        } => public_key_arg(&public_key).map(|public_key| AgentChange::Add {
                            id,
                            specialty,
                            public_key,
                            address,
                        }),
                        AgentCommand::Remove { id } => Ok(AgentChange::Remove { id }),
                        AgentCommand::Update {
                            id,
                            address,
                            public_key,
                        } => public_key.as_deref().map(public_key_arg).transpose().map(
                            |public_key| AgentChange::Update {
                                id,
                                address,
                                public_key,
                            },
                        ),
                    }
                    .map(|change| Operation::ProposeAgent { change })
                }
                Propose::Settings(args) => Ok(Operation::ProposeSettings {
                    change: args.change(),
                }),
                Propose::Requester { change } => match change {
                    RequesterCommand::Add { name, public_key } => public_key_arg(&public_key)
                        .map(|public_key| RequesterChange::Add { name, public_key }),
                    RequesterCommand::Remove { name } => Ok(RequesterChange::Remove { name }),
                }
                .map(|change| Operation::ProposeRequester { change }),
                Propose::Validator { change } => match change {
                    ValidatorCommand::Rotate { id, public_key } => public_key_arg(&public_key)
                        .map(|public_key| ValidatorChange::Rotate { id, public_key }),
                    ValidatorCommand::Remove { id } => Ok(ValidatorChange::Remove { id }),
                    ValidatorCommand::Add {
                        public_key,
                        address,
                    } => public_key_arg(&public_key).map(|public_key| ValidatorChange::Add {
                        public_key,
                        address,
                    }),
                }
                .map(|change| Operation::ProposeValidator { change }),
            };
            op.and_then(|op| submit(&dial()?, &cli.key, op))
        }
        Command::Rollback {
            target_version,
            reason,
        } => dial().and_then(|d| {
            submit(
                &d,
                &cli.key,
                Operation::Rollback {
                    target_version,
                    reason,
                },
            )
        }),
        Command::Approve { rollout } => {
            dial().and_then(|d| submit(&d, &cli.key, Operation::Approve { rollout }))
        }
        Command::Abort { rollout, reason } => {
            dial().and_then(|d| submit(&d, &cli.key, Operation::Abort { rollout, reason }))
        }
        Command::Status { proposal, json } => {
            dial().and_then(|d| run_status(&d, genesis.as_deref(), proposal, json))
        }
        Command::Watch { from, rollout } => dial().and_then(|d| run_watch(&d, from, rollout)),
        Command::Audit {
            what: Audit::Export { out, from },
        } => dial().and_then(|d| audit_export(&d, &out, from)),
        Command::Audit {
            what: Audit::Prove { what, entry, json },
        } => match &genesis {
            Some(path) => dial().and_then(|d| audit_prove(&d, path, what.map(), &entry, json)),
            None => Err(Unusable(anyhow::anyhow!(
                "audit prove checks the proof against the cluster's genesis: give --genesis FILE"
            ))),
        },
        Command::Audit {
            what: Audit::Verify { file },
        } => match &genesis {
            Some(genesis) => audit_verify(&file, genesis),
            None => Err(Unusable(anyhow::anyhow!(
                "audit verify checks the log against the cluster's genesis: give --genesis FILE"
            ))),
        },
    };
    match result {
        Ok(code) => code,
        Err(Unusable(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
