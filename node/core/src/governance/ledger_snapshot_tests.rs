//! Restoring a snapshot (a restart, a state transfer): the ledger decodes it once, installs it
//! only at the digest the caller expects, and leaves itself untouched when refused.

use super::ledger::{Ledger, StateDigest};
use super::ledger_world::World;
use crate::consensus::StateMachine as _;

#[test]
fn a_snapshot_is_installed_only_at_the_expected_digest() {
    for mode in [StateDigest::Tree, StateDigest::Walk] {
        let mut w = World::with_state_digest(mode);
        w.register("r1");
        w.register("r2");
        let snapshot = w.ledger.snapshot().bytes().to_vec();
        let want = w.ledger.digest();

        let mut fresh = Ledger::new(w.ledger.config().clone());
        let genesis = fresh.digest();
        let refused = fresh.restore_if(&snapshot, &mut |d| d != want);
        assert_eq!(refused, Ok(false), "{mode:?}");
        assert_eq!(fresh.digest(), genesis, "refused: nothing changed");
        assert!(fresh.state().releases.is_empty());

        let mut seen = None;
        let accepted = fresh.restore_if(&snapshot, &mut |d| {
            seen = Some(d);
            d == want
        });
        assert_eq!(accepted, Ok(true), "{mode:?}");
        assert_eq!(seen, Some(want), "the digest offered is the snapshot's");
        assert_eq!(fresh.digest(), want);
        assert_eq!(fresh.state(), w.ledger.state());

        // Bytes that are not a snapshot are an error, not a refusal, and change nothing.
        let mut other = Ledger::new(w.ledger.config().clone());
        assert!(other.restore_if(b"{not json", &mut |_| true).is_err());
        assert_eq!(other.digest(), genesis);
    }
}

/// The names of the state digests (what the genesis and `scbe propose settings` write) parse
/// back to them; anything else is refused naming both; a genesis that names none walks.
#[test]
fn state_digest_names_parse_back_and_nothing_else_does() {
    for (mode, name) in [(StateDigest::Walk, "walk"), (StateDigest::Tree, "tree")] {
        assert_eq!(mode.name(), name);
        assert_eq!(name.parse::<StateDigest>(), Ok(mode));
        assert_eq!(mode.is_walk(), mode == StateDigest::Walk);
    }
    let err = "xyzzy".parse::<StateDigest>().expect_err("refused");
    assert!(err.contains("tree or walk"), "{err}");
    assert_eq!("".parse::<StateDigest>().ok(), None);
    assert_eq!(StateDigest::default(), StateDigest::Walk);
}

/// Notification records are part of the replicated state, so they are part of its digest once
/// there are any: two replicas that disagree on them must not sign the same checkpoint.
#[test]
fn notification_records_join_the_digest_once_there_are_any() {
    for mode in [StateDigest::Tree, StateDigest::Walk] {
        let mut w = World::with_state_digest(mode);
        w.register("r1");
        let mut state = w.ledger.state().clone();
        state.settle();
        assert!(state.notified.is_empty());
        let without = state.digest(mode);
        let mut with = state.clone();
        with.notified.insert("audit-sink".into(), 3);
        let one = with.digest(mode);
        assert_ne!(one, without, "{mode:?}: a record changes the digest");
        with.notified.insert("audit-sink".into(), 4);
        assert_ne!(with.digest(mode), one, "{mode:?}: and so does its value");
    }
}

/// The size a snapshot is judged by before it is encoded (whether to persist it, whether to
/// encode it off the loop) is the settled state's JSON, to within the small rest: never less,
/// and at most 4 KiB more.
#[test]
fn a_settled_states_size_hint_is_its_json_length_to_within_4_kib() {
    let mut w = World::new();
    for i in 0..16 {
        let version = format!("r{i}");
        let rollout = w.promote_to_canary(&version);
        w.complete_batches(rollout, &version);
    }
    let mut state = w.ledger.state().clone();
    state.settle();
    let json = serde_json::to_vec(&state).expect("encodes").len();
    let hint = state.json_bytes_hint();
    assert!(
        hint >= json && hint <= json + 4096,
        "hint {hint} for {json} bytes"
    );
}
