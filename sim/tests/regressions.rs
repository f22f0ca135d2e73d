//! Seeds that once broke an invariant, pinned with the fix that made them pass. Each comment
//! says what was wrong.

use scbe_sim::scenario::Overrides;
use scbe_sim::simulation::run_seed;

fn assert_passes(seed: u64, validators: usize, byzantine: usize) {
    let o = Overrides {
        validators: Some(validators),
        byzantine: Some(byzantine),
        unsafe_quorum: None,
        ..Overrides::default()
    };
    assert_passes_with(seed, &o, &format!("n={validators}, b={byzantine}"));
}

/// Runs `seed` at `validators` with the validator set changed (`--validator-change`).
fn assert_passes_changing_the_set(seed: u64, validators: usize, what: &str) {
    let o = Overrides {
        validators: Some(validators),
        validator_change: true,
        ..Overrides::default()
    };
    assert_passes_with(seed, &o, &format!("n={validators}, {what}"));
}

/// Runs `seed` under `o` (described as `what`) and asserts no invariant broke.
fn assert_passes_with(seed: u64, o: &Overrides, what: &str) {
    let r = run_seed(seed, o);
    assert!(r.passed(), "seed {seed} ({what}): {:?}", r.violations);
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

/// A validator's own request (its vote on a promotion) whose single relay was lost in a
/// partition was never sent again: the proposal stayed one approval short and the release
/// requester waited forever. Validators now retransmit their own pending requests on every
/// status tick, like any client. (Seed 1141 with a derived cluster; 128 at n = 7, b = 2.)
#[test]
fn a_validators_own_requests_are_retransmitted_until_they_execute() {
    let r = run_seed(1141, &Overrides::default());
    assert!(r.passed(), "seed 1141: {:?}", r.violations);
    // The honest rotation it draws without Byzantine rotations (its draw when pinned).
    let o = Overrides {
        validators: Some(7),
        byzantine: Some(2),
        no_additions: true,
        ..Overrides::default()
    };
    assert_passes_with(128, &o, "n=7, b=2");
}

/// A validator that crashed after executing a proposal but before its vote was ordered never
/// voted after the restart (restore replays batches without delivering them again), leaving
/// the proposal one approval short with a silent Byzantine peer. Votes are now owed by ledger
/// state: every validator votes on any pending proposal it has not voted on.
#[test]
fn votes_are_owed_by_state_not_by_the_moment_of_delivery() {
    for seed in [973, 1789] {
        assert_passes(seed, 4, 1);
    }
}

/// The primary of view 5 crashed right after its new-view and restarted in view 5 without the
/// new-view message (it was not persisted), so the backups still changing view never got it and
/// never counted a quorum to time out on: the cluster stalled. The new-view that started a view
/// is now stored with it and forwarded to laggards after a restart.
#[test]
fn a_restarted_primary_can_still_bring_laggards_into_its_view() {
    assert_passes(1630, 4, 1);
}

/// Seed 47 puts a replica alone in a higher view (a lone view change, as after a restart whose
/// timer fired before it caught up) while the others keep deciding. It must keep executing what
/// they decide, whatever its view: with catch-up disabled while changing view, this seed fails
/// the liveness invariant ("behind: [r2 at #37]").
#[test]
fn a_replica_alone_in_a_higher_view_keeps_executing_what_the_others_decide() {
    assert_passes(47, 4, 1);
}

/// Seed 444: checkpoints were sent once. With one lost (a dropped message, a partition) the
/// replicas never matched a quorum at the high watermark, the window stayed full, and view
/// after view (316 of them) ordered nothing. Replicas now re-send their newest checkpoint,
/// including the one at the stable sequence, on every status tick.
#[test]
fn lost_checkpoints_are_sent_again_so_the_window_moves_on() {
    assert_passes(444, 4, 1);
}

/// Seed 161 at n = 7 (two Byzantine, a requester flooding maximum-size requests): after a view
/// change a certificate prepared in an abandoned view sat in the next free slot, and the primary
/// counted its bytes against the window budget as well as the new batch's. No request fitted, so
/// nothing was proposed, no checkpoint freed the window, and every new primary was deposed by
/// the request timer: 625 views without a decision. The primary now reckons the slot's room as
/// the backups do (the new batch replaces what the slot held). Found once suspicion changed the
/// seed's trace; it fails without the fix.
#[test]
fn a_stale_certificate_in_the_next_slot_does_not_block_proposals() {
    assert_passes(161, 7, 2);
}

/// A restarted validator counted its own nonces from the highest its ledger had executed, so
/// one that crashed before its own requests executed signed the same nonces again (a vote or a
/// rollout report lost to the collision). Found by the own-nonces invariant once the simulator
/// drove the runtime's validator step (it used to keep a validator's nonce across crashes).
/// Nonces are now reserved in persisted blocks.
#[test]
fn a_restarted_validator_never_reuses_its_own_nonces() {
    for seed in [25, 46, 58, 71, 78, 110] {
        assert_passes(seed, 4, 1);
    }
}

/// A flooding requester sends each request once and never retries. Requests the primary lost
/// (a crash, a full queue) while one honest backup still held them waited for good: nobody
/// relayed them again. Backups now relay their longest-waiting requests again on the request
/// timer before they suspect the primary; liveness requires every flood request the nonce
/// window admits. (Seeds 629 and 1767 at n = 4.)
#[test]
fn requests_only_a_backup_holds_are_forwarded_again() {
    for seed in [629, 1767] {
        assert_passes(seed, 4, 1);
    }
}

/// Requesters change by proposal, so a request's signer is resolved at execution, not by the
/// genesis directory: a Byzantine primary could then pad its batches with requests validly
/// signed by keys of its own. Backups refuse a batch holding a key no requester proposal ever
/// named (`StateMachine::may_order`). With that check planted away, seed 140 at n = 4 executed
/// such a request on two replicas (the validity invariant).
#[test]
fn a_byzantine_primarys_padding_from_unknown_keys_is_never_executed() {
    let o = Overrides {
        validators: Some(4),
        ..Overrides::default()
    };
    let r = run_seed(140, &o);
    assert!(r.passed(), "seed 140: {:?}", r.violations);
}

/// `seed` at n = 4 with its own draws otherwise (only a third change the validator set),
/// pinned before additions were drawn.
fn assert_passes_at_n4_without_additions(seed: u64, what: &str) {
    let o = Overrides {
        validators: Some(4),
        no_additions: true,
        ..Overrides::default()
    };
    assert_passes_with(seed, &o, &format!("n=4, default scenario: {what}"));
}

fn assert_passes_changing_validators(seed: u64, validators: usize) {
    let o = Overrides {
        validators: Some(validators),
        validator_change: true,
        // Pinned before additions were drawn: the change they drew then.
        no_additions: true,
        ..Overrides::default()
    };
    assert_passes_with(seed, &o, &format!("n={validators}, a validator changed"));
}

/// A replica entered the new epoch with the boundary checkpoint as its stable one before the
/// old set's quorum had signed it, and dropped everything below it: replicas one batch behind
/// were sent a snapshot under a proof they could not check, never got the boundary batch,
/// and so never sent the checkpoints that would have completed the proof (n = 4: two
/// replicas in epoch 1 with half a proof, two stuck at the batch before). Until the proof
/// completes, state transfer now serves the stable checkpoint before the boundary and the
/// batches up to it.
#[test]
fn replicas_one_batch_behind_an_epoch_boundary_catch_up() {
    assert_passes_changing_validators(83, 4);
}

/// A removed validator still follows and sends its checkpoints; one arriving at a replica
/// whose stable checkpoint had the same seq (but was a regular one, not the boundary) was
/// taken for a boundary vote and rewrote that certificate with the old set's rule: every view
/// change carrying it was then invalid, and the cluster stalled in view changes.
#[test]
fn a_removed_validators_checkpoints_never_enter_a_later_certificate() {
    assert_passes_changing_validators(99, 7);
}

/// Requests a removed validator signed before its removal stayed pending everywhere: each
/// primary proposed them, every backup refused the batch (a signer the ledger no longer
/// knows), and primary after primary was deposed. The primary now skips them, and every
/// replica forgets them on its status tick.
#[test]
fn a_removed_validators_pending_requests_are_forgotten() {
    assert_passes_changing_validators(33, 7);
}

/// Replica 0 missed the new-view of view 6 and sat in view 5, suspecting it alone (the others
/// dropped its suspicion: a view they had left). Then the rotated validator 3 was restarted with
/// its new key, which the others, one batch short of the epoch boundary, could not resolve: view
/// 6 had two voters and view 5 one, with no view change possible, for good. A replica now
/// answers a suspicion of a view it left with the new-view of its own, and the stranded one
/// joins (`replica/suspicion.rs`; the core's own test is `suspicion_tests::
/// a_replica_stranded_in_a_view_the_others_left_is_brought_along_by_its_suspicion`).
#[test]
fn a_replica_stranded_in_an_older_view_is_brought_along() {
    assert_passes_at_n4_without_additions(1329, "validator 3 rotated");
}

/// Validator 0 was re-keyed and restarted, and validator 3 crashed and restarted, both while
/// their stable checkpoint was the epoch boundary still short of the old set's proof: each then
/// served that boundary to replicas 1 and 2, still before it, which could not check it, and
/// never the two batches they lacked (both stores had also compacted them away). A restarted
/// replica now resumes serving the checkpoint before the boundary and the batches up to it, and
/// a boundary's stable checkpoint compacts nothing in either store (`Replica::restore`; the
/// core's test is `epoch_chain_tests::
/// a_replica_restarted_at_a_boundary_short_of_its_proof_still_brings_the_others_across`).
#[test]
fn a_replica_restarted_at_a_short_boundary_still_serves_what_comes_before_it() {
    assert_passes_at_n4_without_additions(1538, "validator 0 rotated");
}

/// Replica 3 missed the new-view of view 4 and went on leading view 3 alone: as a primary it
/// suspected no one, and its heartbeats were dropped by 0 and 1 (view 4, one voter short once
/// the rotated validator 2 had restarted into the next epoch). A heartbeat of a view the
/// receiver left is now answered with its new-view (`replica/heartbeat.rs`; the core's test is
/// `suspicion_tests::a_primary_stranded_in_a_view_the_others_left_is_brought_along_by_its_heartbeat`).
#[test]
fn a_primary_stranded_in_an_older_view_is_brought_along() {
    assert_passes_changing_validators(1034, 4);
}

/// The rotated validator 0 was the only honest one to execute the change (the Byzantine 2 was
/// silent; 1 and 3 had prepared the batch but not committed it, and left the view on the
/// warnings of `replica/suspicion.rs`). Observing on its old key, it answered no state request,
/// and restarted with its new key, it signed what 1 and 3, still in the old epoch, could not
/// open: neither set had a quorum, for good. An observer now serves state, and its operator
/// restarts it with the new key only once the change is proven (`Replica::epoch_proven`, which
/// the validator's store enforces too; the core's test is `epoch_chain_tests::
/// a_rotated_validator_still_on_its_old_key_brings_the_others_across_the_change`).
#[test]
fn a_rotated_validator_brings_the_others_across_before_it_takes_its_new_key() {
    assert_passes_changing_the_set(1072, 4, "validator 0 rotated, validator 2 silent");
}

/// Validator 2 was removed at n = 7; the four that executed the change went on in the new
/// epoch and their next stable checkpoint pruned the boundary, while its proof was one old-set
/// checkpoint short. Replicas 3 and 5, one batch short of the boundary, were sent only the new
/// set's snapshot, which they could not check: they refused it for good, and no one else could
/// complete the proof. A replica that has not executed the boundary is now sent the batches up
/// to it that its own set signed (`replica/state_transfer.rs`, `mine_unproven`).
#[test]
fn replicas_short_of_an_unproven_boundary_get_the_batches_up_to_it() {
    assert_passes_changing_the_set(225, 7, "validator 2 removed");
}
