//! `scbe-node`: the validator daemon and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "scbe-node",
    version,
    about = "SCBE Fleet validator: orders and votes on release proposals with PBFT consensus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new validator key. The secret goes to --out (readable by its owner only, never
    /// overwritten); the public key is printed for the cluster's [[validators]] list.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Run the validator with a TOML config (see configs/node.toml for every key).
    ///
    /// The config is validated at start-up; an error names the key at fault. The node refuses to
    /// start if its storage is damaged, rather than risk signing two conflicting messages.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Keygen { out } => scbe_wire::daemon::keygen(&out),
        Command::Run { config } => scbe_validator::daemon::run_validator(&config),
    }
}
