//! A few hundred simulator seeds on every CI run (the full 2000/500 runs are in the README).

use scbe_sim::check::{check, replay_command, CheckOptions};
use scbe_sim::scenario::{Overrides, Scenario};
use scbe_sim::simulation::{Report, Simulation};

/// Runs `scenario` (derived under `overrides`) and asserts every invariant held, naming the
/// seed and the command that replays it.
fn run_passing(scenario: Scenario, overrides: &Overrides) -> Report {
    let r = Simulation::new(scenario).run();
    assert!(
        r.passed(),
        "seed {}: {:?}\n  replay: {}",
        r.scenario.seed,
        r.violations.first(),
        replay_command(r.scenario.seed, overrides)
    );
    r
}

fn run(first_seed: u64, seeds: u64, validators: usize, byzantine: usize) {
    let overrides = Overrides {
        validators: Some(validators),
        byzantine: Some(byzantine),
        unsafe_quorum: None,
        ..Overrides::default()
    };
    let opts = CheckOptions {
        first_seed,
        seeds,
        overrides: overrides.clone(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let summary = check(&opts, |_| {});
    let failures: Vec<String> = summary
        .failed
        .iter()
        .map(|r| {
            format!(
                "seed {}: {:?}\n  replay: {}",
                r.scenario.seed,
                r.violations.first(),
                replay_command(r.scenario.seed, &overrides)
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(summary.passed, seeds);
}

#[test]
fn n4_with_one_byzantine() {
    run(10_000, 200, 4, 1);
}

#[test]
fn n7_with_two_byzantine() {
    run(20_000, 60, 7, 2);
}

#[test]
fn derived_cluster_sizes() {
    let summary = check(
        &CheckOptions {
            first_seed: 30_000,
            seeds: 60,
            overrides: Overrides::default(),
            threads: 2,
        },
        |_| {},
    );
    assert!(
        summary.failed.is_empty(),
        "seeds {:?} failed",
        summary
            .failed
            .iter()
            .map(|r| r.scenario.seed)
            .collect::<Vec<_>>()
    );
}

/// `Scenario::restart_mid_rollout`: a validator crashes while its ledger has a rollout in
/// progress and restarts with a fresh step, which skips a window of nonces. Every seed passes
/// (the own-nonces invariant among the others), and the restarted validators are heard again:
/// requests they signed after the restart take effect.
#[test]
fn a_validator_restarted_mid_rollout_is_heard_again() {
    let overrides = Overrides {
        validators: Some(4),
        byzantine: Some(1),
        ..Overrides::default()
    };
    let (mut restarted, mut heard) = (0, 0);
    let mut seed = 50_000;
    while restarted < 12 && seed < 50_200 {
        let scenario = Scenario::derive(seed, &overrides);
        seed += 1;
        if scenario.restart_mid_rollout.is_none() {
            continue;
        }
        let r = run_passing(scenario, &overrides);
        if r.stats.restarted_mid_rollout.is_some() {
            restarted += 1;
            if r.stats.own_executed_after_restart > 0 {
                heard += 1;
            }
        }
    }
    assert_eq!(restarted, 12, "too few seeds reached a rollout");
    assert_eq!(
        heard, restarted,
        "only {heard} of {restarted} restarted validators had a request take effect after the restart"
    );
}

/// Half the seeds change the fleet between releases (remove an agent, re-key another, admit
/// the first again): those runs really do change it, and every invariant holds across the
/// change (the membership one included: no rollout plans an agent removed before it; and
/// agent-keys: no rollout counts a report signed with the re-keyed agent's leaked old key).
#[test]
fn membership_changes_happen_and_every_invariant_holds_across_them() {
    let overrides = Overrides {
        validators: Some(4),
        byzantine: Some(1),
        ..Overrides::default()
    };
    let mut changed_twice = 0;
    let mut rekeyed = 0;
    for seed in 40_000..40_060 {
        let r = run_passing(Scenario::derive(seed, &overrides), &overrides);
        if r.scenario.fleet.membership && r.stats.membership_changes >= 2 {
            changed_twice += 1;
        }
        if r.stats.agents_rekeyed > 0 {
            rekeyed += 1;
        }
    }
    assert!(
        changed_twice >= 3,
        "only {changed_twice} of 60 seeds removed and re-admitted an agent"
    );
    assert!(
        rekeyed >= 3,
        "only {rekeyed} of 60 seeds restarted an agent with a new key"
    );
}

/// A quarter of the validator changes add a validator (`ValidatorShift::Add`): its node runs
/// from the start with only the genesis, observing. In every such seed the addition applies
/// (the cluster reaches epoch 1) and every invariant holds, liveness included, which from the
/// change on requires the added validator to keep up with the others like any honest one.
#[test]
fn an_added_validator_catches_up_and_keeps_up() {
    let overrides = Overrides {
        validators: Some(4),
        validator_change: true,
        ..Overrides::default()
    };
    let mut added = 0;
    let mut seed = 60_000;
    while added < 8 && seed < 60_100 {
        let scenario = Scenario::derive(seed, &overrides);
        seed += 1;
        if scenario.validator_change != Some(scbe_sim::scenario::ValidatorShift::Add) {
            continue;
        }
        assert_eq!(scenario.nodes(), 5);
        let r = run_passing(scenario, &overrides);
        assert_eq!(
            r.stats.epochs, 1,
            "seed {}: the addition applied",
            r.scenario.seed
        );
        added += 1;
    }
    assert_eq!(added, 8, "too few seeds drew an addition");
}

/// A third of the rotations where a validator is Byzantine rotate that validator's key. Its
/// core goes on with the new key, while what it forges, rewrites and replays is still signed
/// with the retired one (an attacker keeps the key it stole). In every such seed every
/// invariant holds: no certificate counts the retired key after the change (epochs), and the
/// honest ones keep deciding (liveness); in most the rotated validator also restarts with its
/// new key before the run ends (a change decided late ends the run first).
#[test]
fn a_byzantine_validators_rotated_key_stops_counting() {
    let overrides = Overrides {
        validators: Some(4),
        byzantine: Some(1),
        validator_change: true,
        ..Overrides::default()
    };
    let mut rotated = 0;
    let mut restarted = 0;
    let mut seed = 70_000;
    while rotated < 8 && seed < 70_200 {
        let scenario = Scenario::derive(seed, &overrides);
        seed += 1;
        let Some(scbe_sim::scenario::ValidatorShift::Rotate { id, .. }) = scenario.validator_change
        else {
            continue;
        };
        if !scenario.is_byzantine(id) {
            continue;
        }
        let r = run_passing(scenario, &overrides);
        rotated += 1;
        restarted += usize::from(r.stats.rekeyed);
    }
    assert_eq!(rotated, 8, "too few seeds rotated a Byzantine validator");
    assert!(
        restarted >= 4,
        "only {restarted} of 8 rotated Byzantine validators restarted with the new key"
    );
}
