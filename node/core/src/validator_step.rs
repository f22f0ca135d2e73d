//! One validator's decisions between "an input arrived" and "these actions must be performed",
//! pure and deterministic: the PBFT [`Replica`] over the governance [`Ledger`], the fleet
//! [`Watcher`], and the glue between them (client admission, the validator's own signed
//! requests, endorsements, the executor's view of the active step). The validator runtime
//! (`scbe-node`) and the simulator drive this same type; neither re-implements any of it.
//!
//! # Contract
//!
//! 1. Time is passed in (`now_ms`, milliseconds on a monotonic clock the caller owns); nothing
//!    here reads a clock, draws randomness or does I/O.
//! 2. A runtime turn is `begin_turn`, any number of inputs (`handle`, `submit`, `report`, `ack`,
//!    `endorse`), `fleet_turn`, then `end_turn`. Every call returns the consensus
//!    [`Action`]s it produced; the runtime performs them in order under the replica's contract
//!    (every `Persist` durable before a later `Send` or `Broadcast` leaves).
//! 3. Own requests (votes, rollout evidence) are signed here with a nonce counted up from the
//!    highest one the ledger executed for this validator, never from a clock, and never one
//!    this validator signed before, even across crashes: nonces are reserved in blocks of
//!    [`NONCE_BLOCK`] by a persisted [`Record::NonceReservation`] that precedes the first
//!    request of each block, and a restored step starts above the newest reservation. (Counting
//!    from the executed nonce alone, a validator that crashed before its own requests executed
//!    signed the same nonces again after the restart: the simulator found it.) A fresh start
//!    skips [`NONCE_WINDOW`] past the executed nonce, for a validator whose data directory was
//!    lost while its requests were in flight.
//! 4. Client requests already decided are answered from the ledger (or from the runtime's
//!    store, through the lookup it passes in); requests whose nonce can no longer execute are
//!    refused with a typed [`SubmitRefusal`] instead of being ordered and never answered.

use std::sync::Arc;

use crate::consensus::nonce::{NonceError, NONCE_WINDOW};
use crate::consensus::ConfigError;
use crate::consensus::{
    Action, Codec, Decision, Digest, EpochChain, Input, Kind, Principal, Record, Replica,
    ReplicaConfig, Request, RestoreError, Seq, Signed, Status, View,
};
use crate::crypto::{Keypair, PublicKey};
use crate::governance::ledger::{operation_digest, Outcome};
use crate::governance::{Ledger, Operation};
use crate::rollout::evidence::{AckBody, DeployAck, HealthBody, HealthReport};
use crate::rollout::order::{endorse, EndorseRefusal, Endorsement};
use crate::rollout::watcher::{StepView, WatchSettings, Watcher};

/// Own nonces reserved per persisted [`Record::NonceReservation`]: one record per this many own
/// requests, and at most this many nonces skipped by a restart.
pub const NONCE_BLOCK: u64 = 1024;

/// What the leader's executor needs to know, published whenever the ledger or the view moved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetView {
    /// This validator is the primary of `view` (only the primary executes).
    pub primary: bool,
    pub view: u64,
    /// The active rollout step, as this validator's ledger has it.
    pub step: Option<StepView>,
    /// The validator set in force and the links that prove it: who endorses orders, and what
    /// orders carry to agents.
    pub chain: Arc<EpochChain>,
}

/// A decided client request.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientReply {
    pub seq: u64,
    pub outcome: Outcome,
    /// Decided before this submission (a resubmission answered from the ledger).
    pub already: bool,
}

/// Why a client request is answered with a refusal instead of an outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitRefusal {
    /// The signer's nonce went to a different request.
    #[error("nonce {nonce} of this key was already used by another request (decided at seq {seq}); sign yours again with a higher nonce")]
    NonceTaken { nonce: u64, seq: u64 },
    /// The nonce can no longer execute (used, too old, or too far ahead).
    #[error("{0}; sign the request again with a fresh nonce (`scbe` asks the cluster for the highest one)")]
    Nonce(NonceError),
    /// The signer is not a requester in force (never admitted, or removed).
    #[error("key {} is not a requester of this cluster (never admitted, or removed); a requester admits it with `scbe propose requester add --name N --public-key HEX`", crate::governance::release::hex(.0.as_bytes()))]
    NotARequester(PublicKey),
}

