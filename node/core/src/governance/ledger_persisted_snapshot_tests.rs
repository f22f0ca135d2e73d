//! A ledger's persisted snapshots with its bodies in a store (`governance/body_references.rs`):
//! they name the stored bodies instead of carrying them, restore against the same store to
//! the checkpoint's digest, are served to peers whole, and are refused wherever a store is
//! not the ledger's own (a peer's snapshot, a ledger without one).

use std::sync::Arc;

use super::body_store::{BodyKey, MemoryBodies, REFERENCE_PREFIX};
use super::ledger::Ledger;
use super::ledger_body_store_tests::{held_versions, with_store, write_bodies};
use super::ledger_world::World;
use crate::consensus::{AppState, StateMachine as _};

/// How many times `what` occurs in `bytes`.
fn occurrences(bytes: &[u8], what: &str) -> usize {
    String::from_utf8_lossy(bytes).matches(what).count()
}

/// How many bodies `json` names by reference (each a JSON string).
fn references(json: &[u8]) -> usize {
    occurrences(json, &format!("\"{REFERENCE_PREFIX}"))
}

/// r1 and r2 stored, r3 still held (its write has not landed), at a checkpoint: the ledger's
/// persisted (store) form and its whole form, and the digest.
fn checkpoint_with_two_stored_one_held() -> (World, Arc<MemoryBodies>, Vec<u8>, Vec<u8>) {
    let (mut w, store) = with_store();
    w.register("r1");
    w.register("r2");
    write_bodies(&w.ledger, &store);
    w.register("r3");
    let _ = w.ledger.take_new(); // r3's body is not written yet.
    w.ledger.before_checkpoint();
    assert_eq!(held_versions(&w.ledger), ["r3"]);
    let snap = w.ledger.snapshot();
    assert!(snap.has_store_form());
    let persisted = snap.bytes_for_store().into_owned();
    (w, store, persisted, snap.bytes().to_vec())
}

#[test]
fn a_persisted_snapshot_names_stored_bodies_and_restores_against_the_store() {
    let (w, store, persisted, whole) = checkpoint_with_two_stored_one_held();
    let want = w.ledger.digest();
    assert_eq!(references(&persisted), 2, "r1 and r2 by name");
    assert_eq!(references(&whole), 0, "peers' form: every body");
    assert_eq!(
        occurrences(&persisted, "\"units\""),
        1,
        "r3, held, is carried whole"
    );
    assert!(persisted.len() < whole.len());

    for read_only in [false, true] {
        let mut restarted = Ledger::new(w.ledger.config().clone());
        if read_only {
            // The operator turned the store off: what was persisted with it still restores.
            restarted.read_stored_bodies_from(store.clone());
        } else {
            restarted.store_bodies_in(store.clone());
        }
        assert_eq!(
            restarted.restore_persisted_if(&persisted, &mut |d| d == want),
            Ok(true)
        );
        assert_eq!(restarted.digest(), want);
        assert_eq!(restarted.state(), w.ledger.state());
        assert_eq!(restarted.snapshot().bytes(), &whole[..]);
        let stored_now = restarted
            .state()
            .releases
            .iter()
            .filter(|(_, e)| !e.release.is_held())
            .count();
        assert_eq!(stored_now, 2, "r1 and r2 stay in the store");
        // What a restarted replica serves for it: the whole form, made when first read.
        let served = restarted.snapshot_to_serve(AppState::new(persisted.clone()));
        assert!(!served.is_encoded());
        assert_eq!(served.bytes(), &whole[..]);
    }
    let mut restarted = Ledger::new(w.ledger.config().clone());
    restarted.store_bodies_in(store.clone());
    restarted
        .restore_persisted(&persisted)
        .expect("restores without a check too");
    assert_eq!(restarted.digest(), want);
}

#[test]
fn a_snapshot_naming_stored_bodies_is_refused_from_a_peer_and_without_the_store() {
    let (w, store, persisted, whole) = checkpoint_with_two_stored_one_held();
    let want = w.ledger.digest();
    // A peer's snapshot goes through restore_if and snapshot_digest: a reference in it would
    // have the replica read its own store on the peer's word.
    let mut with_store = Ledger::new(w.ledger.config().clone());
    with_store.store_bodies_in(store.clone());
    let refused = with_store.restore_if(&persisted, &mut |_| true);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.0.contains("reference to a body store")),
        "{refused:?}"
    );
    assert!(with_store.snapshot_digest(&persisted).is_err());
    assert_eq!(
        with_store.restore_if(&whole, &mut |d| d == want),
        Ok(true),
        "the whole form is what peers take"
    );

    // A ledger with no store cannot read it back at all.
    let mut without = Ledger::new(w.ledger.config().clone());
    assert!(without
        .restore_persisted_if(&persisted, &mut |_| true)
        .is_err());
    assert_eq!(
        without
            .snapshot_to_serve(AppState::new(persisted.clone()))
            .bytes(),
        &persisted[..],
        "without a store, a persisted snapshot was persisted whole and is served as it is"
    );

    // A store that lost a named body: the restored state is not the checkpoint's.
    let entry = &w.ledger.state().releases["r1"];
    store.remove(&BodyKey {
        seq: entry.registered_seq,
        digest: entry.release.digest(),
    });
    let mut restarted = Ledger::new(w.ledger.config().clone());
    restarted.store_bodies_in(store.clone());
    let lost = restarted.restore_persisted_if(&persisted, &mut |d| d == want);
    assert!(!matches!(lost, Ok(true)), "{lost:?}");
    assert!(
        restarted.state().releases.is_empty(),
        "nothing was installed"
    );
}

#[test]
fn a_ledger_without_a_store_persists_its_snapshots_whole() {
    let mut w = World::new();
    w.register("r1");
    w.ledger.before_checkpoint();
    let snap = w.ledger.snapshot();
    assert!(!snap.has_store_form());
    assert_eq!(&*snap.bytes_for_store(), snap.bytes());
}
