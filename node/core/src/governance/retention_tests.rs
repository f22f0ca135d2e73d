//! The ledger's memory is bounded and its digest still covers everything: long runs of requests
//! keep at most the journal's windows in memory, every replica that applied the same requests
//! has the same digest, and a snapshot restores to the same digest and journal.

use proptest::prelude::*;

use super::ledger::*;
use super::ledger_world::World;
use super::operation::Operation;
use crate::consensus::StateMachine;
use crate::crypto::Keypair;

/// A mix of accepted and rejected requests from a requester and the validators.
fn ops() -> impl Strategy<Value = Vec<(u8, u64)>> {
    prop::collection::vec((0u8..4, 0u64..5), 1..400)
}

fn run(ops: &[(u8, u64)]) -> World {
    let mut w = World::new();
    w.request(Operation::RegisterRelease {
        release: super::ledger_world::release("v1"),
    });
    apply(&mut w, ops);
    w
}

fn apply(w: &mut World, ops: &[(u8, u64)]) {
    for &(kind, x) in ops {
        let op = match kind {
            0 => Operation::Rollback {
                target_version: format!("v{x}"),
                reason: "drill".into(),
            },
            1 => Operation::Promote {
                version: "v1".into(),
                to: super::stage::Stage::Canary,
                rollback_to: "v0".into(),
                pause_before: None,
                steps: Vec::new(),
            },
            2 => Operation::Vote {
                proposal: x,
                approve: x % 2 == 0,
                reasons: vec![],
            },
            _ => Operation::Vote {
                proposal: 1 + x,
                approve: true,
                reasons: vec![],
            },
        };
        if kind >= 2 {
            w.submit(Signer::Validator((x % 4) as u32), &op);
        } else {
            w.request(op);
        }
        if kind == 1 && x % 2 == 0 {
            // Registrations too, so the maps grow and their shared nodes get copied on write.
            w.request(Operation::RegisterRelease {
                release: super::ledger_world::release(&format!(
                    "r{}-{x}",
                    w.ledger.state().releases.len()
                )),
            });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn same_requests_same_digest_and_snapshots_restore_it(ops in ops()) {
        let a = run(&ops);
        let b = run(&ops);
        prop_assert_eq!(a.ledger.digest(), b.ledger.digest());
        let snap = a.ledger.snapshot();
        prop_assert_eq!(a.ledger.snapshot_digest(&snap).expect("decodes"), a.ledger.digest());
        let mut fresh = World::new();
        fresh.ledger.restore(&snap).expect("restores");
        prop_assert_eq!(fresh.ledger.digest(), a.ledger.digest());
        prop_assert_eq!(fresh.ledger.journal(), a.ledger.journal());
        prop_assert_eq!(fresh.ledger.state(), a.ledger.state());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A checkpoint's snapshot is a copy of the state encoded only when read; the ledger goes on
    /// changing the entries it shares. Whenever it is read, it holds the state of the moment it
    /// was taken, byte for byte, and restores to that digest.
    #[test]
    fn a_lazy_snapshot_read_later_holds_the_state_it_was_taken_at(
        before in ops(),
        after in ops(),
        settle in any::<bool>(),
    ) {
        let mut w = run(&before);
        if settle {
            w.ledger.before_checkpoint();
        }
        let digest = w.ledger.digest();
        let snap = w.ledger.snapshot();
        prop_assert!(!snap.is_encoded(), "taking a snapshot encodes nothing");
        let then = run(&before).ledger.snapshot().to_vec();
        apply(&mut w, &after);
        w.ledger.before_checkpoint();
        prop_assert_eq!(snap.bytes(), then.as_slice());
        prop_assert_eq!(w.ledger.snapshot_digest(&snap).expect("decodes"), digest);
        let mut fresh = World::new();
        fresh.ledger.restore(&snap).expect("restores");
        prop_assert_eq!(fresh.ledger.digest(), digest);
    }
}

#[test]
fn memory_stays_bounded_and_history_still_changes_the_digest() {
    let n = 3 * EVENTS_KEPT;
    let ops: Vec<(u8, u64)> = (0..n as u64).map(|i| (0, 100 + i)).collect();
    let w = run(&ops);
    let j = w.ledger.journal();
    assert_eq!(
        j.events.len(),
        EVENTS_KEPT,
        "events beyond the window left memory"
    );
    assert!(j.events.total() > n as u64, "every rejection left an event");
    for (signer, outcomes) in &j.outcomes {
        assert!(outcomes.len() <= OUTCOMES_KEPT_PER_SIGNER, "{signer}");
    }
    assert!(j.outcomes.values().map(|o| o.total()).sum::<u64>() > n as u64);
    // The newest outcome is answered from memory, the oldest is not.
    let requester = Keypair::from_label("requester").public();
    let newest = j.outcomes[&super::release::hex(requester.as_bytes())]
        .iter()
        .last()
        .map(|(nonce, _)| *nonce)
        .expect("outcomes kept");
    assert!(w.ledger.outcome(&requester, newest).is_some());
    assert!(w.ledger.outcome(&requester, 1).is_none());
    // Two runs that differ only in a request long evicted still differ in digest.
    let mut other = ops.clone();
    other[0].1 = 99;
    assert_ne!(run(&other).ledger.digest(), w.ledger.digest());
    // And a snapshot stays the size of the windows, not of the history.
    let snap = w.ledger.snapshot().len();
    let longer: Vec<(u8, u64)> = (0..2 * n as u64).map(|i| (0, 100 + i)).collect();
    let snap_longer = run(&longer).ledger.snapshot().len();
    assert!(
        snap_longer < snap + snap / 10,
        "snapshot grew with history: {snap} -> {snap_longer} bytes"
    );
}
