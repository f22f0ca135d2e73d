//! A ledger with validators, a requester and a fleet of agents, for tests: it signs and submits
//! operations, votes, health reports and deploy acks the way the cluster's decided batches would.

use super::fusion::fuse;
use super::gates::Gates;
use super::ledger::*;
use super::manifest::parse_manifest;
use super::operation::Operation;
use super::release::FusedRelease;
use super::stage::Stage;
use crate::crypto::Keypair;
use crate::rollout::baseline::AnalysisSettings;
use crate::rollout::evidence::{
    AckBody, AckOutcome, DeployAck, HealthBody, HealthReport, OrderAction, Sample,
    MAX_LATEST_SAMPLES,
};
use crate::rollout::health::HealthThresholds;
use crate::rollout::plan::FleetAgent;

/// Validators in the world.
pub const N: usize = 4;

/// The unit the genesis lists for known-good `v0`.
pub fn v0_unit() -> crate::rollout::order::OrderUnit {
    crate::rollout::order::OrderUnit {
        provider: "aws".into(),
        id: "runtime-v0".into(),
        uri: "s3://models/runtime-v0".into(),
    }
}

pub struct World {
    pub ledger: Ledger,
    pub requester: Keypair,
    pub validators: Vec<Keypair>,
    pub agents: Vec<(FleetAgent, Keypair)>,
    /// The sequence number of the next batch (a test may jump it to move ledger time).
    pub seq: u64,
    nonce: u64,
}

/// A promotion of `version` to `to` falling back to v0, in the default shape, with no pause.
pub fn promotion(version: &str, to: Stage) -> Operation {
    Operation::Promote {
        version: version.into(),
        to,
        rollback_to: "v0".into(),
        pause_before: None,
        steps: Vec::new(),
    }
}

