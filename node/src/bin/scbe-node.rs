//! `scbe-node`: the validator daemon and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scbe_node::config::{encode_hex, write_new_key, NodeConfig};

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
            let validated = match NodeConfig::load(&config).and_then(|c| c.validate(&base)) {
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
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(scbe_node::node::run(validated, &base)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
