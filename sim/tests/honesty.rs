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
        ..Overrides::default()
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

/// Finds the first seed below `bound` whose run reports `invariant`.
fn caught(o: &Overrides, bound: u64, invariant: &str) -> Option<u64> {
    (0..bound).find(|seed| {
        run_seed(*seed, o)
            .violations
            .iter()
            .any(|v| v.invariant == invariant)
    })
}

/// The first seed below `bound` whose run reports `invariant` with the system broken as
/// `broken` says; fails the test if there is none.
fn first_caught(o: &Overrides, bound: u64, invariant: &str, broken: &str) -> u64 {
    let seed = caught(o, bound, invariant);
    assert!(
        seed.is_some(),
        "no {invariant} violation in {bound} seeds with {broken}"
    );
    seed.unwrap_or_default()
}

#[test]
fn agents_that_obey_a_single_signature_are_caught_running_an_unapproved_version() {
    // Fleet liars send agents a deploy of "evil" signed by themselves alone. With the real
    // quorum agents refuse it; an agent that takes one signature is caught by fleet-authority.
    let o = Overrides {
        validators: Some(4),
        byzantine: Some(1),
        unsafe_agent_quorum: Some(1),
        ..Overrides::default()
    };
    let bound = 40;
    assert!(
        caught(&o, bound, "fleet-authority").is_some(),
        "no fleet-authority violation in {bound} seeds with agents that obey one signature"
    );
}

#[test]
fn a_ledger_that_skips_the_monitoring_window_is_caught_completing_rollouts() {
    // The checkers demand MIN_SAMPLES samples per agent; a ledger that accepts one lets
    // rollouts (even of degrading releases) complete early, and rollout-evidence sees it.
    let o = Overrides {
        unsafe_min_samples: Some(1),
        ..Overrides::default()
    };
    let bound = 40;
    assert!(
        caught(&o, bound, "rollout-evidence").is_some(),
        "no rollout-evidence violation in {bound} seeds with a one-sample window"
    );
}

#[test]
fn a_store_that_loses_snapshot_nonces_is_caught_by_the_recovery_checker() {
    // A restarted replica rebuilds from its stored snapshot, whose digest must match the stable
    // checkpoint a quorum signed; a store that drops the nonce windows breaks that, and the
    // restart is reported. With the real store every restart restores.
    let o = Overrides {
        validators: Some(4),
        byzantine: Some(0),
        unsafe_store_forgets_nonces: true,
        ..Overrides::default()
    };
    let seed = first_caught(&o, 60, "recovery", "a store that loses snapshot nonces");
    let honest = Overrides {
        unsafe_store_forgets_nonces: false,
        ..o
    };
    let report = run_seed(seed, &honest);
    assert!(
        report.violations.iter().all(|v| v.invariant != "recovery"),
        "seed {seed} restores with the real store: {:?}",
        report.violations
    );
}

#[test]
fn a_stale_executor_is_caught_ordering_agents_under_the_old_validator_set() {
    // After a rotation, an executor that still endorses with the genesis keys and quorum and
    // sends no chain leaves agents on the old set: they obey orders a retired key helped
    // endorse, and order-epoch sees it. With the real executor the same seed passes.
    let o = Overrides {
        validators: Some(4),
        validator_change: true,
        unsafe_stale_endorsers: true,
        ..Overrides::default()
    };
    let seed = first_caught(&o, 40, "order-epoch", "a stale executor");
    let honest = Overrides {
        unsafe_stale_endorsers: false,
        ..o
    };
    let report = run_seed(seed, &honest);
    assert!(
        report.passed(),
        "seed {seed} passes with the real executor: {:?}",
        report.violations
    );
}