/// What became of a submitted client request.
#[derive(Debug)]
pub enum Submission {
    /// Handed to consensus: its reply comes with the batch that decides it
    /// ([`ValidatorStep::reply`]); perform these actions.
    Ordered(Vec<Action>),
    /// Decided before: answer now.
    Decided(ClientReply),
}

/// What one [`ValidatorStep::fleet_turn`] did.
#[derive(Debug, Default)]
#[must_use]
pub struct FleetTurn {
    /// Consensus actions of the requests it submitted (and of a view it left).
    pub actions: Vec<Action>,
    /// The executor's new view, when the ledger or the view moved since the last fleet turn.
    pub view: Option<FleetView>,
    /// The operations this validator signed and submitted: name and nonce (for logs).
    pub submitted: Vec<(&'static str, u64)>,
    /// The view this validator left because the ledger replaces its primary.
    pub replaced_view: Option<u64>,
}

/// One validator: replica, ledger, watcher and the glue between them. See the module docs.
pub struct ValidatorStep {
    replica: Replica<Ledger>,
    key: Keypair,
    watcher: Watcher,
    /// Last nonce this validator used for its own requests, or the floor the next one must be
    /// above.
    own_nonce: u64,
    /// Highest nonce reserved by a persisted [`Record::NonceReservation`] in this life.
    reserved: u64,
    /// (last executed, view) at the last fleet turn; `None` before the first.
    fleet_seen: Option<(u64, u64)>,
    /// The set in force and its links, made again only when the epoch (or the links held)
    /// changed: every fleet view shares it.
    chain: Arc<EpochChain>,
}

impl ValidatorStep {
    /// A validator at genesis; perform the returned actions first.
    pub fn start(
        cfg: ReplicaConfig,
        key: Keypair,
        codec: Arc<dyn Codec>,
        ledger: Ledger,
        watch: WatchSettings,
    ) -> Result<(Self, Vec<Action>), ConfigError> {
        let mut replica = Replica::new(cfg, key.clone(), codec, ledger)?;
        let actions = replica.start();
        Ok((Self::around(replica, key, watch, NONCE_WINDOW), actions))
    }

    /// A validator rebuilt from its persisted records (see [`Replica::restore`]); perform the
    /// returned actions first.
    pub fn restore(
        cfg: ReplicaConfig,
        key: Keypair,
        codec: Arc<dyn Codec>,
        ledger: Ledger,
        watch: WatchSettings,
        records: &[Record],
    ) -> Result<(Self, Vec<Action>), RestoreError> {
        let (replica, actions) = Replica::restore(cfg, key.clone(), codec, ledger, records)?;
        let reserved = records
            .iter()
            .filter_map(|r| match r {
                Record::NonceReservation { up_to } => Some(*up_to),
                _ => None,
            })
            .max();
        // A store written before reservations existed: skip a window as a fresh start does.
        let floor = reserved.unwrap_or(replica.last_nonce(&key.public()) + NONCE_WINDOW);
        Ok((Self::around(replica, key, watch, floor), actions))
    }

    fn around(replica: Replica<Ledger>, key: Keypair, watch: WatchSettings, floor: u64) -> Self {
        ValidatorStep {
            replica,
            key,
            watcher: Watcher::new(watch),
            own_nonce: floor,
            reserved: 0,
            fleet_seen: None,
            chain: Arc::default(),
        }
    }

    pub fn replica(&self) -> &Replica<Ledger> {
        &self.replica
    }

    /// See [`Replica::state_digest_now`].
    pub fn state_digest_now(&mut self) -> Digest {
        self.replica.state_digest_now()
    }

    pub fn ledger(&self) -> &Ledger {
        self.replica.app()
    }

    pub fn watcher(&self) -> &Watcher {
        &self.watcher
    }

    pub fn id(&self) -> u32 {
        self.replica.id().0
    }

    /// Opens a turn: client requests received until [`Self::end_turn`] are relayed together.
    pub fn begin_turn(&mut self) {
        self.replica.begin_turn();
    }

