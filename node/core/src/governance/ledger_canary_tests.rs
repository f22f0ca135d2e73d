//! The canary judged against its baseline in the ledger: a canary measurably worse than the
//! agents still on the running version (yet inside every threshold) rolls back naming the
//! metric, both medians and the p-value; one as good completes; too few samples is
//! inconclusive and does what the settings say; baseline reports are checked like any evidence.

use super::ledger::{RolloutStatus, Signer};
use super::ledger_world::World;
use super::{Operation, Stage};
use crate::rollout::baseline::{
    Analysis, AnalysisSettings, BaselineSettings, BaselineVerdict, Metric, OnInconclusive,
};
use crate::rollout::evidence::{HealthBody, HealthReport, Sample};

/// Six samples per report, three agents a side: 18 each.
const SIDE: u64 = 18;

fn comparing(on_inconclusive: OnInconclusive) -> World {
    comparing_in(Analysis::Both, on_inconclusive)
}

fn comparing_in(analysis: Analysis, on_inconclusive: OnInconclusive) -> World {
    World::with_analysis(settings(analysis, on_inconclusive))
}

fn settings(analysis: Analysis, on_inconclusive: OnInconclusive) -> AnalysisSettings {
    AnalysisSettings {
        analysis,
        baseline: BaselineSettings {
            min_samples: SIDE,
            ..BaselineSettings::default()
        },
        on_inconclusive,
    }
}

/// Six samples around `coherence` (spread so ranks are not all tied).
fn samples(coherence: f64, safety: f64) -> Vec<Sample> {
    (0..6)
        .map(|i| Sample {
            coherence: coherence + 0.005 * f64::from(i),
            error_rate: 0.01,
            response_ms: 100.0 + f64::from(i),
            safety,
            tasks_per_minute: 30.0,
        })
        .collect()
}

fn report(
    w: &World,
    agent: usize,
    rollout: u64,
    version: &str,
    report: u64,
    c: f64,
) -> HealthReport {
    report_at_safety(w, agent, rollout, version, report, c, 0.98)
}

fn report_at_safety(
    w: &World,
    agent: usize,
    rollout: u64,
    version: &str,
    report: u64,
    c: f64,
    safety: f64,
) -> HealthReport {
    let (a, key) = &w.agents[agent];
    let latest = samples(c, safety);
    let body = HealthBody {
        agent: a.id.clone(),
        rollout,
        version: version.into(),
        report,
        samples: 30,
        window: 6,
        coherence_mean: c,
        error_rate_mean: 0.01,
        response_ms_p95: 105.0,
        safety_min: safety,
        tasks_per_minute: 30.0,
        latest,
    };
    HealthReport::sign(&body, key)
}

/// Records the canary batch (healthy at coherence `canary`) with baseline reports of the
/// other agents (coherence `baseline`, on v0); the outcome's acceptance and reasons.
fn record_canary(
    w: &mut World,
    rollout: u64,
    canary: f64,
    baseline: Option<f64>,
) -> (bool, Vec<String>) {
    let batch = w.ledger.state().rollouts[&rollout].batches[0].clone();
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    let others: Vec<usize> = (0..w.agents.len()).filter(|i| !idx.contains(i)).collect();
    let acks = idx.iter().map(|&a| w.ack(a, rollout, "r1")).collect();
    let reports = idx
        .iter()
        .map(|&a| report(w, a, rollout, "r1", 1, canary))
        .collect();
    let base = baseline.map_or_else(Vec::new, |c| {
        others
            .iter()
            .map(|&a| report(w, a, 0, "v0", 1, c))
            .collect()
    });
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout,
            batch: 1,
            acks,
            reports,
            baseline: base,
        },
    );
    (o.accepted, o.reasons)
}

