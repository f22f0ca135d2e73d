//! Measurements built on [`run_trial`]: the canary comparison's error rates over seeded
//! trials (`scbe-sim canary-rates`) and a fast rollback of a large fleet (`scbe-sim
//! bench-fleet`'s restore).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail};
use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::RolloutStatus;
use scbe_core::governance::Stage;
use scbe_core::rollout::baseline::AnalysisSettings;
use scbe_core::rollout::plan::{plan_batches, FleetAgent};

use crate::bench_large_fleet::{run_trial, Trial, TrialEnd};

/// A fast rollback: `n` agents promoted to production, then all restored to v0 by a manual
/// rollback. The restore's end (batches, wall time of all its work here) and the batches the
/// promotion shape would have taken for the same agents.
pub fn restore(n: usize) -> anyhow::Result<(TrialEnd, usize)> {
    let trial = Trial {
        agents: n,
        // A short window: the promotions before are not what is measured.
        window: Duration::from_secs(30),
        sample: Duration::from_secs(10),
        seed: 7,
        drift: None,
        version: "r1".into(),
        stages: vec![Stage::Canary, Stage::Production],
        analysis: AnalysisSettings::thresholds_only(),
        restore_after: true,
    };
    let (_, ends, on) = run_trial(&trial)?;
    let Some(end) = ends.into_iter().find(|e| e.restore) else {
        bail!("the promotions before the restore did not complete");
    };
    if end.status != RolloutStatus::Completed {
        bail!("the restore ended {:?}: {}", end.status, end.reason);
    }
    if on != BTreeSet::from(["v0".to_string()]) {
        bail!("agents run {on:?} after the restore");
    }
    // The same fleet as the trial's, planned in the promotion shape restores used before.
    let fleet: Vec<FleetAgent> = (0..n)
        .map(|i| {
            let id = format!("agent-{i:05}");
            FleetAgent {
                key: Keypair::from_label(&id).public(),
                id,
                specialty: ["code_execute", "doc_plan", "memory_storage"][i % 3].into(),
                address: String::new(),
            }
        })
        .collect();
    Ok((end, plan_batches(&fleet, Stage::Production).batches.len()))
}

/// How the canary comparison did over seeded trials: good releases rolled back (false
/// positives) and drifting releases rolled back (caught).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanaryRates {
    pub trials: u64,
    pub good_rolled_back: u64,
    pub drift_caught: u64,
    /// Reasons of good canaries rolled back, and of drifting ones that completed.
    pub misjudged: Vec<String>,
}

/// `trials` seeded canaries of a good release and as many of a drifting one (inside every
/// threshold), each on a fleet of `agents` sampling every `sample` over `window`, judged by
/// `analysis`, through the real ledger, watcher and agent core. `progress` is called after
/// each trial. A drifting canary counts as caught when it is rolled back, by whatever judge.
pub fn canary_rates(
    trials: u64,
    agents: usize,
    (window, sample): (Duration, Duration),
    analysis: &AnalysisSettings,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<CanaryRates> {
    let mut out = CanaryRates {
        trials,
        ..CanaryRates::default()
    };
    for seed in 0..trials {
        for drift in [false, true] {
            let trial = Trial {
                agents,
                window,
                sample,
                seed,
                drift: Some("drift".into()),
                version: if drift { "r-drift" } else { "r-good" }.into(),
                stages: vec![Stage::Canary],
                restore_after: false,
                analysis: analysis.clone(),
            };
            let (_, ends, _) = run_trial(&trial)?;
            let end = ends.first().ok_or_else(|| anyhow!("no canary ended"))?;
            match (drift, end.status) {
                (false, RolloutStatus::Completed) => {}
                (false, _) => {
                    out.good_rolled_back += 1;
                    out.misjudged
                        .push(format!("good, seed {seed}: {}", end.reason));
                }
                (true, RolloutStatus::RolledBack) => out.drift_caught += 1,
                (true, status) => out
                    .misjudged
                    .push(format!("drift, seed {seed}: {status:?} {}", end.reason)),
            }
        }
        progress(seed + 1);
    }
    Ok(out)
}
