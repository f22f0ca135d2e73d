//! What the daemons (`scbe-node`, `scbe-agent`) share as processes: where relative paths in a
//! config resolve, logging, the async runtime, and `keygen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::key_file::{encode_hex, write_new_key};

/// The directory relative paths in `config` are resolved against: the config's own.
pub fn base_of(config: &Path) -> PathBuf {
    config
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        // Colour only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
}

/// A multi-threaded async runtime (`workers` threads, or one per core).
pub fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = workers {
        b.worker_threads(w);
    }
    b.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// `keygen --out FILE` for either daemon: prints the public key.
pub fn keygen(out: &Path) -> ExitCode {
    match write_new_key(out) {
        Ok(key) => {
            println!("{}", encode_hex(key.public().as_bytes()));
            eprintln!("secret key written to {} (mode 0600)", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
