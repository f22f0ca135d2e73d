//! The watcher on a real ledger: any validator submits an auto-rollback on degraded signed
//! evidence, only the leader records healthy agents and acks, no-data and stalled steps are
//! claimed at their deadlines, and evidence for another rollout, version or agent is ignored.

use super::*;
use crate::governance::ledger::Signer;
use crate::governance::ledger_world::World;
use crate::rollout::evidence::OrderAction;

fn settings() -> WatchSettings {
    WatchSettings {
        step_deadline_ms: 10_000,
        resubmit_ms: 1_000,
        leader_grace_ms: 3_000,
        stall_ms: 20_000,
        max_op_bytes: 1 << 20,
    }
}

/// A canary rollout of v1 and a watcher that has seen it.
fn setup() -> (World, u64, Watcher) {
    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let mut watcher = Watcher::new(settings());
    watcher.observe(StepView::of(&w.ledger), 0);
    (w, r, watcher)
}

fn feed_report(w: &World, watcher: &mut Watcher, rep: HealthReport) {
    let body = rep
        .open(|id| {
            w.ledger
                .config()
                .agents
                .iter()
                .find(|a| a.id == id)
                .map(|a| &a.key)
        })
        .expect("valid report");
    watcher.report(rep, body, 0);
}

fn feed_ack(w: &World, watcher: &mut Watcher, ack: DeployAck) {
    let body = ack
        .open(|id| {
            w.ledger
                .config()
                .agents
                .iter()
                .find(|a| a.id == id)
                .map(|a| &a.key)
        })
        .expect("valid ack");
    watcher.ack(ack, body);
}

fn batch(w: &World, r: u64) -> Vec<usize> {
    w.ledger.state().rollouts[&r].batches[0]
        .iter()
        .map(|id| w.agent_index(id))
        .collect()
}

#[test]
fn any_validator_submits_auto_rollback_on_a_degraded_report_and_the_ledger_takes_it() {
    let (mut w, r, mut watcher) = setup();
    let a = batch(&w, r)[0];
    feed_report(&w, &mut watcher, w.health(a, r, "v1", 0.3));
    let ops = watcher.decide(100, false, 0);
    assert!(
        matches!(ops.as_slice(), [Operation::AutoRollback { reports, .. }] if reports.len() == 1)
    );
    assert!(
        watcher.decide(200, false, 0).is_empty(),
        "not again before resubmit_ms"
    );
    assert_eq!(
        watcher.decide(1_200, false, 0).len(),
        1,
        "again after resubmit_ms"
    );
    let o = w.submit(Signer::Validator(3), &ops[0]);
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::RollingBack
    );
}

#[test]
fn the_leader_records_deployed_and_healthy_agents_in_chunks_others_do_not() {
    let (mut w, r, mut watcher) = setup();
    let idx = batch(&w, r);
    for &a in &idx {
        feed_ack(&w, &mut watcher, w.ack(a, r, "v1"));
        feed_report(&w, &mut watcher, w.health(a, r, "v1", 0.9));
    }
    assert!(
        watcher.decide(0, false, 0).is_empty(),
        "the leader records first"
    );
    // The leader did not (dead?): after the grace, any validator records them.
    let late = watcher.decide(3_000, false, 0);
    assert!(
        matches!(late.as_slice(), [Operation::RolloutProgress { acks, .. }] if acks.len() == idx.len()),
        "{late:?}"
    );
    // A budget that fits one agent per operation.
    let mut small = Watcher::new(WatchSettings {
        max_op_bytes: 1,
        ..settings()
    });
    small.observe(StepView::of(&w.ledger), 0);
    for &a in &idx {
        feed_ack(&w, &mut small, w.ack(a, r, "v1"));
        feed_report(&w, &mut small, w.health(a, r, "v1", 0.9));
    }
    let ops = small.decide(0, true, 0);
    assert_eq!(ops.len(), idx.len());
    for op in &ops {
        let o = w.submit(Signer::Validator(0), op);
        assert!(o.accepted, "{:?}", o.reasons);
    }
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::Completed
    );
}

