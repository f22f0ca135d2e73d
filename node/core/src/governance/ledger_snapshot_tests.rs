//! Snapshots: how one is sized before it is encoded, that floats come back exactly, and
//! restoring one (a restart, a state transfer): the ledger decodes it once, installs it only at
//! the digest the caller expects, and leaves itself untouched when refused.

use super::ledger::{Ledger, StateDigest};
use super::ledger_world::World;
use super::operation::Operation;
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
    w.complete_canaries(16);
    let mut state = w.ledger.state().clone();
    state.settle();
    let json = serde_json::to_vec(&state).expect("encodes").len();
    let hint = state.json_bytes_hint();
    assert!(
        hint >= json && hint <= json + 4096,
        "hint {hint} for {json} bytes"
    );
}

/// A ledger's snapshot is judged by its size before it is encoded: the settled state's hint
/// plus the journal's length, at most a few bytes of framing below the bytes it encodes to,
/// and at most 4 KiB above.
#[test]
fn a_snapshots_size_before_encoding_is_close_to_its_bytes() {
    let mut w = World::new();
    w.complete_canaries(8);
    w.ledger.before_checkpoint();
    let snapshot = w.ledger.snapshot();
    assert!(!snapshot.is_encoded());
    let hint = snapshot.size_hint();
    let len = snapshot.bytes().len();
    assert!(
        hint + 64 >= len && hint <= len + 4096,
        "hint {hint} for {len} bytes"
    );
}

/// A float in the state (a metric of a manifest, or an agent's health figure) must come back
/// from a snapshot exactly: the restored state is digested again, and a digest one ULP away
/// refuses the snapshot (a restart fails, a lagging replica cannot catch up). serde_json's
/// default float parser is off by one ULP for some values: a manifest metric written with 17
/// digits, 0.91801793343883853, parses to 0.9180179334388385, which is written back as
/// "0.9180179334388385" and parses again to 0.9180179334388384 (a fifth of random 17-digit
/// values did so). The workspace enables serde_json's `float_roundtrip`. (Found through the
/// `EntryMap` property test.)
#[test]
fn a_snapshot_restores_floats_exactly_so_its_digest_holds() {
    use super::{fuse, parse_manifest, Gates};
    let manifest = |p: &str, role: &str, q: &str| {
        let text = format!(
            r#"{{"provider": "{p}", "artifacts": [{{"id": "{p}-model", "role": "{role}", "uri": "u://{p}",
                "metrics": {{"quality": {q}, "safety": 0.95426731677659782, "latency_ms_p95": 90, "cost_per_1k_tokens": 0.5}}}}]}}"#
        );
        parse_manifest(p, &text).expect("manifest")
    };
    let ms = vec![
        manifest("hf", "textgen", "0.91801793343883853"),
        manifest("gcp", "embed", "0.91215412408514751"),
        manifest("aws", "runtime", "0.91801793343883853"),
    ];
    let release = fuse(&ms, Gates::default(), Some("v1".into()), "t".into())
        .0
        .expect("passes");
    let mut w = World::new();
    assert!(w.request(Operation::RegisterRelease { release }).accepted);
    let snapshot = w.ledger.snapshot();
    assert_eq!(
        w.ledger.snapshot_digest(&snapshot).expect("decodes"),
        w.ledger.digest()
    );
    let mut restored = World::new();
    restored.ledger.restore(&snapshot).expect("restores");
    assert_eq!(restored.ledger.digest(), w.ledger.digest());
    assert_eq!(restored.ledger.snapshot(), snapshot);
}

#[test]
fn a_checkpoint_caches_the_state_json_the_snapshot_is_sized_from() {
    let mut w = World::new();
    w.promote_to_canary("v1");
    let before = w.ledger.state().json_bytes_hint();
    w.ledger.before_checkpoint();
    let after = w.ledger.state().json_bytes_hint();
    assert!(after > before + 500, "{before} -> {after}");
}
