//! Rollouts in the ledger: plans from approved decisions, progress recorded on agent-signed
//! acks and healthy reports, and the current order of every rollout that validators endorse
//! for the agents. Rollback (on agent-signed evidence or on `f + 1` claims of missing data) is
//! in `rollbacks.rs`; steps whose primary does not execute them in `stalls.rs`.
//!
//! Every step has an `issued_seq` (the sequence number at which it became current). Orders, acks
//! and no-data claims name it, so evidence for an earlier step can never complete a later one.

use std::collections::{BTreeMap, BTreeSet};

use super::canary_analysis::CanaryJudgement;
use super::state::{Rollout, RolloutKind, RolloutStatus};
use super::{reject, Ledger, Rejection};

/// Why an agent's ack or report does not count for the current step of a rollout (the ledger
/// records the text among a rejected operation's reasons).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepEvidenceError {
    #[error(transparent)]
    Unverified(#[from] EvidenceError),
    #[error("ack from {agent} answers another order (rollout {rollout}, step {issued_seq}, {action:?} {version})")]
    OtherOrder {
        agent: String,
        rollout: u64,
        issued_seq: u64,
        action: OrderAction,
        version: String,
    },
    #[error("report from {agent} is for rollout {rollout} version {version}, not rollout {expected_rollout} version {expected_version}")]
    OtherRollout {
        agent: String,
        rollout: u64,
        version: String,
        expected_rollout: u64,
        expected_version: String,
    },
}
use crate::governance::stage::{Stage, Tongue};
use crate::rollout::evidence::{
    AckBody, AckOutcome, DeployAck, EvidenceError, HealthBody, HealthReport, OrderAction,
};
use crate::rollout::health::Verdict;
use crate::rollout::order::{Order, OrderUnit};
use crate::rollout::plan::{plan_restore, plan_steps};

impl Ledger {
    /// Digest and units of a version: a registered release's, or the units the genesis lists
    /// for a known-good version (with no digest: it has no release file).
    fn release_info(&self, version: &str) -> (String, Vec<OrderUnit>) {
        // A body that does not decode (see `ReleaseBody::release`; registration refuses a
        // non-finite metric, so none does) is read as a version with no release file.
        match self
            .state
            .releases
            .get(version)
            .map(|e| e.release.release())
        {
            Some(Ok(release)) => (
                release.digest,
                release
                    .units
                    .into_iter()
                    .map(|(p, u)| OrderUnit {
                        provider: p.name().into(),
                        id: u.id,
                        uri: u.uri,
                    })
                    .collect(),
            ),
            _ => (
                String::new(),
                self.config()
                    .known_good_units
                    .get(version)
                    .cloned()
                    .unwrap_or_default(),
            ),
        }
    }

    fn new_rollout(
        &mut self,
        seq: u64,
        proposal: u64,
        kind: RolloutKind,
        version: String,
        rollback_to: String,
        batches: Vec<Vec<String>>,
    ) -> u64 {
        let id = self.state.next_rollout;
        self.state.next_rollout += 1;
        let (release_digest, units) = self.release_info(&version);
        self.state.rollouts.insert(
            id,
            Rollout {
                id,
                proposal,
                kind,
                version,
                release_digest,
                units,
                rollback_to,
                batches,
                completed: 0,
                status: RolloutStatus::InProgress,
                planned_seq: seq,
                step_seq: seq,
                recorded: BTreeSet::new(),
                reports: BTreeMap::new(),
                baseline: BTreeMap::new(),
                comparison: None,
                rollback_agents: Vec::new(),
                rollback_pending: BTreeSet::new(),
                no_data: BTreeSet::new(),
                stalled: BTreeMap::new(),
                replace_view: None,
                reason: String::new(),
                ended_seq: None,
                pause_before: None,
            },
        );
        id
    }

    pub(super) fn end(&mut self, seq: u64, id: u64, status: RolloutStatus, reason: String) {
        if let Some(r) = self.state.rollouts.get_mut(&id) {
            r.status = status;
            r.reason = reason;
            r.ended_seq = Some(seq);
        }
    }

