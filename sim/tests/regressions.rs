//! Seeds that once broke an invariant, pinned with the fix that made them pass. Each comment
//! says what was wrong.

use scbe_sim::scenario::Overrides;
use scbe_sim::simulation::run_seed;

fn assert_passes(seed: u64, validators: usize, byzantine: usize) {
    let o = Overrides {
        validators: Some(validators),
        byzantine: Some(byzantine),
        unsafe_quorum: None,
    };
    let r = run_seed(seed, &o);
    assert!(
        r.passed(),
        "seed {seed} (n={validators}, b={byzantine}): {:?}",
        r.violations
    );
}

/// A new primary proposed with a stale `next_seq` from an older view before the new view's
/// sequence numbers were set: two different pre-prepares for the same (view, seq).
#[test]
fn new_primary_never_reuses_a_sequence_number() {
    for seed in [163, 178, 184, 228] {
        assert_passes(seed, 4, 1);
    }
}

/// Timers were compared by value, so an old firing matched a re-arming with equal fields and
/// triggered spurious view changes until the cluster stalled.
#[test]
fn stale_timer_firings_are_ignored() {
    for seed in [124, 148, 202, 234, 287] {
        assert_passes(seed, 4, 1);
    }
}

/// A replica that lost a peer's view change, after that peer had moved to a higher view, never
/// armed its view-change timer: the cluster waited forever.
#[test]
fn view_change_timer_arms_when_peers_moved_higher() {
    assert_passes(8, 4, 1);
}

/// A new primary's first pre-prepare overtook its new-view and was dropped by backups still
/// changing view; with one silent replica no view ever made progress.
#[test]
fn messages_overtaking_the_new_view_are_buffered() {
    for seed in [407, 528] {
        assert_passes(seed, 4, 1);
    }
}
