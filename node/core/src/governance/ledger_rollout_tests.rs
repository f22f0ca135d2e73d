//! Ledger scenarios of rollouts: progress on signed evidence of the current step, the order
//! every validator derives, and manual rollback. Rollbacks on evidence are in
//! `ledger_rollback_tests.rs`.

use super::ledger::*;
use super::ledger_world::*;
use super::operation::Operation;
use super::stage::Stage;
use crate::rollout::evidence::{AckOutcome, DeployAck, HealthReport, OrderAction};

#[test]
fn rollout_progress_without_data_is_a_failure() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout: r,
            batch: 1,
            acks: vec![],
            reports: vec![],
            baseline: Vec::new(),
        },
    );
    assert!(!o.accepted);
    assert!(o.reasons.iter().any(|x| x.contains("no data is a failure")));
}

#[test]
fn progress_needs_enough_samples_the_right_step_and_may_come_in_chunks() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    // A report from before the window ended: not yet healthy, so no completion.
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout: r,
            batch: 1,
            acks: vec![w.ack(idx[0], r, "v1")],
            reports: vec![w.health_with(idx[0], r, "v1", 0.9, 3)],
            baseline: Vec::new(),
        },
    );
    assert!(!o.accepted);
    // First chunk: one agent.
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout: r,
            batch: 1,
            acks: vec![w.ack(idx[0], r, "v1")],
            reports: vec![w.health(idx[0], r, "v1", 0.9)],
            baseline: Vec::new(),
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!((ro.completed, ro.recorded.len()), (0, 1));
    // The rest.
    let acks = idx[1..].iter().map(|&i| w.ack(i, r, "v1")).collect();
    let reports = idx[1..]
        .iter()
        .map(|&i| w.health(i, r, "v1", 0.9))
        .collect();
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
    assert_eq!(w.ledger.state().rollouts[&r].completed, 1);
    assert!(batch.iter().all(|id| w.ledger.state().assigned[id] == "v1"));
}

#[test]
fn the_current_order_is_what_every_validator_derives() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let o = w.ledger.current_order(r).expect("deploy order");
    assert_eq!(o.action, OrderAction::Deploy);
    assert_eq!(o.batch, 1);
    assert_eq!(
        o.release_digest,
        w.ledger.state().releases["v1"]
            .release
            .release()
            .expect("decodes")
            .digest
    );
    assert_eq!(o.units.len(), 3);
    assert!(o.agents.windows(2).all(|p| p[0] < p[1]), "sorted");
    // A second ledger fed the same requests derives byte-identical orders.
    let mut twin = World::new();
    twin.promote_to_canary("v1");
    assert_eq!(
        twin.ledger.current_order(r).map(|o| o.to_bytes()),
        Some(o.to_bytes())
    );
}

#[test]
fn manual_rollback_is_voted_and_restores_every_agent_batch_by_batch() {
    let mut w = World::new();
    let canary = w.promote_to_canary("v1");
    w.complete_batches(canary, "v1");
    let p = w
        .request(Operation::Promote {
            version: "v1".into(),
            to: Stage::Production,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        })
        .proposal
        .expect("p");
    for v in 0..3 {
        w.vote(v, p, true);
    }
    let prod = w
        .ledger
        .state()
        .rollouts
        .keys()
        .max()
        .copied()
        .expect("rollout");
    w.complete_batches(prod, "v1");
    assert_eq!(w.ledger.state().current[&Stage::Production], "v1");
    let o = w.request(Operation::Rollback {
        target_version: "v0".into(),
        reason: "regression".into(),
    });
    let p = o.proposal.expect("rollback proposal");
    let mut restore = None;
    for v in 0..3 {
        restore = w.vote(v, p, true).rollout.or(restore);
    }
    let restore = restore.expect("a restore rollout");
    let order = w.ledger.current_order(restore).expect("order");
    assert_eq!(
        (order.action, order.version.as_str()),
        (OrderAction::Rollback, "v0")
    );
    let batches = w.ledger.state().rollouts[&restore].batches.clone();
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 6);
    for (i, batch) in batches.iter().enumerate() {
        let acks = batch
            .iter()
            .map(|id| {
                let a = w.agent_index(id);
                w.ack_with(a, restore, OrderAction::Rollback, "v0", AckOutcome::Done)
            })
            .collect();
        let o = w.submit(
            Signer::Validator(1),
            &Operation::RolloutProgress {
                rollout: restore,
                batch: i as u32 + 1,
                acks,
                reports: vec![],
                baseline: Vec::new(),
            },
        );
        assert!(o.accepted, "{:?}", o.reasons);
    }
    assert_eq!(w.ledger.state().current[&Stage::Production], "v0");
    assert_eq!(w.ledger.state().releases["v1"].stage, Stage::Staging);
    assert!(w.ledger.state().assigned.values().all(|v| v == "v0"));
}

