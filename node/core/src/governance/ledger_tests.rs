//! Ledger scenarios and property tests: registration, gates, promotion rules, proposals and
//! votes (rollouts and their evidence: `ledger_rollout_tests.rs`).

use proptest::prelude::*;

use super::ledger::*;
use super::ledger_world::*;
use super::operation::Operation;
use super::stage::{Stage, Tongue};
use crate::consensus::StateMachine;
use crate::crypto::{Keypair, PublicKey};

#[test]
fn register_enters_staging_with_tagged_events() {
    let mut w = World::new();
    assert!(
        w.request(Operation::RegisterRelease {
            release: release("v1")
        })
        .accepted
    );
    assert_eq!(w.ledger.state().releases["v1"].stage, Stage::Staging);
    let tongues: Vec<Tongue> = w.ledger.journal().events.iter().map(|e| e.tongue).collect();
    assert_eq!(tongues, vec![Tongue::CA, Tongue::RU, Tongue::UM]);
    // Same version twice is refused.
    assert!(
        !w.request(Operation::RegisterRelease {
            release: release("v1")
        })
        .accepted
    );
}

#[test]
fn tampered_or_failing_release_is_refused() {
    let mut w = World::new();
    let mut r = release("v1");
    r.units.values_mut().for_each(|u| u.metrics.safety = 0.5);
    let o = w.request(Operation::RegisterRelease { release: r.clone() });
    assert!(!o.accepted);
    assert!(o.reasons[0].contains("digest"), "{:?}", o.reasons);
    r.digest = r.content_digest();
    let o = w.request(Operation::RegisterRelease { release: r });
    assert_eq!(
        o.reasons.len(),
        3,
        "one failed gate per unit: {:?}",
        o.reasons
    );
}

/// The ledger applies release admission itself: a release a requester built by hand with its
/// own gates, out-of-range metrics or a control character in its version is refused, each
/// reason naming the field, and nothing unbounded is echoed back.
#[test]
fn releases_scbe_fuse_would_reject_are_refused_by_the_ledger() {
    let mut w = World::new();
    let mut r = release("v1");
    r.gates.min_safety = 0.0;
    r.units.values_mut().for_each(|u| u.metrics.quality = 1e308);
    r.version = "v1\u{1b}[2J".into();
    r.digest = r.content_digest();
    let o = w.request(Operation::RegisterRelease { release: r });
    assert!(!o.accepted);
    for field in ["version", "gates", "units.hf.metrics.quality"] {
        assert!(
            o.reasons.iter().any(|e| e.starts_with(field)),
            "{field}: {:?}",
            o.reasons
        );
    }
    assert!(w.ledger.state().releases.is_empty());
    let o = w.request(Operation::Promote {
        version: "x".repeat(900_000),
        to: Stage::Canary,
        rollback_to: "v0".into(),
        pause_before: None,
        steps: Vec::new(),
    });
    assert!(!o.accepted);
    assert!(
        o.reasons.iter().all(|r| r.len() < 200),
        "the 900,000-character version is not echoed"
    );
}

#[test]
fn promotion_rules_no_skipping_and_a_known_good_rollback_plan() {
    let mut w = World::new();
    w.request(Operation::RegisterRelease {
        release: release("v1"),
    });
    let skip = w.request(Operation::Promote {
        version: "v1".into(),
        to: Stage::Production,
        rollback_to: "v0".into(),
        pause_before: None,
        steps: Vec::new(),
    });
    assert_eq!(
        skip.reasons,
        vec!["v1 is in staging; it can only be promoted to canary"]
    );
    let no_plan = w.request(Operation::Promote {
        version: "v1".into(),
        to: Stage::Canary,
        rollback_to: "v9".into(),
        pause_before: None,
        steps: Vec::new(),
    });
    assert_eq!(
        no_plan.reasons,
        vec!["rollback plan \"v9\" is not a known-good version"]
    );
    let by_validator = w.submit(
        Signer::Validator(0),
        &Operation::Promote {
            version: "v1".into(),
            to: Stage::Canary,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        },
    );
    assert!(!by_validator.accepted);
    assert!(
        w.request(Operation::Promote {
            version: "v1".into(),
            to: Stage::Canary,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        })
        .accepted
    );
}

