//! The release requester's script in the simulator: registers each release, promotes it to
//! canary and on to production, proposes the scenario's membership, settings and validator
//! changes between releases, and waits for every rollout to end. It reads the most advanced
//! honest ledger, as a requester polling `scbe status` would.

use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::{
    AgentChange, Ledger, ProposalStatus, SettingsChange, StateDigest, ValidatorChange,
};
use scbe_core::governance::{Operation, Stage};

use crate::fleet::{rekeyed_key, release_under};
use crate::scenario::FleetScenario;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Propose the scenario's next membership or settings change before this release.
    Membership,
    AwaitMembership,
    Register,
    Canary,
    AwaitCanary,
    Production,
    AwaitProduction,
    /// Propose the scenario's validator change (while a rollout is in flight, or at the end),
    /// then go back to the step before.
    Validators,
    Done,
}

/// The release requester: registers each release, promotes it to canary, and (if it stays
/// healthy and the scenario says so) on to production; waits for every rollout to end.
#[derive(Debug)]
pub struct ReleaseScript {
    releases: Vec<String>,
    to_production: bool,
    membership: bool,
    /// Changes still to propose before this release, in order.
    changes: Vec<Change>,
    idx: usize,
    step: Step,
    /// Nonce of the request whose outcome decides the next step.
    pending: Option<u64>,
    proposal: Option<u64>,
    attempts: u32,
    not_before_ms: u64,
    /// The scenario's validator change, until its proposal is decided (or given up).
    validators: Option<ValidatorChange>,
    /// The validator change's proposal, once accepted.
    validators_proposal: Option<u64>,
    /// The step to go back to once the validator change is proposed.
    resume: Step,
}

/// A change the requester proposes between releases (membership seeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// New gates, which every later release must be fused against: the quality gate raised
    /// to 0.82 and the cost gate loosened to 1.5 (the script's units pass both); and the state
    /// digest moved from the walk to the tree.
    Gates,
    /// The genesis's last agent leaves the fleet.
    RemoveLast,
    /// The genesis's last agent joins again (same id, key and specialty).
    AddLast,
    /// The genesis's first agent is re-keyed (its old key taken to have leaked); its operator
    /// restarts it with [`rekeyed_key`] once the change is approved.
    RekeyFirst,
}

/// Promotions refused (one rollout at a time) are retried this many times, then skipped.
const MAX_ATTEMPTS: u32 = 40;

impl ReleaseScript {
    pub fn new(fleet: &FleetScenario, validators: Option<ValidatorChange>) -> Self {
        ReleaseScript {
            step: if fleet.releases.is_empty() {
                Step::Done
            } else {
                Step::Register
            },
            releases: fleet.releases.clone(),
            to_production: fleet.to_production,
            membership: fleet.membership,
            changes: Vec::new(),
            idx: 0,
            pending: None,
            proposal: None,
            attempts: 0,
            not_before_ms: 0,
            validators,
            validators_proposal: None,
            resume: Step::Done,
        }
    }

    /// Every release went its way, and the validator change was decided.
    pub fn done(&self) -> bool {
        self.step == Step::Done && self.validators.is_none()
    }

    /// Proposes the validator change now (if it is still to be proposed), coming back to the
    /// current step afterwards.
    fn propose_validators(&mut self) -> Option<Operation> {
        let change = self.validators.clone()?;
        if self.validators_proposal.is_some() {
            return None;
        }
        if self.step != Step::Validators {
            self.resume = self.step;
            self.step = Step::Validators;
        }
        Some(Operation::ProposeValidator { change })
    }

    fn next_release(&mut self) {
        self.idx += 1;
        self.attempts = 0;
        self.proposal = None;
        self.changes = match (self.membership, self.idx) {
            (true, 1) => vec![Change::Gates, Change::RemoveLast, Change::RekeyFirst],
            (true, 2) => vec![Change::AddLast],
            _ => Vec::new(),
        };
        self.step = if self.idx >= self.releases.len() {
            Step::Done
        } else if !self.changes.is_empty() {
            Step::Membership
        } else {
            Step::Register
        };
    }

