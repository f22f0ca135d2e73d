//! The governance ledger: a deterministic state machine over ordered, authenticated requests.
//!
//! Every replica applies the same committed requests in the same order and reaches the same
//! state and the same outcome for every request. Ledger time is the consensus sequence number, so
//! vote windows expire identically everywhere. The state digest feeds the consensus checkpoints;
//! a snapshot restores the identical state.
//!
//! What it accepts (`proposals.rs` and `rollouts.rs` hold the rules):
//! - `RegisterRelease` (requester or validator): digest and gates re-checked; enters staging.
//! - `Promote` (requester): one stage up, no skipping, with a known-good `rollback_to`, and only
//!   while no other rollout holds the fleet; opens a proposal that validators vote on.
//! - `Rollback` (requester): to a known-good version; opens a proposal.
//! - `Abort` (requester): stop a promotion in progress (`aborts.rs`); opens a proposal; at
//!   approval the rollout rolls back as on degraded evidence.
//! - `Approve` (requester): let a rollout paused before a batch (`Promote`'s `pause_before`)
//!   deploy it (`pauses.rs`); opens a proposal; the batch starts at approval.
//! - `ProposeAgent` (requester): admit, remove or update an agent (`membership.rs`); opens a
//!   proposal; applied at approval.
//! - `ProposeSettings` (requester): new quality gates or health thresholds (`settings.rs`),
//!   held to floors no vote can cross; opens a proposal; applied at approval.
//! - `Vote` (validator): one per validator per proposal; approved at `q` approvals, rejected
//!   once `n - q + 1` rejections make approval impossible, expired after the vote window. An
//!   approved promotion plans a rollout; an approved rollback plans a restore.
//! - `RolloutProgress` (validator): agents of the current batch deployed and healthy, proven by
//!   their signed acks and reports. When a compared canary step ends, the canary agents'
//!   samples are compared with the baseline agents' carried alongside (`canary_analysis.rs`).
//! - `AutoRollback` (validator): agent-signed proof of degradation or of a failed deploy; the
//!   evidence is the vote.
//! - `NoData` (validator): `f + 1` distinct claims that the current step produced no healthy data
//!   by its deadline roll the rollout back.
//! - `RollbackDone` (validator): agents' signed acks of the rollback.
//! - `Stalled` (validator): `f + 1` distinct claims that a step's order goes unexecuted under a
//!   view mark that view's primary for replacement (the runtime then changes view).
//! - `Notified` (validator): the leader delivered a notification sink's events up to a point
//!   (`notifications.rs`), so the next leader resends only what follows.

mod aborts;
mod canary_analysis;
pub mod checkpoint_prover;
pub mod digest_tree;
pub mod entry_map;
mod held_bodies;
pub mod journal;
pub mod lifecycle_map;
pub mod membership;
mod notifications;
mod pauses;
mod proposals;
pub mod requesters;
mod rollbacks;
mod rollouts;
pub mod settings;
mod snapshots;
mod stalls;
pub mod state;
pub mod state_proof;
pub mod tree_proof;
pub mod validators;

use crate::consensus::{AppState, Digest, Request, Seq, Signed, SnapshotError, StateMachine};
use crate::crypto::PublicKey;
use crate::rollout::baseline::AnalysisSettings;
use crate::rollout::health::HealthThresholds;
use crate::rollout::order::OrderUnit;
use crate::rollout::plan::FleetAgent;
use std::collections::BTreeMap;

use self::snapshots::decode_snapshot;
use super::body_store::SharedBodyStore;
use super::event::Event;
use super::gates::Gates;
use super::operation::Operation;
use super::release::hex;
use super::stage::{Stage, Tongue};

pub use canary_analysis::MAX_BASELINE_AGENTS;
pub use journal::{Fresh, Journal, EVENTS_KEPT, OUTCOMES_KEPT_PER_SIGNER};
pub use membership::{AgentChange, MAX_AGENT_NAME_CHARS};
pub use notifications::{DEFAULT_NOTIFY_EVENTS, NOTIFIABLE_EVENTS};
pub use requesters::{RequesterChange, RequesterEntry, Requesters};
pub use settings::{Settings, SettingsChange};
pub use state::{
    LedgerState, Outcome, Proposal, ProposalKind, ProposalStatus, ReleaseEntry, Rollout,
    RolloutKind, RolloutStatus, StateDigest, VoteRecord,
};
pub use validators::{
    ValidatorChange, ValidatorRoster, MAX_VALIDATORS, MAX_VALIDATOR_ADDRESS_CHARS,
};

