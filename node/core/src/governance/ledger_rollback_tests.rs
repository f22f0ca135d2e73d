//! Ledger scenarios of rollbacks on evidence: auto-rollback on agent-signed degraded reports or
//! failed deploys, the rollback completing on signed acks, and no-data claims.

use super::ledger::*;
use super::ledger_world::*;
use super::operation::Operation;
use super::stage::{Stage, Tongue};
use crate::rollout::evidence::{AckOutcome, DeployAck, HealthReport, OrderAction};

#[test]
fn auto_rollback_needs_signed_evidence_of_degradation() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let first = w.ledger.state().rollouts[&r].batches[0][0].clone();
    let a = w.agent_index(&first);
    let auto = |reports: Vec<HealthReport>| Operation::AutoRollback {
        rollout: r,
        reports,
        acks: vec![],
    };
    // Healthy report: no proof.
    let o = w.submit(Signer::Validator(1), &auto(vec![w.health(a, r, "v1", 0.9)]));
    assert!(!o.accepted);
    // A degraded report signed by the wrong key: forged.
    let mut forged = w.health(a, r, "v1", 0.3);
    forged.signature = w.health((a + 1) % 6, r, "v1", 0.3).signature;
    let o = w.submit(Signer::Validator(1), &auto(vec![forged]));
    assert!(!o.accepted);
    assert!(
        o.reasons
            .iter()
            .any(|x| x.contains("not signed by that agent")),
        "{:?}",
        o.reasons
    );
    // A degraded report for another rollout, or from an agent not deployed, proves nothing.
    let o = w.submit(
        Signer::Validator(1),
        &auto(vec![w.health(a, r + 7, "v1", 0.3)]),
    );
    assert!(!o.accepted);
    let outside = w.agent_outside(&w.ledger.state().rollouts[&r].batches[0]);
    let o = w.submit(
        Signer::Validator(1),
        &auto(vec![w.health(outside, r, "v1", 0.3)]),
    );
    assert!(!o.accepted, "{:?}", o.reasons);
    // A requester cannot trigger it at all.
    let bad = w.health(a, r, "v1", 0.3);
    assert!(!w.request(auto(vec![bad.clone()])).accepted);
    // Genuine degraded report from a deployed agent.
    let o = w.submit(Signer::Validator(1), &auto(vec![bad]));
    assert!(o.accepted, "{:?}", o.reasons);
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!(ro.status, RolloutStatus::RollingBack);
    assert_eq!(
        ro.rollback_agents, ro.batches[0],
        "the deployed batch rolls back"
    );
    assert!(!w.ledger.state().current.contains_key(&Stage::Canary));
    assert_eq!(
        w.ledger.journal().events.iter().last().map(|e| e.tongue),
        Some(Tongue::DR)
    );
}

#[test]
fn a_failed_deploy_ack_rolls_back_and_the_rollback_completes_on_signed_acks() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let a = w.agent_index(&batch[1]);
    let o = w.fail_deploy(r, a, "v1");
    assert!(o.accepted, "{:?}", o.reasons);
    let order = w.ledger.current_order(r).expect("rollback order");
    assert_eq!(order.action, OrderAction::Rollback);
    assert_eq!(order.version, "v0");
    assert_eq!(
        order.units,
        vec![v0_unit()],
        "a known-good version's order carries the units the genesis lists for it"
    );
    assert_eq!(order.agents, batch);
    // Acks for the old deploy step do not count for the rollback step.
    let stale = w.ack(a, r, "v1");
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RollbackDone {
            rollout: r,
            acks: vec![stale],
        },
    );
    assert!(!o.accepted);
    // Two agents, then the last one.
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    let acks: Vec<DeployAck> = idx
        .iter()
        .map(|&i| w.ack_with(i, r, OrderAction::Rollback, "v0", AckOutcome::Done))
        .collect();
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RollbackDone {
            rollout: r,
            acks: acks[..2].to_vec(),
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(w.ledger.state().rollouts[&r].rollback_pending.len(), 1);
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RollbackDone {
            rollout: r,
            acks: acks[2..].to_vec(),
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::RolledBack
    );
    assert!(batch.iter().all(|id| w.ledger.state().assigned[id] == "v0"));
    assert!(w.ledger.current_order(r).is_none());
}