#[test]
fn not_yet_healthy_agents_are_not_recorded_and_no_data_is_claimed_at_the_deadline() {
    let (mut w, r, mut watcher) = setup();
    let idx = batch(&w, r);
    for &a in &idx {
        feed_ack(&w, &mut watcher, w.ack(a, r, "v1"));
    }
    // Only a few samples so far: not healthy yet, nothing to record.
    feed_report(&w, &mut watcher, w.health_with(idx[0], r, "v1", 0.9, 3));
    assert!(watcher.decide(5_000, true, 0).is_empty());
    let ops = watcher.decide(10_000, true, 0);
    let [Operation::NoData {
        agents, issued_seq, ..
    }] = ops.as_slice()
    else {
        panic!("expected one no-data claim, got {ops:?}");
    };
    assert_eq!(agents.len(), idx.len());
    assert_eq!(*issued_seq, w.step(r));
    assert!(
        watcher.decide(20_000, true, 0).is_empty(),
        "claimed once per step"
    );
    assert!(w.submit(Signer::Validator(0), &ops[0]).accepted);
}

#[test]
fn a_step_no_agent_answers_is_reported_stalled_so_a_dead_primary_is_replaced() {
    let (w, r, mut watcher) = setup();
    // The agents are alive: one of them reports (for the previous version).
    let a0 = batch(&w, r)[0];
    let hello = w.health(a0, r + 100, "v0", 0.9);
    let body = hello
        .open(|id| {
            w.ledger
                .config()
                .agents
                .iter()
                .find(|a| a.id == id)
                .map(|a| &a.key)
        })
        .expect("valid");
    watcher.report(hello.clone(), body.clone(), 19_000);
    let stalled = |ops: Vec<Operation>| {
        ops.into_iter()
            .filter(|o| matches!(o, Operation::Stalled { .. }))
            .collect::<Vec<_>>()
    };
    assert!(stalled(watcher.decide(19_999, false, 0)).is_empty());
    assert_eq!(
        stalled(watcher.decide(20_000, false, 0)),
        vec![Operation::Stalled {
            rollout: r,
            issued_seq: w.step(r),
            view: 0
        }]
    );
    assert!(
        stalled(watcher.decide(30_000, false, 0)).is_empty(),
        "once per stall period"
    );
    watcher.report(hello.clone(), body.clone(), 39_000);
    assert_eq!(stalled(watcher.decide(40_000, false, 0)).len(), 1);
    // Agents that went quiet do not make the leader a suspect.
    assert!(stalled(watcher.decide(70_000, false, 0)).is_empty());
    watcher.report(hello, body, 75_000);
    // Once an agent answers, the step is not stalled.
    let a = batch(&w, r)[0];
    feed_ack(&w, &mut watcher, w.ack(a, r, "v1"));
    assert!(watcher
        .decide(80_000, false, 0)
        .iter()
        .all(|o| !matches!(o, Operation::Stalled { .. })));
}

#[test]
fn reports_for_another_rollout_version_or_agent_are_ignored() {
    let (w, r, mut watcher) = setup();
    let idx = batch(&w, r);
    let outside = (0..6)
        .find(|i| !idx.contains(i))
        .expect("an agent outside batch 1");
    feed_report(&w, &mut watcher, w.health(idx[0], r + 1, "v1", 0.3));
    feed_report(&w, &mut watcher, w.health(idx[0], r, "v9", 0.3));
    feed_report(&w, &mut watcher, w.health(outside, r, "v1", 0.3));
    assert!(watcher.decide(0, false, 0).is_empty());
}

#[test]
fn the_leader_records_rollback_acks() {
    let (mut w, r, mut watcher) = setup();
    let idx = batch(&w, r);
    feed_report(&w, &mut watcher, w.health(idx[0], r, "v1", 0.3));
    let ops = watcher.decide(0, true, 0);
    assert!(w.submit(Signer::Validator(0), &ops[0]).accepted);
    watcher.observe(StepView::of(&w.ledger), 10);
    let step = watcher.step().cloned().expect("rolling back");
    assert_eq!(step.order.action, OrderAction::Rollback);
    for &a in &idx {
        let ack = w.ack_with(a, r, OrderAction::Rollback, "v0", AckOutcome::Done);
        feed_ack(&w, &mut watcher, ack);
    }
    let ops = watcher.decide(20, true, 0);
    assert!(
        matches!(ops.as_slice(), [Operation::RollbackDone { acks, .. }] if acks.len() == idx.len())
    );
    assert!(w.submit(Signer::Validator(0), &ops[0]).accepted);
    watcher.observe(StepView::of(&w.ledger), 30);
    assert!(watcher.step().is_none());
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::RolledBack
    );
}

