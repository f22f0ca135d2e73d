//! The governance ledger: a deterministic state machine over ordered, authenticated requests.
//!
//! Every replica applies the same committed requests in the same order and reaches the same
//! state and the same outcome for every request. Ledger time is the consensus sequence number, so
//! vote windows expire identically everywhere. The state digest feeds the consensus checkpoints;
//! a snapshot restores the identical state.
//!
//! What it accepts:
//! - `RegisterRelease` (requester or validator): digest and gates re-checked; enters staging.
//! - `Promote` (requester): one stage up, no skipping, with a known-good `rollback_to`; opens a
//!   proposal that validators vote on.
//! - `Rollback` (requester): to a known-good version; opens a proposal.
//! - `Vote` (validator): one per validator per proposal; approved at `q` approvals, rejected
//!   once `n - q + 1` rejections make approval impossible, expired after the vote window.
//! - `AutoRollback` (validator): accepted only with agent-signed reports that break a health
//!   threshold; the evidence is the vote.
//! - `RolloutProgress` (validator): a batch deployed and healthy, with every agent's signed ack
//!   and report.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::consensus::{Digest, Principal, Request, Seq, Signed, SnapshotError, StateMachine};
use crate::crypto::PublicKey;
use crate::rollout::plan::{plan_batches, FleetAgent};

use super::event::Event;
use super::gates::Gates;
use super::operation::{
    AckBody, AgentSigned, HealthBody, HealthReport, Operation, ACK_KIND, HEALTH_KIND,
};
use super::release::{hex, FusedRelease};
use super::stage::{Stage, Tongue};

/// When an agent counts as healthy (DESIGN §5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthThresholds {
    /// Healthy needs coherence above this.
    pub min_coherence: f64,
    /// Healthy needs error rate below this.
    pub max_error_rate: f64,
    /// Healthy needs p95 response time below this.
    pub max_response_ms_p95: f64,
    /// The canary's safety re-check needs at least this.
    pub min_safety: f64,
    /// Fewer samples prove nothing either way.
    pub min_samples: u32,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            min_coherence: 0.7,
            max_error_rate: 0.05,
            max_response_ms_p95: 200.0,
            min_safety: 0.95,
            min_samples: 10,
        }
    }
}

impl HealthThresholds {
    pub fn healthy(&self, b: &HealthBody) -> bool {
        b.samples >= self.min_samples
            && b.coherence > self.min_coherence
            && b.error_rate < self.max_error_rate
            && b.response_ms_p95 < self.max_response_ms_p95
    }

    /// Enough samples and at least one threshold broken: proof of degradation.
    pub fn degraded(&self, b: &HealthBody) -> Option<String> {
        if b.samples < self.min_samples {
            return None;
        }
        if b.coherence <= self.min_coherence {
            return Some(format!(
                "{}: coherence {} <= {}",
                b.agent, b.coherence, self.min_coherence
            ));
        }
        if b.error_rate >= self.max_error_rate {
            return Some(format!(
                "{}: error rate {} >= {}",
                b.agent, b.error_rate, self.max_error_rate
            ));
        }
        if b.response_ms_p95 >= self.max_response_ms_p95 {
            return Some(format!(
                "{}: response p95 {} ms >= {} ms",
                b.agent, b.response_ms_p95, self.max_response_ms_p95
            ));
        }
        None
    }
}

/// The ledger's static configuration (identical on every validator).
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    pub validators: Vec<PublicKey>,
    /// Versions known good at genesis (what the fleet runs before the first promotion).
    pub known_good: Vec<String>,
    pub gates: Gates,
    /// Proposals expire this many sequence numbers after they open.
    pub vote_window_seqs: u64,
    pub agents: Vec<FleetAgent>,
    pub health: HealthThresholds,
}

