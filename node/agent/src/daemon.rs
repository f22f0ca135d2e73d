//! `scbe-agent run --config FILE`: load and validate the config (exit 2 naming the key at
//! fault), set up logging and a small async runtime, serve until stopped (exit 1 with the error
//! if the agent cannot go on). `scbe-sim` starts its local agents through this too.

use std::path::Path;
use std::process::ExitCode;

use scbe_wire::daemon::{base_of, init_tracing, runtime};

use crate::config::AgentConfig;

/// The validated config at `config`, or exit 2 naming the key at fault.
fn load(config: &Path) -> Result<crate::config::ValidatedAgent, ExitCode> {
    AgentConfig::load(config)
        .and_then(|c| c.validate(&base_of(config)))
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
}

/// `scbe-agent run --config FILE`.
pub fn run_agent(config: &Path) -> ExitCode {
    let validated = match load(config) {
        Ok(v) => v,
        Err(code) => return code,
    };
    init_tracing();
    // An agent does little: two workers are plenty, and a local fleet runs a dozen of them.
    let rt = match runtime(Some(2)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match rt.block_on(crate::service::run(validated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("agent stopped: {e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scbe-agent health --config FILE`: asks the running agent's grpc.health.v1 service (exit 0
/// when serving, 1 otherwise, 2 for a bad config).
pub fn probe_agent(config: &Path) -> ExitCode {
    match load(config) {
        Ok(v) => scbe_wire::health_probe::probe_own(
            &v.transport,
            v.key.public(),
            v.listen,
            "this agent's own key",
        ),
        Err(code) => code,
    }
}
