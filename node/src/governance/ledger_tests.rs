//! Ledger scenarios and property tests.

use proptest::prelude::*;

use super::fusion::fuse;
use super::gates::Gates;
use super::ledger::*;
use super::manifest::parse_manifest;
use super::operation::Operation;
use super::release::FusedRelease;
use super::stage::{Stage, Tongue};
use crate::consensus::StateMachine;
use crate::crypto::{Keypair, PublicKey};
use crate::rollout::evidence::{
    AckBody, AckOutcome, DeployAck, HealthBody, HealthReport, OrderAction, Sample,
    MAX_LATEST_SAMPLES,
};
use crate::rollout::health::HealthThresholds;
use crate::rollout::plan::FleetAgent;

const N: usize = 4;

pub(crate) struct World {
    pub ledger: Ledger,
    requester: Keypair,
    validators: Vec<Keypair>,
    pub agents: Vec<(FleetAgent, Keypair)>,
    seq: u64,
    nonce: u64,
}

pub(crate) fn release(version: &str) -> FusedRelease {
    let m = |p: &str, role: &str, q: f64| {
        let text = format!(
            r#"{{"provider": "{p}", "artifacts": [{{"id": "{p}-model", "role": "{role}", "uri": "u://{p}",
                "metrics": {{"quality": {q}, "safety": 0.98, "latency_ms_p95": 90, "cost_per_1k_tokens": 0.5}}}}]}}"#
        );
        parse_manifest(p, &text).expect("manifest")
    };
    let ms = vec![
        m("hf", "textgen", 0.82),
        m("gcp", "embed", 0.86),
        m("aws", "runtime", 0.80),
    ];
    fuse(&ms, Gates::default(), Some(version.into()), "t".into())
        .0
        .expect("passes")
}

impl World {
    pub fn new() -> Self {
        let validators: Vec<Keypair> = (0..N)
            .map(|i| Keypair::from_label(&format!("val{i}")))
            .collect();
        let specialties = ["code_execute", "doc_plan", "memory_storage"];
        let agents: Vec<(FleetAgent, Keypair)> = (0..6)
            .map(|i| {
                let key = Keypair::from_label(&format!("agent{i}"));
                (
                    FleetAgent {
                        id: format!("agent-{i}"),
                        specialty: specialties[i % 3].into(),
                        key: key.public(),
                    },
                    key,
                )
            })
            .collect();
        let cfg = LedgerConfig {
            validators: validators.iter().map(Keypair::public).collect(),
            known_good: vec!["v0".into()],
            gates: Gates::default(),
            vote_window_seqs: 50,
            agents: agents.iter().map(|(a, _)| a.clone()).collect(),
            health: HealthThresholds::default(),
        };
        World {
            ledger: Ledger::new(cfg),
            requester: Keypair::from_label("requester"),
            validators,
            agents,
            seq: 0,
            nonce: 0,
        }
    }

    pub fn submit(&mut self, signer: Signer, op: &Operation) -> Outcome {
        self.seq += 1;
        self.nonce += 1;
        let key = match signer {
            Signer::Validator(i) => self.validators.get(i as usize).map_or_else(
                || Keypair::from_label(&format!("val{i}")).public(),
                Keypair::public,
            ),
            Signer::Requester(k) => k,
        };
        self.ledger
            .apply_operation(self.seq, signer, &key, self.nonce, &op.to_bytes())
    }

    pub fn request(&mut self, op: Operation) -> Outcome {
        let k = self.requester.public();
        self.submit(Signer::Requester(k), &op)
    }

    pub fn vote(&mut self, v: u32, proposal: u64, approve: bool) -> Outcome {
        self.submit(
            Signer::Validator(v),
            &Operation::Vote {
                proposal,
                approve,
                reasons: vec!["checked".into()],
            },
        )
    }

    pub fn health(
        &self,
        agent: usize,
        rollout: u64,
        version: &str,
        coherence: f64,
    ) -> HealthReport {
        self.health_with(agent, rollout, version, coherence, 30)
    }

    pub fn health_with(
        &self,
        agent: usize,
        rollout: u64,
        version: &str,
        coherence: f64,
        samples: u32,
    ) -> HealthReport {
        let (a, key) = &self.agents[agent];
        let s = Sample {
            coherence,
            error_rate: 0.01,
            response_ms: 120.0,
            safety: 0.97,
            tasks_per_minute: 20.0,
        };
        let window = samples.min(30);
        let body = HealthBody {
            agent: a.id.clone(),
            rollout,
            version: version.into(),
            report: 1,
            samples,
            window,
            coherence_mean: coherence,
            error_rate_mean: 0.01,
            response_ms_p95: 120.0,
            safety_min: 0.97,
            tasks_per_minute: 20.0,
            latest: vec![s; (window as usize).min(MAX_LATEST_SAMPLES)],
        };
        HealthReport::sign(&body, key)
    }

