//! The canary comparison through the real ledger, watcher and agent core (virtual time): on a
//! fleet of 12 sampling every second over a 60 s window, seeded canaries of a good release all
//! complete and drifting ones (worse than the baseline, inside every threshold) are all rolled
//! back by the comparison. `scbe-sim canary-rates --trials 200` is the full measurement
//! (BENCHMARKS.md); these seeds are its first ones, so the two cannot drift apart.

use std::time::Duration;

use scbe_core::rollout::baseline::AnalysisSettings;
use scbe_sim::bench_trials::canary_rates;

const TIMING: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(1));

#[test]
fn good_canaries_complete_and_drifting_ones_are_caught_by_the_comparison() {
    let r = canary_rates(12, 12, TIMING, &AnalysisSettings::default(), |_| {}).expect("trials");
    assert_eq!(r.good_rolled_back, 0, "{:?}", r.misjudged);
    assert_eq!(r.drift_caught, 12, "{:?}", r.misjudged);
    assert!(r.misjudged.is_empty());
    // The thresholds alone let every drifting canary through: only the comparison sees it.
    let r =
        canary_rates(4, 12, TIMING, &AnalysisSettings::thresholds_only(), |_| {}).expect("trials");
    assert_eq!(
        (r.good_rolled_back, r.drift_caught),
        (0, 0),
        "{:?}",
        r.misjudged
    );
}