pub fn release(version: &str) -> FusedRelease {
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

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        Self::with_validators(N)
    }

    /// A world of `n` validators (f and the quorum follow n).
    pub fn with_validators(n: usize) -> Self {
        // Comparison tests opt in (`World::with_analysis`); the rest judge on thresholds.
        Self::build(n, AnalysisSettings::thresholds_only())
    }

    /// A world whose canary steps are judged by `analysis`.
    pub fn with_analysis(analysis: AnalysisSettings) -> Self {
        Self::build(N, analysis)
    }

    /// A world of `agents` agents (specialties in turn) whose canary steps are judged by
    /// `analysis`.
    pub fn with_fleet(agents: usize, analysis: AnalysisSettings) -> Self {
        Self::build_with(N, agents, analysis)
    }

    /// The default world on a genesis with this state digest.
    pub fn with_state_digest(mode: crate::governance::ledger::StateDigest) -> Self {
        let mut w = Self::new();
        let cfg = LedgerConfig {
            state_digest: mode,
            ..w.ledger.config().clone()
        };
        w.ledger = Ledger::new(cfg);
        w
    }

    fn build(n: usize, analysis: AnalysisSettings) -> Self {
        Self::build_with(n, 6, analysis)
    }

    fn build_with(n: usize, fleet: usize, analysis: AnalysisSettings) -> Self {
        let validators: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_label(&format!("val{i}")))
            .collect();
        let specialties = ["code_execute", "doc_plan", "memory_storage"];
        let agents: Vec<(FleetAgent, Keypair)> = (0..fleet)
            .map(|i| {
                let key = Keypair::from_label(&format!("agent{i}"));
                (
                    FleetAgent {
                        id: format!("agent-{i}"),
                        specialty: specialties[i % 3].into(),
                        key: key.public(),
                        address: String::new(),
                    },
                    key,
                )
            })
            .collect();
        let cfg = LedgerConfig {
            validators: validators.iter().map(Keypair::public).collect(),
            known_good: vec!["v0".into()],
            known_good_units: [("v0".to_string(), vec![v0_unit()])].into(),
            gates: Gates::default(),
            vote_window_seqs: 50,
            agents: agents.iter().map(|(a, _)| a.clone()).collect(),
            health: HealthThresholds::default(),
            analysis,
            notify_sinks: vec!["ops".into()],
            state_digest: crate::governance::ledger::StateDigest::Tree,
            requesters: [("ops".to_string(), Keypair::from_label("requester").public())].into(),
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

    /// Proposes `op` (a change opening a proposal) and has validators 0..3 vote `approve`
    /// (their own evaluation must agree when they approve); the proposal's final status.
    pub fn decide(&mut self, op: Operation, approve: bool) -> ProposalStatus {
        let o = self.request(op);
        assert!(o.accepted, "{:?}", o.reasons);
        let p = o.proposal.expect("a proposal");
        if approve {
            assert_eq!(
                self.ledger.evaluate(p),
                (true, vec!["all checks pass".to_string()])
            );
        }
        for v in 0..3 {
            self.vote(v, p, approve);
        }
        self.ledger.state().proposals[&p].status
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
        self.report_of(agent, rollout, version, coherence, samples, 0.97)
    }

    /// A healthy report (coherence 0.9, 30 samples) whose safety is `safety`.
    pub fn health_at_safety(
        &self,
        agent: usize,
        rollout: u64,
        version: &str,
        safety: f64,
    ) -> HealthReport {
        self.report_of(agent, rollout, version, 0.9, 30, safety)
    }

    fn report_of(
        &self,
        agent: usize,
        rollout: u64,
        version: &str,
        coherence: f64,
        samples: u32,
        safety: f64,
    ) -> HealthReport {
        let (a, key) = &self.agents[agent];
        let s = Sample {
            coherence,
            error_rate: 0.01,
            response_ms: 120.0,
            safety,
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
            safety_min: safety,
            tasks_per_minute: 20.0,
            latest: vec![s; (window as usize).min(MAX_LATEST_SAMPLES)],
        };
        HealthReport::sign(&body, key)
    }

    /// Drops the healthy report the ledger holds for `agent` of `rollout` (what a ledger
    /// restored from an older snapshot format might lack), to exercise the re-check.
    #[cfg(test)]
    pub fn forget_canary_report(&mut self, rollout: u64, agent: &str) {
        if let Some(r) = self.ledger.state_mut().rollouts.get_mut(&rollout) {
            r.reports.remove(agent);
        }
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
                refusal: None,
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

    /// The index of an agent that is not in `batch`.
    pub fn agent_outside(&self, batch: &[String]) -> usize {
        (0..self.agents.len())
            .find(|i| !batch.contains(&self.agents[*i].0.id))
            .expect("an agent outside the batch")
    }

    /// Validator 2 reports agent `agent`'s signed failed deploy of `version` in `rollout`
    /// (`AutoRollback`); the ledger's outcome.
    pub fn fail_deploy(&mut self, rollout: u64, agent: usize, version: &str) -> Outcome {
        let failed = self.ack_with(
            agent,
            rollout,
            OrderAction::Deploy,
            version,
            AckOutcome::Failed,
        );
        self.submit(
            Signer::Validator(2),
            &Operation::AutoRollback {
                rollout,
                reports: vec![],
                acks: vec![failed],
            },
        )
    }

    pub fn agent_index(&self, id: &str) -> usize {
        self.agents
            .iter()
            .position(|(a, _)| a.id == id)
            .expect("agent")
    }

    /// Takes a checkpoint of the state as it is now, as a replica does, and returns the prover
    /// its snapshot keeps.
    pub fn checkpoint_prover(&mut self) -> std::sync::Arc<checkpoint_prover::CheckpointProver> {
        use crate::consensus::StateMachine as _;
        self.ledger.before_checkpoint();
        checkpoint_prover::CheckpointProver::of(&self.ledger.snapshot())
            .expect("a snapshot the ledger made keeps its prover")
    }

    /// Registers `version` (it enters staging).
    pub fn register(&mut self, version: &str) {
        let o = self.request(Operation::RegisterRelease {
            release: release(version),
        });
        assert!(o.accepted, "{:?}", o.reasons);
    }

    /// Validators `0..q` approve proposal `p`; the rollout its approval opens.
    pub fn approve(&mut self, p: u64) -> u64 {
        let quorum = self.ledger.config().quorum() as u32;
        for v in 0..quorum - 1 {
            let o = self.vote(v, p, true);
            assert!(o.accepted && o.rollout.is_none(), "below quorum: {o:?}");
        }
        self.vote(quorum - 1, p, true)
            .rollout
            .expect("approved at quorum opens a rollout")
    }

    /// Registers `version` and gets it approved to canary; returns the rollout id.
    /// The details of the journal's events of `kind`, oldest first.
    pub fn event_details(&self, kind: &str) -> Vec<String> {
        self.ledger
            .journal()
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.detail.clone())
            .collect()
    }

    /// Promotes `n` versions (`r0`, `r1`, ...) to canary, each rollout completed.
    pub fn complete_canaries(&mut self, n: usize) {
        for i in 0..n {
            let version = format!("r{i}");
            let rollout = self.promote_to_canary(&version);
            self.complete_batches(rollout, &version);
        }
    }

    pub fn promote_to_canary(&mut self, version: &str) -> u64 {
        self.register(version);
        let o = self.request(promotion(version, Stage::Canary));
        assert!(o.accepted, "{:?}", o.reasons);
        self.approve(o.proposal.expect("proposal"))
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
                    baseline: Vec::new(),
                },
            );
            assert!(o.accepted, "{:?}", o.reasons);
        }
    }
}