    /// Closes a turn (flushes the relays it held).
    pub fn end_turn(&mut self) -> Vec<Action> {
        self.replica.end_turn()
    }

    /// A consensus input: a verified peer message, a timer firing, or a decision to leave a view.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        self.replica.handle(input)
    }

    /// A client request whose signature and role the edge verified. Decided ones are answered
    /// from the ledger, or from `stored` (the runtime's store of older outcomes) when the ledger
    /// no longer holds them.
    pub fn submit(
        &mut self,
        request: Signed<Request>,
        stored: impl FnOnce(&PublicKey, u64) -> Option<Outcome>,
    ) -> Result<Submission, SubmitRefusal> {
        let (signer, nonce) = (*request.signer(), request.value().nonce);
        if nonce <= self.replica.last_nonce(&signer) {
            let outcome = self
                .ledger()
                .outcome(&signer, nonce)
                .cloned()
                .or_else(|| stored(&signer, nonce));
            if let Some(o) = outcome {
                return if o.request == operation_digest(&request.value().operation) {
                    Ok(Submission::Decided(ClientReply {
                        seq: o.seq,
                        outcome: o,
                        already: true,
                    }))
                } else {
                    Err(SubmitRefusal::NonceTaken { nonce, seq: o.seq })
                };
            }
        }
        // The ledger would refuse it (and the core not order it, for a key it never knew).
        if !self.ledger().is_requester(&signer) {
            return Err(SubmitRefusal::NotARequester(signer));
        }
        // A request that can no longer execute would be dropped at the door and never answered.
        self.replica
            .check_nonce(&signer, nonce)
            .map_err(SubmitRefusal::Nonce)?;
        Ok(Submission::Ordered(
            self.replica.handle(Input::ClientRequest(request)),
        ))
    }

    /// The answer for a client waiting on request (`signer`, `nonce`) with operation digest
    /// `request`, now that `decision` holds that nonce.
    pub fn reply(
        &self,
        decision: &Decision,
        signer: &PublicKey,
        nonce: u64,
        request: &str,
    ) -> Result<ClientReply, SubmitRefusal> {
        match self.ledger().outcome(signer, nonce) {
            Some(o) if o.seq == decision.seq.0 && o.request == request => Ok(ClientReply {
                seq: decision.seq.0,
                outcome: o.clone(),
                already: false,
            }),
            _ => Err(SubmitRefusal::NonceTaken {
                nonce,
                seq: decision.seq.0,
            }),
        }
    }

    /// A health report whose signature the caller checked against the agent's key.
    pub fn report(&mut self, report: HealthReport, body: HealthBody, now_ms: u64) {
        self.watcher.report(report, body, now_ms);
    }

    /// A deploy or rollback ack whose signature the caller checked against the agent's key.
    pub fn ack(&mut self, ack: DeployAck, body: AckBody) {
        self.watcher.ack(ack, body);
    }

    /// This validator's endorsement of an order the leader asks it to sign: given only if its
    /// own ledger derives exactly these bytes for `rollout` now.
    pub fn endorse(&self, rollout: u64, order: &[u8]) -> Result<Endorsement, EndorseRefusal> {
        endorse(self.ledger(), rollout, order, &self.key)
    }

    /// The set in force and the links that prove it (as of the last fleet turn).
    pub fn epoch_chain(&self) -> Arc<EpochChain> {
        Arc::clone(&self.chain)
    }