    pub(super) fn start_promotion(
        &mut self,
        seq: u64,
        proposal: u64,
        version: String,
        (from, to): (Stage, Stage),
        rollback_to: String,
        steps: &[u32],
    ) -> u64 {
        let batches = plan_steps(&self.state.agents, to, steps).batches;
        let sizes: Vec<String> = batches.iter().map(|b| b.len().to_string()).collect();
        let busy = self.state.active_rollout().map(|r| r.id);
        let id = self.new_rollout(
            seq,
            proposal,
            RolloutKind::Promote { from, to },
            version.clone(),
            rollback_to,
            batches,
        );
        let subject = format!("rollout:{id}");
        if let Some(other) = busy {
            let why = format!("the fleet is busy with rollout {other}");
            self.end(seq, id, RolloutStatus::Failed, why.clone());
            self.event(seq, Tongue::KO, "rollout_failed", subject, why);
        } else if sizes.is_empty() {
            // Nothing deployed is not a success: the promotion did not happen.
            let why = "the fleet has no registered agents; nothing was deployed".to_string();
            self.end(seq, id, RolloutStatus::Failed, why.clone());
            self.event(seq, Tongue::KO, "rollout_failed", subject, why);
        } else {
            self.event(
                seq,
                Tongue::KO,
                "rollout_planned",
                subject,
                format!("{version} to {to}: batches of [{}]", sizes.join(", ")),
            );
        }
        id
    }

    /// An approved manual rollback: every agent not on `target` (and every agent an active
    /// rollout may have touched) gets it back, batch by batch. The active rollout is superseded.
    pub(super) fn start_restore(
        &mut self,
        seq: u64,
        proposal: u64,
        target: String,
        reason: String,
    ) -> u64 {
        let mut agents: BTreeSet<String> = self
            .state
            .assigned
            .iter()
            .filter(|(_, v)| **v != target)
            .map(|(a, _)| a.clone())
            .collect();
        if let Some(active) = self.state.active_rollout().map(|r| r.id) {
            agents.extend(self.at_risk(active));
            self.end(
                seq,
                active,
                RolloutStatus::Failed,
                format!("superseded by the manual rollback of proposal {proposal}"),
            );
            self.event(
                seq,
                Tongue::DR,
                "rollout_superseded",
                format!("rollout:{active}"),
                format!("manual rollback to {target} (proposal {proposal})"),
            );
        }
        let previous = self
            .state
            .current
            .get(&Stage::Production)
            .cloned()
            .unwrap_or_default();
        let batches = plan_restore(&self.state.agents, &agents);
        let id = self.new_rollout(
            seq,
            proposal,
            RolloutKind::Restore {
                reason: reason.clone(),
            },
            target.clone(),
            previous,
            batches,
        );
        self.event(
            seq,
            Tongue::DR,
            "rollback_planned",
            format!("rollout:{id}"),
            format!("{target} back on {} agents: {reason}", agents.len()),
        );
        if agents.is_empty() {
            self.complete(seq, id);
        }
        id
    }

    /// Agents that run, or may run, the rollout's version: those the ledger put on it and the
    /// batch being deployed.
    pub fn at_risk(&self, id: u64) -> BTreeSet<String> {
        let Some(r) = self.state.rollouts.get(&id) else {
            return BTreeSet::new();
        };
        let mut agents: BTreeSet<String> = self
            .state
            .assigned
            .iter()
            .filter(|(_, v)| **v == r.version)
            .map(|(a, _)| a.clone())
            .collect();
        if let Some(batch) = r.current_batch() {
            agents.extend(batch.iter().cloned());
        }
        agents
    }