impl LedgerConfig {
    pub fn quorum(&self) -> usize {
        crate::consensus::config::quorum_for(self.validators.len())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProposalKind {
    Promote {
        version: String,
        from: Stage,
        to: Stage,
        rollback_to: String,
    },
    Rollback {
        target_version: String,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteRecord {
    pub approve: bool,
    pub reasons: Vec<String>,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: u64,
    pub kind: ProposalKind,
    pub opened_seq: u64,
    pub status: ProposalStatus,
    /// Votes by validator index.
    pub votes: BTreeMap<u32, VoteRecord>,
}

impl Proposal {
    pub fn approvals(&self) -> usize {
        self.votes.values().filter(|v| v.approve).count()
    }
    pub fn rejections(&self) -> usize {
        self.votes.values().filter(|v| !v.approve).count()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    InProgress,
    Completed,
    RollingBack,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: u64,
    pub proposal: u64,
    pub version: String,
    pub from: Stage,
    pub to: Stage,
    /// Version to restore if this rollout rolls back.
    pub rollback_to: String,
    pub batches: Vec<Vec<String>>,
    /// Batches recorded as deployed and healthy.
    pub completed: u32,
    pub status: RolloutStatus,
    /// Latest healthy report per agent, for the canary's safety re-check.
    pub reports: BTreeMap<String, HealthBody>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseEntry {
    pub release: FusedRelease,
    pub stage: Stage,
    pub registered_seq: u64,
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub seq: u64,
    pub accepted: bool,
    pub reasons: Vec<String>,
    pub proposal: Option<u64>,
    pub rollout: Option<u64>,
}

/// Everything replicated. Serialised (JSON, ordered maps) for the digest and snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerState {
    pub releases: BTreeMap<String, ReleaseEntry>,
    pub known_good: BTreeSet<String>,
    /// Which version each stage currently serves.
    pub current: BTreeMap<Stage, String>,
    pub proposals: BTreeMap<u64, Proposal>,
    pub rollouts: BTreeMap<u64, Rollout>,
    /// By request id `signer-hex:nonce`.
    pub outcomes: BTreeMap<String, Outcome>,
    pub events: Vec<Event>,
    pub next_proposal: u64,
    pub next_rollout: u64,
}

/// Who signed a request, as the ledger sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    Validator(u32),
    Requester(PublicKey),
}

pub struct Ledger {
    cfg: LedgerConfig,
    state: LedgerState,
}

type Rejection = Vec<String>;

fn reject<T>(reason: impl Into<String>) -> Result<T, Rejection> {
    Err(vec![reason.into()])
}

impl Ledger {
    pub fn new(cfg: LedgerConfig) -> Self {
        let mut state = LedgerState {
            known_good: cfg.known_good.iter().cloned().collect(),
            ..LedgerState::default()
        };
        if let Some(first) = cfg.known_good.first() {
            state.current.insert(Stage::Production, first.clone());
        }
        Self { cfg, state }
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.cfg
    }

    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    pub fn outcome(&self, signer: &PublicKey, nonce: u64) -> Option<&Outcome> {
        self.state.outcomes.get(&request_id(signer, nonce))
    }

    fn event(&mut self, seq: u64, tongue: Tongue, kind: &str, subject: String, detail: String) {
        self.state.events.push(Event {
            seq,
            tongue,
            kind: kind.into(),
            subject,
            detail,
        });
    }

    /// Applies one ordered request and records its outcome.
    pub fn apply_operation(
        &mut self,
        seq: u64,
        signer: Signer,
        key: &PublicKey,
        nonce: u64,
        bytes: &[u8],
    ) -> Outcome {
        self.expire(seq);
        let mut outcome = Outcome {
            seq,
            accepted: false,
            reasons: Vec::new(),
            proposal: None,
            rollout: None,
        };
        let result = match Operation::from_bytes(bytes) {
            Ok(op) => self.dispatch(seq, signer, op, &mut outcome),
            Err(e) => Err(vec![e]),
        };
        match result {
            Ok(()) => outcome.accepted = true,
            Err(reasons) => {
                self.event(
                    seq,
                    Tongue::RU,
                    "request_rejected",
                    request_id(key, nonce),
                    reasons.join("; "),
                );
                outcome.reasons = reasons;
            }
        }
        self.state
            .outcomes
            .insert(request_id(key, nonce), outcome.clone());
        outcome
    }

    fn dispatch(
        &mut self,
        seq: u64,
        signer: Signer,
        op: Operation,
        out: &mut Outcome,
    ) -> Result<(), Rejection> {
        let validator = match signer {
            Signer::Validator(v) => Some(v),
            Signer::Requester(_) => None,
        };
        match op {
            Operation::RegisterRelease { release } => self.register(seq, release),
            Operation::Promote {
                version,
                to,
                rollback_to,
            } => {
                if validator.is_some() {
                    return reject("promotions are proposed by release requesters, not validators");
                }
                let id = self.promote(seq, version, to, rollback_to)?;
                out.proposal = Some(id);
                Ok(())
            }
            Operation::Rollback {
                target_version,
                reason,
            } => {
                if validator.is_some() {
                    return reject("manual rollbacks are proposed by release requesters; validators use auto_rollback with evidence");
                }
                let id = self.rollback(seq, target_version, reason)?;
                out.proposal = Some(id);
                Ok(())
            }
            Operation::Vote {
                proposal,
                approve,
                reasons,
            } => {
                let Some(v) = validator else {
                    return reject("only validators vote");
                };
                out.proposal = Some(proposal);
                out.rollout = self.vote(seq, v, proposal, approve, reasons)?;
                Ok(())
            }
            Operation::AutoRollback { rollout, evidence } => {
                if validator.is_none() {
                    return reject("only validators submit auto-rollback evidence");
                }
                out.rollout = Some(rollout);
                self.auto_rollback(seq, rollout, &evidence)
            }
            Operation::RolloutProgress {
                rollout,
                batch,
                acks,
                reports,
            } => {
                if validator.is_none() {
                    return reject("only validators record rollout progress");
                }
                out.rollout = Some(rollout);
                self.progress(seq, rollout, batch, &acks, &reports)
            }
        }
    }

    /// Proposals whose vote window has passed expire, at the same sequence number everywhere.
    fn expire(&mut self, seq: u64) {
        let window = self.cfg.vote_window_seqs;
        let expired: Vec<u64> = self
            .state
            .proposals
            .values()
            .filter(|p| {
                p.status == ProposalStatus::Pending && seq > p.opened_seq.saturating_add(window)
            })
            .map(|p| p.id)
            .collect();
        for id in expired {
            if let Some(p) = self.state.proposals.get_mut(&id) {
                p.status = ProposalStatus::Expired;
            }
            self.event(
                seq,
                Tongue::RU,
                "proposal_expired",
                format!("proposal:{id}"),
                format!("no decision within {window} sequence numbers"),
            );
        }
    }

    fn register(&mut self, seq: u64, release: FusedRelease) -> Result<(), Rejection> {
        release.verify().map_err(|e| vec![e.to_string()])?;
        if self.state.releases.contains_key(&release.version)
            || self.state.known_good.contains(&release.version)
        {
            return reject(format!("version {} already exists", release.version));
        }
        let mut failures = Vec::new();
        for (p, unit) in &release.units {
            for f in self.cfg.gates.check(&unit.metrics) {
                failures.push(format!("{p} {}: {}", unit.id, f.reason));
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        let version = release.version.clone();
        let digest = release.digest.clone();
        self.state.releases.insert(
            version.clone(),
            ReleaseEntry {
                release,
                stage: Stage::Staging,
                registered_seq: seq,
            },
        );
        self.event(
            seq,
            Tongue::CA,
            "release_registered",
            version.clone(),
            format!("digest {digest}"),
        );
        self.event(
            seq,
            Tongue::RU,
            "gates_passed",
            version.clone(),
            "every unit passes the ledger's gates".into(),
        );
        self.event(seq, Tongue::UM, "entered_staging", version, String::new());
        Ok(())
    }

    fn open_proposal(&mut self, seq: u64, kind: ProposalKind) -> u64 {
        let id = self.state.next_proposal;
        self.state.next_proposal += 1;
        self.state.proposals.insert(
            id,
            Proposal {
                id,
                kind,
                opened_seq: seq,
                status: ProposalStatus::Pending,
                votes: BTreeMap::new(),
            },
        );
        id
    }

    fn has_pending(&self, pred: impl Fn(&ProposalKind) -> bool) -> bool {
        self.state
            .proposals
            .values()
            .any(|p| p.status == ProposalStatus::Pending && pred(&p.kind))
    }

    fn promote(
        &mut self,
        seq: u64,
        version: String,
        to: Stage,
        rollback_to: String,
    ) -> Result<u64, Rejection> {
        let Some(entry) = self.state.releases.get(&version) else {
            return reject(format!("unknown release {version}"));
        };
        let from = entry.stage;
        if from.next() != Some(to) {
            return reject(format!(
                "{version} is in {from}; it can only be promoted to {}",
                from.next().map_or("nothing", Stage::name)
            ));
        }
        if !self.state.known_good.contains(&rollback_to) {
            return reject(format!(
                "rollback plan {rollback_to:?} is not a known-good version"
            ));
        }
        if rollback_to == version {
            return reject("a release cannot be its own rollback plan");
        }
        if self
            .has_pending(|k| matches!(k, ProposalKind::Promote { version: v, .. } if *v == version))
        {
            return reject(format!("{version} already has a pending promotion"));
        }
        if self.rollout_in_progress(&version) {
            return reject(format!("{version} has a rollout in progress"));
        }
        let id = self.open_proposal(
            seq,
            ProposalKind::Promote {
                version: version.clone(),
                from,
                to,
                rollback_to: rollback_to.clone(),
            },
        );
        self.event(
            seq,
            Tongue::UM,
            "promotion_proposed",
            format!("proposal:{id}"),
            format!("{version}: {from} -> {to}, rollback to {rollback_to}"),
        );
        Ok(id)
    }

    fn rollout_in_progress(&self, version: &str) -> bool {
        self.state
            .rollouts
            .values()
            .any(|r| r.version == version && r.status == RolloutStatus::InProgress)
    }

    fn rollback(
        &mut self,
        seq: u64,
        target_version: String,
        reason: String,
    ) -> Result<u64, Rejection> {
        if !self.state.known_good.contains(&target_version) {
            return reject(format!("{target_version} is not a known-good version"));
        }
        if self.state.current.get(&Stage::Production) == Some(&target_version) {
            return reject(format!("{target_version} is already in production"));
        }
        let id = self.open_proposal(
            seq,
            ProposalKind::Rollback {
                target_version: target_version.clone(),
                reason: reason.clone(),
            },
        );
        self.event(
            seq,
            Tongue::DR,
            "rollback_proposed",
            format!("proposal:{id}"),
            format!("to {target_version}: {reason}"),
        );
        Ok(id)
    }

    fn vote(
        &mut self,
        seq: u64,
        validator: u32,
        proposal: u64,
        approve: bool,
        reasons: Vec<String>,
    ) -> Result<Option<u64>, Rejection> {
        let n = self.cfg.validators.len();
        if validator as usize >= n {
            return reject(format!("validator {validator} is not in the validator set"));
        }
        let q = self.cfg.quorum();
        let Some(p) = self.state.proposals.get_mut(&proposal) else {
            return reject(format!("unknown proposal {proposal}"));
        };
        if p.status != ProposalStatus::Pending {
            return reject(format!("proposal {proposal} is already {:?}", p.status));
        }
        if p.votes.contains_key(&validator) {
            return reject(format!(
                "validator {validator} already voted on proposal {proposal}"
            ));
        }
        p.votes.insert(
            validator,
            VoteRecord {
                approve,
                reasons: reasons.clone(),
                seq,
            },
        );
        let (approvals, rejections) = (p.approvals(), p.rejections());
        let verdict = if approve { "approve" } else { "reject" };
        self.event(
            seq,
            Tongue::RU,
            "vote",
            format!("proposal:{proposal}"),
            format!("validator {validator}: {verdict} ({})", reasons.join("; ")),
        );
        if approvals >= q {
            return self.decide(seq, proposal, ProposalStatus::Approved);
        }
        if rejections > n - q {
            return self.decide(seq, proposal, ProposalStatus::Rejected);
        }
        Ok(None)
    }

    fn decide(
        &mut self,
        seq: u64,
        proposal: u64,
        status: ProposalStatus,
    ) -> Result<Option<u64>, Rejection> {
        let Some(p) = self.state.proposals.get_mut(&proposal) else {
            return Ok(None);
        };
        p.status = status;
        let kind = p.kind.clone();
        let tally = format!("{} for, {} against", p.approvals(), p.rejections());
        if status == ProposalStatus::Rejected {
            self.event(
                seq,
                Tongue::RU,
                "proposal_rejected",
                format!("proposal:{proposal}"),
                tally,
            );
            return Ok(None);
        }
        self.event(
            seq,
            Tongue::RU,
            "proposal_approved",
            format!("proposal:{proposal}"),
            tally,
        );
        match kind {
            ProposalKind::Promote {
                version,
                from,
                to,
                rollback_to,
            } => {
                if let Some(e) = self.state.releases.get_mut(&version) {
                    e.stage = to;
                }
                let id = self.state.next_rollout;
                self.state.next_rollout += 1;
                let plan = plan_batches(&self.cfg.agents, to);
                let batches = plan.batches;
                let sizes: Vec<String> = batches.iter().map(|b| b.len().to_string()).collect();
                let status = if batches.is_empty() {
                    RolloutStatus::Completed
                } else {
                    RolloutStatus::InProgress
                };
                self.state.rollouts.insert(
                    id,
                    Rollout {
                        id,
                        proposal,
                        version: version.clone(),
                        from,
                        to,
                        rollback_to,
                        batches,
                        completed: 0,
                        status,
                        reports: BTreeMap::new(),
                    },
                );
                self.state.current.insert(to, version.clone());
                self.event(
                    seq,
                    Tongue::KO,
                    "rollout_planned",
                    format!("rollout:{id}"),
                    format!("{version} to {to}: batches of [{}]", sizes.join(", ")),
                );
                if status == RolloutStatus::Completed {
                    self.complete(seq, id);
                }
                Ok(Some(id))
            }
            ProposalKind::Rollback {
                target_version,
                reason,
            } => {
                if let Some(old) = self
                    .state
                    .current
                    .insert(Stage::Production, target_version.clone())
                {
                    if let Some(e) = self.state.releases.get_mut(&old) {
                        e.stage = Stage::Staging;
                    }
                }
                self.event(seq, Tongue::DR, "rolled_back", target_version, reason);
                Ok(None)
            }
        }
    }

    fn complete(&mut self, seq: u64, rollout: u64) {
        let Some(r) = self.state.rollouts.get_mut(&rollout) else {
            return;
        };
        r.status = RolloutStatus::Completed;
        let (version, to) = (r.version.clone(), r.to);
        if to == Stage::Production {
            self.state.known_good.insert(version.clone());
        }
        self.event(
            seq,
            Tongue::AV,
            "rollout_completed",
            format!("rollout:{rollout}"),
            format!("{version} serves {to}"),
        );
    }

    fn agent_key(&self, id: &str) -> Option<&PublicKey> {
        self.cfg.agents.iter().find(|a| a.id == id).map(|a| &a.key)
    }

    fn auto_rollback(
        &mut self,
        seq: u64,
        rollout: u64,
        evidence: &[HealthReport],
    ) -> Result<(), Rejection> {
        let Some(r) = self.state.rollouts.get(&rollout) else {
            return reject(format!("unknown rollout {rollout}"));
        };
        if r.status != RolloutStatus::InProgress {
            return reject(format!("rollout {rollout} is not in progress"));
        }
        // Agents touched so far: completed batches and the one being deployed.
        let touched: BTreeSet<&String> = r
            .batches
            .iter()
            .take(r.completed as usize + 1)
            .flatten()
            .collect();
        let mut proof = Vec::new();
        let mut problems = Vec::new();
        for rep in evidence {
            let b = &rep.body;
            if b.rollout != rollout || b.version != r.version {
                problems.push(format!(
                    "report from {} is for another rollout or version",
                    b.agent
                ));
                continue;
            }
            if !touched.contains(&b.agent) {
                problems.push(format!(
                    "{} is not in a deployed batch of rollout {rollout}",
                    b.agent
                ));
                continue;
            }
            let signed = self
                .agent_key(&b.agent)
                .is_some_and(|k| rep.verify(HEALTH_KIND, k));
            if !signed {
                problems.push(format!(
                    "report from {} is not signed by that agent",
                    b.agent
                ));
                continue;
            }
            if let Some(why) = self.cfg.health.degraded(b) {
                proof.push(why);
            }
        }
        if proof.is_empty() {
            problems.insert(0, "no signed report proves a degraded batch".into());
            return Err(problems);
        }
        let (version, to, rollback_to) = (r.version.clone(), r.to, r.rollback_to.clone());
        let from = r.from;
        if let Some(r) = self.state.rollouts.get_mut(&rollout) {
            r.status = RolloutStatus::RollingBack;
        }
        if let Some(e) = self.state.releases.get_mut(&version) {
            e.stage = from;
        }
        self.state.current.insert(to, rollback_to.clone());
        self.event(
            seq,
            Tongue::DR,
            "auto_rollback",
            format!("rollout:{rollout}"),
            format!("{version} -> {rollback_to}: {}", proof.join("; ")),
        );
        Ok(())
    }

    fn progress(
        &mut self,
        seq: u64,
        rollout: u64,
        batch: u32,
        acks: &[AgentSigned<AckBody>],
        reports: &[HealthReport],
    ) -> Result<(), Rejection> {
        let Some(r) = self.state.rollouts.get(&rollout) else {
            return reject(format!("unknown rollout {rollout}"));
        };
        if r.status != RolloutStatus::InProgress {
            return reject(format!("rollout {rollout} is not in progress"));
        }
        if batch != r.completed + 1 {
            return reject(format!(
                "rollout {rollout} expects batch {}, got {batch}",
                r.completed + 1
            ));
        }
        let Some(agents) = r.batches.get(batch as usize - 1) else {
            return reject(format!("rollout {rollout} has no batch {batch}"));
        };
        let mut problems = Vec::new();
        let mut healthy = BTreeMap::new();
        for agent in agents {
            let Some(key) = self.agent_key(agent) else {
                problems.push(format!("{agent} is not a registered agent"));
                continue;
            };
            let acked = acks.iter().any(|a| {
                a.body.agent == *agent
                    && a.body.rollout == rollout
                    && a.body.version == r.version
                    && a.verify(ACK_KIND, key)
            });
            if !acked {
                problems.push(format!("no signed deploy ack from {agent}"));
            }
            let report = reports.iter().find(|rep| {
                rep.body.agent == *agent
                    && rep.body.rollout == rollout
                    && rep.body.version == r.version
                    && rep.verify(HEALTH_KIND, key)
            });
            match report {
                None => problems.push(format!(
                    "no signed health report from {agent} (no data is a failure, not a pass)"
                )),
                Some(rep) if !self.cfg.health.healthy(&rep.body) => {
                    problems.push(format!("{agent} is not healthy"))
                }
                Some(rep) => {
                    healthy.insert(agent.clone(), rep.body.clone());
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let last = batch as usize == r.batches.len();
        if let Some(r) = self.state.rollouts.get_mut(&rollout) {
            r.completed = batch;
            r.reports.extend(healthy);
        }
        self.event(
            seq,
            Tongue::AV,
            "batch_healthy",
            format!("rollout:{rollout}"),
            format!("batch {batch} deployed and healthy"),
        );
        if last {
            self.complete(seq, rollout);
        }
        Ok(())
    }

    /// A validator's own evaluation of a proposal (DESIGN §4): the release's gates re-checked,
    /// the rollback plan, and for canary → production the safety re-check at the new scale from
    /// the canary agents' signed reports. Pure: every honest validator reaches the same verdict.
    pub fn evaluate(&self, proposal: u64) -> (bool, Vec<String>) {
        let Some(p) = self.state.proposals.get(&proposal) else {
            return (false, vec![format!("unknown proposal {proposal}")]);
        };
        let mut reasons = Vec::new();
        match &p.kind {
            ProposalKind::Promote {
                version,
                from,
                to,
                rollback_to,
            } => {
                match self.state.releases.get(version) {
                    None => reasons.push(format!("unknown release {version}")),
                    Some(e) => {
                        for (prov, unit) in &e.release.units {
                            for f in self.cfg.gates.check(&unit.metrics) {
                                reasons.push(format!("{prov} {}: {}", unit.id, f.reason));
                            }
                        }
                    }
                }
                if !self.state.known_good.contains(rollback_to) {
                    reasons.push(format!("rollback plan {rollback_to} is not known good"));
                }
                if *from == Stage::Canary && *to == Stage::Production {
                    let canary = self
                        .state
                        .rollouts
                        .values()
                        .rev()
                        .find(|r| r.version == *version && r.to == Stage::Canary);
                    match canary {
                        Some(r)
                            if r.status == RolloutStatus::Completed && !r.reports.is_empty() =>
                        {
                            for b in r.reports.values() {
                                if b.safety < self.cfg.health.min_safety {
                                    reasons.push(format!(
                                        "canary {}: safety {} < {}",
                                        b.agent, b.safety, self.cfg.health.min_safety
                                    ));
                                }
                                if !self.cfg.health.healthy(b) {
                                    reasons.push(format!("canary {} is not healthy", b.agent));
                                }
                            }
                        }
                        _ => reasons
                            .push("no completed canary rollout with signed health reports".into()),
                    }
                }
            }
            ProposalKind::Rollback { target_version, .. } => {
                if !self.state.known_good.contains(target_version) {
                    reasons.push(format!("{target_version} is not known good"));
                }
            }
        }
        if reasons.is_empty() {
            (true, vec!["all checks pass".into()])
        } else {
            (false, reasons)
        }
    }

    fn encode_state(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state).unwrap_or_default()
    }
}

pub fn request_id(key: &PublicKey, nonce: u64) -> String {
    format!("{}:{nonce}", hex(key.as_bytes()))
}

fn state_digest_of(bytes: &[u8]) -> Digest {
    Digest::of_parts(&[b"ledger", bytes])
}

impl StateMachine for Ledger {
    fn apply(&mut self, seq: Seq, request: &Signed<Request>) {
        let key = *request.signer();
        let signer = match request.principal() {
            Principal::Validator(id) => Signer::Validator(id.0),
            Principal::Requester => Signer::Requester(key),
        };
        self.apply_operation(
            seq.0,
            signer,
            &key,
            request.value().nonce,
            &request.value().operation,
        );
    }

    fn digest(&self) -> Digest {
        state_digest_of(&self.encode_state())
    }

    fn snapshot(&self) -> Vec<u8> {
        self.encode_state()
    }

    fn snapshot_digest(&self, snapshot: &[u8]) -> Result<Digest, SnapshotError> {
        // Re-encode so the digest is of the canonical form, whatever bytes a peer sent.
        let state: LedgerState =
            serde_json::from_slice(snapshot).map_err(|e| SnapshotError(e.to_string()))?;
        Ok(state_digest_of(
            &serde_json::to_vec(&state).unwrap_or_default(),
        ))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        self.state = serde_json::from_slice(snapshot).map_err(|e| SnapshotError(e.to_string()))?;
        Ok(())
    }
}
