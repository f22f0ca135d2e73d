//! Validators by governance: removing a validator or rotating its key, proposed by a requester
//! and voted by the set in force, applies at its sequence number; from the next batch on the
//! ledger counts votes by the new set (by key, whatever principal the edge resolved), consensus
//! is handed the new set with its epoch, and every check a validator makes refuses what it
//! should. The state digest is unchanged until the set changes, and a snapshot carries it.

use super::ledger::{ProposalStatus, ValidatorChange};
use super::ledger_world::World;
use super::Operation;
use crate::consensus::debug_codec::DebugCodec;
use crate::consensus::{Codec, Kind, Principal, ReplicaId, Request, Seq, Signed, StateMachine};
use crate::crypto::Keypair;

fn decide(w: &mut World, change: ValidatorChange, approve: bool) -> ProposalStatus {
    w.decide(Operation::ProposeValidator { change }, approve)
}

fn rotate(id: u32, key: &Keypair) -> ValidatorChange {
    ValidatorChange::Rotate {
        id,
        public_key: key.public(),
    }
}

/// A vote on `proposal` signed by `key`, as consensus hands it to the ledger: resolved by an
/// edge as validator `as_id`.
fn vote_signed_by(
    w: &mut World,
    key: &Keypair,
    as_id: u32,
    proposal: u64,
    nonce: u64,
) -> super::ledger::Outcome {
    let op = Operation::Vote {
        proposal,
        approve: true,
        reasons: vec!["checked".into()],
    };
    let signed = Signed::seal(
        Request {
            nonce,
            operation: op.to_bytes(),
        },
        Kind::Request,
        |r| DebugCodec.encode_request(r),
        key,
        Principal::Validator(ReplicaId(as_id)),
    );
    w.seq += 1;
    w.ledger.apply(Seq(w.seq), &signed);
    w.ledger
        .state()
        .proposals
        .get(&proposal)
        .map(|_| ())
        .expect("the proposal exists");
    w.ledger
        .outcome(&key.public(), nonce)
        .cloned()
        .expect("an outcome")
}

#[test]
fn a_rotation_puts_the_new_key_in_force_from_the_next_batch_and_the_old_one_out() {
    let mut w = World::new();
    let digest_before = w.ledger.digest();
    assert_eq!(w.ledger.validator_epoch(), 0);
    assert_eq!(StateMachine::validator_epoch(&w.ledger), 0);
    assert_eq!(w.ledger.validator_set(), None);
    let old = w.validators[3].clone();
    let new = Keypair::from_label("val3 rotated");
    assert_eq!(
        decide(&mut w, rotate(3, &new), true),
        ProposalStatus::Approved
    );
    let applied_at = w.seq;
    // The proposal's event names the change (what `scbe status` and the audit log show).
    let proposed = w.event_details("validators_proposed");
    let want = format!("rotate validator 3's key to {}", new.public());
    assert!(proposed.iter().any(|d| d.contains(&want)), "{proposed:?}");
    assert_eq!(w.ledger.validator_epoch(), 1);
    let set = w.ledger.validator_set().expect("a changed set");
    assert_eq!((set.epoch, set.start), (1, Seq(applied_at)));
    assert_eq!(set.key_of(ReplicaId(3)), Some(&new.public()));
    assert_eq!(w.ledger.validator_id(&new.public()), Some(3));
    assert_eq!(w.ledger.validator_id(&old.public()), None);
    assert_ne!(w.ledger.digest(), digest_before);
    assert_eq!(
        (
            StateMachine::validator_epoch(&w.ledger),
            StateMachine::validator_set(&w.ledger)
        ),
        (1, Some(set))
    );

    // The next proposal: the old key's vote is a stranger's, even resolved as validator 3;
    // the new key's counts as validator 3's, even resolved as a requester would be.
    let o = w.request(Operation::ProposeValidator {
        change: ValidatorChange::Remove { id: 2 },
    });
    // Four validators may not drop to three: refused before any vote.
    assert!(!o.accepted);
    assert!(o.reasons[0].contains("at least 4"), "{:?}", o.reasons);
    let o = w.request(Operation::ProposeSettings {
        change: super::ledger::SettingsChange {
            min_quality: Some(0.85),
            ..Default::default()
        },
    });
    let p = o.proposal.expect("a settings proposal");
    let by_old = vote_signed_by(&mut w, &old, 3, p, 1);
    assert!(!by_old.accepted);
    assert!(
        by_old.reasons[0].contains("is not a requester"),
        "{:?}",
        by_old.reasons
    );
    let by_new = vote_signed_by(&mut w, &new, 3, p, 1);
    assert!(by_new.accepted, "{:?}", by_new.reasons);
    assert!(w.ledger.state().proposals[&p].votes.contains_key(&3));
    assert!(!w.ledger.may_order(&old.public()));
    // What consensus asks before ordering: the new key's requests, not the old key's.
    let signed_by = |key: &Keypair| {
        Signed::seal(
            Request {
                nonce: 2,
                operation: Vec::new(),
            },
            Kind::Request,
            |r| DebugCodec.encode_request(r),
            key,
            Principal::Requester,
        )
    };
    assert!(StateMachine::may_order(&w.ledger, &signed_by(&new)));
    assert!(!StateMachine::may_order(&w.ledger, &signed_by(&old)));

    // A snapshot carries the set.
    let bytes = w.ledger.snapshot().to_vec();
    let mut restored = super::ledger::Ledger::new(w.ledger.config().clone());
    restored.restore(&bytes).expect("restores");
    assert_eq!(restored.validator_set(), w.ledger.validator_set());
    assert_eq!(restored.digest(), w.ledger.digest());
}