/// The ledger's static configuration (identical on every validator).
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    pub validators: Vec<PublicKey>,
    /// Versions known good at genesis (what the fleet runs before the first promotion).
    pub known_good: Vec<String>,
    /// Units of known-good versions, as the genesis lists them: a rollback order to one
    /// carries them like an order for a registered release.
    pub known_good_units: BTreeMap<String, Vec<OrderUnit>>,
    /// The genesis's gates ([`Ledger::gates`] are the gates in force).
    pub gates: Gates,
    /// Proposals expire this many sequence numbers after they open.
    pub vote_window_seqs: u64,
    /// The genesis's agents (the fleet at sequence 0; [`LedgerState::agents`] is the fleet now).
    pub agents: Vec<FleetAgent>,
    /// The genesis's health thresholds ([`Ledger::health`] are those in force).
    pub health: HealthThresholds,
    /// How a canary step is judged: thresholds, and the comparison with its baseline.
    pub analysis: AnalysisSettings,
    /// Names of the genesis's notification sinks (`[[notify]]`), whose delivery the ledger
    /// records.
    pub notify_sinks: Vec<String>,
    /// The genesis's state digest ([`Ledger::settings`] holds the one in force).
    pub state_digest: StateDigest,
    /// The genesis's requesters by name ([`Ledger::requesters`] are those in force).
    pub requesters: BTreeMap<String, PublicKey>,
}

impl LedgerConfig {
    pub fn quorum(&self) -> usize {
        crate::consensus::config::quorum_for(self.validators.len())
    }
}

/// Who signed a request, as the ledger sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    Validator(u32),
    Requester(PublicKey),
}

