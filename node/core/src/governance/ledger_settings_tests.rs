//! Settings by governance: an approved proposal changes the gates releases are registered and
//! promoted against and the thresholds rollouts are judged by; every check a validator makes
//! refuses what it should (nothing named, nothing changing, past a floor, invalid, while a
//! rollout is in flight, from a validator); a rejected one changes nothing; the digest covers
//! a change and only once there is one; a snapshot carries it.

use super::ledger::{ProposalStatus, SettingsChange, Signer, StateDigest};
use super::ledger_world::{promotion, World};
use super::{Operation, Stage};
use crate::consensus::StateMachine as _;
use crate::governance::ledger::Ledger;

/// Proposes `change` and has validators 0..3 vote `approve`; the proposal's final status.
fn decide(w: &mut World, change: SettingsChange, approve: bool) -> ProposalStatus {
    w.decide(Operation::ProposeSettings { change }, approve)
}

/// The world's releases have one unit at quality 0.82 (and one at 0.80).
fn quality(min: f64) -> SettingsChange {
    SettingsChange {
        min_quality: Some(min),
        ..SettingsChange::default()
    }
}

#[test]
fn approved_gates_refuse_what_the_old_gates_let_through() {
    let mut w = World::new();
    w.register("r1");
    assert_eq!(
        decide(&mut w, quality(0.85), true),
        ProposalStatus::Approved
    );
    assert_eq!(w.ledger.gates().min_quality, 0.85);
    assert_eq!(
        w.ledger.config().gates.min_quality,
        0.80,
        "the genesis is unchanged"
    );
    let o = w.request(Operation::RegisterRelease {
        release: super::ledger_world::release("r2"),
    });
    // Fused against the old gates: the requester is told to fuse against the cluster's (and
    // fusion against 0.85 finds no textgen artifact that passes).
    assert!(!o.accepted, "registered under the old gates");
    assert!(
        o.reasons
            .iter()
            .any(|r| r.contains("min_quality: 0.85") && r.contains("fuse the release again")),
        "{:?}",
        o.reasons
    );
    // A release registered before still opens a proposal, but validators re-check its gates.
    let o = w.request(promotion("r1", Stage::Canary));
    let p = o.proposal.expect("a proposal");
    let (approve, reasons) = w.ledger.evaluate(p);
    assert!(!approve);
    assert!(
        reasons.iter().any(|r| r.contains("0.85")),
        "names the new bound: {reasons:?}"
    );
}

#[test]
fn approved_thresholds_judge_the_next_rollout() {
    let mut w = World::new();
    let change = SettingsChange {
        min_coherence: Some(0.95),
        breach_samples: Some(3),
        ..SettingsChange::default()
    };
    assert_eq!(decide(&mut w, change, true), ProposalStatus::Approved);
    let health = w.ledger.health();
    assert_eq!((health.min_coherence, health.breach_samples), (0.95, 3));
    let rollout = w.promote_to_canary("r1");
    let r = &w.ledger.state().rollouts[&rollout];
    assert_eq!(w.ledger.step_thresholds(r).min_coherence, 0.95);
    // Coherence 0.9 was healthy under the genesis's 0.7; it no longer proves progress.
    let batch = r.batches[0].clone();
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    let op = Operation::RolloutProgress {
        rollout,
        batch: 1,
        acks: idx.iter().map(|&a| w.ack(a, rollout, "r1")).collect(),
        reports: idx
            .iter()
            .map(|&a| w.health(a, rollout, "r1", 0.9))
            .collect(),
        baseline: Vec::new(),
    };
    let o = w.submit(Signer::Validator(0), &op);
    assert!(!o.accepted, "0.9 coherence counted as healthy");
}

#[test]
fn the_latency_gate_also_bounds_agents_response_time() {
    let mut w = World::new();
    let change = SettingsChange {
        max_latency_ms_p95: Some(150.0),
        ..SettingsChange::default()
    };
    assert_eq!(decide(&mut w, change, true), ProposalStatus::Approved);
    assert_eq!(w.ledger.gates().max_latency_ms_p95, 150.0);
    assert_eq!(w.ledger.health().max_response_ms_p95, 150.0);
}

#[test]
fn validators_refuse_what_should_never_apply() {
    let cases: Vec<(SettingsChange, &str)> = vec![
        (SettingsChange::default(), "at least one"),
        (quality(0.80), "already in force"),
        (quality(0.4), "outside what a proposal may set (0.5 to 1)"),
        (quality(1.5), "between 0 and 1"),
        (
            SettingsChange {
                min_safety: Some(0.85),
                ..SettingsChange::default()
            },
            "min_safety 0.85 is outside",
        ),
        (
            SettingsChange {
                health_min_safety: Some(0.5),
                ..SettingsChange::default()
            },
            "health_min_safety 0.5 is outside",
        ),
        (
            SettingsChange {
                max_error_rate: Some(0.3),
                ..SettingsChange::default()
            },
            "max_error_rate 0.3 is outside",
        ),
        (
            SettingsChange {
                min_coherence: Some(0.2),
                ..SettingsChange::default()
            },
            "min_coherence 0.2 is outside",
        ),
        (
            SettingsChange {
                max_latency_ms_p95: Some(20_000.0),
                ..SettingsChange::default()
            },
            "max_latency_ms_p95 20000 is outside",
        ),
        (
            SettingsChange {
                max_cost_per_1k_tokens: Some(500.0),
                ..SettingsChange::default()
            },
            "max_cost_per_1k_tokens 500 is outside",
        ),
        (
            SettingsChange {
                breach_samples: Some(0),
                ..SettingsChange::default()
            },
            "breach_samples",
        ),
    ];
    for (change, why) in cases {
        let mut w = World::new();
        let digest = w.ledger.digest();
        let o = w.request(Operation::ProposeSettings {
            change: change.clone(),
        });
        assert!(!o.accepted, "{change:?} was accepted");
        assert!(
            o.reasons.iter().any(|r| r.contains(why)),
            "{change:?}: {:?} does not say {why:?}",
            o.reasons
        );
        assert!(w.ledger.state().settings.is_none());
        assert_ne!(w.ledger.digest(), digest, "the refusal is journaled");
    }
    // Validators do not propose; nothing changes while a rollout is judged by the settings.
    let mut w = World::new();
    let o = w.submit(
        Signer::Validator(0),
        &Operation::ProposeSettings {
            change: quality(0.85),
        },
    );
    assert!(!o.accepted);
    w.promote_to_canary("r1");
    let o = w.request(Operation::ProposeSettings {
        change: quality(0.85),
    });
    assert!(!o.accepted);
    assert!(
        o.reasons.iter().any(|r| r.contains("changes wait for it")),
        "{:?}",
        o.reasons
    );
}