    pub fn step(&self, rollout: u64) -> u64 {
        self.ledger.state().rollouts[&rollout].step_seq
    }

    pub fn ack_with(
        &self,
        agent: usize,
        rollout: u64,
        action: OrderAction,
        version: &str,
        outcome: AckOutcome,
    ) -> DeployAck {
        let (a, key) = &self.agents[agent];
        DeployAck::sign(
            &AckBody {
                agent: a.id.clone(),
                rollout,
                action,
                issued_seq: self.step(rollout),
                version: version.into(),
                outcome,
                detail: String::new(),
            },
            key,
        )
    }

    pub fn ack(&self, agent: usize, rollout: u64, version: &str) -> DeployAck {
        self.ack_with(
            agent,
            rollout,
            OrderAction::Deploy,
            version,
            AckOutcome::Done,
        )
    }

    pub fn agent_index(&self, id: &str) -> usize {
        self.agents
            .iter()
            .position(|(a, _)| a.id == id)
            .expect("agent")
    }

    /// Registers `version` and gets it approved to canary; returns the rollout id.
    pub fn promote_to_canary(&mut self, version: &str) -> u64 {
        assert!(
            self.request(Operation::RegisterRelease {
                release: release(version)
            })
            .accepted
        );
        let o = self.request(Operation::Promote {
            version: version.into(),
            to: Stage::Canary,
            rollback_to: "v0".into(),
        });
        assert!(o.accepted, "{:?}", o.reasons);
        let p = o.proposal.expect("proposal");
        self.vote(0, p, true);
        self.vote(1, p, true);
        self.vote(2, p, true)
            .rollout
            .expect("approved at quorum opens a rollout")
    }

    pub fn complete_batches(&mut self, rollout: u64, version: &str) {
        let batches = self.ledger.state().rollouts[&rollout].batches.clone();
        for (i, batch) in batches.iter().enumerate() {
            let idx: Vec<usize> = batch.iter().map(|id| self.agent_index(id)).collect();
            let acks = idx.iter().map(|&a| self.ack(a, rollout, version)).collect();
            let reports = idx
                .iter()
                .map(|&a| self.health(a, rollout, version, 0.9))
                .collect();
            let o = self.submit(
                Signer::Validator(0),
                &Operation::RolloutProgress {
                    rollout,
                    batch: i as u32 + 1,
                    acks,
                    reports,
                },
            );
            assert!(o.accepted, "{:?}", o.reasons);
        }
    }
}

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
    });
    assert_eq!(
        skip.reasons,
        vec!["v1 is in staging; it can only be promoted to canary"]
    );
    let no_plan = w.request(Operation::Promote {
        version: "v1".into(),
        to: Stage::Canary,
        rollback_to: "v9".into(),
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
        },
    );
    assert!(!by_validator.accepted);
    assert!(
        w.request(Operation::Promote {
            version: "v1".into(),
            to: Stage::Canary,
            rollback_to: "v0".into()
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
    let outside = (0..6)
        .find(|i| !w.ledger.state().rollouts[&r].batches[0].contains(&w.agents[*i].0.id))
        .expect("an agent outside batch 1");
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
    let failed = w.ack_with(a, r, OrderAction::Deploy, "v1", AckOutcome::Failed);
    let o = w.submit(
        Signer::Validator(2),
        &Operation::AutoRollback {
            rollout: r,
            reports: vec![],
            acks: vec![failed],
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    let order = w.ledger.current_order(r).expect("rollback order");
    assert_eq!(order.action, OrderAction::Rollback);
    assert_eq!(order.version, "v0");
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
        w.ledger.state().releases["v1"].release.digest
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
            },
        );
        assert!(o.accepted, "{:?}", o.reasons);
    }
    assert_eq!(w.ledger.state().current[&Stage::Production], "v0");
    assert_eq!(w.ledger.state().releases["v1"].stage, Stage::Staging);
    assert!(w.ledger.state().assigned.values().all(|v| v == "v0"));
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
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(w.ledger.state().rollouts[&r].replace_view, None);
}
