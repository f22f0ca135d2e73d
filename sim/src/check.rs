//! `scbe-sim check`: runs many seeds across the machine's cores and reports each failure with the
//! command that replays it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::scenario::Overrides;
use crate::simulation::{run_seed, Report};

pub struct CheckOptions {
    pub first_seed: u64,
    pub seeds: u64,
    pub overrides: Overrides,
    pub threads: usize,
}

pub struct CheckSummary {
    pub passed: u64,
    pub failed: Vec<Report>,
}

/// The command that replays one seed exactly.
pub fn replay_command(seed: u64, o: &Overrides) -> String {
    let mut cmd = format!("cargo run --release -p scbe-sim -- check --seed {seed}");
    if let Some(v) = o.validators {
        cmd.push_str(&format!(" --validators {v}"));
    }
    if let Some(b) = o.byzantine {
        cmd.push_str(&format!(" --byzantine {b}"));
    }
    if o.validator_change {
        cmd.push_str(" --validator-change");
    }
    if o.no_additions {
        cmd.push_str(" --no-additions");
    }
    cmd
}

/// Runs `seeds` seeds starting at `first_seed`; calls `on_report` as each finishes (in completion
/// order, which varies; each report itself is deterministic).
pub fn check(opts: &CheckOptions, on_report: impl Fn(&Report) + Sync) -> CheckSummary {
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    let passed = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.seeds {
                    break;
                }
                let report = run_seed(opts.first_seed + i, &opts.overrides);
                on_report(&report);
                if report.passed() {
                    passed.fetch_add(1, Ordering::Relaxed);
                } else if let Ok(mut r) = results.lock() {
                    r.push(report);
                }
            });
        }
    });
    let mut failed = results.into_inner().unwrap_or_default();
    failed.sort_by_key(|r| r.scenario.seed);
    CheckSummary {
        passed: passed.into_inner(),
        failed,
    }
}