    /// After a turn's inputs: refreshes the active step if the ledger or the view moved, and
    /// submits what this validator owes: votes on pending proposals (at once, and again if one
    /// is lost), leaving a view whose primary the ledger replaces, and, when `decide`, the
    /// watcher's decisions (evidence of progress, rollbacks, no-data and stall claims).
    pub fn fleet_turn(&mut self, now_ms: u64, decide: bool) -> FleetTurn {
        let seen = (self.replica.last_executed().0, self.replica.view().0);
        let primary = self.replica.is_primary();
        let moved = self.fleet_seen != Some(seen);
        let mut turn = FleetTurn::default();
        // Every turn, not only when the position moved: the link to the epoch in force can
        // complete later (the old set's last boundary checkpoints), and `scbe status` reports
        // the chain.
        let links = self
            .replica
            .epoch_links()
            .range(..=self.replica.epoch())
            .count();
        if self.chain.set.epoch != self.replica.epoch()
            || self.chain.set.n() == 0
            || self.chain.links.len() != links
        {
            self.chain = Arc::new(self.replica.epoch_chain());
        }
        if moved {
            self.fleet_seen = Some(seen);
            let step = StepView::of(self.ledger());
            self.watcher.observe(step.clone(), now_ms);
            turn.view = Some(FleetView {
                primary,
                view: seen.1,
                step,
                chain: Arc::clone(&self.chain),
            });
        }
        if decide || moved {
            let votes = self.watcher.votes(self.replica.app(), self.id(), now_ms);
            for op in votes {
                self.submit_own(&op, &mut turn);
            }
        }
        // f + 1 validators found the step unexecuted under this view: leave it, together.
        let replace = self
            .watcher
            .step()
            .and_then(|s| s.replace_view)
            .is_some_and(|v| v == seen.1);
        if replace && self.replica.status() == Status::Normal {
            turn.replaced_view = Some(seen.1);
            turn.actions.extend(
                self.replica
                    .handle(Input::ReplacePrimary { view: View(seen.1) }),
            );
        }
        if decide {
            for op in self.watcher.decide(now_ms, primary, seen.1) {
                self.submit_own(&op, &mut turn);
            }
        }
        turn
    }

    /// Signs an operation of this validator's own with its next nonce and hands it to
    /// consensus. [`Self::fleet_turn`] submits what the watcher decides this way; the simulator
    /// also submits what its lying validators forge.
    pub fn submit_operation(&mut self, op: &Operation) -> Vec<Action> {
        let mut actions = Vec::new();
        let request = self.sign_own(op, &mut actions);
        actions.extend(self.replica.handle(Input::ClientRequest(request)));
        actions
    }

    fn submit_own(&mut self, op: &Operation, turn: &mut FleetTurn) {
        let actions = self.submit_operation(op);
        turn.submitted.push((op.name(), self.own_nonce));
        turn.actions.extend(actions);
    }

    /// The next own request: its nonce counts up from the last one signed, or from the highest
    /// the ledger executed for this validator if that is higher (a replica catching up moves
    /// the base along); a nonce beyond the reservation reserves the next block first (the
    /// record goes into `actions`, ahead of the request's).
    fn sign_own(&mut self, op: &Operation, actions: &mut Vec<Action>) -> Signed<Request> {
        let executed = self.replica.last_nonce(&self.key.public());
        self.own_nonce = (self.own_nonce + 1).max(executed + 1);
        if self.own_nonce > self.reserved {
            self.reserved = self.own_nonce + NONCE_BLOCK - 1;
            actions.push(Action::Persist(Record::NonceReservation {
                up_to: self.reserved,
            }));
        }
        let codec = Arc::clone(self.replica.codec());
        Signed::seal(
            Request {
                nonce: self.own_nonce,
                operation: op.to_bytes(),
            },
            Kind::Request,
            |r| codec.encode_request(r),
            &self.key,
            Principal::Validator(self.replica.id()),
        )
    }

