//! `scbe-agent`: the fleet agent daemon. One per fleet member: it obeys deploy and rollback
//! orders signed by a quorum of validators (running the operator's hooks), and signs health
//! reports from its health source.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scbe_node::config::{encode_hex, write_new_key};
use scbe_node::fleet::config::AgentConfig;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { out } => match write_new_key(&out) {
            Ok(key) => {
                println!("{}", encode_hex(key.public().as_bytes()));
                eprintln!("secret key written to {} (mode 0600)", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let base = config
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            let validated = match AgentConfig::load(&config).and_then(|c| c.validate(&base)) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_target(false)
                .init();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(scbe_node::fleet::service::run(validated)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