#[test]
fn canary_to_production_end_to_end_makes_the_version_known_good() {
    let mut w = World::new();
    let canary = w.promote_to_canary("v1");
    let r = &w.ledger.state().rollouts[&canary];
    assert_eq!(
        r.batches[0].len(),
        3,
        "first batch: one agent per specialty"
    );
    w.complete_batches(canary, "v1");
    assert_eq!(
        w.ledger.state().rollouts[&canary].status,
        RolloutStatus::Completed
    );
    let o = w.request(Operation::Promote {
        version: "v1".into(),
        to: Stage::Production,
        rollback_to: "v0".into(),
        pause_before: None,
        steps: Vec::new(),
    });
    let p = o.proposal.expect("proposal");
    assert_eq!(
        w.ledger.evaluate(p),
        (true, vec!["all checks pass".to_string()])
    );
    w.vote(1, p, true);
    w.vote(2, p, true);
    let prod = w.vote(3, p, true).rollout.expect("rollout");
    w.complete_batches(prod, "v1");
    assert!(w.ledger.state().known_good.contains("v1"));
    assert_eq!(w.ledger.state().current[&Stage::Production], "v1");
}

#[test]
fn one_rollout_holds_the_fleet_at_a_time() {
    let mut w = World::new();
    w.promote_to_canary("v1");
    w.request(Operation::RegisterRelease {
        release: release("v2"),
    });
    let o = w.request(Operation::Promote {
        version: "v2".into(),
        to: Stage::Canary,
        rollback_to: "v0".into(),
        pause_before: None,
        steps: Vec::new(),
    });
    assert!(!o.accepted, "canary rollout of v1 still in progress");
    assert!(
        o.reasons[0].contains("one rollout at a time"),
        "{:?}",
        o.reasons
    );
    let o = w.request(Operation::Promote {
        version: "v1".into(),
        to: Stage::Production,
        rollback_to: "v0".into(),
        pause_before: None,
        steps: Vec::new(),
    });
    assert!(
        !o.accepted,
        "v1 is not in canary until its rollout completes"
    );
}

#[test]
fn an_empty_fleet_fails_the_rollout_instead_of_completing_it() {
    let mut w = World::new();
    let mut cfg = w.ledger.config().clone();
    cfg.agents.clear();
    w.ledger = Ledger::new(cfg);
    let r = w.promote_to_canary("v1");
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!(ro.status, RolloutStatus::Failed);
    assert!(ro.reason.contains("no registered agents"), "{}", ro.reason);
    assert_eq!(w.ledger.state().releases["v1"].stage, Stage::Staging);
    assert!(!w.ledger.state().current.contains_key(&Stage::Canary));
}

#[test]
fn rejected_once_approval_is_impossible() {
    let mut w = World::new();
    w.request(Operation::RegisterRelease {
        release: release("v1"),
    });
    let p = w
        .request(Operation::Promote {
            version: "v1".into(),
            to: Stage::Canary,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        })
        .proposal
        .expect("p");
    w.vote(0, p, false);
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Pending
    );
    w.vote(1, p, false);
    // n = 4, q = 3: two rejections leave at most two approvals.
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Rejected
    );
}

#[test]
fn proposals_expire_after_the_vote_window_in_ledger_time() {
    let mut w = World::new();
    w.request(Operation::RegisterRelease {
        release: release("v1"),
    });
    let p = w
        .request(Operation::Promote {
            version: "v1".into(),
            to: Stage::Canary,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        })
        .proposal
        .expect("p");
    w.seq += 60;
    let late = w.vote(0, p, true);
    assert!(!late.accepted);
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Expired
    );
}

#[test]
fn garbage_operation_is_rejected_with_a_reason() {
    let mut w = World::new();
    let k = w.requester.public();
    let o = w
        .ledger
        .apply_operation(1, Signer::Requester(k), &k, 1, b"{not json");
    assert!(!o.accepted);
    assert!(o.reasons[0].starts_with("operation does not parse"));
    assert_eq!(w.ledger.outcome(&k, 1), Some(&o));
}

/// A vote in a generated sequence: (validator index, possibly beyond the set; approve).
fn votes() -> impl Strategy<Value = Vec<(u32, bool)>> {
    prop::collection::vec((0u32..(N as u32 + 2), any::<bool>()), 0..12)
}