/// Only a failed deploy, acknowledged by an agent of the current batch, proves anything: a
/// failed ack from an agent outside it, or a successful one, does not.
#[test]
fn auto_rollback_counts_only_failed_deploy_acks_from_the_current_batch() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let inside = w.agent_index(&batch[0]);
    let outside = w.agent_outside(&batch);
    let auto = |acks: Vec<DeployAck>| Operation::AutoRollback {
        rollout: r,
        reports: vec![],
        acks,
    };
    let failed_outside = w.ack_with(outside, r, OrderAction::Deploy, "v1", AckOutcome::Failed);
    let o = w.submit(Signer::Validator(1), &auto(vec![failed_outside]));
    assert!(!o.accepted);
    assert!(
        o.reasons
            .iter()
            .any(|x| x.contains("not in the current batch")),
        "{:?}",
        o.reasons
    );
    let done_inside = w.ack(inside, r, "v1");
    let o = w.submit(Signer::Validator(1), &auto(vec![done_inside]));
    assert!(!o.accepted);
    assert!(
        o.reasons
            .iter()
            .any(|x| x.contains("did not report a failed deploy")),
        "{:?}",
        o.reasons
    );
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::InProgress
    );
    let failed_inside = w.ack_with(inside, r, OrderAction::Deploy, "v1", AckOutcome::Failed);
    assert!(
        w.submit(Signer::Validator(1), &auto(vec![failed_inside]))
            .accepted
    );
}

/// A rollback completes only on `Done` acks from agents whose rollback is pending.
#[test]
fn a_rollback_completes_only_on_done_acks_of_agents_pending_it() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let a = w.agent_index(&batch[0]);
    let o = w.fail_deploy(r, a, "v1");
    assert!(o.accepted, "{:?}", o.reasons);
    let outside = w.agent_outside(&batch);
    let done =
        |w: &World, i: usize, outcome| w.ack_with(i, r, OrderAction::Rollback, "v0", outcome);
    for (what, ack, reason) in [
        (
            "an agent with no rollback pending",
            done(&w, outside, AckOutcome::Done),
            "has no rollback pending",
        ),
        (
            "a rollback that failed",
            done(&w, a, AckOutcome::Failed),
            "did not roll back",
        ),
    ] {
        let o = w.submit(
            Signer::Validator(0),
            &Operation::RollbackDone {
                rollout: r,
                acks: vec![ack],
            },
        );
        assert!(!o.accepted, "{what}");
        assert!(
            o.reasons.iter().any(|x| x.contains(reason)),
            "{what}: {:?}",
            o.reasons
        );
        let ro = &w.ledger.state().rollouts[&r];
        assert_eq!(ro.rollback_pending.len(), batch.len(), "{what}");
    }
}

/// A no-data claim names agents, all of the current batch; the rollback it leads to names the
/// batch that missed its deadline.
#[test]
fn a_no_data_claim_names_only_agents_of_the_current_batch() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let step = w.step(r);
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let outside = w.agents[w.agent_outside(&batch)].0.id.clone();
    let claim = |agents: Vec<String>| Operation::NoData {
        rollout: r,
        issued_seq: step,
        agents,
    };
    for (what, agents) in [
        ("no agent", vec![]),
        (
            "an agent outside the batch",
            vec![batch[0].clone(), outside],
        ),
    ] {
        let o = w.submit(Signer::Validator(0), &claim(agents));
        assert!(!o.accepted, "{what}");
        assert!(
            o.reasons
                .iter()
                .any(|x| x.contains("must name agents of the current batch")),
            "{what}: {:?}",
            o.reasons
        );
    }
    for v in [0, 1] {
        assert!(
            w.submit(Signer::Validator(v), &claim(vec![batch[0].clone()]))
                .accepted
        );
    }
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!(ro.status, RolloutStatus::RollingBack);
    assert!(
        ro.reason.contains("batch 1 missed its progress deadline"),
        "{}",
        ro.reason
    );
}

