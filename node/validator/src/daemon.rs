//! `scbe-node run --config FILE`: load and validate the config (exit 2 naming the key at fault),
//! set up logging and the async runtime, run until stopped or until a part of the validator
//! fails (exit 1 with the error). `scbe-sim` starts its local validators through this too.

use std::path::Path;
use std::process::ExitCode;

use scbe_wire::daemon::{base_of, init_tracing, runtime};

use crate::config::NodeConfig;

/// The validated config at `config`, or exit 2 naming the key at fault.
fn load(config: &Path) -> Result<crate::config::Validated, ExitCode> {
    NodeConfig::load(config)
        .and_then(|c| c.validate(&base_of(config)))
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
}

/// `scbe-node run --config FILE`.
pub fn run_validator(config: &Path) -> ExitCode {
    let base = base_of(config);
    let validated = match load(config) {
        Ok(v) => v,
        Err(code) => return code,
    };
    init_tracing();
    let rt = match runtime(None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match rt.block_on(crate::node::run(validated, &base)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("validator stopped: {e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scbe-node health --config FILE`: asks the running validator's grpc.health.v1 service (exit
/// 0 when serving, 1 otherwise, 2 for a bad config).
pub fn probe_validator(config: &Path) -> ExitCode {
    match load(config) {
        Ok(v) => scbe_wire::health_probe::probe_own(
            &v.transport,
            v.key.public(),
            v.listen,
            "this validator's own key",
        ),
        Err(code) => code,
    }
}