    /// The last sequence number this validator executed.
    pub fn last_executed(&self) -> Seq {
        self.replica.last_executed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::debug_codec::DebugCodec;
    use crate::consensus::{Directory, ReplicaId};
    use crate::governance::{Gates, LedgerConfig};
    use crate::rollout::health::HealthThresholds;

    fn keys() -> Vec<Keypair> {
        (0..4)
            .map(|i| Keypair::from_label(&format!("step{i}")))
            .collect()
    }

    fn config(keys: &[Keypair]) -> ReplicaConfig {
        let dir =
            Directory::new(keys.iter().map(Keypair::public).collect(), vec![]).expect("directory");
        ReplicaConfig::new(ReplicaId(1), dir).expect("config")
    }

    fn ledger(keys: &[Keypair]) -> Ledger {
        Ledger::new(LedgerConfig {
            validators: keys.iter().map(Keypair::public).collect(),
            known_good: vec!["v0".into()],
            known_good_units: Default::default(),
            gates: Gates::default(),
            vote_window_seqs: 100,
            agents: vec![],
            health: HealthThresholds::default(),
            analysis: Default::default(),
            notify_sinks: Vec::new(),
            state_digest: crate::governance::ledger::StateDigest::Tree,
            requesters: Default::default(),
        })
    }

    fn watch() -> WatchSettings {
        WatchSettings {
            step_deadline_ms: 1_000,
            resubmit_ms: 100,
            leader_grace_ms: 100,
            stall_ms: 100,
            max_op_bytes: 1 << 16,
        }
    }

    fn op(i: u64) -> Operation {
        Operation::Rollback {
            target_version: format!("v{i}"),
            reason: "test".into(),
        }
    }

    /// The nonce reservations `actions` persist, in order.
    fn reservations(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Persist(Record::NonceReservation { up_to }) => Some(*up_to),
                _ => None,
            })
            .collect()
    }

    fn start(keys: &[Keypair]) -> ValidatorStep {
        let (step, _) = ValidatorStep::start(
            config(keys),
            keys[1].clone(),
            Arc::new(DebugCodec),
            ledger(keys),
            watch(),
        )
        .expect("starts");
        step
    }

    fn restore(keys: &[Keypair], records: &[Record]) -> ValidatorStep {
        let (step, _) = ValidatorStep::restore(
            config(keys),
            keys[1].clone(),
            Arc::new(DebugCodec),
            ledger(keys),
            watch(),
            records,
        )
        .expect("restores");
        step
    }

    #[test]
    fn the_first_own_request_reserves_a_block_before_it_leaves() {
        let keys = keys();
        let mut step = start(&keys);
        let actions = step.submit_operation(&op(1));
        let first = actions
            .iter()
            .position(|a| matches!(a, Action::Persist(Record::NonceReservation { .. })));
        assert_eq!(first, Some(0), "the reservation comes first: {actions:?}");
        // A fresh start skips a window past the executed nonce (0 here).
        assert_eq!(step.own_nonce, NONCE_WINDOW + 1);
        assert_eq!(reservations(&actions), vec![NONCE_WINDOW + NONCE_BLOCK]);
        // Within the block, no further reservation.
        for i in 2..=NONCE_BLOCK {
            assert!(reservations(&step.submit_operation(&op(i))).is_empty());
        }
        // Past it, the next block.
        let next = step.submit_operation(&op(0));
        assert_eq!(
            reservations(&next),
            vec![NONCE_WINDOW + 2 * NONCE_BLOCK],
            "nonce {}",
            step.own_nonce
        );
    }

    /// The simulator's own-nonces invariant found this: a validator that crashed before any of
    /// its own requests executed signed the same nonces again after its restart (it counted from
    /// the executed nonce alone), so a vote or a rollout report could be lost to the collision.
    #[test]
    fn a_restarted_validator_never_signs_a_nonce_of_its_earlier_life() {
        let keys = keys();
        let mut first_life = start(&keys);
        let mut records: Vec<Record> = Vec::new();
        let mut signed = Vec::new();
        for i in 0..3 {
            for a in first_life.submit_operation(&op(i)) {
                if let Action::Persist(r) = a {
                    records.push(r);
                }
            }
            signed.push(first_life.own_nonce);
        }
        // Crash before anything executed: the restored replica has executed nothing.
        let mut second_life = restore(&keys, &records);
        let _ = second_life.submit_operation(&op(9));
        assert!(
            second_life.own_nonce > *signed.iter().max().expect("signed"),
            "second life signed {} after {signed:?}",
            second_life.own_nonce
        );
        assert_eq!(second_life.own_nonce, NONCE_WINDOW + NONCE_BLOCK + 1);
    }

    #[test]
    fn a_store_without_reservations_skips_a_window() {
        let keys = keys();
        // Records of a store written before reservations existed (none of this kind).
        let mut step = restore(&keys, &[]);
        let _ = step.submit_operation(&op(1));
        assert_eq!(step.own_nonce, NONCE_WINDOW + 1);
    }
}
