//! Release bodies in a store (`ledger/held_bodies.rs`): a ledger whose bodies left memory
//! decides, digests and snapshots exactly as one that holds them; a body leaves memory only
//! once the store has it; a restored state's bodies go to the store too; a store that gives
//! back nothing, or other bytes, is an error, never a different release.

use std::sync::Arc;

use super::body_store::{body_digest, BodyKey, BodyStore, MemoryBodies};
use super::ledger::Ledger;
use super::ledger_world::{promotion, World};
use super::release::ReleaseError;
use super::stage::Stage;
use crate::consensus::StateMachine as _;

/// A world whose ledger keeps its bodies in a store of its own (returned).
pub(super) fn with_store() -> (World, Arc<MemoryBodies>) {
    let mut w = World::new();
    let store = Arc::new(MemoryBodies::default());
    w.ledger.store_bodies_in(store.clone());
    (w, store)
}

/// What a runtime does with a turn's history: writes its bodies to the store.
pub(super) fn write_bodies(ledger: &Ledger, store: &MemoryBodies) -> usize {
    let fresh = ledger.take_new();
    for (key, json) in &fresh.bodies {
        assert_eq!(
            body_digest(json),
            key.digest,
            "each body under its own digest"
        );
        store.put(*key, json).expect("JSON");
    }
    fresh.bodies.len()
}

pub(super) fn held_versions(ledger: &Ledger) -> Vec<String> {
    ledger
        .state()
        .releases
        .iter()
        .filter(|(_, e)| e.release.is_held())
        .map(|(v, _)| v.to_string())
        .collect()
}

#[test]
fn a_ledger_with_stored_bodies_decides_digests_and_snapshots_as_one_holding_them() {
    let mut plain = World::new();
    let (mut w, store) = with_store();
    for world in [&mut plain, &mut w] {
        world.register("r1");
        world.register("r2");
    }
    assert_eq!(
        write_bodies(&w.ledger, &store),
        2,
        "each new body goes out once"
    );
    assert_eq!(
        w.ledger.bodies_held(),
        2,
        "held until a checkpoint sees them stored"
    );
    for world in [&mut plain, &mut w] {
        world.ledger.before_checkpoint();
    }
    assert_eq!(w.ledger.bodies_held(), 0);
    assert!(
        held_versions(&w.ledger).is_empty(),
        "both bodies left memory"
    );
    assert_eq!(held_versions(&plain.ledger).len(), 2, "no store: held");
    assert_eq!(w.ledger.digest(), plain.ledger.digest());
    assert_eq!(w.ledger.snapshot().bytes(), plain.ledger.snapshot().bytes());
    assert_eq!(w.ledger.state(), plain.ledger.state());

    // A promotion of a stored release is evaluated from the store's copy, and its rollout's
    // orders name the release's units: the same outcome as with the body held.
    for world in [&mut plain, &mut w] {
        let o = world.request(promotion("r1", Stage::Canary));
        assert!(o.accepted, "{:?}", o.reasons);
        world.approve(o.proposal.expect("a proposal"));
        world.ledger.before_checkpoint();
    }
    assert_eq!(w.ledger.digest(), plain.ledger.digest());
    assert_eq!(w.ledger.snapshot().bytes(), plain.ledger.snapshot().bytes());
    assert!(
        held_versions(&w.ledger).is_empty(),
        "a stage change keeps the body stored"
    );
    let r1 = &w.ledger.state().releases["r1"].release;
    assert_eq!(
        r1.release().expect("read back"),
        super::ledger_world::release("r1")
    );
}

#[test]
fn a_body_the_store_does_not_have_yet_stays_held_and_is_asked_about_again() {
    let (mut w, store) = with_store();
    w.register("r1");
    let fresh = w.ledger.take_new();
    w.ledger.before_checkpoint();
    assert_eq!(held_versions(&w.ledger), ["r1"], "not written yet: held");
    assert_eq!(w.ledger.bodies_held(), 1);
    for (key, json) in &fresh.bodies {
        store.put(*key, json).expect("JSON");
    }
    w.ledger.before_checkpoint();
    assert!(
        held_versions(&w.ledger).is_empty(),
        "stored at the next checkpoint"
    );
    assert_eq!(w.ledger.bodies_held(), 0);
}