pub struct Ledger {
    cfg: LedgerConfig,
    /// Agent keys by id (derived from `state.agents` whenever it changes, for evidence checks).
    agent_keys: BTreeMap<String, PublicKey>,
    /// Counts changes of the fleet in this process (membership applied, state restored), so a
    /// runtime republishes the fleet only when it changed. Not replicated.
    fleet_generation: u64,
    state: LedgerState,
    journal: Journal,
    /// Events and outcomes produced since the node last took them for its store. Not
    /// replicated; off unless [`Ledger::keep_fresh`] (the simulator's ledgers leave it off).
    /// Behind a mutex: the runtime drains it through `Replica::app`, a shared reference (the
    /// replica never lends its application mutably, so nothing outside it can change the state).
    fresh: Option<std::sync::Mutex<Fresh>>,
    /// Where release bodies go once written, and those still held (`held_bodies.rs`); none:
    /// the ledger holds every body. Not replicated.
    bodies: Option<held_bodies::HeldBodies>,
    /// Where the release bodies a persisted snapshot names are read ([`Ledger::store_bodies_in`]
    /// or [`Ledger::read_stored_bodies_from`]); none: its persisted snapshots carry every body.
    /// Not replicated.
    body_source: Option<SharedBodyStore>,
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
            for a in &cfg.agents {
                state.assigned.insert(a.id.clone(), first.clone());
            }
        }
        state.agents = cfg.agents.clone();
        let agent_keys = keys_of(&state);
        Self {
            cfg,
            agent_keys,
            fleet_generation: 0,
            state,
            journal: Journal::default(),
            fresh: None,
            bodies: None,
            body_source: None,
        }
    }

    /// The state, writable: for tests that plant what no operation can produce.
    #[cfg(test)]
    pub(crate) fn state_mut(&mut self) -> &mut LedgerState {
        &mut self.state
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.cfg
    }

    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// Changes whenever `state().agents` may have changed (in this process; not replicated).
    pub fn fleet_generation(&self) -> u64 {
        self.fleet_generation
    }

    /// The outcome of a request, while it is among its signer's newest
    /// [`OUTCOMES_KEPT_PER_SIGNER`].
    pub fn outcome(&self, signer: &PublicKey, nonce: u64) -> Option<&Outcome> {
        self.journal.outcome(&hex(signer.as_bytes()), nonce)
    }

    /// The newest events and outcomes (older ones are in the node's store).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Collects every event and outcome produced from now on for [`Ledger::take_new`] (the node
    /// writes them to its store).
    pub fn keep_fresh(&mut self) {
        self.fresh.get_or_insert_with(Default::default);
    }

    /// Everything produced since the last call (nothing unless [`Ledger::keep_fresh`]).
    pub fn take_new(&self) -> Fresh {
        self.fresh
            .as_ref()
            .and_then(|f| f.lock().ok().map(|mut f| std::mem::take(&mut *f)))
            .unwrap_or_default()
    }

    fn with_fresh(&self, add: impl FnOnce(&mut Fresh)) {
        if let Some(mut f) = self.fresh.as_ref().and_then(|f| f.lock().ok()) {
            add(&mut f);
        }
    }

    /// A proposal was opened or changed (for the node's read index, see [`Fresh`]).
    fn touched_proposal(&self) {
        self.with_fresh(|f| {
            f.proposals_touched = true;
        });
    }

    fn event(&mut self, seq: u64, tongue: Tongue, kind: &str, subject: String, detail: String) {
        let e = Event {
            seq,
            tongue,
            kind: kind.into(),
            subject,
            detail,
        };
        let position = self.journal.events.total();
        let json = self.journal.push_event(e);
        self.with_fresh(|f| f.events.push((position, json)));
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
            request: operation_digest(bytes),
            seq,
            accepted: false,
            reasons: Vec::new(),
            proposal: None,
            rollout: None,
        };
        let result = match Operation::from_bytes(bytes) {
            // Checked at execution, so every replica refuses the same requests whatever it
            // had executed when the batch was ordered (see `requesters.rs`).
            Ok(_) if matches!(signer, Signer::Requester(k) if !self.is_requester(&k)) => {
                Err(vec![format!(
                    "{} is not a requester of this cluster (never admitted, or removed): \
                     `scbe propose requester add` admits a key",
                    hex(key.as_bytes())
                )])
            }
            Ok(op) => self.dispatch(seq, signer, op, &mut outcome),
            Err(e) => Err(vec![e.to_string()]),
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
        let signer = hex(key.as_bytes());
        let json = self
            .journal
            .push_outcome(signer.clone(), nonce, outcome.clone());
        self.with_fresh(|f| f.outcomes.push((signer, nonce, json)));
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
        let only_validators = |what: &str| -> Result<u32, Rejection> {
            validator.ok_or_else(|| vec![format!("only validators {what}")])
        };
        match op {
            Operation::RegisterRelease { release } => self.register(seq, release),
            Operation::Promote {
                version,
                to,
                rollback_to,
                pause_before,
                steps,
            } => {
                if validator.is_some() {
                    return reject("promotions are proposed by release requesters, not validators");
                }
                out.proposal =
                    Some(self.promote(seq, version, to, rollback_to, (pause_before, steps))?);
                Ok(())
            }
            Operation::Rollback {
                target_version,
                reason,
            } => {
                if validator.is_some() {
                    return reject("manual rollbacks are proposed by release requesters; validators use auto_rollback with evidence");
                }
                out.proposal = Some(self.rollback(seq, target_version, reason)?);
                Ok(())
            }
            Operation::Approve { rollout } => {
                if validator.is_some() {
                    return reject("a paused rollout is approved by release requesters' proposal and validators' votes");
                }
                out.rollout = Some(rollout);
                out.proposal = Some(self.propose_approve(seq, rollout)?);
                Ok(())
            }
            Operation::Abort { rollout, reason } => {
                if validator.is_some() {
                    return reject("aborts are proposed by release requesters; validators roll back on evidence");
                }
                out.rollout = Some(rollout);
                out.proposal = Some(self.propose_abort(seq, rollout, reason)?);
                Ok(())
            }
            Operation::ProposeAgent { change } => {
                if validator.is_some() {
                    return reject("membership changes are proposed by release requesters");
                }
                out.proposal = Some(self.propose_agent_change(seq, change)?);
                Ok(())
            }
            Operation::ProposeSettings { change } => {
                if validator.is_some() {
                    return reject("settings changes are proposed by release requesters");
                }
                out.proposal = Some(self.propose_settings(seq, change)?);
                Ok(())
            }
            Operation::ProposeRequester { change } => {
                if validator.is_some() {
                    return reject("requester changes are proposed by release requesters");
                }
                out.proposal = Some(self.propose_requester_change(seq, change)?);
                Ok(())
            }
            Operation::ProposeValidator { change } => {
                if validator.is_some() {
                    return reject("validator changes are proposed by release requesters");
                }
                out.proposal = Some(self.propose_validator_change(seq, change)?);
                Ok(())
            }
            Operation::Vote {
                proposal,
                approve,
                reasons,
            } => {
                let v = only_validators("vote")?;
                out.proposal = Some(proposal);
                out.rollout = self.vote(seq, v, proposal, approve, reasons)?;
                Ok(())
            }
            Operation::AutoRollback {
                rollout,
                reports,
                acks,
            } => {
                only_validators("submit auto-rollback evidence")?;
                out.rollout = Some(rollout);
                self.auto_rollback(seq, rollout, &reports, &acks)
            }
            Operation::RolloutProgress {
                rollout,
                batch,
                acks,
                reports,
                baseline,
            } => {
                only_validators("record rollout progress")?;
                out.rollout = Some(rollout);
                self.progress(seq, rollout, batch, &acks, &reports, &baseline)
            }
            Operation::NoData {
                rollout,
                issued_seq,
                agents,
            } => {
                let v = only_validators("claim missing data")?;
                out.rollout = Some(rollout);
                self.no_data(seq, v, rollout, issued_seq, &agents)
            }
            Operation::RollbackDone { rollout, acks } => {
                only_validators("record rollbacks")?;
                out.rollout = Some(rollout);
                self.rollback_done(seq, rollout, &acks)
            }
            Operation::Stalled {
                rollout,
                issued_seq,
                view,
            } => {
                let v = only_validators("report stalled steps")?;
                out.rollout = Some(rollout);
                self.stalled(seq, v, rollout, issued_seq, view)
            }
            Operation::Notified { sink, through } => {
                let v = only_validators("record notifications")?;
                self.notified(seq, v, sink, through)
            }
        }
    }
}

