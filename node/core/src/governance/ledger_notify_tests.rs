//! Notification records: only validators record them, only for a sink of the genesis, only
//! forward and never past the events the ledger holds; and every kind a sink may ask for is one
//! the ledger produces.

use super::ledger::{Signer, StateDigest, DEFAULT_NOTIFY_EVENTS, NOTIFIABLE_EVENTS};
use super::ledger_world::World;
use super::Operation;

fn notified(sink: &str, through: u64) -> Operation {
    Operation::Notified {
        sink: sink.into(),
        through,
    }
}

#[test]
fn a_validator_records_a_sink_served_forward_only() {
    let mut w = World::new();
    w.register("r1");
    let total = w.ledger.journal().events.total();
    assert!(total >= 2, "registration left events");
    assert_eq!(w.ledger.notified_through("ops"), 0);

    let o = w.submit(Signer::Validator(1), &notified("ops", total));
    assert!(o.accepted, "{o:?}");
    assert_eq!(w.ledger.notified_through("ops"), total);
    let last = w.ledger.journal().events.iter().last().expect("event");
    assert_eq!(
        (last.kind.as_str(), last.subject.as_str()),
        ("notified", "notify:ops")
    );

    // Not again, not backwards, not ahead of the ledger, not for an unknown sink, not by a
    // requester: each refused with its reason and the record unchanged.
    let now = w.ledger.journal().events.total();
    for (signer, op, why) in [
        (
            Signer::Validator(2),
            notified("ops", total),
            "already recorded",
        ),
        (Signer::Validator(2), notified("ops", 1), "already recorded"),
        (Signer::Validator(2), notified("ops", now + 5), "holds"),
        (
            Signer::Validator(2),
            notified("pager", 1),
            "no notification sink",
        ),
    ] {
        let o = w.submit(signer, &op);
        assert!(
            !o.accepted && o.reasons.join(" ").contains(why),
            "{op:?}: {o:?}"
        );
    }
    let requester = w.requester.public();
    let o = w.submit(Signer::Requester(requester), &notified("ops", total + 1));
    assert!(
        !o.accepted && o.reasons[0].contains("only validators"),
        "{o:?}"
    );
    assert_eq!(w.ledger.notified_through("ops"), total);
}

#[test]
fn the_record_is_in_the_state_digest_and_survives_a_snapshot() {
    let mut w = World::new();
    w.register("r1");
    let before = w.ledger.state().digest(StateDigest::Tree);
    let total = w.ledger.journal().events.total();
    assert!(
        w.submit(Signer::Validator(0), &notified("ops", total))
            .accepted
    );
    assert_ne!(w.ledger.state().digest(StateDigest::Tree), before);
    let json = serde_json::to_vec(w.ledger.state()).expect("encode");
    let back: super::ledger::LedgerState = serde_json::from_slice(&json).expect("decode");
    assert_eq!(back.notified.get("ops"), Some(&total));
    assert_eq!(
        back.digest(StateDigest::Tree),
        w.ledger.state().digest(StateDigest::Tree)
    );
}

/// A sink filtering on a kind the ledger never produces would wait forever: every kind listed
/// must appear as a literal in the ledger's sources.
#[test]
fn every_notifiable_kind_is_one_the_ledger_produces() {
    let sources = [
        include_str!("ledger/aborts.rs"),
        include_str!("ledger/canary_analysis.rs"),
        include_str!("ledger/membership.rs"),
        include_str!("ledger/pauses.rs"),
        include_str!("ledger/proposals.rs"),
        include_str!("ledger/rollbacks.rs"),
        include_str!("ledger/rollouts.rs"),
        include_str!("ledger/stalls.rs"),
        include_str!("ledger/mod.rs"),
    ]
    .concat();
    for kind in NOTIFIABLE_EVENTS {
        assert!(sources.contains(&format!("\"{kind}\"")), "{kind}");
    }
    for kind in DEFAULT_NOTIFY_EVENTS {
        assert!(NOTIFIABLE_EVENTS.contains(kind), "{kind}");
    }
}
