//! Tests that keep the simulator honest: it must be deterministic, and it must be able to catch a
//! broken core.

use scbe_sim::scenario::Overrides;
use scbe_sim::simulation::run_seed;

#[test]
fn the_same_seed_twice_gives_an_identical_trace() {
    for seed in [3, 17, 101] {
        let o = Overrides::default();
        let a = run_seed(seed, &o);
        let b = run_seed(seed, &o);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.stats.events, b.stats.events, "seed {seed}");
        assert!(a.stats.events > 100, "seed {seed} did real work");
    }
    // And different seeds give different traces (the hash is not a constant).
    let o = Overrides::default();
    assert_ne!(run_seed(1, &o).trace_hash, run_seed(2, &o).trace_hash);
}

#[test]
fn a_quorum_one_too_small_is_caught_breaking_agreement() {
    // n = 4 needs q = 3. With q = 2 two disjoint halves can each decide on their own.
    let o = Overrides {
        validators: Some(4),
        byzantine: Some(1),
        unsafe_quorum: Some(2),
    };
    let bound = 40;
    let caught = (0..bound).find(|seed| {
        run_seed(*seed, &o)
            .violations
            .iter()
            .any(|v| v.invariant == "agreement")
    });
    assert!(
        caught.is_some(),
        "no agreement violation in {bound} seeds with an unsafe quorum"
    );
}
