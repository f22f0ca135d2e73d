//! Ledger scenarios and property tests.

use proptest::prelude::*;

use super::fusion::fuse;
use super::gates::Gates;
use super::ledger::*;
use super::manifest::parse_manifest;
use super::operation::{AckBody, AgentSigned, HealthBody, Operation, ACK_KIND, HEALTH_KIND};
use super::release::FusedRelease;
use super::stage::{Stage, Tongue};
use crate::consensus::StateMachine;
use crate::crypto::{Keypair, PublicKey};
use crate::rollout::plan::FleetAgent;

const N: usize = 4;

struct World {
    ledger: Ledger,
    requester: Keypair,
    validators: Vec<Keypair>,
    agents: Vec<(FleetAgent, Keypair)>,
    seq: u64,
    nonce: u64,
}

fn release(version: &str) -> FusedRelease {
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
    fn new() -> Self {
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

    fn submit(&mut self, signer: Signer, op: &Operation) -> Outcome {
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

    fn request(&mut self, op: Operation) -> Outcome {
        let k = self.requester.public();
        self.submit(Signer::Requester(k), &op)
    }

    fn vote(&mut self, v: u32, proposal: u64, approve: bool) -> Outcome {
        self.submit(
            Signer::Validator(v),
            &Operation::Vote {
                proposal,
                approve,
                reasons: vec!["checked".into()],
            },
        )
    }

    fn health(
        &self,
        agent: usize,
        rollout: u64,
        version: &str,
        coherence: f64,
    ) -> AgentSigned<HealthBody> {
        let (a, key) = &self.agents[agent];
        AgentSigned::sign(
            HealthBody {
                agent: a.id.clone(),
                rollout,
                version: version.into(),
                coherence,
                error_rate: 0.01,
                response_ms_p95: 120.0,
                safety: 0.97,
                samples: 30,
            },
            HEALTH_KIND,
            key,
        )
    }

    fn ack(&self, agent: usize, rollout: u64, version: &str) -> AgentSigned<AckBody> {
        let (a, key) = &self.agents[agent];
        AgentSigned::sign(
            AckBody {
                agent: a.id.clone(),
                rollout,
                version: version.into(),
            },
            ACK_KIND,
            key,
        )
    }

    fn agent_index(&self, id: &str) -> usize {
        self.agents
            .iter()
            .position(|(a, _)| a.id == id)
            .expect("agent")
    }

    /// Registers `version` and gets it approved to canary; returns the rollout id.
    fn promote_to_canary(&mut self, version: &str) -> u64 {
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

    fn complete_batches(&mut self, rollout: u64, version: &str) {
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
    let tongues: Vec<Tongue> = w.ledger.state().events.iter().map(|e| e.tongue).collect();
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
fn production_needs_a_healthy_canary_in_the_validators_evaluation() {
    let mut w = World::new();
    w.promote_to_canary("v1");
    let o = w.request(Operation::Promote {
        version: "v1".into(),
        to: Stage::Production,
        rollback_to: "v0".into(),
    });
    assert!(!o.accepted, "canary rollout still in progress");
    assert_eq!(o.reasons, vec!["v1 has a rollout in progress"]);
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
    // Healthy report: no proof.
    let healthy = w.health(a, r, "v1", 0.9);
    let o = w.submit(
        Signer::Validator(1),
        &Operation::AutoRollback {
            rollout: r,
            evidence: vec![healthy],
        },
    );
    assert!(!o.accepted);
    // A degraded report signed by the wrong key: forged.
    let mut forged = w.health(a, r, "v1", 0.3);
    forged.signature = w.health((a + 1) % 6, r, "v1", 0.3).signature;
    let o = w.submit(
        Signer::Validator(1),
        &Operation::AutoRollback {
            rollout: r,
            evidence: vec![forged],
        },
    );
    assert!(!o.accepted);
    assert!(
        o.reasons
            .iter()
            .any(|x| x.contains("not signed by that agent")),
        "{:?}",
        o.reasons
    );
    // A requester cannot trigger it at all.
    let bad = w.health(a, r, "v1", 0.3);
    let o = w.request(Operation::AutoRollback {
        rollout: r,
        evidence: vec![bad.clone()],
    });
    assert!(!o.accepted);
    // Genuine degraded report from a deployed agent.
    let o = w.submit(
        Signer::Validator(1),
        &Operation::AutoRollback {
            rollout: r,
            evidence: vec![bad],
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    assert_eq!(
        w.ledger.state().rollouts[&r].status,
        RolloutStatus::RollingBack
    );
    assert_eq!(w.ledger.state().current[&Stage::Canary], "v0");
    assert_eq!(
        w.ledger.state().events.last().map(|e| e.tongue),
        Some(Tongue::DR)
    );
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
fn manual_rollback_is_voted() {
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
    let o = w.request(Operation::Rollback {
        target_version: "v0".into(),
        reason: "regression".into(),
    });
    let p = o.proposal.expect("rollback proposal");
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(w.ledger.state().current[&Stage::Production], "v0");
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