#[test]
fn a_restored_state_stores_what_the_store_has_and_sends_out_the_rest() {
    let (mut w, store) = with_store();
    w.register("r1");
    write_bodies(&w.ledger, &store);
    w.register("r2");
    let _ = w.ledger.take_new(); // r2's body is lost, as in a crash before its write.
    w.ledger.before_checkpoint();
    let snapshot = w.ledger.snapshot().bytes().to_vec();
    let want = w.ledger.digest();

    // A restart: a new ledger on the same store.
    let mut restarted = Ledger::new(w.ledger.config().clone());
    restarted.store_bodies_in(store.clone());
    assert_eq!(
        restarted.restore_if(&snapshot, &mut |d| d == want),
        Ok(true)
    );
    assert_eq!(
        held_versions(&restarted),
        ["r2"],
        "r1 is in the store already"
    );
    assert_eq!(write_bodies(&restarted, &store), 1, "r2 goes out again");
    restarted.before_checkpoint();
    assert!(held_versions(&restarted).is_empty());
    assert_eq!(restarted.digest(), want);
    assert_eq!(restarted.snapshot().bytes(), &snapshot[..]);

    // A store set after the state was restored offloads it the same way.
    let mut late = Ledger::new(w.ledger.config().clone());
    late.restore(&snapshot).expect("restores");
    assert_eq!(held_versions(&late).len(), 2);
    late.store_bodies_in(store.clone());
    assert!(held_versions(&late).is_empty(), "both are in the store now");
    assert_eq!(late.digest(), want);
}

#[test]
fn a_store_that_loses_a_body_or_returns_other_bytes_is_an_error_not_another_release() {
    let (mut w, store) = with_store();
    w.register("r1");
    write_bodies(&w.ledger, &store);
    w.ledger.before_checkpoint();
    let entry = &w.ledger.state().releases["r1"];
    let key = BodyKey {
        seq: entry.registered_seq,
        digest: entry.release.digest(),
    };
    let good = serde_json::to_string(&super::ledger_world::release("r1")).expect("encodes");
    assert!(store.contains(&key).expect("answers"));

    let other = serde_json::to_string(&super::ledger_world::release("r9")).expect("encodes");
    store.put(key, &other).expect("JSON");
    let body = &w.ledger.state().releases["r1"].release;
    assert!(
        matches!(body.release(), Err(ReleaseError::Unavailable(e)) if e.key == key),
        "other bytes are refused"
    );
    // A snapshot made now carries the other bytes, and is refused where it is read: its
    // digest is not the checkpoint's.
    let want = w.ledger.digest();
    let snapshot = w.ledger.snapshot().bytes().to_vec();
    let mut restarted = Ledger::new(w.ledger.config().clone());
    assert_eq!(
        restarted.restore_if(&snapshot, &mut |d| d == want),
        Ok(false)
    );
    // A validator's evaluation of its promotion refuses it, rather than judging another
    // release.
    let o = w.request(promotion("r1", Stage::Canary));
    let (approve, reasons) = w.ledger.evaluate(o.proposal.expect("a proposal"));
    assert!(!approve);
    assert!(
        reasons.iter().any(|r| r.contains("unavailable")),
        "{reasons:?}"
    );

    store.put(key, &good).expect("JSON");
    assert_eq!(
        w.ledger.state().releases["r1"]
            .release
            .release()
            .expect("read"),
        super::ledger_world::release("r1")
    );

    // A body gone from the store: no release, and no snapshot or proof either.
    store.remove(&key);
    let body = &w.ledger.state().releases["r1"].release;
    assert!(matches!(body.release(), Err(ReleaseError::Unavailable(e)) if e.key == key));
    assert!(serde_json::to_string(body).is_err());
    assert!(
        w.ledger.snapshot().bytes().is_empty(),
        "no snapshot is made"
    );
}