/// Each agent's key by id, for checking its signed evidence.
fn keys_of(state: &LedgerState) -> BTreeMap<String, PublicKey> {
    state.agents.iter().map(|a| (a.id.clone(), a.key)).collect()
}

/// Hex sha256 of an operation's bytes (what [`Outcome::request`] holds).
pub fn operation_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(bytes))
}

pub fn request_id(key: &PublicKey, nonce: u64) -> String {
    format!("{}:{nonce}", hex(key.as_bytes()))
}

/// The state contributes [`LedgerState::digest`] (per-entry digests of releases, proposals and
/// rollouts kept between checkpoints, see [`entry_map::EntryMap`]); the journal only its
/// chains' tips, so the digest grows with neither history nor unchanged state.
fn state_digest_of(state: &LedgerState, journal: &Journal, cfg: &LedgerConfig) -> Digest {
    let mode = settings::in_force(state, cfg).state_digest;
    state_proof::ledger_digest(&state.digest(mode), &journal.digest_parts())
}

impl StateMachine for Ledger {
    fn apply(&mut self, seq: Seq, request: &Signed<Request>) {
        // Who is a validator is the ledger's to say, by key (`validators.rs`): the edge that
        // resolved the signer may have been in another epoch.
        let key = *request.signer();
        let signer = match self.validator_id(&key) {
            Some(id) => Signer::Validator(id),
            None => Signer::Requester(key),
        };
        self.apply_operation(
            seq.0,
            signer,
            &key,
            request.value().nonce,
            &request.value().operation,
        );
    }

    fn may_order(&self, request: &Signed<Request>) -> bool {
        let key = request.signer();
        self.validator_id(key).is_some() || Ledger::may_order(self, key)
    }

    fn validator_epoch(&self) -> u64 {
        Ledger::validator_epoch(self)
    }

    fn validator_set(&self) -> Option<crate::consensus::ValidatorSet> {
        Ledger::validator_set(self)
    }

    fn digest(&self) -> Digest {
        state_digest_of(&self.state, &self.journal, &self.cfg)
    }

    fn before_checkpoint(&mut self) {
        self.state.settle();
        // Moves bodies the store now has out of memory: where a body is, not what the state is
        // (a stored body serialises, digests and compares as the held one did).
        self.offload_held_bodies();
    }

    fn snapshot(&self) -> AppState {
        self.lazy_snapshot()
    }

    /// A peer's snapshot (or anyone's): references to stored bodies are refused, so a peer
    /// cannot make this replica read its store on its word.
    fn snapshot_digest(&self, snapshot: &[u8]) -> Result<Digest, SnapshotError> {
        // Decoded and digested in canonical form, whatever bytes a peer sent; the journal's
        // chains are re-derived from its items.
        let s = decode_snapshot(snapshot, None)?;
        Ok(state_digest_of(&s.state, &s.journal, &self.cfg))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        self.install(decode_snapshot(snapshot, None)?);
        Ok(())
    }

    /// Decodes once: the decoded state is settled (each entry's JSON and digest cached, the
    /// digest tree built), digested, and kept if accepted, so neither a second decode nor a
    /// later settle of every entry follows. References to stored bodies are refused (see
    /// [`Ledger::snapshot_digest`]).
    fn restore_if(
        &mut self,
        snapshot: &[u8],
        accept: &mut dyn FnMut(Digest) -> bool,
    ) -> Result<bool, SnapshotError> {
        let decoded = decode_snapshot(snapshot, None)?;
        Ok(self.install_if(decoded, accept))
    }

    /// As [`Ledger::restore_if`], with references resolved in the ledger's body store (each
    /// stored body is read once, to digest its entry).
    fn restore_persisted_if(
        &mut self,
        snapshot: &[u8],
        accept: &mut dyn FnMut(Digest) -> bool,
    ) -> Result<bool, SnapshotError> {
        let decoded = decode_snapshot(snapshot, self.body_source.clone())?;
        Ok(self.install_if(decoded, accept))
    }

    fn restore_persisted(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        self.install(decode_snapshot(snapshot, self.body_source.clone())?);
        Ok(())
    }

    fn snapshot_to_serve(&self, persisted: AppState) -> AppState {
        self.served_snapshot(persisted)
    }
}