/// A production rollout that fails rolls back to its plan and returns the release to staging,
/// out of the canary stage too; the canary rollout before it keeps its own id and record.
#[test]
fn a_rolled_back_production_rollout_leaves_the_release_in_staging_only() {
    let mut w = World::new();
    let canary = w.promote_to_canary("v1");
    w.complete_batches(canary, "v1");
    let o = w.request(promotion("v1", Stage::Production));
    assert!(o.accepted, "{:?}", o.reasons);
    let prod = w.approve(o.proposal.expect("proposal"));
    assert_ne!(prod, canary, "every rollout has an id of its own");
    assert_eq!(
        w.ledger.state().rollouts[&canary].status,
        RolloutStatus::Completed
    );
    let first = w.ledger.state().rollouts[&prod].batches[0][0].clone();
    let a = w.agent_index(&first);
    let o = w.fail_deploy(prod, a, "v1");
    assert!(o.accepted, "{:?}", o.reasons);
    let pending: Vec<String> = w.ledger.state().rollouts[&prod]
        .rollback_pending
        .iter()
        .cloned()
        .collect();
    let acks = pending
        .iter()
        .map(|id| {
            let i = w.agent_index(id);
            w.ack_with(i, prod, OrderAction::Rollback, "v0", AckOutcome::Done)
        })
        .collect();
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RollbackDone {
            rollout: prod,
            acks,
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    let state = w.ledger.state();
    assert_eq!(state.rollouts[&prod].status, RolloutStatus::RolledBack);
    assert_eq!(state.rollouts[&canary].status, RolloutStatus::Completed);
    assert_eq!(state.releases["v1"].stage, Stage::Staging);
    assert_eq!(
        state.current.get(&Stage::Canary),
        None,
        "{:?}",
        state.current
    );
    assert_eq!(state.current[&Stage::Production], "v0");
}

#[test]
fn no_data_rolls_back_only_on_f_plus_one_distinct_claims_for_the_current_step() {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let step = w.step(r);
    let agents = vec![w.ledger.state().rollouts[&r].batches[0][0].clone()];
    let claim = |issued_seq| Operation::NoData {
        rollout: r,
        issued_seq,
        agents: agents.clone(),
    };
    assert!(
        !w.submit(Signer::Validator(0), &claim(step + 5)).accepted,
        "wrong step"
    );
    assert!(w.submit(Signer::Validator(0), &claim(step)).accepted);
    assert!(
        !w.submit(Signer::Validator(0), &claim(step)).accepted,
        "same validator twice"
    );
    assert!(!w.request(claim(step)).accepted, "requesters cannot claim");
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::InProgress
    );
    // n = 4, f = 1: the second distinct validator makes f + 1.
    assert!(w.submit(Signer::Validator(3), &claim(step)).accepted);
    let ro = &w.ledger.state().rollouts[&r];
    assert_eq!(ro.status, RolloutStatus::RollingBack);
    assert!(ro.reason.contains("no healthy data"), "{}", ro.reason);
}

#[test]
fn no_data_needs_three_claims_at_n_7() {
    let mut w = World::with_validators(7);
    let r = w.promote_to_canary("v1");
    let step = w.step(r);
    let claim = Operation::NoData {
        rollout: r,
        issued_seq: step,
        agents: vec![w.ledger.state().rollouts[&r].batches[0][0].clone()],
    };
    for v in [0, 4] {
        assert!(w.submit(Signer::Validator(v), &claim).accepted);
        assert_eq!(
            w.ledger.state().rollouts[&r].status,
            RolloutStatus::InProgress,
            "f = 2: two claims may both be faulty"
        );
    }
    assert!(w.submit(Signer::Validator(6), &claim).accepted);
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::RollingBack
    );
}
