//! Process entry points for the two daemons: load and validate the config (exit 2 naming the
//! key at fault), set up logging and the async runtime, run until stopped. `scbe-node run`,
//! `scbe-agent run` and the subcommands `scbe-sim` starts its local processes with all call these.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::NodeConfig;
use crate::fleet::config::AgentConfig;

fn base_of(config: &Path) -> PathBuf {
    config
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .try_init();
}

fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = workers {
        b.worker_threads(w);
    }
    b.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// `scbe-node run --config FILE`.
pub fn run_validator(config: &Path) -> ExitCode {
    let base = base_of(config);
    let validated = match NodeConfig::load(config).and_then(|c| c.validate(&base)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing();
    let rt = match runtime(None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match rt.block_on(crate::node::run(validated, &base)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scbe-agent run --config FILE`.
pub fn run_agent(config: &Path) -> ExitCode {
    let base = base_of(config);
    let validated = match AgentConfig::load(config).and_then(|c| c.validate(&base)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing();
    // An agent does little: two workers are plenty, and a local fleet runs a dozen of them.
    let rt = match runtime(Some(2)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match rt.block_on(crate::fleet::service::run(validated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `keygen --out FILE` for either daemon: prints the public key.
pub fn keygen(out: &Path) -> ExitCode {
    match crate::config::write_new_key(out) {
        Ok(key) => {
            println!("{}", crate::config::encode_hex(key.public().as_bytes()));
            eprintln!("secret key written to {} (mode 0600)", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