    pub(super) fn complete(&mut self, seq: u64, id: u64) {
        let Some(r) = self.state.rollouts.get(&id) else {
            return;
        };
        let (version, kind) = (r.version.clone(), r.kind.clone());
        self.end(seq, id, RolloutStatus::Completed, String::new());
        match kind {
            RolloutKind::Promote { to, .. } => {
                if let Some(e) = self.state.releases.get_mut(version.as_str()) {
                    e.stage = to;
                }
                self.state.current.insert(to, version.clone());
                if to == Stage::Production {
                    self.state.known_good.insert(version.clone());
                    if self.state.current.get(&Stage::Canary) == Some(&version) {
                        self.state.current.remove(&Stage::Canary);
                    }
                }
                self.event(
                    seq,
                    Tongue::AV,
                    "rollout_completed",
                    format!("rollout:{id}"),
                    format!("{version} serves {to}"),
                );
            }
            RolloutKind::Restore { reason } => {
                if let Some(old) = self
                    .state
                    .current
                    .insert(Stage::Production, version.clone())
                {
                    if old != version {
                        if let Some(e) = self.state.releases.get_mut(old.as_str()) {
                            e.stage = Stage::Staging;
                        }
                    }
                }
                // Canary agents were restored too: no candidate is in canary any more.
                if let Some(c) = self.state.current.remove(&Stage::Canary) {
                    if let Some(e) = self.state.releases.get_mut(c.as_str()) {
                        e.stage = Stage::Staging;
                    }
                }
                self.event(
                    seq,
                    Tongue::DR,
                    "rolled_back",
                    format!("rollout:{id}"),
                    format!("every agent runs {version} again: {reason}"),
                );
            }
        }
    }

    /// Opens an ack and checks it answers exactly this step.
    pub(super) fn open_ack(
        &self,
        r: &Rollout,
        ack: &DeployAck,
        action: OrderAction,
        version: &str,
    ) -> Result<AckBody, StepEvidenceError> {
        let b = ack.open(|id| self.agent_keys.get(id))?;
        if b.rollout != r.id
            || b.issued_seq != r.step_seq
            || b.action != action
            || b.version != version
        {
            return Err(StepEvidenceError::OtherOrder {
                agent: b.agent,
                rollout: b.rollout,
                issued_seq: b.issued_seq,
                action: b.action,
                version: b.version,
            });
        }
        Ok(b)
    }

    pub(super) fn open_report(
        &self,
        r: &Rollout,
        rep: &HealthReport,
    ) -> Result<HealthBody, StepEvidenceError> {
        let b = rep.open(|id| self.agent_keys.get(id))?;
        if b.rollout != r.id || b.version != r.version {
            return Err(StepEvidenceError::OtherRollout {
                agent: b.agent,
                rollout: b.rollout,
                version: b.version,
                expected_rollout: r.id,
                expected_version: r.version.clone(),
            });
        }
        Ok(b)
    }

    pub(super) fn active(&self, id: u64, want: RolloutStatus) -> Result<&Rollout, Rejection> {
        let Some(r) = self.state.rollouts.get(&id) else {
            return reject(format!("unknown rollout {id}"));
        };
        if r.status != want {
            return reject(format!("rollout {id} is {:?}, not {want:?}", r.status));
        }
        Ok(r)
    }

