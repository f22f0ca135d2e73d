//! Rollout shapes and controls: `steps` shaping a promotion's batches, `pause_before` bounds,
//! no order while paused, `Approve` by vote starting the batch at its own seq, and an abort of a
//! rollout paused before anything was touched ending at once.

use super::ledger::{ProposalStatus, RolloutStatus, Signer};
use super::ledger_world::{promotion, World};
use super::{Operation, Stage};

/// Proposes `version` (registered) to canary pausing before `pause`; the outcome's reasons
/// when refused, else the approved rollout.
fn promote_paused(w: &mut World, version: &str, pause: u32) -> Result<u64, Vec<String>> {
    let o = w.request(Operation::Promote {
        version: version.into(),
        to: Stage::Canary,
        rollback_to: "v0".into(),
        pause_before: Some(pause),
        steps: Vec::new(),
    });
    if !o.accepted {
        return Err(o.reasons);
    }
    Ok(w.approve(o.proposal.expect("proposal")))
}

#[test]
fn a_paused_rollout_sends_nothing_until_an_approval_is_voted() {
    let mut w = World::new();
    w.register("r1");
    let batches = {
        let plan = crate::rollout::plan::plan_batches(&w.ledger.state().agents, Stage::Canary);
        plan.batches.len() as u32
    };
    for bad in [0, batches + 1] {
        let refused = promote_paused(&mut w, "r1", bad).expect_err("out of the plan");
        assert_eq!(
            refused,
            vec![format!(
                "pause_before {bad}: the canary plan has batches 1 to {batches}"
            )]
        );
    }
    let r = promote_paused(&mut w, "r1", 1).expect("accepted");
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!(ro.status, RolloutStatus::InProgress);
    assert_eq!(ro.paused_before(), Some(1));
    assert!(w.ledger.current_order(r).is_none(), "no order while paused");
    assert_eq!(
        w.event_details("rollout_paused"),
        vec![format!(
            "before batch 1 of {batches}: waiting for approval (scbe approve --rollout {r})"
        )]
    );
    // Nothing can be recorded for the waiting batch.
    let agent = w.agent_index(&ro.batches[0][0]);
    let early = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout: r,
            batch: 1,
            acks: vec![w.ack(agent, r, "r1")],
            reports: vec![w.health(agent, r, "r1", 0.9)],
            baseline: Vec::new(),
        },
    );
    assert!(!early.accepted);
    // Validators vote on approvals; they do not propose them.
    assert!(
        !w.submit(Signer::Validator(0), &Operation::Approve { rollout: r })
            .accepted
    );
    let o = w.request(Operation::Approve { rollout: r });
    assert!(o.accepted, "{:?}", o.reasons);
    let p = o.proposal.expect("proposal");
    assert_eq!(
        w.ledger.evaluate(p),
        (true, vec!["all checks pass".to_string()])
    );
    let again = w.request(Operation::Approve { rollout: r });
    assert_eq!(
        again.reasons,
        vec![format!("approval proposal {p} is still being voted on")]
    );
    for v in 0..2 {
        w.vote(v, p, true);
    }
    assert!(
        w.ledger.current_order(r).is_none(),
        "below quorum: still paused"
    );
    w.vote(2, p, true);
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    let decided = w.ledger.state().proposals[&p].decided_seq.expect("decided");
    let order = w.ledger.current_order(r).expect("the batch starts");
    assert_eq!((order.batch, order.issued_seq), (1, decided));
    assert_eq!(w.event_details("rollout_resumed").len(), 1);
    w.complete_batches(r, "r1");
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::Completed
    );
    let done = w.request(Operation::Approve { rollout: r });
    assert_eq!(
        done.reasons,
        vec![format!(
            "rollout {r} is completed and not paused; nothing to approve"
        )]
    );
}

