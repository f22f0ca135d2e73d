//! Rollbacks in the ledger: on agent-signed evidence of degradation (or a failed deploy ack), on
//! `f + 1` validators' claims that the current step has no data, and their completion once every
//! touched agent acked the old version. The rollout bookkeeping they share is in `rollouts.rs`.

use std::collections::BTreeSet;

use super::state::{RolloutKind, RolloutStatus};
use super::{reject, Ledger, Rejection};
use crate::governance::stage::{Stage, Tongue};
use crate::rollout::evidence::{AckOutcome, DeployAck, HealthReport, OrderAction};
use crate::rollout::health::Verdict;

impl Ledger {
    pub(super) fn auto_rollback(
        &mut self,
        seq: u64,
        id: u64,
        reports: &[HealthReport],
        acks: &[DeployAck],
    ) -> Result<(), Rejection> {
        let r = self.active(id, RolloutStatus::InProgress)?;
        if !matches!(r.kind, RolloutKind::Promote { .. }) {
            return reject(format!(
                "rollout {id} restores a known-good version; it is not rolled back"
            ));
        }
        let at_risk = self.at_risk(id);
        let batch: BTreeSet<&String> = r.current_batch().unwrap_or_default().iter().collect();
        let thresholds = self.step_thresholds(r);
        let mut proof = Vec::new();
        let mut problems = Vec::new();
        for rep in reports {
            match self.open_report(r, rep) {
                Err(e) => problems.push(e.to_string()),
                Ok(b) if !at_risk.contains(&b.agent) => problems.push(format!(
                    "{} is not in a deployed batch of rollout {id}",
                    b.agent
                )),
                Ok(b) => match thresholds.judge(&b) {
                    Verdict::Degraded(why) => proof.push(why),
                    Verdict::Healthy => problems.push(format!("{} is healthy", b.agent)),
                    Verdict::NotYet(why) => problems.push(format!("not enough samples: {why}")),
                },
            }
        }
        for ack in acks {
            match self.open_ack(r, ack, OrderAction::Deploy, &r.version) {
                Err(e) => problems.push(e.to_string()),
                Ok(b) if !batch.contains(&b.agent) => {
                    problems.push(format!("{} is not in the current batch", b.agent))
                }
                Ok(b) if b.outcome == AckOutcome::Failed => {
                    proof.push(format!("{}: deploy failed: {}", b.agent, b.detail))
                }
                Ok(b) => problems.push(format!("{} did not report a failed deploy", b.agent)),
            }
        }
        if proof.is_empty() {
            problems.insert(
                0,
                "no signed evidence proves a degraded or failed batch".into(),
            );
            return Err(problems);
        }
        self.start_rollback(seq, id, "auto_rollback", proof.join("; "));
        Ok(())
    }

    pub(super) fn no_data(
        &mut self,
        seq: u64,
        validator: u32,
        id: u64,
        issued_seq: u64,
        agents: &[String],
    ) -> Result<(), Rejection> {
        if !self.is_validator(validator) {
            return reject(format!("validator {validator} is not in the validator set"));
        }
        let r = self.active(id, RolloutStatus::InProgress)?;
        if !matches!(r.kind, RolloutKind::Promote { .. }) {
            return reject(format!(
                "rollout {id} restores a known-good version; it is not rolled back"
            ));
        }
        if issued_seq != r.step_seq {
            return reject(format!(
                "rollout {id} is at the step issued at seq {}, not {issued_seq}",
                r.step_seq
            ));
        }
        let batch: BTreeSet<&String> = r.current_batch().unwrap_or_default().iter().collect();
        if agents.is_empty() || agents.iter().any(|a| !batch.contains(a)) {
            return reject("a no-data claim must name agents of the current batch");
        }
        let needed = self.validator_f() + 1;
        let Some(r) = self.state.rollouts.get_mut(&id) else {
            return reject(format!("unknown rollout {id}"));
        };
        if !r.no_data.insert(validator) {
            return reject(format!(
                "validator {validator} already claimed no data for this step"
            ));
        }
        let claims = r.no_data.len();
        let batch_no = r.completed + 1;
        let claimants: Vec<String> = r.no_data.iter().map(u32::to_string).collect();
        self.event(
            seq,
            Tongue::AV,
            "no_data_claimed",
            format!("rollout:{id}"),
            format!(
                "validator {validator}: no healthy data from {} ({claims} of {needed} claims)",
                agents.join(", ")
            ),
        );
        if claims >= needed {
            let why = format!(
                "batch {} missed its progress deadline: no healthy data recorded from {} \
                 (validators {})",
                batch_no,
                agents.join(", "),
                claimants.join(", ")
            );
            self.start_rollback(seq, id, "no_data_rollback", why);
        }
        Ok(())
    }

