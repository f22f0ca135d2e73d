//! What a validator decides while a rollout is active, pure and deterministic given its inputs
//! (the ledger's view of the active step, the verified acks and reports it received, and the time
//! passed in). The node runs it on every validator; the simulator runs the same code.
//!
//! Every validator, not only the leader, watches the health of the agents at risk, so a silent
//! or lying leader cannot hide a degraded canary:
//! - any validator holding a signed report that proves degradation (or a signed failed-deploy
//!   ack) submits `AutoRollback` with it;
//! - any validator that has not seen healthy data from every agent of the current batch by the
//!   step's deadline submits a `NoData` claim (the ledger needs `f + 1` of them);
//! - the leader records agents that are deployed and healthy with `RolloutProgress` (in chunks
//!   under the operation cap), and rollbacks with `RollbackDone`. Every validator holds the
//!   agents' acks (agents publish them on their health streams), so if the leader does not
//!   record a ready agent within `leader_grace_ms`, any validator does;
//! - a validator that sees the step's agents alive (reporting) but none acknowledging the order
//!   within `stall_ms` submits `Stalled` for the current view. A dead primary never orders it,
//!   so it times out at the backups and a view change follows; a live primary that orders it but
//!   does not execute is replaced once `f + 1` validators claim so (the ledger marks the view
//!   and every honest replica leaves it at that point of the log).
//!
//! Operations that do not take effect (lost in a view change) are submitted again after
//! `resubmit_ms`; the ledger refuses duplicates, so a second copy is harmless.

use std::collections::{BTreeMap, BTreeSet};

use crate::governance::ledger::{Ledger, RolloutKind, RolloutStatus};
use crate::governance::Operation;

use super::evidence::{AckBody, AckOutcome, AgentSigned, DeployAck, HealthBody, HealthReport};
use super::health::{HealthThresholds, Verdict};
use super::order::Order;

/// Most agents named in one no-data claim (the claim needs only one to be true).
const MAX_CLAIMED_AGENTS: usize = 64;

#[derive(Clone, Debug)]
pub struct WatchSettings {
    /// From the moment a validator sees a step, how long until missing healthy data is claimed
    /// (deploy deadline + monitoring window + slack).
    pub step_deadline_ms: u64,
    /// Wait before submitting an operation again that has not taken effect.
    pub resubmit_ms: u64,
    /// How long a ready agent waits for the leader to record it before any validator does.
    pub leader_grace_ms: u64,
    /// How long a step may go without any agent acknowledging its order before `Stalled`.
    pub stall_ms: u64,
    /// Byte budget of one operation (chunks stay below the request cap).
    pub max_op_bytes: usize,
}

/// The active rollout step, as this validator's ledger has it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepView {
    pub rollout: u64,
    pub status: RolloutStatus,
    /// A promotion (monitored, may roll back) rather than a restore.
    pub promote: bool,
    /// The order this step needs carried out.
    pub order: Order,
    /// The rollout's version: the one reports must be about.
    pub version: String,
    /// Agents whose health matters: those running or receiving the version.
    pub watch: BTreeSet<String>,
    /// Agents of the order already recorded in the ledger (nothing more to do for them).
    pub recorded: BTreeSet<String>,
    /// The view whose primary the ledger marked for replacement (stalled step).
    pub replace_view: Option<u64>,
    /// A compared canary step's baseline agents, each with the version it runs (empty when the
    /// step is not compared).
    pub baseline: BTreeMap<String, String>,
    /// What this step's reports are judged by (the ledger's `step_thresholds`).
    pub thresholds: HealthThresholds,
}

impl StepView {
    /// The active step of `ledger`, if a rollout holds the fleet.
    pub fn of(ledger: &Ledger) -> Option<StepView> {
        let r = ledger.state().active_rollout()?;
        let order = ledger.current_order(r.id)?;
        let promote = matches!(r.kind, RolloutKind::Promote { .. });
        let (watch, recorded) = match r.status {
            RolloutStatus::InProgress => (
                if promote {
                    ledger.at_risk(r.id)
                } else {
                    BTreeSet::new()
                },
                r.recorded.clone(),
            ),
            _ => (
                BTreeSet::new(),
                r.rollback_agents
                    .iter()
                    .filter(|a| !r.rollback_pending.contains(*a))
                    .cloned()
                    .collect(),
            ),
        };
        Some(StepView {
            baseline: ledger.baseline_agents(r.id),
            thresholds: ledger.step_thresholds(r),
            rollout: r.id,
            replace_view: r.replace_view,
            status: r.status,
            promote,
            version: r.version.clone(),
            order,
            watch,
            recorded,
        })
    }

