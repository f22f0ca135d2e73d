//! Releases, proposals and votes: registration, promotion and rollback proposals, tallies, expiry,
//! and a validator's own evaluation of a proposal.

use std::collections::BTreeMap;

use super::state::{
    Proposal, ProposalKind, ProposalStatus, ReleaseEntry, RolloutStatus, VoteRecord,
};
use super::{reject, Ledger, Rejection};
use crate::governance::admission;
use crate::governance::release::FusedRelease;
use crate::governance::release_body::ReleaseBody;
use crate::governance::stage::{Stage, Tongue};
use crate::rollout::plan::{check_steps, plan_steps};

impl Ledger {
    /// Proposals whose vote window has passed expire, at the same sequence number everywhere.
    pub(super) fn expire(&mut self, seq: u64) {
        let window = self.cfg.vote_window_seqs;
        let expired: Vec<u64> = self
            .state
            .proposals
            .open_values()
            .filter(|p| seq > p.opened_seq.saturating_add(window))
            .map(|p| p.id)
            .collect();
        for id in expired {
            self.touched_proposal();
            if let Some(p) = self.state.proposals.get_mut(&id) {
                p.status = ProposalStatus::Expired;
                p.decided_seq = Some(seq);
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

    pub(super) fn register(&mut self, seq: u64, release: FusedRelease) -> Result<(), Rejection> {
        let refused = admission::check_release(&release, &self.gates());
        if !refused.is_empty() {
            return Err(refused);
        }
        release.verify().map_err(|e| vec![e.to_string()])?;
        if self.state.releases.contains_key(release.version.as_str())
            || self.state.known_good.contains(&release.version)
        {
            return reject(format!("version {} already exists", release.version));
        }
        let mut failures = Vec::new();
        for (p, unit) in &release.units {
            for f in self.gates().check(&unit.metrics) {
                failures.push(format!("{p} {}: {}", unit.id, f.reason));
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        let version = release.version.clone();
        let digest = release.digest.clone();
        let body = ReleaseBody::new(&release).map_err(|e| vec![e.to_string()])?;
        self.hold_body(&version, seq, &body);
        self.state.releases.insert(
            version.as_str().into(),
            ReleaseEntry {
                release: body,
                stage: Stage::Staging,
                registered_seq: seq,
            },
        );
        self.event(
            seq,
            Tongue::CA,
            crate::governance::event::RELEASE_REGISTERED,
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

    pub(super) fn open_proposal(&mut self, seq: u64, kind: ProposalKind) -> u64 {
        let id = self.state.next_proposal;
        self.state.next_proposal += 1;
        self.touched_proposal();
        self.state.proposals.insert(
            id,
            Proposal {
                id,
                kind,
                opened_seq: seq,
                status: ProposalStatus::Pending,
                votes: BTreeMap::new(),
                decided_seq: None,
                rollout: None,
                validator: None,
            },
        );
        id
    }

    /// Opens a proposal for a change to the cluster (membership, settings) whose checks found
    /// `reasons` (none: it could apply now), one proposal at a time; `proposed` names the
    /// event that announces it.
    pub(super) fn open_change(
        &mut self,
        seq: u64,
        reasons: Vec<String>,
        kind: ProposalKind,
        proposed: &str,
        what: String,
    ) -> Result<u64, Rejection> {
        if !reasons.is_empty() {
            return Err(reasons);
        }
        if let Some(p) = self.pending_proposal() {
            return reject(format!(
                "proposal {} is still being voted on; one change at a time",
                p.id
            ));
        }
        let id = self.open_proposal(seq, kind);
        self.event(seq, Tongue::UM, proposed, format!("proposal:{id}"), what);
        Ok(id)
    }

    /// An approved change is checked again as it applies (applying stays deterministic
    /// whatever happened since the votes were cast): with `reasons`, it is not applied and
    /// the `not_applied` event says why. Whether it may apply.
    pub(super) fn still_applies(
        &mut self,
        seq: u64,
        proposal: u64,
        reasons: Vec<String>,
        not_applied: &str,
    ) -> bool {
        if reasons.is_empty() {
            return true;
        }
        self.event(
            seq,
            Tongue::UM,
            not_applied,
            format!("proposal:{proposal}"),
            reasons.join("; "),
        );
        false
    }

    pub(super) fn pending_proposal(&self) -> Option<&Proposal> {
        self.pending_where(|_| true)
    }

    /// The pending proposal of the kind `is` picks, if any (one of each kind at a time).
    pub(super) fn pending_where(&self, is: impl Fn(&ProposalKind) -> bool) -> Option<&Proposal> {
        self.state.proposals.open_values().find(|p| is(&p.kind))
    }

    pub(super) fn promote(
        &mut self,
        seq: u64,
        version: String,
        to: Stage,
        rollback_to: String,
        (pause_before, steps): (Option<u32>, Vec<u32>),
    ) -> Result<u64, Rejection> {
        // Checked first, so nothing unbounded is echoed into outcomes or events.
        let refused: Vec<String> = [("version", &version), ("rollback_to", &rollback_to)]
            .into_iter()
            .filter_map(|(field, v)| admission::check_version(field, v).err())
            .map(|e| e.to_string())
            .collect();
        if !refused.is_empty() {
            return Err(refused);
        }
        let Some(entry) = self.state.releases.get(version.as_str()) else {
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
        // One change to the fleet at a time: a second rollout would race the first for agents.
        if let Some(r) = self.state.active_rollout() {
            return reject(format!(
                "rollout {} ({}) still holds the fleet ({:?}); one rollout at a time",
                r.id, r.version, r.status
            ));
        }
        if let Some(p) = self.pending_proposal() {
            return reject(format!(
                "proposal {} is still being voted on; one change at a time",
                p.id
            ));
        }
        if let Some(why) = check_steps(&steps, to) {
            return reject(why);
        }
        if let Some(n) = pause_before {
            let batches = plan_steps(&self.state.agents, to, &steps).batches.len() as u32;
            if n == 0 || n > batches {
                return reject(format!(
                    "pause_before {n}: the {to} plan has batches 1 to {batches}"
                ));
            }
        }
        let id = self.open_proposal(
            seq,
            ProposalKind::Promote {
                version: version.clone(),
                from,
                to,
                rollback_to: rollback_to.clone(),
                pause_before,
                steps,
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

    pub(super) fn rollback(
        &mut self,
        seq: u64,
        target_version: String,
        reason: String,
    ) -> Result<u64, Rejection> {
        admission::check_version("target_version", &target_version)
            .map_err(|e| vec![e.to_string()])?;
        admission::check_reason("reason", &reason).map_err(|e| vec![e.to_string()])?;
        if !self.state.known_good.contains(&target_version) {
            return reject(format!("{target_version} is not a known-good version"));
        }
        let everyone_on_it = self.state.assigned.values().all(|v| *v == target_version);
        let production = self.state.current.get(&Stage::Production) == Some(&target_version);
        if production && everyone_on_it && self.state.active_rollout().is_none() {
            return reject(format!(
                "{target_version} is already in production on every agent"
            ));
        }
        if let Some(p) = self.pending_where(|k| matches!(k, ProposalKind::Rollback { .. })) {
            return reject(format!(
                "rollback proposal {} is still being voted on",
                p.id
            ));
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

    pub(super) fn vote(
        &mut self,
        seq: u64,
        validator: u32,
        proposal: u64,
        approve: bool,
        reasons: Vec<String>,
    ) -> Result<Option<u64>, Rejection> {
        if !self.is_validator(validator) {
            return reject(format!("validator {validator} is not in the validator set"));
        }
        let (n, q) = (self.validator_count(), self.validator_quorum());
        self.touched_proposal();
        let Some(p) = self.state.proposals.get_mut(&proposal) else {
            return reject(format!("unknown proposal {proposal}"));
        };
        if p.votes.contains_key(&validator) {
            return reject(format!(
                "validator {validator} already voted on proposal {proposal}"
            ));
        }
        let decided = matches!(
            p.status,
            ProposalStatus::Approved | ProposalStatus::Rejected
        );
        if decided {
            // The audit trail keeps what every validator concluded, even after the decision
            // (the rate of agreement counts it); the outcome does not change.
            p.votes.insert(
                validator,
                VoteRecord {
                    approve,
                    reasons: reasons.clone(),
                    seq,
                },
            );
            let verdict = if approve { "approve" } else { "reject" };
            self.event(
                seq,
                Tongue::RU,
                "vote",
                format!("proposal:{proposal}"),
                format!(
                    "validator {validator}: {verdict} after the decision ({})",
                    reasons.join("; ")
                ),
            );
            return Ok(None);
        }
        if p.status != ProposalStatus::Pending {
            return reject(format!("proposal {proposal} is already {:?}", p.status));
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
            return Ok(self.decide(seq, proposal, ProposalStatus::Approved));
        }
        if rejections > n - q {
            return Ok(self.decide(seq, proposal, ProposalStatus::Rejected));
        }
        Ok(None)
    }

    fn decide(&mut self, seq: u64, proposal: u64, status: ProposalStatus) -> Option<u64> {
        self.touched_proposal();
        let p = self.state.proposals.get_mut(&proposal)?;
        p.status = status;
        p.decided_seq = Some(seq);
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
            return None;
        }
        self.event(
            seq,
            Tongue::RU,
            "proposal_approved",
            format!("proposal:{proposal}"),
            tally,
        );
        let rollout = match kind {
            ProposalKind::Promote {
                version,
                from,
                to,
                rollback_to,
                pause_before,
                steps,
            } => {
                let id =
                    self.start_promotion(seq, proposal, version, (from, to), rollback_to, &steps);
                self.pause_before(seq, id, pause_before);
                id
            }
            ProposalKind::Rollback {
                target_version,
                reason,
            } => self.start_restore(seq, proposal, target_version, reason),
            ProposalKind::Agent { change } => {
                self.apply_agent_change(seq, proposal, change);
                return None;
            }
            ProposalKind::Abort { rollout, reason } => {
                return self.apply_abort(seq, proposal, rollout, reason);
            }
            ProposalKind::Approve { rollout, batch } => {
                return self.apply_approve(seq, proposal, rollout, batch);
            }
            ProposalKind::Settings { change } => {
                self.apply_settings(seq, proposal, change);
                return None;
            }
            ProposalKind::Requester { change } => {
                self.apply_requester_change(seq, proposal, change);
                return None;
            }
            ProposalKind::Validator { change } => {
                self.apply_validator_change(seq, proposal, change);
                return None;
            }
        };
        if let Some(p) = self.state.proposals.get_mut(&proposal) {
            p.rollout = Some(rollout);
        }
        Some(rollout)
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
                ..
            } => {
                match self
                    .state
                    .releases
                    .get(version.as_str())
                    .map(|e| e.release.release())
                {
                    None => reasons.push(format!("unknown release {version}")),
                    Some(Err(e)) => reasons.push(format!("release {version}: {e}")),
                    Some(Ok(release)) => {
                        for (prov, unit) in &release.units {
                            for f in self.gates().check(&unit.metrics) {
                                reasons.push(format!("{prov} {}: {}", unit.id, f.reason));
                            }
                        }
                    }
                }
                if !self.state.known_good.contains(rollback_to) {
                    reasons.push(format!("rollback plan {rollback_to} is not known good"));
                }
                if *from == Stage::Canary && *to == Stage::Production {
                    reasons.extend(self.canary_recheck(version));
                }
            }
            ProposalKind::Rollback { target_version, .. } => {
                if !self.state.known_good.contains(target_version) {
                    reasons.push(format!("{target_version} is not known good"));
                }
            }
            ProposalKind::Agent { change } => reasons.extend(self.check_agent_change(change)),
            ProposalKind::Abort { rollout, .. } => reasons.extend(self.check_abort(*rollout)),
            ProposalKind::Approve { rollout, batch } => {
                reasons.extend(self.check_approve(*rollout, Some(*batch)))
            }
            ProposalKind::Settings { change } => reasons.extend(self.check_settings_change(change)),
            ProposalKind::Requester { change } => {
                reasons.extend(self.check_requester_change(change))
            }
            ProposalKind::Validator { change } => {
                reasons.extend(self.check_validator_change(change))
            }
        }
        if reasons.is_empty() {
            (true, vec!["all checks pass".into()])
        } else {
            (false, reasons)
        }
    }

    /// The safety re-check at the new scale: the latest canary rollout of `version` completed,
    /// and every one of its agents left a signed healthy report with safety at the bound.
    fn canary_recheck(&self, version: &str) -> Vec<String> {
        let canary = self
            .state
            .rollouts
            .values()
            .rev()
            .find(|r| r.version == version && r.status != RolloutStatus::Failed);
        let Some(r) = canary.filter(|r| r.status == RolloutStatus::Completed) else {
            return vec!["no completed canary rollout with signed health reports".into()];
        };
        let mut reasons = Vec::new();
        let min_safety = self.health().min_safety;
        let thresholds = self.canary_thresholds();
        for agent in r.batches.iter().flatten() {
            match r.reports.get(agent) {
                None => reasons.push(format!("canary {agent} left no signed healthy report")),
                Some(b) => {
                    if b.safety_min < min_safety {
                        reasons.push(format!(
                            "canary {agent}: safety {} < {min_safety}",
                            b.safety_min
                        ));
                    }
                    if !thresholds.healthy(b) {
                        reasons.push(format!("canary {agent} is not healthy"));
                    }
                }
            }
        }
        reasons
    }
}

impl Ledger {
    /// Pending proposals `validator` has not voted on yet, with its own evaluation of each.
    /// Votes are owed by state, not by the moment a proposal was delivered: a validator that
    /// crashed before its vote was ordered, or whose vote was lost, still votes afterwards.
    pub fn votes_owed(&self, validator: u32) -> Vec<crate::governance::Operation> {
        self.state
            .proposals
            .open_values()
            .filter(|p| !p.votes.contains_key(&validator))
            .map(|p| {
                let (approve, reasons) = self.evaluate(p.id);
                crate::governance::Operation::Vote {
                    proposal: p.id,
                    approve,
                    reasons,
                }
            })
            .collect()
    }
}
