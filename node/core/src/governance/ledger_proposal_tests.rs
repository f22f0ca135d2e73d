//! Proposal bookkeeping at its edges: the vote window's last sequence number, proposal ids,
//! one pending proposal at a time, the rollback proposal's refusals, rejection at n = 7, and a
//! validator's own evaluation of rollbacks and of a canary's safety re-check at the bound.
//! (Written against cargo-mutants survivors in `ledger/proposals.rs`; see TESTING.md.)

use super::ledger::{AgentChange, ProposalStatus, Signer};
use super::ledger_world::{promotion, World};
use super::{Operation, Stage};

fn propose_canary(w: &mut World, version: &str) -> u64 {
    let o = w.request(promotion(version, Stage::Canary));
    assert!(o.accepted, "{:?}", o.reasons);
    o.proposal.expect("a proposal")
}

/// The window (50 in the test world) includes its last sequence number.
#[test]
fn a_proposal_is_open_through_the_last_seq_of_its_window() {
    let mut w = World::new();
    w.register("r1");
    let p = propose_canary(&mut w, "r1");
    let opened = w.ledger.state().proposals[&p].opened_seq;
    // The next request is applied at opened + 50: still open, the vote counts.
    w.seq = opened + 49;
    assert!(w.vote(0, p, true).accepted);
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Pending
    );
    // One past the window: expired before the vote is applied.
    assert!(!w.vote(1, p, true).accepted);
    let p = &w.ledger.state().proposals[&p];
    assert_eq!(p.status, ProposalStatus::Expired);
    assert_eq!(p.decided_seq, Some(opened + 51));
}

/// Every proposal gets its own id, and a decided one no longer blocks the next.
#[test]
fn proposals_get_distinct_ids_and_only_a_pending_one_blocks_another() {
    let mut w = World::new();
    w.register("r1");
    let first = propose_canary(&mut w, "r1");
    // One change at a time: a membership proposal waits for the pending promotion.
    let change = AgentChange::Remove {
        id: "agent-0".into(),
    };
    let o = w.request(Operation::ProposeAgent {
        change: change.clone(),
    });
    assert!(!o.accepted);
    assert!(
        o.reasons.iter().any(
            |r| r == &format!("proposal {first} is still being voted on; one change at a time")
        ),
        "{:?}",
        o.reasons
    );
    for v in 0..2 {
        w.vote(v, first, false);
    }
    assert_eq!(
        w.ledger.state().proposals[&first].status,
        ProposalStatus::Rejected
    );
    let second = w
        .request(Operation::ProposeAgent { change })
        .proposal
        .expect("no proposal pending any more");
    assert_ne!(first, second);
    assert_eq!(w.ledger.state().proposals.len(), 2);
    assert_eq!(
        w.ledger.state().proposals[&first].status,
        ProposalStatus::Rejected
    );
}

#[test]
fn a_rollback_proposal_is_refused_when_there_is_nothing_to_restore_or_one_is_pending() {
    let mut w = World::new();
    let rollback = |target: &str| Operation::Rollback {
        target_version: target.into(),
        reason: "test".into(),
    };
    // At genesis every agent runs v0 and v0 serves production.
    let o = w.request(rollback("v0"));
    assert!(!o.accepted);
    assert_eq!(
        o.reasons,
        vec!["v0 is already in production on every agent".to_string()]
    );
    // A pending promotion does not block a rollback proposal...
    let canary = w.promote_to_canary("r1");
    w.complete_batches(canary, "r1");
    w.register("r2");
    let promotion = propose_canary(&mut w, "r2");
    let o = w.request(rollback("v0"));
    assert!(o.accepted, "{:?}", o.reasons);
    let first = o.proposal.expect("rollback proposal");
    assert_ne!(first, promotion);
    // ...but a pending rollback blocks a second one.
    let o = w.request(rollback("v0"));
    assert!(!o.accepted);
    assert_eq!(
        o.reasons,
        vec![format!("rollback proposal {first} is still being voted on")]
    );
    // A validator's own evaluation approves a rollback to a known-good version.
    assert_eq!(
        w.ledger.evaluate(first),
        (true, vec!["all checks pass".to_string()])
    );
}

/// n = 7 (q = 5): a proposal is rejected once n - q + 1 = 3 validators reject it, not before.
#[test]
fn at_seven_validators_three_rejections_decide_and_two_do_not() {
    let mut w = World::with_validators(7);
    w.register("r1");
    let p = propose_canary(&mut w, "r1");
    for v in 0..2 {
        assert!(w.vote(v, p, false).accepted);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Pending
    );
    w.vote(2, p, false);
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Rejected
    );
}