    fn same_step(&self, other: &StepView) -> bool {
        self.rollout == other.rollout
            && self.order.issued_seq == other.order.issued_seq
            && self.status == other.status
    }

    /// Agents of the order still to be done.
    pub fn remaining(&self) -> impl Iterator<Item = &String> {
        self.order
            .agents
            .iter()
            .filter(|a| !self.recorded.contains(*a))
    }
}

pub struct Watcher {
    settings: WatchSettings,
    step: Option<StepView>,
    step_seen_ms: u64,
    /// Latest verified report per watched agent (for the active rollout and version), with its
    /// verdict, judged once when it arrives.
    reports: BTreeMap<String, (HealthReport, HealthBody, Verdict)>,
    /// Watched agents whose latest report proves degradation (a subset of `reports`), so a tick
    /// does not re-judge thousands of agents.
    degraded: BTreeSet<String>,
    /// Latest verified report of each baseline agent of a compared canary step.
    baseline: BTreeMap<String, (HealthReport, HealthBody)>,
    /// Latest verified ack per agent for the current step (the leader's executor feeds them).
    acks: BTreeMap<String, (DeployAck, AckBody)>,
    /// When each kind of operation was last submitted.
    submitted: BTreeMap<&'static str, u64>,
    /// When each agent's ack was last submitted (progress and rollbacks).
    submitted_agents: BTreeMap<String, u64>,
    /// When this validator last submitted its vote on each proposal.
    voted: BTreeMap<u64, u64>,
    /// When each agent of the step was first seen ready to record.
    ready_since: BTreeMap<String, u64>,
    /// When a report from each agent last arrived (any rollout): who is alive.
    heard_at: BTreeMap<String, u64>,
    claimed_no_data: bool,
}

impl Watcher {
    pub fn new(settings: WatchSettings) -> Self {
        Watcher {
            settings,
            step: None,
            step_seen_ms: 0,
            reports: BTreeMap::new(),
            degraded: BTreeSet::new(),
            baseline: BTreeMap::new(),
            acks: BTreeMap::new(),
            submitted: BTreeMap::new(),
            submitted_agents: BTreeMap::new(),
            ready_since: BTreeMap::new(),
            voted: BTreeMap::new(),
            heard_at: BTreeMap::new(),
            claimed_no_data: false,
        }
    }

    pub fn step(&self) -> Option<&StepView> {
        self.step.as_ref()
    }