    pub(super) fn progress(
        &mut self,
        seq: u64,
        id: u64,
        batch: u32,
        acks: &[DeployAck],
        reports: &[HealthReport],
        baseline: &[HealthReport],
    ) -> Result<(), Rejection> {
        let r = self.active(id, RolloutStatus::InProgress)?;
        if batch != r.completed + 1 {
            return reject(format!(
                "rollout {id} expects batch {}, got {batch}",
                r.completed + 1
            ));
        }
        let agents: BTreeSet<&String> = r.current_batch().unwrap_or_default().iter().collect();
        let restore = matches!(r.kind, RolloutKind::Restore { .. });
        let action = if restore {
            OrderAction::Rollback
        } else {
            OrderAction::Deploy
        };
        let thresholds = self.step_thresholds(r);
        let (base, mut problems) = match self.open_baseline(r, baseline) {
            Ok(b) => (b, Vec::new()),
            Err(p) => (Vec::new(), p),
        };
        let mut acked = BTreeSet::new();
        for ack in acks {
            match self.open_ack(r, ack, action, &r.version) {
                Err(e) => problems.push(e.to_string()),
                Ok(b) if !agents.contains(&b.agent) => {
                    problems.push(format!("{} is not in batch {batch}", b.agent))
                }
                Ok(b) if b.outcome != AckOutcome::Done => problems.push(format!(
                    "{} did not deploy: {:?} {}",
                    b.agent, b.outcome, b.detail
                )),
                Ok(b) => {
                    acked.insert(b.agent);
                }
            }
        }
        let mut healthy = BTreeMap::new();
        for rep in reports {
            match self.open_report(r, rep) {
                Err(e) => problems.push(e.to_string()),
                Ok(b) => match thresholds.judge(&b) {
                    Verdict::Healthy => {
                        healthy.insert(b.agent.clone(), b);
                    }
                    Verdict::Degraded(why) | Verdict::NotYet(why) => {
                        problems.push(format!("not healthy: {why}"))
                    }
                },
            }
        }
        // Promotions need both proofs per agent; a restore puts back a known-good version and
        // needs the acks only.
        let proven: BTreeSet<String> = acked
            .into_iter()
            .filter(|a| restore || healthy.contains_key(a))
            .filter(|a| !r.recorded.contains(a))
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        if proven.is_empty() {
            return reject(format!(
                "no agent of batch {batch} has both a signed deploy ack and a signed healthy report (no data is a failure, not a pass)"
            ));
        }
        let version = r.version.clone();
        let batch_len = agents.len();
        let batches = r.batches.len();
        self.keep_baseline(id, base);
        for a in &proven {
            self.state.assigned.insert(a.clone(), version.clone());
        }
        let Some(r) = self.state.rollouts.get_mut(&id) else {
            return reject(format!("unknown rollout {id}"));
        };
        for a in &proven {
            r.recorded.insert(a.clone());
            if let Some(b) = healthy.remove(a) {
                r.reports.insert(a.clone(), b);
            }
        }
        let done = r.recorded.len();
        if done < batch_len {
            self.event(
                seq,
                Tongue::AV,
                "agents_healthy",
                format!("rollout:{id}"),
                format!("batch {batch}: {done} of {batch_len} agents recorded"),
            );
            return Ok(());
        }
        let pause = match self.judge_canary(seq, id) {
            CanaryJudgement::RollBack { kind, reason } => {
                self.start_rollback(seq, id, kind, reason);
                return Ok(());
            }
            CanaryJudgement::Pause => true,
            CanaryJudgement::Proceed => false,
        };
        let Some(r) = self.state.rollouts.get_mut(&id) else {
            return reject(format!("unknown rollout {id}"));
        };
        r.completed = batch;
        if pause {
            // Waits before the next batch, or before completing after the last one (an
            // approval then completes it). It replaces a later `pause_before` of the proposal:
            // the approval asked for here is the one that matters now.
            r.pause_before = Some(batch + 1);
        }
        r.recorded.clear();
        r.no_data.clear();
        r.stalled.clear();
        r.replace_view = None;
        r.step_seq = seq;
        let last = batch as usize == batches;
        let what = if restore {
            "restored"
        } else {
            "deployed and healthy"
        };
        self.event(
            seq,
            Tongue::AV,
            "batch_healthy",
            format!("rollout:{id}"),
            format!("batch {batch} of {batches}: {batch_len} agents {what}"),
        );
        if last && !pause {
            self.complete(seq, id);
        } else {
            self.announce_pause(seq, id);
        }
        Ok(())
    }

    /// The order a rollout needs carried out now, derived from this ledger alone. Validators
    /// endorse an order only if it is byte-identical to their own derivation.
    pub fn current_order(&self, id: u64) -> Option<Order> {
        let r = self.state.rollouts.get(&id)?;
        match r.status {
            RolloutStatus::InProgress => {
                let mut agents = r.current_batch()?.to_vec();
                agents.sort();
                let action = match r.kind {
                    RolloutKind::Promote { .. } => OrderAction::Deploy,
                    RolloutKind::Restore { .. } => OrderAction::Rollback,
                };
                Some(Order {
                    rollout: id,
                    action,
                    batch: r.completed + 1,
                    issued_seq: r.step_seq,
                    version: r.version.clone(),
                    release_digest: r.release_digest.clone(),
                    units: r.units.clone(),
                    agents,
                })
            }
            RolloutStatus::RollingBack => {
                let (release_digest, units) = self.release_info(&r.rollback_to);
                Some(Order {
                    rollout: id,
                    action: OrderAction::Rollback,
                    batch: 0,
                    issued_seq: r.step_seq,
                    version: r.rollback_to.clone(),
                    release_digest,
                    units,
                    agents: r.rollback_agents.clone(),
                })
            }
            _ => None,
        }
    }
}