#[test]
fn a_removal_shrinks_the_set_and_its_quorum() {
    let mut w = World::with_validators(5);
    assert_eq!(w.ledger.validator_quorum(), 4);
    let o = w.request(Operation::ProposeValidator {
        change: ValidatorChange::Remove { id: 1 },
    });
    let p = o.proposal.expect("a proposal");
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Pending,
        "three of five are not a quorum"
    );
    w.vote(3, p, true);
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    assert!(!w.ledger.is_validator(1));
    assert_eq!(w.ledger.validator_count(), 4);
    assert_eq!(w.ledger.validator_quorum(), 3);
    assert_eq!(
        w.ledger
            .validator_set()
            .expect("changed")
            .members
            .iter()
            .map(|(id, _)| id.0)
            .collect::<Vec<_>>(),
        vec![0, 2, 3, 4]
    );
    // A removed validator's vote is refused; three of the remaining four approve.
    let o = w.request(Operation::ProposeValidator {
        change: rotate(4, &Keypair::from_label("val4 rotated")),
    });
    let p = o.proposal.expect("a proposal");
    assert!(!w.vote(1, p, true).accepted);
    for v in [0, 2, 3] {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    assert_eq!(w.ledger.validator_epoch(), 2);
}

#[test]
fn every_check_a_validator_makes_refuses_what_it_should() {
    let mut w = World::new();
    let refused = |w: &World, change: ValidatorChange, why: &str| {
        let reasons = w.ledger.check_validator_change(&change);
        assert!(
            reasons.iter().any(|r| r.contains(why)),
            "{change:?}: {reasons:?}"
        );
    };
    refused(
        &w,
        ValidatorChange::Remove { id: 7 },
        "not in the validator set",
    );
    refused(&w, ValidatorChange::Remove { id: 0 }, "at least 4");
    refused(
        &w,
        rotate(7, &Keypair::from_label("x")),
        "not in the validator set",
    );
    let v1 = w.validators[1].clone();
    refused(&w, rotate(0, &v1), "is, or was, a validator's key");
    refused(&w, rotate(0, &w.requester.clone()), "a requester's key");
    let agent = w.agents[0].1.clone();
    refused(&w, rotate(0, &agent), "an agent's key");
    let not_a_point = (0..=255u8)
        .map(|b| crate::crypto::PublicKey([b; 32]))
        .find(|k| !k.is_valid())
        .expect("some repeated byte is not a usable key");
    refused(
        &w,
        ValidatorChange::Rotate {
            id: 0,
            public_key: not_a_point,
        },
        "not a valid ed25519 key",
    );
    // A key rotated out never comes back.
    let old0 = w.validators[0].clone();
    let new0 = Keypair::from_label("val0 rotated");
    assert_eq!(
        decide(&mut w, rotate(0, &new0), true),
        ProposalStatus::Approved
    );
    refused(&w, rotate(1, &old0), "is, or was, a validator's key");
    // Nor is a key rotated in (a member's, outside the genesis) given to another validator.
    refused(&w, rotate(1, &new0), "is, or was, a validator's key");
    // Validators do not propose changes to their own set.
    let o = w.submit(
        super::ledger::Signer::Validator(1),
        &Operation::ProposeValidator {
            change: rotate(2, &Keypair::from_label("y")),
        },
    );
    assert!(!o.accepted);
    assert!(o.reasons[0].contains("proposed by release requesters"));
    // Not while a rollout holds the fleet.
    let mut w = World::new();
    w.promote_to_canary("v1");
    refused(&w, rotate(2, &Keypair::from_label("z")), "in progress");
}

fn add(key: &Keypair, address: &str) -> ValidatorChange {
    ValidatorChange::Add {
        public_key: key.public(),
        address: address.into(),
    }
}