/// Evidence counts for exactly the step it answers: an ack that differs from the current order
/// in one field only (its step, or its action), or reports a failed deploy, is refused, and a rollout to production, once
/// complete, takes its version out of the canary stage.
#[test]
fn an_ack_counts_only_for_the_current_orders_step_and_action() {
    use crate::rollout::evidence::AckBody;
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    let step = w.step(r);
    let reports: Vec<HealthReport> = idx.iter().map(|&a| w.health(a, r, "v1", 0.9)).collect();
    let signed_as = |w: &World, a: usize, action: OrderAction, issued_seq: u64, outcome| {
        let (agent, key) = &w.agents[a];
        DeployAck::sign(
            &AckBody {
                agent: agent.id.clone(),
                rollout: r,
                action,
                issued_seq,
                version: "v1".into(),
                outcome,
                detail: String::new(),
                refusal: None,
            },
            key,
        )
    };
    let signed = |w: &World, a: usize, action: OrderAction, issued_seq: u64| {
        signed_as(w, a, action, issued_seq, AckOutcome::Done)
    };
    let progress = |acks: Vec<DeployAck>| Operation::RolloutProgress {
        rollout: r,
        batch: 1,
        acks,
        reports: reports.clone(),
        baseline: Vec::new(),
    };
    for (what, action, issued_seq, outcome) in [
        (
            "another step",
            OrderAction::Deploy,
            step + 1,
            AckOutcome::Done,
        ),
        (
            "another action",
            OrderAction::Rollback,
            step,
            AckOutcome::Done,
        ),
        (
            "a failed deploy",
            OrderAction::Deploy,
            step,
            AckOutcome::Failed,
        ),
    ] {
        let mut acks: Vec<DeployAck> = idx
            .iter()
            .map(|&a| signed(&w, a, OrderAction::Deploy, step))
            .collect();
        acks[0] = signed_as(&w, idx[0], action, issued_seq, outcome);
        let o = w.submit(Signer::Validator(0), &progress(acks));
        assert!(!o.accepted, "an ack for {what} counted");
        assert_eq!(w.ledger.state().rollouts[&r].completed, 0, "{what}");
    }
    let acks = idx
        .iter()
        .map(|&a| signed(&w, a, OrderAction::Deploy, step))
        .collect();
    let o = w.submit(Signer::Validator(0), &progress(acks));
    assert!(o.accepted, "{:?}", o.reasons);
    // Production completes: the canary stage no longer lists the version.
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::Completed,
        "the canary is one batch"
    );
    assert_eq!(w.ledger.state().current[&Stage::Canary], "v1");
    let o = w.request(promotion("v1", Stage::Production));
    assert!(o.accepted, "{:?}", o.reasons);
    let prod = w.approve(o.proposal.expect("proposal"));
    w.complete_batches(prod, "v1");
    let state = w.ledger.state();
    assert_eq!(state.rollouts[&prod].status, RolloutStatus::Completed);
    assert_eq!(state.rollouts[&prod].total_agents(), w.agents.len());
    assert_eq!(state.current[&Stage::Production], "v1");
    assert_eq!(
        state.current.get(&Stage::Canary),
        None,
        "{:?}",
        state.current
    );
}

/// A stall claim names the current step of a rollout in progress: another step, or a rollout
/// that has ended, is refused.
#[test]
fn a_stall_claim_names_the_current_step_of_an_active_rollout() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let step = w.step(r);
    let claim = |issued_seq| Operation::Stalled {
        rollout: r,
        issued_seq,
        view: 0,
    };
    let o = w.submit(Signer::Validator(1), &claim(step + 1));
    assert!(!o.accepted, "another step");
    w.complete_batches(r, "v1");
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::Completed
    );
    let o = w.submit(Signer::Validator(1), &claim(w.step(r)));
    assert!(!o.accepted, "an ended rollout");
    assert!(
        o.reasons
            .iter()
            .any(|x| x.contains("no longer at the step")),
        "{:?}",
        o.reasons
    );
}