fn run_votes(vs: &[(u32, bool)]) -> (World, u64) {
    let mut w = World::new();
    w.request(Operation::RegisterRelease {
        release: release("v1"),
    });
    let p = w
        .request(Operation::Promote {
            version: "v1".into(),
            to: Stage::Canary,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        })
        .proposal
        .expect("p");
    for &(v, approve) in vs {
        if (v as usize) < N {
            w.vote(v, p, approve);
        } else {
            // A signer outside the validator set: a requester key, or an out-of-range index.
            let stranger = Keypair::from_label(&format!("stranger{v}")).public();
            w.submit(
                Signer::Requester(stranger),
                &Operation::Vote {
                    proposal: p,
                    approve,
                    reasons: vec![],
                },
            );
            w.submit(
                Signer::Validator(v),
                &Operation::Vote {
                    proposal: p,
                    approve,
                    reasons: vec![],
                },
            );
        }
    }
    (w, p)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_tally_approves_without_a_quorum_of_distinct_validators(vs in votes()) {
        let (w, p) = run_votes(&vs);
        let prop = &w.ledger.state().proposals[&p];
        let mut first_vote = std::collections::BTreeMap::new();
        for &(v, a) in &vs {
            if (v as usize) < N {
                first_vote.entry(v).or_insert(a);
            }
        }
        let distinct_approvals = first_vote.values().filter(|a| **a).count();
        if prop.status == ProposalStatus::Approved {
            prop_assert!(distinct_approvals >= w.ledger.config().quorum());
        }
        prop_assert!(prop.votes.keys().all(|v| (*v as usize) < N));
    }

    #[test]
    fn the_same_requests_give_the_same_digest(vs in votes()) {
        let (a, _) = run_votes(&vs);
        let (b, _) = run_votes(&vs);
        prop_assert_eq!(a.ledger.digest(), b.ledger.digest());
    }

    #[test]
    fn snapshot_then_restore_gives_the_same_digest(vs in votes()) {
        let (w, _) = run_votes(&vs);
        let snap = w.ledger.snapshot();
        prop_assert_eq!(w.ledger.snapshot_digest(&snap).expect("decodes"), w.ledger.digest());
        let mut fresh = World::new();
        fresh.ledger.restore(&snap).expect("restores");
        prop_assert_eq!(fresh.ledger.digest(), w.ledger.digest());
        prop_assert_eq!(fresh.ledger.state(), w.ledger.state());
    }

    #[test]
    fn a_stranger_or_a_second_vote_changes_no_tally(vs in votes(), approve in any::<bool>()) {
        let (mut w, p) = run_votes(&vs);
        let before = w.ledger.state().proposals[&p].clone();
        let stranger: PublicKey = Keypair::from_label("outsider").public();
        let o = w.submit(Signer::Requester(stranger), &Operation::Vote { proposal: p, approve, reasons: vec![] });
        prop_assert!(!o.accepted);
        if let Some(&v) = before.votes.keys().next() {
            let o = w.vote(v, p, approve);
            prop_assert!(!o.accepted);
        }
        let after = &w.ledger.state().proposals[&p];
        prop_assert_eq!(&before.votes, &after.votes);
        prop_assert_eq!(before.status, after.status);
    }
}

#[test]
fn f_plus_one_stall_claims_for_a_view_mark_its_primary_for_replacement() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let step = w.step(r);
    let claim = |view| Operation::Stalled {
        rollout: r,
        issued_seq: step,
        view,
    };
    assert!(w.submit(Signer::Validator(1), &claim(0)).accepted);
    assert!(
        !w.submit(Signer::Validator(1), &claim(0)).accepted,
        "one claim per validator"
    );
    assert!(
        w.submit(Signer::Validator(2), &claim(1)).accepted,
        "another view counts apart"
    );
    assert_eq!(w.ledger.state().rollouts[&r].replace_view, None);
    assert!(w.submit(Signer::Validator(3), &claim(0)).accepted);
    assert_eq!(w.ledger.state().rollouts[&r].replace_view, Some(0));
    assert!(
        !w.submit(Signer::Validator(0), &claim(0)).accepted,
        "already being replaced"
    );
    assert!(!w.request(claim(1)).accepted, "requesters cannot claim");
    // A new step starts afresh.
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    let acks = idx.iter().map(|&a| w.ack(a, r, "v1")).collect();
    let reports = idx.iter().map(|&a| w.health(a, r, "v1", 0.9)).collect();
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout: r,
            batch: 1,
            acks,
            reports,
            baseline: Vec::new(),
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(w.ledger.state().rollouts[&r].replace_view, None);
}