/// In a compared canary step the leader carries the baseline agents' latest reports beside
/// the canary's progress (reports about another version are not kept), and the ledger
/// completes the step on them.
#[test]
fn a_compared_canary_step_carries_its_baseline_and_completes_on_it() {
    use crate::rollout::baseline::AnalysisSettings;
    let mut w = World::with_analysis(AnalysisSettings::default());
    let r = w.promote_to_canary("v1");
    let mut watcher = Watcher::new(settings());
    watcher.observe(StepView::of(&w.ledger), 0);
    let step = watcher.step().cloned().expect("a step");
    let canary = batch(&w, r);
    let others: Vec<usize> = (0..6).filter(|i| !canary.contains(i)).collect();
    assert_eq!(
        step.baseline.keys().cloned().collect::<Vec<_>>(),
        others
            .iter()
            .map(|&i| w.agents[i].0.id.clone())
            .collect::<Vec<_>>()
    );
    for &a in &others {
        feed_report(&w, &mut watcher, w.health(a, 0, "v0", 0.9));
    }
    // A baseline agent's report about a version the ledger did not put it on is not kept.
    feed_report(&w, &mut watcher, w.health(others[0], 7, "v7", 0.9));
    for &a in &canary {
        feed_ack(&w, &mut watcher, w.ack(a, r, "v1"));
        feed_report(&w, &mut watcher, w.health(a, r, "v1", 0.9));
    }
    let ops = watcher.decide(100, true, 0);
    let [Operation::RolloutProgress { baseline, acks, .. }] = ops.as_slice() else {
        panic!("one progress operation: {ops:?}");
    };
    assert_eq!((acks.len(), baseline.len()), (3, 3));
    assert!(baseline
        .iter()
        .all(|b| others.iter().any(|&i| w.agents[i].0.id == b.agent)));
    for op in &ops {
        let o = w.submit(Signer::Validator(0), op);
        assert!(o.accepted, "{:?}", o.reasons);
    }
    let rollout = &w.ledger.state().rollouts[&r];
    assert_eq!(
        rollout.status,
        RolloutStatus::Completed,
        "{}",
        rollout.reason
    );
    assert!(rollout.comparison.is_some());
}

/// With `analysis = "baseline"` the watcher judges the canary step by the floor the ledger
/// gives it: a report under the coherence threshold is no rollback evidence and, beside a
/// baseline as low, is recorded; the comparison then completes the step.
#[test]
fn a_baseline_only_canary_step_is_watched_by_the_floor_alone() {
    use crate::rollout::baseline::{Analysis, AnalysisSettings};
    let mut w = World::with_analysis(AnalysisSettings {
        analysis: Analysis::Baseline,
        ..AnalysisSettings::default()
    });
    let r = w.promote_to_canary("v1");
    let mut watcher = Watcher::new(settings());
    watcher.observe(StepView::of(&w.ledger), 0);
    let step = watcher.step().cloned().expect("a step");
    assert_eq!(step.thresholds, w.ledger.config().health.floor_only());
    let canary = batch(&w, r);
    for a in (0..6).filter(|i| !canary.contains(i)) {
        feed_report(&w, &mut watcher, w.health(a, 0, "v0", 0.5));
    }
    for &a in &canary {
        feed_ack(&w, &mut watcher, w.ack(a, r, "v1"));
        feed_report(&w, &mut watcher, w.health(a, r, "v1", 0.5));
    }
    let ops = watcher.decide(100, true, 0);
    assert!(
        ops.iter()
            .all(|o| matches!(o, Operation::RolloutProgress { .. }))
            && !ops.is_empty(),
        "{ops:?}"
    );
    for op in &ops {
        let o = w.submit(Signer::Validator(0), op);
        assert!(o.accepted, "{:?}", o.reasons);
    }
    let rollout = &w.ledger.state().rollouts[&r];
    assert_eq!(
        rollout.status,
        RolloutStatus::Completed,
        "{}",
        rollout.reason
    );
}

/// Auto-rollback evidence is cut to one operation's byte budget: one report is proof enough.
#[test]
fn auto_rollback_evidence_fits_one_operation() {
    let (w, r, _) = setup();
    let one = w.health(batch(&w, r)[0], r, "v1", 0.3).encoded_len();
    let mut watcher = Watcher::new(WatchSettings {
        max_op_bytes: one * 2 + one / 2,
        ..settings()
    });
    watcher.observe(StepView::of(&w.ledger), 0);
    for a in batch(&w, r) {
        feed_report(&w, &mut watcher, w.health(a, r, "v1", 0.3));
    }
    let ops = watcher.decide(100, false, 0);
    assert!(
        matches!(ops.as_slice(), [Operation::AutoRollback { reports, .. }] if reports.len() == 2),
        "{ops:?}"
    );
}
