//! `scbe-node`: the validator daemon and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scbe_validator::testnet::Testnet;

/// jemalloc, not glibc's malloc: why is beside `tikv-jemallocator` in the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Ask the validator running with this config whether it serves (grpc.health.v1, over TLS
    /// pinned to its own key): exit 0 if so, 1 otherwise. For container health checks and
    /// Kubernetes exec probes.
    Health {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Write a new cluster's files, one folder per host: OUT/node<i>/ (genesis.toml, node.toml,
    /// keys/node<i>.key) for each validator, OUT/agent-<nn>/ (genesis.toml, agent.toml, its key,
    /// a hook that records the ordered version) for each agent, and OUT/requester.key (keep it
    /// off the hosts). Copy each folder to its host and run `scbe-node run --config node.toml`
    /// (or `scbe-agent run --config agent.toml`) there. Refuses an OUT that is not empty.
    Testnet {
        /// How many validators (at least 4: n = 3f + 1 with f >= 1).
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// How many agents (their specialties cycle through textgen, embed, code_execute).
        #[arg(long, default_value_t = 3)]
        agents: usize,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The cluster's name (shown by `scbe status`).
        #[arg(long, default_value = "testnet")]
        cluster: String,
        /// Validators' hosts in id order, comma-separated: IP addresses or DNS names
        /// (validator-0.example.org, a Kubernetes service). Fewer than --validators repeats
        /// the last. Default: 127.0.0.1 for all (one machine).
        #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
        validator_hosts: Vec<String>,
        /// Validator i's gRPC port is BASE + i.
        #[arg(long, default_value_t = 7000, value_name = "BASE")]
        base_port: u16,
        /// Agents' hosts, like --validator-hosts.
        #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
        agent_hosts: Vec<String>,
        /// Agent i's FleetAgent port is BASE + i.
        #[arg(long, default_value_t = 7100, value_name = "BASE")]
        agent_base_port: u16,
        /// Validator i's metrics port (on 127.0.0.1) is BASE + i.
        #[arg(long, default_value_t = 9100, value_name = "BASE")]
        metrics_base_port: u16,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Keygen { out } => scbe_wire::daemon::keygen(&out),
        Command::Run { config } => scbe_validator::daemon::run_validator(&config),
        Command::Health { config } => scbe_validator::daemon::probe_validator(&config),
        Command::Testnet {
            validators,
            agents,
            out,
            cluster,
            validator_hosts,
            base_port,
            agent_hosts,
            agent_base_port,
            metrics_base_port,
        } => testnet(Testnet {
            cluster,
            validators,
            agents,
            out,
            validator_hosts,
            base_port,
            agent_hosts,
            agent_base_port,
            metrics_base_port,
        }),
    }
}

fn testnet(t: Testnet) -> ExitCode {
    match t.write() {
        Ok(w) => {
            println!(
                "cluster {:?}: {} validators, {} agents, genesis {} (sha256sum genesis.toml)",
                t.cluster,
                t.validators,
                t.agents,
                w.genesis.digest_hex()
            );
            for (i, d) in w.validator_dirs.iter().enumerate() {
                println!(
                    "  validator {i}: {} -> its host, then: scbe-node run --config node.toml",
                    d.display()
                );
            }
            for d in &w.agent_dirs {
                println!(
                    "  agent:       {} -> its host, then: scbe-agent run --config agent.toml",
                    d.display()
                );
            }
            println!(
                "  requester key: {} (for `scbe --key`; keep it off the hosts)",
                w.requester_key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