    /// The next operation to submit, if any, given the most advanced honest ledger.
    pub fn next(&mut self, ledger: &Ledger, key: &PublicKey, now_ms: u64) -> Option<Operation> {
        if let Some(nonce) = self.pending {
            let outcome = ledger.outcome(key, nonce)?.clone();
            self.pending = None;
            match self.step {
                Step::Register => self.step = Step::Canary,
                Step::Validators => match outcome.proposal {
                    Some(p) if outcome.accepted => {
                        self.validators_proposal = Some(p);
                        self.attempts = 0;
                        self.step = self.resume;
                    }
                    // Refused (another proposal is being voted on): retry, then give up.
                    _ => {
                        self.attempts += 1;
                        self.not_before_ms = now_ms + 500;
                        if self.attempts >= MAX_ATTEMPTS {
                            self.attempts = 0;
                            self.validators = None;
                            self.step = self.resume;
                        }
                    }
                },
                Step::Membership => match outcome.proposal {
                    Some(p) if outcome.accepted => {
                        self.proposal = Some(p);
                        self.step = Step::AwaitMembership;
                    }
                    // Refused (a rollout still holds the fleet): retry, then go on without it.
                    _ => {
                        self.attempts += 1;
                        self.not_before_ms = now_ms + 500;
                        if self.attempts >= MAX_ATTEMPTS {
                            self.attempts = 0;
                            self.changes.clear();
                            self.step = Step::Register;
                        }
                    }
                },
                Step::Canary | Step::Production => match outcome.proposal {
                    Some(p) if outcome.accepted => {
                        self.proposal = Some(p);
                        self.step = if self.step == Step::Canary {
                            Step::AwaitCanary
                        } else {
                            Step::AwaitProduction
                        };
                    }
                    _ => {
                        self.attempts += 1;
                        self.not_before_ms = now_ms + 500;
                        if self.attempts >= MAX_ATTEMPTS {
                            self.next_release();
                        }
                    }
                },
                _ => {}
            }
        }
        if now_ms < self.not_before_ms {
            return None;
        }
        if let Some(p) = self.validators_proposal {
            let decided = ledger
                .state()
                .proposals
                .get(&p)
                .is_some_and(|p| p.status != ProposalStatus::Pending);
            if decided {
                self.validators = None;
            }
        }
        if matches!(self.step, Step::Validators | Step::Done) {
            return self.propose_validators();
        }
        let version = self.releases.get(self.idx)?.clone();
        match self.step {
            Step::Membership => {
                // Before the second release: new gates, the genesis's last agent leaves and its
                // first is re-keyed; before the third the last is admitted again.
                let a = ledger.config().agents.last()?;
                let change = match self.changes.first()? {
                    Change::Gates => {
                        return Some(Operation::ProposeSettings {
                            change: SettingsChange {
                                min_quality: Some(0.82),
                                max_cost_per_1k_tokens: Some(1.5),
                                state_digest: Some(StateDigest::Tree),
                                ..SettingsChange::default()
                            },
                        })
                    }
                    Change::RemoveLast => AgentChange::Remove { id: a.id.clone() },
                    Change::AddLast => AgentChange::Add {
                        id: a.id.clone(),
                        specialty: a.specialty.clone(),
                        public_key: a.key,
                        address: "sim-agent:7100".into(),
                    },
                    Change::RekeyFirst => {
                        let first = &ledger.config().agents.first()?.id;
                        AgentChange::Update {
                            id: first.clone(),
                            address: None,
                            public_key: Some(rekeyed_key(first).public()),
                        }
                    }
                };
                Some(Operation::ProposeAgent { change })
            }
            Step::AwaitMembership => {
                let p = ledger.state().proposals.get(&self.proposal?)?;
                if p.status != ProposalStatus::Pending {
                    self.proposal = None;
                    self.attempts = 0;
                    if !self.changes.is_empty() {
                        self.changes.remove(0);
                    }
                    self.step = if self.changes.is_empty() {
                        Step::Register
                    } else {
                        Step::Membership
                    };
                }
                None
            }
            // Fused against the gates in force (they may have changed by proposal).
            Step::Register => Some(Operation::RegisterRelease {
                release: release_under(&version, ledger.gates()),
            }),
            Step::Canary | Step::Production => Some(Operation::Promote {
                version,
                to: if self.step == Step::Canary {
                    Stage::Canary
                } else {
                    Stage::Production
                },
                rollback_to: "v0".into(),
                pause_before: None,
                steps: Vec::new(),
            }),
            Step::AwaitCanary | Step::AwaitProduction => {
                let p = ledger.state().proposals.get(&self.proposal?)?;
                match p.status {
                    ProposalStatus::Pending => return None,
                    ProposalStatus::Rejected | ProposalStatus::Expired => {
                        self.next_release();
                        return None;
                    }
                    ProposalStatus::Approved => {}
                }
                let r = ledger.state().rollouts.get(&p.rollout?)?;
                if r.status.is_active() {
                    // The validator set changes while this rollout is in flight.
                    return self.propose_validators();
                }
                let completed = r.status == scbe_core::governance::ledger::RolloutStatus::Completed;
                if self.step == Step::AwaitCanary && completed && self.to_production {
                    self.step = Step::Production;
                    self.attempts = 0;
                } else {
                    self.next_release();
                }
                None
            }
            Step::Validators | Step::Done => None,
        }
    }

    /// The script's request was sent with this nonce.
    pub fn sent(&mut self, nonce: u64) {
        self.pending = Some(nonce);
    }
}
