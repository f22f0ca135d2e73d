//! Requesters by governance: a requester admitted by an approved proposal has what it signs
//! accepted from then on and a removed one refused, on every replica alike (the ledger checks
//! at execution); what consensus may order admits keys being added and keys removed, never a
//! key nobody proposed; every check a validator makes refuses what it should; the state digest
//! is unchanged until requesters change, and a snapshot carries them.

use super::ledger::{ProposalStatus, RequesterChange};
use super::ledger_world::World;
use super::Operation;
use crate::consensus::StateMachine as _;
use crate::crypto::Keypair;
use crate::governance::ledger::{Ledger, Signer};

fn add(name: &str, key: &Keypair) -> RequesterChange {
    RequesterChange::Add {
        name: name.into(),
        public_key: key.public(),
    }
}

/// Proposes `change` and has validators 0..3 vote `approve`; the proposal's final status.
fn decide(w: &mut World, change: RequesterChange, approve: bool) -> ProposalStatus {
    w.decide(Operation::ProposeRequester { change }, approve)
}

fn register_as(w: &mut World, key: &Keypair, version: &str) -> super::ledger::Outcome {
    let op = Operation::RegisterRelease {
        release: super::ledger_world::release(version),
    };
    w.submit(Signer::Requester(key.public()), &op)
}

#[test]
fn an_admitted_requester_is_heard_from_the_approval_and_a_removed_one_no_longer() {
    let mut w = World::new();
    let alice = Keypair::from_label("alice");
    let o = register_as(&mut w, &alice, "r1");
    assert!(!o.accepted);
    assert!(
        o.reasons[0].contains("is not a requester of this cluster"),
        "{:?}",
        o.reasons
    );
    assert!(!w.ledger.may_order(&alice.public()), "nobody proposed it");

    // While the proposal is open, consensus may order what alice signs; the ledger still
    // refuses it.
    let o = w.request(Operation::ProposeRequester {
        change: add("alice", &alice),
    });
    let p = o.proposal.expect("a proposal");
    assert!(w.ledger.may_order(&alice.public()));
    // The event names the change (what `scbe status` and the audit log show).
    let proposed = w.event_details("requesters_proposed");
    let want = format!("add requester alice (key {})", alice.public());
    assert!(proposed.iter().any(|d| d.contains(&want)), "{proposed:?}");
    assert!(!register_as(&mut w, &alice, "r1").accepted);
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    let names: Vec<String> = w.ledger.requesters().into_keys().collect();
    assert_eq!(names, ["alice", "ops"]);
    let o = register_as(&mut w, &alice, "r1");
    assert!(o.accepted, "{:?}", o.reasons);
    assert!(w.ledger.is_requester(&alice.public()));

    // Alice removes the genesis requester; its key is refused from then on, and may still be
    // ordered (a batch proposed just before the removal must reach every ledger).
    let ops = w.requester.clone();
    w.requester = alice.clone();
    assert_eq!(
        decide(&mut w, RequesterChange::Remove { name: "ops".into() }, true),
        ProposalStatus::Approved
    );
    assert!(!w.ledger.is_requester(&ops.public()));
    assert!(w.ledger.may_order(&ops.public()));
    let o = register_as(&mut w, &ops, "r2");
    assert!(!o.accepted, "a removed requester is refused");
    assert!(register_as(&mut w, &alice, "r2").accepted);
    // A validator's own operations are not a requester's: they still count.
    let o = w.vote(0, 999, true);
    assert!(
        !o.reasons.iter().any(|r| r.contains("not a requester")),
        "{:?}",
        o.reasons
    );
}