/// An addition gives the new key the next id never used, with its address; the set and its
/// quorum grow from the next batch on; the id of a removed validator is never handed out again
/// (so a signature of the removed one can never count for a newcomer).
#[test]
fn an_addition_grows_the_set_with_an_id_never_used() {
    let mut w = World::new();
    let digest_before = w.ledger.digest();
    assert_eq!(w.ledger.next_validator_id(), 4);
    let k4 = Keypair::from_label("val4 added");
    assert_eq!(
        decide(&mut w, add(&k4, "validator-4.scbe.svc:7000"), true),
        ProposalStatus::Approved
    );
    assert_ne!(w.ledger.digest(), digest_before);
    assert_eq!(w.ledger.validator_count(), 5);
    assert_eq!(w.ledger.validator_quorum(), 4);
    assert_eq!(w.ledger.validator_id(&k4.public()), Some(4));
    assert_eq!(
        w.ledger.validator_address(4),
        Some("validator-4.scbe.svc:7000")
    );
    assert_eq!(w.ledger.validator_address(0), None, "the genesis's own");
    let set = w.ledger.validator_set().expect("a changed set");
    assert_eq!((set.epoch, set.start), (1, Seq(w.seq)));
    assert_eq!(set.key_of(ReplicaId(4)), Some(&k4.public()));
    // The added validator votes, under its key; four of five approve the next change.
    let k5 = Keypair::from_label("val5 added");
    let o = w.request(Operation::ProposeValidator {
        change: add(&k5, "10.0.0.5:7000"),
    });
    let p = o.proposal.expect("a proposal");
    assert!(vote_signed_by(&mut w, &k4, 4, p, 1).accepted);
    for v in 0..2 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Pending,
        "three of five are not a quorum"
    );
    w.vote(2, p, true);
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    assert_eq!(w.ledger.validator_id(&k5.public()), Some(5));
    assert_eq!(w.ledger.validator_epoch(), 2);
    // Validator 5 removed: the next addition is 6, not 5 again.
    let o = w.request(Operation::ProposeValidator {
        change: ValidatorChange::Remove { id: 5 },
    });
    let p = o.proposal.expect("a proposal");
    assert!(vote_signed_by(&mut w, &k4, 4, p, 2).accepted);
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert!(!w.ledger.is_validator(5));
    assert_eq!(w.ledger.next_validator_id(), 6);
    // A snapshot carries the addresses.
    let bytes = w.ledger.snapshot().to_vec();
    let mut restored = super::ledger::Ledger::new(w.ledger.config().clone());
    restored.restore(&bytes).expect("restores");
    assert_eq!(restored.validator_address(4), w.ledger.validator_address(4));
    assert_eq!(restored.next_validator_id(), 6);
    assert_eq!(restored.digest(), w.ledger.digest());
}

/// What an addition is refused for: an address peers cannot dial, a key that is or was a
/// member's, a set already at its largest.
#[test]
fn an_addition_is_refused_a_bad_address_a_used_key_or_a_full_set() {
    let w = World::new();
    let fresh = Keypair::from_label("fresh validator");
    for (address, why) in [
        ("no-port", "must be host:port"),
        ("host:99999", "the port must be a number"),
        (
            "bad_host!:7000",
            "the host must be an IP address or a DNS name",
        ),
    ] {
        let reasons = w.ledger.check_validator_change(&add(&fresh, address));
        assert!(
            reasons.iter().any(|r| r.contains(why)),
            "{address}: {reasons:?}"
        );
    }
    let long = format!(
        "{}:7000",
        "a".repeat(super::ledger::MAX_VALIDATOR_ADDRESS_CHARS)
    );
    let reasons = w.ledger.check_validator_change(&add(&fresh, &long));
    assert!(
        reasons.iter().any(|r| r.contains("longer than")),
        "{reasons:?}"
    );
    // At the bound exactly, the address is checked as an address (its host is too long).
    let at_bound = format!(
        "{}:7000",
        "a".repeat(super::ledger::MAX_VALIDATOR_ADDRESS_CHARS - 5)
    );
    let reasons = w.ledger.check_validator_change(&add(&fresh, &at_bound));
    assert!(
        !reasons.iter().any(|r| r.contains("longer than"))
            && reasons
                .iter()
                .any(|r| r.contains("must be an IP address or a DNS name")),
        "{reasons:?}"
    );
    let v2 = w.validators[2].clone();
    let reasons = w.ledger.check_validator_change(&add(&v2, "h:1"));
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("is, or was, a validator's key")),
        "{reasons:?}"
    );
    assert!(w
        .ledger
        .check_validator_change(&add(&fresh, "h:1"))
        .is_empty());
    let full = World::with_validators(super::ledger::MAX_VALIDATORS);
    let reasons = full.ledger.check_validator_change(&add(&fresh, "h:1"));
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("the most it may grow to")),
        "{reasons:?}"
    );
}