#[test]
fn a_canary_worse_than_its_baseline_rolls_back_naming_the_metric() {
    let mut w = comparing(OnInconclusive::Rollback);
    let id = w.promote_to_canary("r1");
    assert_eq!(w.ledger.baseline_agents(id).len(), 3);
    // 0.78 against 0.90: both far above the 0.7 threshold.
    let (ok, reasons) = record_canary(&mut w, id, 0.78, Some(0.90));
    assert!(ok, "{reasons:?}");
    let r = &w.ledger.state().rollouts[&id];
    assert_eq!(r.status, RolloutStatus::RollingBack);
    assert!(
        r.reason.starts_with("canary worse than its baseline")
            && r.reason
                .contains("coherence: canary median 0.790000 vs baseline 0.910000")
            && r.reason.contains("(worse)"),
        "{}",
        r.reason
    );
    let c = r.comparison.as_ref().expect("recorded");
    assert!(
        matches!(c.verdict, BaselineVerdict::Fail { score: 80 }),
        "{c:?}"
    );
    let coherence = c
        .metrics
        .iter()
        .find(|m| m.metric == Metric::Coherence)
        .expect("metric");
    assert!(
        coherence.worse && coherence.p_value < 0.001,
        "{coherence:?}"
    );
    assert_eq!(
        (coherence.canary_samples, coherence.baseline_samples),
        (SIDE, SIDE)
    );
    assert!(c
        .metrics
        .iter()
        .filter(|m| m.metric != Metric::Coherence)
        .all(|m| !m.worse));
    // The rollback covers the canary agents, as any rollback does.
    assert_eq!(r.rollback_agents.len(), 3);
    assert!(w
        .ledger
        .journal()
        .events
        .iter()
        .any(|e| e.kind == "baseline_rollback"));
}

#[test]
fn a_canary_as_good_as_its_baseline_completes() {
    let mut w = comparing(OnInconclusive::Rollback);
    let id = w.promote_to_canary("r1");
    let (ok, reasons) = record_canary(&mut w, id, 0.90, Some(0.90));
    assert!(ok, "{reasons:?}");
    let r = &w.ledger.state().rollouts[&id];
    assert_eq!(r.status, RolloutStatus::Completed, "{}", r.reason);
    assert!(matches!(
        r.comparison.as_ref().map(|c| &c.verdict),
        Some(BaselineVerdict::Pass { score: 100 })
    ));
    assert!(w
        .ledger
        .journal()
        .events
        .iter()
        .any(|e| e.kind == "baseline_passed" && e.detail.contains("coherence: canary median")));
}

#[test]
fn an_inconclusive_comparison_rolls_back_or_proceeds_as_configured() {
    let mut w = comparing(OnInconclusive::Rollback);
    let id = w.promote_to_canary("r1");
    let (ok, reasons) = record_canary(&mut w, id, 0.90, None);
    assert!(ok, "{reasons:?}");
    let r = &w.ledger.state().rollouts[&id];
    assert_eq!(r.status, RolloutStatus::RollingBack);
    assert_eq!(
        r.reason,
        "canary comparison inconclusive: 18 canary and 0 baseline samples; the comparison needs 18 of each"
    );
    let mut w = comparing(OnInconclusive::Proceed);
    let id = w.promote_to_canary("r1");
    assert!(record_canary(&mut w, id, 0.90, None).0);
    assert_eq!(
        w.ledger.state().rollouts[&id].status,
        RolloutStatus::Completed
    );
    // With thresholds only, nothing is compared and no baseline is asked for.
    let mut w = World::new();
    let id = w.promote_to_canary("r1");
    assert!(w.ledger.baseline_agents(id).is_empty());
    let (ok, reasons) = record_canary(&mut w, id, 0.78, Some(0.90));
    assert!(!ok);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("is not compared with a baseline")),
        "{reasons:?}"
    );
    assert!(record_canary(&mut w, id, 0.78, None).0);
    assert_eq!(
        w.ledger.state().rollouts[&id].status,
        RolloutStatus::Completed
    );
}