#[test]
fn aborting_a_rollout_paused_before_anything_ends_it_at_once() {
    let mut w = World::new();
    w.register("r1");
    let r = promote_paused(&mut w, "r1", 1).expect("accepted");
    let p = w
        .request(Operation::Abort {
            rollout: r,
            reason: "not today".into(),
        })
        .proposal
        .expect("proposal");
    for v in 0..3 {
        w.vote(v, p, true);
    }
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!(ro.status, RolloutStatus::RolledBack, "{}", ro.reason);
    assert!(ro.rollback_agents.is_empty());
    assert!(w
        .ledger
        .state()
        .rollouts
        .values()
        .all(|r| r.current_batch().is_none()));
    // The fleet is free again: the next promotion is accepted.
    let o = w.request(promotion("r1", Stage::Canary));
    assert!(o.accepted, "{:?}", o.reasons);
}

/// cargo-mutants found no test aborting a restore: a restore puts back a known-good version and
/// has nothing to roll back to, so an abort of one is refused with the reason; approval of a
/// restore is refused too (it is never paused).
#[test]
fn a_restore_in_progress_cannot_be_aborted_or_approved() {
    let mut w = World::new();
    // A canary of r1 completed, so some agents run something else than v0.
    let canary = w.promote_to_canary("r1");
    w.complete_batches(canary, "r1");
    let o = w.request(Operation::Rollback {
        target_version: "v0".into(),
        reason: "drill".into(),
    });
    assert!(o.accepted, "{:?}", o.reasons);
    let restore = w.approve(o.proposal.expect("proposal"));
    assert!(w.ledger.state().rollouts[&restore].status.is_active());
    let o = w.request(Operation::Abort {
        rollout: restore,
        reason: "stop it".into(),
    });
    assert!(
        !o.accepted
            && o.reasons
                .join(" ")
                .contains("only a promotion can be aborted"),
        "{o:?}"
    );
    let o = w.request(Operation::Approve { rollout: restore });
    assert!(
        !o.accepted && o.reasons.join(" ").contains("not paused"),
        "{o:?}"
    );
}

#[test]
fn steps_shape_the_promotion_and_a_shape_off_the_stage_share_is_refused() {
    let mut w = World::new();
    w.register("r1");
    let promote = |steps: Vec<u32>| Operation::Promote {
        version: "r1".into(),
        to: Stage::Canary,
        rollback_to: "v0".into(),
        pause_before: None,
        steps,
    };
    let o = w.request(promote(vec![5, 20]));
    assert_eq!(
        o.reasons,
        vec![
            "steps: the last must be 10, the canary stage's share of the fleet, not 20".to_string()
        ]
    );
    let o = w.request(promote(vec![10, 5]));
    assert!(!o.accepted);
    let o = w.request(promote(vec![5, 10]));
    assert!(o.accepted, "{:?}", o.reasons);
    let r = w.approve(o.proposal.expect("proposal"));
    let expected =
        crate::rollout::plan::plan_steps(&w.ledger.state().agents, Stage::Canary, &[5, 10]);
    assert_eq!(w.ledger.state().rollouts[&r].batches, expected.batches);
    w.complete_batches(r, "r1");
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::Completed
    );
}

/// cargo-mutants found the check that an approval still names the batch waited for untested:
/// no operation moves a pause while its approval is voted on, so the test plants one (the
/// guard is for a ledger changed in ways not foreseen): the approval is not applied, and says
/// why.
#[test]
fn an_approval_for_another_batch_than_the_one_waited_for_is_not_applied() {
    let mut w = World::new();
    w.register("r1");
    let r = promote_paused(&mut w, "r1", 1).expect("accepted");
    let p = w
        .request(Operation::Approve { rollout: r })
        .proposal
        .expect("proposal");
    {
        let ro = w.ledger.state_mut().rollouts.get_mut(&r).expect("rollout");
        ro.completed = 1;
        ro.pause_before = Some(2);
    }
    for v in 0..3 {
        w.vote(v, p, true);
    }
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!(ro.paused_before(), Some(2), "still waiting");
    let why = w.event_details("approval_not_applied");
    assert!(
        why.iter()
            .any(|d| d.contains("waits before batch 2, not 1")),
        "{why:?}"
    );
}