#[test]
fn one_change_at_a_time_and_a_change_checked_again_when_it_applies() {
    let mut w = World::new();
    let first = w.request(Operation::ProposeSettings {
        change: quality(0.85),
    });
    let p = first.proposal.expect("proposal");
    let o = w.request(Operation::ProposeSettings {
        change: quality(0.9),
    });
    assert!(!o.accepted, "a second change while the first is voted on");
    // A rollout starting under the open proposal would be judged by settings that change under
    // it: plant one (no operation can open it while the proposal is pending), then approve.
    let rollout = {
        let mut other = World::new();
        let id = other.promote_to_canary("r1");
        other.ledger.state().rollouts[&id].clone()
    };
    w.ledger
        .state_mut()
        .rollouts
        .insert(rollout.id, rollout.clone());
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    assert!(w.ledger.state().settings.is_none(), "applied mid-rollout");
    let events = &w.ledger.journal().events;
    assert!(
        events.iter().any(|e| e.kind == "settings_not_applied"),
        "the refusal at approval is an event"
    );
}

#[test]
fn a_rejected_change_changes_nothing_and_a_snapshot_carries_an_approved_one() {
    let mut w = World::new();
    let genesis_digest = Ledger::new(w.ledger.config().clone()).digest();
    assert_eq!(
        decide(&mut w, quality(0.85), false),
        ProposalStatus::Rejected
    );
    assert!(w.ledger.state().settings.is_none());
    assert_eq!(w.ledger.gates().min_quality, 0.80);
    assert_eq!(
        decide(&mut w, quality(0.85), true),
        ProposalStatus::Approved
    );
    assert!(
        w.ledger
            .journal()
            .events
            .iter()
            .any(|e| e.kind == "settings_changed" && e.detail == "settings: min_quality 0.85"),
        "the change is an event"
    );
    let snapshot = w.ledger.snapshot().bytes().to_vec();
    let mut fresh = Ledger::new(w.ledger.config().clone());
    assert_eq!(fresh.digest(), genesis_digest);
    fresh.restore(&snapshot).expect("restores");
    assert_eq!(fresh.gates().min_quality, 0.85);
    assert_eq!(fresh.digest(), w.ledger.digest());
    // The settings are in the digest: the same state with the genesis's settings differs.
    fresh.state_mut().settings = None;
    assert_ne!(fresh.digest(), w.ledger.digest());
}

/// The ledger's digest with the state's maps digested by `mode`.
fn digest_by(w: &World, mode: StateDigest) -> crate::consensus::Digest {
    crate::consensus::Digest::of_parts(&[
        b"ledger",
        &w.ledger.state().digest(mode),
        &w.ledger.journal().digest_parts(),
    ])
}

/// A cluster whose genesis predates the digest tree (the walk) moves to it by vote, at one
/// sequence number on every replica: before, its digest is the walk's; from the approval on,
/// the tree's; a snapshot taken after restores a fresh ledger of the same genesis to the same
/// digest; asking again is refused (nothing changes).
#[test]
fn the_state_digest_moves_from_the_walk_to_the_tree_by_vote() {
    let mut w = World::with_state_digest(StateDigest::Walk);
    w.register("r1");
    assert_eq!(w.ledger.digest(), digest_by(&w, StateDigest::Walk));
    assert_ne!(w.ledger.digest(), digest_by(&w, StateDigest::Tree));
    let change = SettingsChange {
        state_digest: Some(StateDigest::Tree),
        ..SettingsChange::default()
    };
    assert_eq!(
        decide(&mut w, change.clone(), true),
        ProposalStatus::Approved
    );
    assert_eq!(w.ledger.settings().state_digest, StateDigest::Tree);
    assert_eq!(w.ledger.config().state_digest, StateDigest::Walk);
    assert_eq!(w.ledger.digest(), digest_by(&w, StateDigest::Tree));
    w.register("r2");
    assert_eq!(w.ledger.digest(), digest_by(&w, StateDigest::Tree));

    let snapshot = w.ledger.snapshot().bytes().to_vec();
    let mut fresh = Ledger::new(w.ledger.config().clone());
    fresh.restore(&snapshot).expect("restores");
    assert_eq!(fresh.digest(), w.ledger.digest());
    assert_eq!(
        w.ledger.snapshot_digest(&snapshot).expect("decodes"),
        w.ledger.digest()
    );

    let o = w.request(Operation::ProposeSettings { change });
    assert!(!o.accepted);
    assert!(
        o.reasons.iter().any(|r| r.contains("already in force")),
        "{:?}",
        o.reasons
    );
}