/// Canary agents whose recorded safety is exactly at the bound pass the re-check a
/// validator makes before approving production; the re-check runs for canary -> production.
#[test]
fn the_canary_recheck_passes_at_the_bound_and_is_made_for_production_only() {
    let mut w = World::new();
    let canary = w.promote_to_canary("r1");
    let bound = w.ledger.config().health.min_safety;
    let batch = w.ledger.state().rollouts[&canary].batches[0].clone();
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    let acks = idx.iter().map(|&a| w.ack(a, canary, "r1")).collect();
    let reports = idx
        .iter()
        .map(|&a| w.health_at_safety(a, canary, "r1", bound))
        .collect();
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout: canary,
            batch: 1,
            acks,
            reports,
            baseline: Vec::new(),
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    let o = w.request(promotion("r1", Stage::Production));
    assert!(o.accepted, "{:?}", o.reasons);
    let p = o.proposal.expect("proposal");
    assert_eq!(
        w.ledger.evaluate(p),
        (true, vec!["all checks pass".to_string()])
    );
    // The same re-check fails when a canary report is missing: forget one and evaluate again.
    let agent = batch[0].clone();
    let mut world = w;
    world.forget_canary_report(canary, &agent);
    let (ok, reasons) = world.ledger.evaluate(p);
    assert!(!ok);
    assert_eq!(
        reasons,
        vec![format!("canary {agent} left no signed healthy report")]
    );
}

/// The re-check reads the newest rollout of the version that did not fail: a later promotion
/// of it that failed to start (the fleet was busy) leaves the completed canary in force.
#[test]
fn the_canary_recheck_skips_failed_rollouts_of_the_version() {
    use super::ledger::RolloutStatus;
    let mut w = World::new();
    let canary = w.promote_to_canary("r1");
    w.complete_batches(canary, "r1");
    let o = w.request(promotion("r1", Stage::Production));
    assert!(o.accepted, "{:?}", o.reasons);
    let p = o.proposal.expect("proposal");
    // Planted: what an earlier production proposal of r1 leaves when the fleet was busy.
    let mut failed = w.ledger.state().rollouts[&canary].clone();
    failed.id = canary + 1;
    failed.status = RolloutStatus::Failed;
    failed.reports.clear();
    w.ledger.state_mut().rollouts.insert(failed.id, failed);
    assert_eq!(
        w.ledger.evaluate(p),
        (true, vec!["all checks pass".to_string()])
    );
}

/// `Abort`: a requester proposes it, validators evaluate and vote; at approval the promotion
/// rolls back what it touched with the requester's reason; what is not a promotion in progress
/// cannot be aborted, and an abort that arrives after the rollout ended changes nothing.
#[test]
fn an_approved_abort_rolls_a_promotion_back_and_nothing_else() {
    use super::ledger::RolloutStatus;
    let mut w = World::new();
    let canary = w.promote_to_canary("r1");
    let abort = |rollout: u64| Operation::Abort {
        rollout,
        reason: "wrong tokenizer".into(),
    };
    // Validators do not propose aborts; an unknown rollout cannot be aborted.
    assert!(!w.submit(Signer::Validator(0), &abort(canary)).accepted);
    let o = w.request(abort(99));
    assert_eq!(o.reasons, vec!["unknown rollout 99".to_string()]);
    let o = w.request(abort(canary));
    assert!(o.accepted, "{:?}", o.reasons);
    let p = o.proposal.expect("proposal");
    assert_eq!(
        w.ledger.evaluate(p),
        (true, vec!["all checks pass".to_string()])
    );
    // One abort at a time.
    let again = w.request(abort(canary));
    assert_eq!(
        again.reasons,
        vec![format!("abort proposal {p} is still being voted on")]
    );
    for v in 0..3 {
        w.vote(v, p, true);
    }
    let r = &w.ledger.state().rollouts[&canary];
    assert_eq!(r.status, RolloutStatus::RollingBack);
    assert_eq!(
        r.reason,
        format!("aborted by vote (proposal {p}): wrong tokenizer")
    );
    assert_eq!(r.rollback_agents.len(), 3, "the canary batch it touched");
    // A rolling-back rollout is no longer in progress.
    let o = w.request(abort(canary));
    assert_eq!(
        o.reasons,
        vec![format!(
            "rollout {canary} is rolling_back, not in progress; only a promotion in progress can be aborted"
        )]
    );
    // An abort approved after its rollout completed is not applied.
    let mut w = World::new();
    let canary = w.promote_to_canary("r1");
    let p = w.request(abort(canary)).proposal.expect("proposal");
    w.complete_batches(canary, "r1");
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    assert_eq!(
        w.ledger.state().rollouts[&canary].status,
        RolloutStatus::Completed
    );
    assert!(w
        .ledger
        .journal()
        .events
        .iter()
        .any(|e| e.kind == "abort_not_applied" && e.detail.contains("completed")));
}
