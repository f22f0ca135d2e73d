//! `scbe-agent`: the fleet agent daemon. One per fleet member: it obeys deploy and rollback
//! orders signed by a quorum of validators (running the operator's hooks), and signs health
//! reports from its health source.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "scbe-agent",
    version,
    about = "SCBE Fleet agent: deploys what a quorum of validators orders, reports signed health"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the agent's key. The secret goes to --out (readable by its owner only, never
    /// overwritten); the public key is printed for the validators' [[agents]] entry.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Run the agent with a TOML config (see configs/agent.toml for every key).
    ///
    /// The config is validated at start-up; an error names the key at fault. The agent keeps
    /// its current and previous version in its data directory and reports them after a restart.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask the agent running with this config whether it serves (grpc.health.v1, over TLS
    /// pinned to its own key): exit 0 if so, 1 otherwise. For container health checks.
    Health {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Keygen { out } => scbe_wire::daemon::keygen(&out),
        Command::Run { config } => scbe_agent::daemon::run_agent(&config),
        Command::Health { config } => scbe_agent::daemon::probe_agent(&config),
    }
}
