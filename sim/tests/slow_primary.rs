//! A slow but honest primary is not deposed: heartbeat silence is measured in gaps between its
//! messages, not in their latency. The control run shows the check can see a deposition.

use scbe_sim::scenario::{Overrides, Scenario};
use scbe_sim::simulation::Simulation;

/// Seed 3's cluster at n = 4 with every fault removed except the primary's extra delay.
fn slow_primary(jitter_ms: u64) -> Scenario {
    let o = Overrides {
        validators: Some(4),
        byzantine: Some(0),
        ..Overrides::default()
    };
    let mut sc = Scenario::derive(3, &o);
    sc.partitions.clear();
    sc.crashes.clear();
    sc.lone_view_changes.clear();
    sc.drop_rate = 0.0;
    sc.duplicate_rate = 0.0;
    // Generous request timer: only silence may depose it here.
    sc.request_timeout_ms = 2_000;
    sc.view_change_timeout_ms = 2_000;
    sc.slow = Some((0, jitter_ms));
    sc
}

#[test]
fn a_slow_honest_primary_keeps_its_view() {
    // Up to 100 ms more per message: its heartbeats (every 50 ms) arrive late and unevenly, but
    // its pre-prepares and commits fill the gaps and the 150-200 ms of silence allowed is not
    // reached. (Silence is counted between messages, so a constant delay would never matter.)
    let r = Simulation::new(slow_primary(100)).run();
    assert!(r.passed(), "{:?}", r.violations);
    assert!(r.stats.requests_completed > 0);
    assert_eq!(r.stats.max_view, 0, "deposed: {:?}", r.stats.replicas);
}

#[test]
fn a_primary_silent_for_longer_than_allowed_is_deposed_and_everything_is_still_decided() {
    // Up to 3 s more: gaps between its messages exceed the silence allowed at several backups at
    // once. (With up to 600 ms, each backup suspects it now and then but at different moments,
    // and a backup leaves only once f others suspect too (`replica/suspicion.rs`): that primary,
    // which kept deciding every request, now keeps its view.)
    let r = Simulation::new(slow_primary(3000)).run();
    assert!(r.passed(), "{:?}", r.violations);
    assert!(
        r.stats.max_view > 0,
        "never deposed: {:?}",
        r.stats.replicas
    );
}