#[test]
fn baseline_reports_are_checked_and_the_newest_kept() {
    let mut w = comparing(OnInconclusive::Rollback);
    let id = w.promote_to_canary("r1");
    let batch = w.ledger.state().rollouts[&id].batches[0].clone();
    let canary = w.agent_index(&batch[0]);
    let other = (0..6)
        .find(|i| !batch.contains(&w.agents[*i].0.id))
        .expect("baseline agent");
    let progress = |w: &mut World, baseline: Vec<HealthReport>| {
        let acks = vec![w.ack(canary, id, "r1")];
        let reports = vec![report(w, canary, id, "r1", 1, 0.9)];
        w.submit(
            Signer::Validator(0),
            &Operation::RolloutProgress {
                rollout: id,
                batch: 1,
                acks,
                reports,
                baseline,
            },
        )
    };
    // A canary agent is no baseline; a baseline agent's report about another version does
    // not count; a report signed by another key does not open.
    for (bad, why) in [
        (
            report(&w, canary, id, "r1", 2, 0.9),
            "is not a baseline agent",
        ),
        (
            report(&w, other, 0, "r9", 2, 0.9),
            "the ledger has it on v0",
        ),
    ] {
        let o = progress(&mut w, vec![bad]);
        assert!(!o.accepted);
        assert!(
            o.reasons.iter().any(|r| r.contains(why)),
            "{why}: {:?}",
            o.reasons
        );
    }
    let mut forged = report(&w, other, 0, "v0", 2, 0.9);
    forged.agent = w.agents[(other + 1) % 6].0.id.clone();
    assert!(!progress(&mut w, vec![forged]).accepted);
    assert!(w.ledger.state().rollouts[&id].baseline.is_empty());
    // The newest report of an agent is kept; an older one arriving later does not replace it.
    let newest = report(&w, other, 0, "v0", 5, 0.91);
    assert!(progress(&mut w, vec![newest]).accepted);
    let agent = w.agents[other].0.id.clone();
    let kept = |w: &World| w.ledger.state().rollouts[&id].baseline[&agent].report;
    assert_eq!(kept(&w), 5);
    let older = report(&w, other, 0, "v0", 4, 0.91);
    let o = w.submit(
        Signer::Validator(1),
        &Operation::RolloutProgress {
            rollout: id,
            batch: 1,
            acks: vec![w.ack(canary, id, "r1")],
            reports: vec![report(&w, canary, id, "r1", 1, 0.9)],
            baseline: vec![older],
        },
    );
    // The agent is already recorded, so the operation records nobody new; the baseline is
    // still the newest.
    assert!(!o.accepted, "{o:?}");
    assert_eq!(kept(&w), 5);
    // Recording the next canary agent, with an older report and one of the same number but
    // other figures: neither replaces the kept one (only a newer number does).
    let second = w.agent_index(&batch[1]);
    let o = w.submit(
        Signer::Validator(1),
        &Operation::RolloutProgress {
            rollout: id,
            batch: 1,
            acks: vec![w.ack(second, id, "r1")],
            reports: vec![report(&w, second, id, "r1", 1, 0.9)],
            baseline: vec![
                report(&w, other, 0, "v0", 4, 0.5),
                report(&w, other, 0, "v0", 5, 0.5),
            ],
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    let body = &w.ledger.state().rollouts[&id].baseline[&agent];
    assert_eq!((body.report, body.coherence_mean), (5, 0.91));
}

/// A rollout keeps at most [`MAX_BASELINE_AGENTS`] baseline agents, however many reports the
/// validators carry (a fleet of 70: 67 baseline agents offered, 64 kept).
#[test]
fn the_baseline_is_capped_at_its_agent_limit() {
    use crate::governance::ledger::MAX_BASELINE_AGENTS;
    let mut w = World::with_fleet(70, settings(Analysis::Both, OnInconclusive::Rollback));
    let id = w.promote_to_canary("r1");
    let batch = w.ledger.state().rollouts[&id].batches[0].clone();
    assert_eq!(batch.len(), 3, "one agent per specialty");
    let canary = w.agent_index(&batch[0]);
    let baseline: Vec<HealthReport> = (0..70)
        .filter(|i| !batch.contains(&w.agents[*i].0.id))
        .map(|i| report(&w, i, 0, "v0", 1, 0.9))
        .collect();
    assert_eq!(baseline.len(), 67);
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout: id,
            batch: 1,
            acks: vec![w.ack(canary, id, "r1")],
            reports: vec![report(&w, canary, id, "r1", 1, 0.9)],
            baseline,
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(
        w.ledger.state().rollouts[&id].baseline.len(),
        MAX_BASELINE_AGENTS
    );
}

#[test]
fn an_inconclusive_canary_with_pause_waits_for_approval_to_complete_or_an_abort() {
    for approve in [true, false] {
        let mut w = comparing(OnInconclusive::Pause);
        let id = w.promote_to_canary("r1");
        assert!(record_canary(&mut w, id, 0.90, None).0);
        let r = &w.ledger.state().rollouts[&id];
        // The only batch is deployed and healthy by the thresholds; completing waits.
        assert_eq!(
            (r.status, r.completed, r.paused_before()),
            (RolloutStatus::InProgress, 1, Some(2))
        );
        assert_eq!(r.current_batch(), None, "no order while paused");
        assert_eq!(w.ledger.state().current.get(&Stage::Canary), None);
        let paused = w
            .ledger
            .journal()
            .events
            .iter()
            .find(|e| e.kind == "rollout_paused")
            .map(|e| e.detail.clone())
            .unwrap_or_default();
        assert!(
            paused.starts_with("after its last batch (1), before completing"),
            "{paused}"
        );
        assert!(w
            .ledger
            .journal()
            .events
            .iter()
            .any(|e| e.kind == "baseline_inconclusive"
                && e.detail
                    .ends_with("on_inconclusive = pause: waiting for approval")));
        let o = if approve {
            w.request(Operation::Approve { rollout: id })
        } else {
            w.request(Operation::Abort {
                rollout: id,
                reason: "no baseline to judge by".into(),
            })
        };
        assert!(o.accepted, "{o:?}");
        w.approve(o.proposal.expect("proposal"));
        let r = &w.ledger.state().rollouts[&id];
        if approve {
            assert_eq!(r.status, RolloutStatus::Completed, "{}", r.reason);
            assert_eq!(
                w.ledger
                    .state()
                    .current
                    .get(&Stage::Canary)
                    .map(String::as_str),
                Some("r1")
            );
        } else {
            assert_eq!(r.status, RolloutStatus::RollingBack);
            assert_eq!(r.rollback_agents.len(), 3, "the canary agents go back");
        }
    }
}

/// `analysis = "baseline"`: the canary step needs only the safety floor; the comparison judges
/// the rest. Coherence 0.60 (under the 0.7 threshold) passes beside a baseline as low, and is
/// rolled back beside a better one; a threshold breach is no rollback evidence in that step,
/// a safety breach still is.
#[test]
fn a_baseline_only_canary_step_is_judged_by_the_comparison_and_the_safety_floor() {
    let mut both = comparing(OnInconclusive::Rollback);
    let id = both.promote_to_canary("r1");
    let (ok, reasons) = record_canary(&mut both, id, 0.60, Some(0.60));
    assert!(
        !ok && reasons.iter().any(|r| r.contains("not healthy")),
        "{reasons:?}"
    );

    let mut w = comparing_in(Analysis::Baseline, OnInconclusive::Rollback);
    let id = w.promote_to_canary("r1");
    let (ok, reasons) = record_canary(&mut w, id, 0.60, Some(0.60));
    assert!(ok, "{reasons:?}");
    assert_eq!(
        w.ledger.state().rollouts[&id].status,
        RolloutStatus::Completed
    );

    let mut w = comparing_in(Analysis::Baseline, OnInconclusive::Rollback);
    let id = w.promote_to_canary("r1");
    let canary = w.agent_index(&w.ledger.state().rollouts[&id].batches[0][0]);
    let low = report(&w, canary, id, "r1", 1, 0.60);
    let o = w.submit(
        Signer::Validator(0),
        &Operation::AutoRollback {
            rollout: id,
            reports: vec![low],
            acks: vec![],
        },
    );
    assert!(
        !o.accepted && o.reasons.iter().any(|r| r.contains("is healthy")),
        "{o:?}"
    );
    let unsafe_report = report_at_safety(&w, canary, id, "r1", 2, 0.90, 0.5);
    let o = w.submit(
        Signer::Validator(0),
        &Operation::AutoRollback {
            rollout: id,
            reports: vec![unsafe_report],
            acks: vec![],
        },
    );
    assert!(o.accepted, "{o:?}");
    assert_eq!(
        w.ledger.state().rollouts[&id].status,
        RolloutStatus::RollingBack
    );

    let mut w = comparing_in(Analysis::Baseline, OnInconclusive::Rollback);
    let id = w.promote_to_canary("r1");
    assert!(record_canary(&mut w, id, 0.60, Some(0.90)).0);
    let r = &w.ledger.state().rollouts[&id];
    assert_eq!(r.status, RolloutStatus::RollingBack);
    assert!(
        r.reason.starts_with("canary worse than its baseline"),
        "{}",
        r.reason
    );
}