#[test]
fn every_check_refuses_what_it_should() {
    let mut w = World::new();
    let ops = w.requester.public();
    let validator = w.ledger.config().validators[1];
    let agent = w.agents[0].1.public();
    let cases: Vec<(RequesterChange, &str)> = vec![
        (
            RequesterChange::Add {
                name: "ops".into(),
                public_key: Keypair::from_label("x").public(),
            },
            "requester ops is already admitted",
        ),
        (
            RequesterChange::Add {
                name: "bad name!".into(),
                public_key: Keypair::from_label("y").public(),
            },
            "name must be 1 to 64 letters",
        ),
        (
            RequesterChange::Add {
                name: "twin".into(),
                public_key: ops,
            },
            "another requester's key",
        ),
        (
            RequesterChange::Add {
                name: "val".into(),
                public_key: validator,
            },
            "a validator's key",
        ),
        (
            RequesterChange::Add {
                name: "agt".into(),
                public_key: agent,
            },
            "an agent's key",
        ),
        (
            RequesterChange::Add {
                name: "weak".into(),
                public_key: crate::crypto::PublicKey([0; 32]),
            },
            "not a valid ed25519 key",
        ),
        (
            RequesterChange::Remove {
                name: "nobody".into(),
            },
            "requester nobody is not admitted",
        ),
        (
            RequesterChange::Remove { name: "ops".into() },
            "the last requester cannot be removed",
        ),
    ];
    for (change, why) in cases {
        let reasons = w.ledger.check_requester_change(&change);
        assert!(
            reasons.iter().any(|r| r.contains(why)),
            "{why}: {reasons:?}"
        );
        let o = w.request(Operation::ProposeRequester { change });
        assert!(!o.accepted && o.proposal.is_none(), "{why}");
    }
    // A name past 64 characters is refused before anything echoes it.
    let o = w.request(Operation::ProposeRequester {
        change: RequesterChange::Remove {
            name: "n".repeat(65),
        },
    });
    assert!(o.reasons[0].contains("longer than 64"), "{:?}", o.reasons);
    // 64 are checked like any other name.
    let o = w.request(Operation::ProposeRequester {
        change: RequesterChange::Remove {
            name: "n".repeat(64),
        },
    });
    assert_eq!(
        o.reasons,
        vec![format!("requester {} is not admitted", "n".repeat(64))]
    );
    // Validators do not propose requesters.
    let o = w.submit(
        Signer::Validator(0),
        &Operation::ProposeRequester {
            change: add("carol", &Keypair::from_label("carol")),
        },
    );
    assert!(!o.accepted);
    assert!(o.reasons[0].contains("proposed by release requesters"));
}

#[test]
fn an_approved_change_no_longer_valid_when_it_applies_is_not_applied() {
    let mut w = World::new();
    let bob = Keypair::from_label("bob");
    let o = w.request(Operation::ProposeRequester {
        change: add("bob", &bob),
    });
    let p = o.proposal.expect("a proposal");
    // Bob's key becomes an agent's before the votes land (planted: no proposal could do it
    // while this one is open).
    w.ledger.state_mut().agents[0].key = bob.public();
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert!(!w.ledger.is_requester(&bob.public()));
    let events = &w.ledger.journal().events;
    assert!(
        events.iter().any(|e| e.kind == "requesters_not_applied"),
        "an event says why"
    );
}

#[test]
fn the_digest_is_unchanged_until_requesters_change_and_a_snapshot_carries_them() {
    let mut w = World::new();
    let fresh = World::new();
    assert_eq!(w.ledger.digest(), fresh.ledger.digest());
    assert!(w.ledger.state().requesters.is_none());
    let before = w.ledger.digest();
    let dave = Keypair::from_label("dave");
    assert_eq!(
        decide(&mut w, add("dave", &dave), true),
        ProposalStatus::Approved
    );
    assert!(w.ledger.state().requesters.is_some());
    assert_ne!(w.ledger.digest(), before);
    let snapshot = w.ledger.snapshot().bytes().to_vec();
    let mut other = Ledger::new(w.ledger.config().clone());
    other.restore(&snapshot).expect("restores");
    assert_eq!(other.digest(), w.ledger.digest());
    assert!(other.is_requester(&dave.public()));
    assert_eq!(other.requesters(), w.ledger.requesters());
}