#[test]
fn at_n_7_a_primary_is_replaced_on_three_stall_claims_not_two() {
    let mut w = World::with_validators(7);
    let r = w.promote_to_canary("v1");
    let claim = Operation::Stalled {
        rollout: r,
        issued_seq: w.step(r),
        view: 0,
    };
    for v in [1, 5] {
        assert!(w.submit(Signer::Validator(v), &claim).accepted);
        assert_eq!(w.ledger.state().rollouts[&r].replace_view, None);
    }
    assert!(w.submit(Signer::Validator(6), &claim).accepted);
    assert_eq!(w.ledger.state().rollouts[&r].replace_view, Some(0));
}

#[test]
fn a_ledger_keeping_fresh_records_hands_each_event_and_outcome_over_once() {
    let mut quiet = World::new();
    quiet.promote_to_canary("v1");
    let nothing = quiet.ledger.take_new();
    assert!(nothing.events.is_empty() && nothing.outcomes.is_empty());

    let mut w = World::new();
    w.ledger.keep_fresh();
    w.promote_to_canary("v1");
    let fresh = w.ledger.take_new();
    let events = w.ledger.journal().events.total();
    assert_eq!(fresh.events.len() as u64, events, "every event, once");
    assert_eq!(
        fresh.events.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        (0..events).collect::<Vec<_>>(),
        "with their positions"
    );
    // Register, promote and three votes (the proposal opens at quorum).
    assert_eq!(fresh.outcomes.len(), 5);
    let proposal = w
        .ledger
        .state()
        .proposals
        .keys()
        .copied()
        .collect::<Vec<_>>();
    assert_eq!(proposal.len(), 1);
    assert!(
        fresh.proposals_touched,
        "the proposal opened and decided, reported for the read index"
    );
    let again = w.ledger.take_new();
    assert!(again.events.is_empty() && again.outcomes.is_empty() && !again.proposals_touched);
}

#[test]
fn outcomes_name_their_request_by_operation_digest_and_signer_nonce() {
    // The digest a re-sent request is matched against (same nonce, same operation: the earlier
    // answer; another operation: refused) is the SHA-256 of the operation's bytes.
    assert_eq!(
        operation_digest(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_ne!(operation_digest(b"abc"), operation_digest(b"abd"));
    let mut w = World::new();
    let bytes = Operation::RegisterRelease {
        release: release("v1"),
    }
    .to_bytes();
    let key = w.requester.public();
    let o = w
        .ledger
        .apply_operation(1, Signer::Requester(key), &key, 7, &bytes);
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(o.request, operation_digest(&bytes));
    assert_eq!(
        request_id(&key, 7),
        format!("{}:7", super::release::hex(key.as_bytes()))
    );
}

#[test]
fn the_replica_applies_signed_requests_as_their_principals() {
    use crate::consensus::debug_codec::DebugCodec;
    use crate::consensus::{Codec, Kind, Principal, ReplicaId, Request, Seq, Signed};
    let seal = |op: &Operation, nonce, key: &Keypair, principal| {
        let request = Request {
            nonce,
            operation: op.to_bytes(),
        };
        Signed::seal(
            request,
            Kind::Request,
            |r| DebugCodec.encode_request(r),
            key,
            principal,
        )
    };
    let mut w = World::new();
    let requester = w.requester.clone();
    let register = Operation::RegisterRelease {
        release: release("v1"),
    };
    w.ledger.apply(
        Seq(1),
        &seal(&register, 1, &requester, Principal::Requester),
    );
    assert!(w.ledger.state().releases.contains_key("v1"));
    let promote = Operation::Promote {
        version: "v1".into(),
        to: Stage::Canary,
        rollback_to: "v0".into(),
        pause_before: None,
        steps: Vec::new(),
    };
    w.ledger
        .apply(Seq(2), &seal(&promote, 2, &requester, Principal::Requester));
    let proposal = w
        .ledger
        .outcome(&requester.public(), 2)
        .and_then(|o| o.proposal)
        .expect("the promotion opened a proposal");
    let vote = Operation::Vote {
        proposal,
        approve: true,
        reasons: vec![],
    };
    // Signed by validator 2 as validator 2: the vote counts for it.
    let v2 = Keypair::from_label("val2");
    w.ledger.apply(
        Seq(3),
        &seal(&vote, 1, &v2, Principal::Validator(ReplicaId(2))),
    );
    let p = &w.ledger.state().proposals[&proposal];
    assert_eq!(p.votes.keys().copied().collect::<Vec<_>>(), vec![2]);
    let o = w
        .ledger
        .outcome(&v2.public(), 1)
        .expect("the vote's outcome is kept");
    assert!(o.accepted, "{:?}", o.reasons);
}
