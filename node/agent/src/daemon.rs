//! `scbe-agent run --config FILE`: load and validate the config (exit 2 naming the key at
//! fault), set up logging and a small async runtime, serve until stopped (exit 1 with the error
//! if the agent cannot go on). `scbe-sim` starts its local agents through this too.

use std::path::Path;
use std::process::ExitCode;

use scbe_wire::daemon::{base_of, init_tracing, runtime};

use crate::config::AgentConfig;

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
    match rt.block_on(crate::service::run(validated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("agent stopped: {e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scbe-agent health --config FILE`: asks the running agent's grpc.health.v1 service, over
/// TLS pinned to the agent's own key (exit 0 when serving, 1 otherwise, 2 for a bad config).
pub fn probe_agent(config: &Path) -> ExitCode {
    let base = base_of(config);
    let v = match AgentConfig::load(config).and_then(|c| c.validate(&base)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let link = match v
        .transport
        .anonymous_link_to(v.key.public(), "this agent's own key")
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    scbe_wire::health_probe::run_probe(&link, &scbe_wire::health_probe::own_address(v.listen))
}