    /// The ledger's current step; a new step starts a new deadline and forgets old acks.
    pub fn observe(&mut self, view: Option<StepView>, now_ms: u64) {
        let new_step = match (&self.step, &view) {
            (Some(old), Some(new)) => !old.same_step(new),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if new_step {
            self.step_seen_ms = now_ms;
            self.acks.clear();
            self.submitted.clear();
            self.submitted_agents.clear();
            self.ready_since.clear();
            self.claimed_no_data = false;
        }
        match &view {
            Some(v) => self
                .reports
                .retain(|a, (_, b, _)| b.rollout == v.rollout && v.watch.contains(a)),
            None => self.reports.clear(),
        }
        // A step judged by other thresholds (a canary step judged by its baseline, then the
        // next one): the kept reports are judged again, once.
        if let Some(v) = view.as_ref().filter(|v| {
            self.step
                .as_ref()
                .is_some_and(|o| o.thresholds != v.thresholds)
        }) {
            for (agent, (_, body, verdict)) in self.reports.iter_mut() {
                *verdict = v.thresholds.judge(body);
                if matches!(verdict, Verdict::Degraded(_)) {
                    self.degraded.insert(agent.clone());
                } else {
                    self.degraded.remove(agent);
                }
            }
        }
        let reports = &self.reports;
        self.degraded.retain(|a| reports.contains_key(a));
        let eligible = view.as_ref().map(|v| &v.baseline);
        self.baseline.retain(|a, (_, b)| {
            eligible.is_some_and(|e| e.get(a).is_some_and(|v| *v == b.version))
        });
        self.step = view;
    }

    /// A report whose signature the caller verified, received at `now_ms`.
    pub fn report(&mut self, signed: HealthReport, body: HealthBody, now_ms: u64) {
        self.heard_at.insert(body.agent.clone(), now_ms);
        let Some(step) = &self.step else { return };
        if step.baseline.get(&body.agent) == Some(&body.version) {
            let newer = self
                .baseline
                .get(&body.agent)
                .is_none_or(|(_, old)| body.report > old.report);
            if newer {
                self.baseline.insert(body.agent.clone(), (signed, body));
            }
            return;
        }
        if body.rollout == step.rollout
            && body.version == step.version
            && step.watch.contains(&body.agent)
        {
            let verdict = step.thresholds.judge(&body);
            if matches!(verdict, Verdict::Degraded(_)) {
                self.degraded.insert(body.agent.clone());
            } else {
                self.degraded.remove(&body.agent);
            }
            self.reports
                .insert(body.agent.clone(), (signed, body, verdict));
        }
    }

    /// An ack whose signature the caller verified.
    pub fn ack(&mut self, signed: DeployAck, body: AckBody) {
        let Some(step) = &self.step else { return };
        let o = &step.order;
        if body.rollout == o.rollout
            && body.issued_seq == o.issued_seq
            && body.action == o.action
            && body.version == o.version
            && o.is_for(&body.agent)
        {
            self.acks.insert(body.agent.clone(), (signed, body));
        }
    }

    /// Whether the agent acknowledged the current order as done.
    pub fn acked(&self, agent: &str) -> bool {
        self.acks
            .get(agent)
            .is_some_and(|(_, b)| b.outcome == AckOutcome::Done)
    }

    fn due(&mut self, what: &'static str, now_ms: u64) -> bool {
        let due = self
            .submitted
            .get(what)
            .is_none_or(|t| now_ms >= t + self.settings.resubmit_ms);
        if due {
            self.submitted.insert(what, now_ms);
        }
        due
    }

    fn healthy(&self, agent: &str) -> bool {
        self.reports
            .get(agent)
            .is_some_and(|(_, _, v)| *v == Verdict::Healthy)
    }

    /// Votes validator `me` owes on pending proposals (DESIGN §4: every validator evaluates a
    /// proposal on its own and votes through consensus). A vote not yet in the ledger after
    /// `resubmit_ms` is submitted again; the ledger refuses a second vote, so that is harmless.
    pub fn votes(&mut self, ledger: &Ledger, me: u32, now_ms: u64) -> Vec<Operation> {
        let owed = ledger.votes_owed(me);
        let pending: BTreeSet<u64> = owed
            .iter()
            .filter_map(|op| match op {
                Operation::Vote { proposal, .. } => Some(*proposal),
                _ => None,
            })
            .collect();
        self.voted.retain(|p, _| pending.contains(p));
        let resubmit = self.settings.resubmit_ms;
        owed.into_iter()
            .filter(|op| {
                let Operation::Vote { proposal, .. } = op else {
                    return false;
                };
                let due = self
                    .voted
                    .get(proposal)
                    .is_none_or(|t| now_ms >= t + resubmit);
                if due {
                    self.voted.insert(*proposal, now_ms);
                }
                due
            })
            .collect()
    }

    /// The operations this validator should submit now, in consensus view `view`.
    pub fn decide(&mut self, now_ms: u64, leader: bool, view: u64) -> Vec<Operation> {
        let Some(step) = self.step.clone() else {
            return Vec::new();
        };
        let mut ops = self.stall(&step, now_ms, view);
        ops.extend(match step.status {
            RolloutStatus::InProgress if step.promote => {
                self.decide_promotion(&step, now_ms, leader)
            }
            RolloutStatus::InProgress => {
                let done = self.done_acks(&step, now_ms, leader);
                self.chunks(
                    now_ms,
                    done,
                    Vec::new(),
                    self.settings.max_op_bytes,
                    |acks, _| Operation::RolloutProgress {
                        rollout: step.rollout,
                        batch: step.order.batch,
                        acks,
                        reports: Vec::new(),
                        baseline: Vec::new(),
                    },
                )
            }
            RolloutStatus::RollingBack => {
                let done = self.done_acks(&step, now_ms, leader);
                self.chunks(
                    now_ms,
                    done,
                    Vec::new(),
                    self.settings.max_op_bytes,
                    |acks, _| Operation::RollbackDone {
                        rollout: step.rollout,
                        acks,
                    },
                )
            }
            _ => Vec::new(),
        });
        ops
    }

    /// `Stalled` while the step's agents are alive but none has answered its order.
    fn stall(&mut self, step: &StepView, now_ms: u64, view: u64) -> Vec<Operation> {
        let window = self.settings.stall_ms;
        let answered = step.remaining().any(|a| self.acks.contains_key(a));
        let alive = step
            .remaining()
            .any(|a| self.heard_at.get(a).is_some_and(|t| now_ms < t + window));
        let since = now_ms.saturating_sub(self.step_seen_ms);
        if answered || !alive || since < window || step.replace_view.is_some_and(|v| v >= view) {
            return Vec::new();
        }
        let key = "stalled";
        let last = self.submitted.get(key).copied();
        if last.is_some_and(|t| now_ms < t + window) {
            return Vec::new();
        }
        self.submitted.insert(key, now_ms);
        vec![Operation::Stalled {
            rollout: step.rollout,
            issued_seq: step.order.issued_seq,
            view,
        }]
    }

    /// Whether this validator should record `agent`, ready now: the leader at once, others
    /// only after the leader had `leader_grace_ms` to do it.
    fn mine_to_record(&mut self, agent: &str, now_ms: u64, leader: bool) -> bool {
        let since = *self.ready_since.entry(agent.to_string()).or_insert(now_ms);
        leader || now_ms >= since + self.settings.leader_grace_ms
    }

    fn done_acks(&mut self, step: &StepView, now_ms: u64, leader: bool) -> Vec<DeployAck> {
        let done: Vec<(String, DeployAck)> = step
            .remaining()
            .filter_map(|a| self.acks.get(a))
            .filter(|(_, b)| b.outcome == AckOutcome::Done)
            .map(|(s, b)| (b.agent.clone(), s.clone()))
            .collect();
        done.into_iter()
            .filter(|(a, _)| self.mine_to_record(a, now_ms, leader))
            .map(|(_, s)| s)
            .collect()
    }

    fn decide_promotion(&mut self, step: &StepView, now_ms: u64, leader: bool) -> Vec<Operation> {
        // 1. Proof of degradation, from any validator.
        // One piece of evidence is proof enough; more is carried while it fits one operation.
        let mut room = self.settings.max_op_bytes;
        let mut fits = |len: usize| {
            let fit = len <= room;
            room = room.saturating_sub(len);
            fit
        };
        let degraded: Vec<HealthReport> = self
            .degraded
            .iter()
            .filter_map(|a| self.reports.get(a).map(|(s, _, _)| s.clone()))
            .take(MAX_CLAIMED_AGENTS)
            .take_while(|r| fits(r.encoded_len()))
            .collect();
        let failed: Vec<DeployAck> = self
            .acks
            .values()
            .filter(|(_, b)| b.outcome == AckOutcome::Failed)
            .map(|(s, _)| s.clone())
            .take(MAX_CLAIMED_AGENTS)
            .take_while(|a| fits(a.encoded_len()))
            .collect();
        if !degraded.is_empty() || !failed.is_empty() {
            if self.due("auto_rollback", now_ms) {
                return vec![Operation::AutoRollback {
                    rollout: step.rollout,
                    reports: degraded,
                    acks: failed,
                }];
            }
            return Vec::new();
        }
        let mut ops = Vec::new();
        // 2. Record agents that are deployed and healthy (the leader first).
        {
            let candidates: Vec<String> = step
                .remaining()
                .filter(|a| self.acked(a) && self.healthy(a))
                .cloned()
                .collect();
            let ready: Vec<String> = candidates
                .into_iter()
                .filter(|a| self.mine_to_record(a, now_ms, leader))
                .collect();
            let acks = ready
                .iter()
                .filter_map(|a| self.acks.get(a).map(|(s, _)| s.clone()))
                .collect();
            let reports = ready
                .iter()
                .filter_map(|a| self.reports.get(a).map(|(s, _, _)| s.clone()))
                .collect();
            let rollout = step.rollout;
            let batch = step.order.batch;
            // A compared canary step carries its baseline in every chunk (the ledger keeps the
            // newest report per agent), in half the byte budget at most.
            let (baseline, used) = if ready.is_empty() {
                (Vec::new(), 0)
            } else {
                self.baseline_within(self.settings.max_op_bytes / 2)
            };
            let budget = self.settings.max_op_bytes - used;
            ops.extend(self.chunks(now_ms, acks, reports, budget, |acks, reports| {
                Operation::RolloutProgress {
                    rollout,
                    batch,
                    acks,
                    reports,
                    baseline: baseline.clone(),
                }
            }));
        }
        // 3. The progress deadline: agents of the step with no healthy data by then are a
        //    failure; claim them (the ledger needs f + 1). Agents healthy but unrecorded are
        //    not claimed: recording them is the primary's work, and a primary that does not do
        //    it is replaced by the stall claims below, not answered by a rollback.
        let deadline = self.step_seen_ms + self.settings.step_deadline_ms;
        if !self.claimed_no_data && now_ms >= deadline {
            let missing: Vec<String> = step
                .remaining()
                .filter(|a| !self.healthy(a) || (leader && !self.acked(a)))
                .take(MAX_CLAIMED_AGENTS)
                .cloned()
                .collect();
            if !missing.is_empty() {
                self.claimed_no_data = true;
                ops.push(Operation::NoData {
                    rollout: step.rollout,
                    issued_seq: step.order.issued_seq,
                    agents: missing,
                });
            }
        }
        ops
    }

    /// The baseline reports to carry, in agent order, within `budget` bytes; and their bytes.
    fn baseline_within(&self, budget: usize) -> (Vec<HealthReport>, usize) {
        let mut used = 0;
        let mut out = Vec::new();
        for (signed, _) in self.baseline.values() {
            let len = signed.encoded_len();
            if used + len > budget {
                break;
            }
            used += len;
            out.push(signed.clone());
        }
        (out, used)
    }

    /// Splits acks (and matching reports) of agents not submitted recently into operations
    /// under the byte budget: a new ack goes out at once, a lost one again after `resubmit_ms`.
    fn chunks(
        &mut self,
        now_ms: u64,
        acks: Vec<DeployAck>,
        reports: Vec<HealthReport>,
        budget: usize,
        make: impl Fn(Vec<DeployAck>, Vec<HealthReport>) -> Operation,
    ) -> Vec<Operation> {
        let resubmit = self.settings.resubmit_ms;
        let acks: Vec<DeployAck> = acks
            .into_iter()
            .filter(|a| {
                self.submitted_agents
                    .get(&a.agent)
                    .is_none_or(|t| now_ms >= t + resubmit)
            })
            .collect();
        for a in &acks {
            self.submitted_agents.insert(a.agent.clone(), now_ms);
        }
        let mut by_agent: BTreeMap<String, HealthReport> =
            reports.into_iter().map(|r| (r.agent.clone(), r)).collect();
        let mut ops = Vec::new();
        let (mut cur_acks, mut cur_reports, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        for ack in acks {
            let report = by_agent.remove(&ack.agent);
            let size = ack.encoded_len() + report.as_ref().map_or(0, AgentSigned::encoded_len);
            if !cur_acks.is_empty() && bytes + size > budget {
                ops.push(make(
                    std::mem::take(&mut cur_acks),
                    std::mem::take(&mut cur_reports),
                ));
                bytes = 0;
            }
            bytes += size;
            cur_acks.push(ack);
            cur_reports.extend(report);
        }
        if !cur_acks.is_empty() {
            ops.push(make(cur_acks, cur_reports));
        }
        ops
    }
}

#[cfg(test)]
#[path = "watcher_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "watcher_vote_tests.rs"]
mod vote_tests;