    pub(super) fn start_rollback(&mut self, seq: u64, id: u64, kind: &str, reason: String) {
        let agents: Vec<String> = self.at_risk(id).into_iter().collect();
        let Some(r) = self.state.rollouts.get_mut(&id) else {
            return;
        };
        r.status = RolloutStatus::RollingBack;
        r.reason = reason.clone();
        r.step_seq = seq;
        r.stalled.clear();
        r.replace_view = None;
        r.rollback_pending = agents.iter().cloned().collect();
        r.rollback_agents = agents;
        let (version, rollback_to, count) = (
            r.version.clone(),
            r.rollback_to.clone(),
            r.rollback_agents.len(),
        );
        self.event(
            seq,
            Tongue::DR,
            kind,
            format!("rollout:{id}"),
            format!("{version} -> {rollback_to} on {count} agents: {reason}"),
        );
        // Nothing was touched (a rollout stopped while paused before its first batch): there
        // is nothing to order back, and the rollback is over.
        if count == 0 {
            self.finish_rollback(seq, id, &rollback_to);
        }
    }

    pub(super) fn rollback_done(
        &mut self,
        seq: u64,
        id: u64,
        acks: &[DeployAck],
    ) -> Result<(), Rejection> {
        let r = self.active(id, RolloutStatus::RollingBack)?;
        let mut problems = Vec::new();
        let mut done = BTreeSet::new();
        for ack in acks {
            match self.open_ack(r, ack, OrderAction::Rollback, &r.rollback_to) {
                Err(e) => problems.push(e.to_string()),
                Ok(b) if !r.rollback_pending.contains(&b.agent) => {
                    problems.push(format!("{} has no rollback pending", b.agent))
                }
                Ok(b) if b.outcome != AckOutcome::Done => problems.push(format!(
                    "{} did not roll back: {:?} {}",
                    b.agent, b.outcome, b.detail
                )),
                Ok(b) => {
                    done.insert(b.agent);
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        if done.is_empty() {
            return reject("no signed rollback ack");
        }
        let rollback_to = r.rollback_to.clone();
        for a in &done {
            self.state.assigned.insert(a.clone(), rollback_to.clone());
        }
        let Some(r) = self.state.rollouts.get_mut(&id) else {
            return reject(format!("unknown rollout {id}"));
        };
        for a in &done {
            r.rollback_pending.remove(a);
        }
        let left = r.rollback_pending.len();
        if left > 0 {
            self.event(
                seq,
                Tongue::DR,
                "agents_rolled_back",
                format!("rollout:{id}"),
                format!("{} agents back on {rollback_to}, {left} to go", done.len()),
            );
            return Ok(());
        }
        self.finish_rollback(seq, id, &rollback_to);
        Ok(())
    }

    /// Every touched agent is back on `rollback_to`: the rollout ends rolled back and the
    /// release returns to staging.
    fn finish_rollback(&mut self, seq: u64, id: u64, rollback_to: &str) {
        let Some(r) = self.state.rollouts.get(&id) else {
            return;
        };
        let (version, count) = (r.version.clone(), r.rollback_agents.len());
        let reason = r.reason.clone();
        self.end(seq, id, RolloutStatus::RolledBack, reason);
        if let Some(e) = self.state.releases.get_mut(version.as_str()) {
            e.stage = Stage::Staging;
        }
        if self.state.current.get(&Stage::Canary) == Some(&version) {
            self.state.current.remove(&Stage::Canary);
        }
        self.event(
            seq,
            Tongue::DR,
            "rolled_back",
            format!("rollout:{id}"),
            format!("all {count} touched agents back on {rollback_to} (from {version})"),
        );
    }
}
