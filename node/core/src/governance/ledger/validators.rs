//! The validator set, changed by the quorum: a requester proposes adding a validator, removing
//! one or rotating its key; every validator checks the change (the id in force, a valid key no
//! validator, requester or agent holds or held, an address peers can dial, at least 4 and at
//! most [`MAX_VALIDATORS`] validators, no rollout holding the fleet) and votes like on a
//! promotion; at `q` approvals it applies at that sequence
//! number on every replica. The batch that applies it is the last the old set orders: the
//! replica moves to the new set right after it (`consensus/replica/epoch.rs`), and from the
//! next batch on the ledger counts votes and evidence by the new set too.
//!
//! Who is a validator is decided here, by key, at execution (not by how the network edge
//! resolved a signer), so every replica counts the same signer the same way whatever epoch its
//! edge was in when the request arrived: a rotated-out or removed key is a validator's no
//! more, and the rotated-in key is one from the next batch on.
//!
//! Until a change is approved the genesis's set holds and the state digest is the one a
//! cluster had before validators could change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Ledger, Rejection};
use crate::consensus::{ReplicaId, Seq, ValidatorSet};
use crate::crypto::PublicKey;

/// Fewest validators consensus runs with (f = 1).
pub const MIN_VALIDATORS: usize = 4;

/// Most validators the quorum may grow the set to by adding. Every message a replica sends
/// carries votes or view changes of each member, so the set's size multiplies into the byte
/// limits (`ReplicaConfig::derive_byte_limits`); 64 (f = 21) keeps a new-view of a full window
/// far below the wire's cap, and is more validators than a governance cluster runs.
pub const MAX_VALIDATORS: usize = 64;

/// Longest address a validator is added with (a DNS name is at most 253, plus a port).
pub const MAX_VALIDATOR_ADDRESS_CHARS: usize = 260;

/// A change to the validator set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValidatorChange {
    /// Add a validator with `public_key`, which its peers dial at `address` (`host:port`, a
    /// DNS name or an IP address). Its id is the next one never used
    /// ([`Ledger::next_validator_id`]): ids of removed validators never come back.
    Add {
        public_key: PublicKey,
        address: String,
    },
    /// Take validator `id` out: from the next batch on it orders and votes on nothing.
    Remove { id: u32 },
    /// Give validator `id` a new key: from the next batch on only that key signs for it.
    Rotate { id: u32, public_key: PublicKey },
}

impl ValidatorChange {
    /// The validator a removal or rotation names (an addition's id is assigned when it applies).
    pub fn id(&self) -> Option<u32> {
        match self {
            ValidatorChange::Remove { id } | ValidatorChange::Rotate { id, .. } => Some(*id),
            ValidatorChange::Add { .. } => None,
        }
    }

    /// One line for events and `scbe status`.
    pub fn describe(&self) -> String {
        match self {
            ValidatorChange::Add {
                public_key,
                address,
            } => format!("add validator {public_key} at {address}"),
            ValidatorChange::Remove { id } => format!("remove validator {id}"),
            ValidatorChange::Rotate { id, public_key } => {
                format!("rotate validator {id}'s key to {public_key}")
            }
        }
    }
}

/// The validator set once a change applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorRoster {
    /// How many changes applied since the genesis.
    pub epoch: u64,
    /// The seq of the batch that applied the last one.
    pub start: u64,
    /// Ids and keys in force, ids ascending.
    pub members: Vec<(u32, PublicKey)>,
    /// Every key a validator signed with and no longer does: none may come back, since a key
    /// retired because it leaked would then count again.
    pub retired: Vec<PublicKey>,
    /// Where peers dial each validator the quorum added (the genesis's carry their own), kept
    /// after a removal so an added validator's id is never handed out again. Absent until a
    /// validator is added: the state digest of a cluster that never added one is unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<u32, String>,
}

impl Ledger {
    /// The validators in force, (id, key) by id: the genesis's (ids `0..n`) until a change
    /// applies.
    /// (Asked for every request applied: no allocation.)
    fn members(&self) -> impl Iterator<Item = (u32, &PublicKey)> {
        let changed = self.state.validators.as_ref();
        let genesis = changed
            .is_none()
            .then_some(&self.cfg.validators)
            .into_iter()
            .flatten();
        let now = changed
            .into_iter()
            .flat_map(|r| r.members.iter().map(|(id, k)| (*id, k)));
        now.chain((0u32..).zip(genesis))
    }

    /// The validators in force, (id, key) by id.
    pub fn validator_members(&self) -> Vec<(u32, PublicKey)> {
        self.members().map(|(id, k)| (id, *k)).collect()
    }

    /// The validator that signs with `key` now, if any.
    pub fn validator_id(&self, key: &PublicKey) -> Option<u32> {
        self.members().find(|(_, k)| *k == key).map(|(id, _)| id)
    }

    /// Whether `id` is a validator in force.
    pub fn is_validator(&self, id: u32) -> bool {
        self.members().any(|(i, _)| i == id)
    }

    /// How many validators are in force.
    pub fn validator_count(&self) -> usize {
        self.members().count()
    }

    /// Approvals a proposal needs: the quorum of the set in force.
    pub fn validator_quorum(&self) -> usize {
        crate::consensus::config::quorum_for(self.validator_count())
    }

    /// Faulty validators the set in force tolerates.
    pub fn validator_f(&self) -> usize {
        self.validator_count().saturating_sub(1) / 3
    }

    /// The epoch of the set in force (0: the genesis's).
    pub fn validator_epoch(&self) -> u64 {
        self.state.validators.as_ref().map_or(0, |r| r.epoch)
    }

    /// The set in force as consensus takes it, once a change applied.
    pub fn validator_set(&self) -> Option<ValidatorSet> {
        self.state.validators.as_ref().map(|r| ValidatorSet {
            epoch: r.epoch,
            start: Seq(r.start),
            members: r
                .members
                .iter()
                .map(|(id, k)| (ReplicaId(*id), *k))
                .collect(),
        })
    }

    /// The id the next validator added gets: one past every id ever used. Those are the
    /// genesis's `0..n` and every validator added since, removed or not, whose addresses the
    /// roster keeps for good.
    pub fn next_validator_id(&self) -> u32 {
        let genesis = u32::try_from(self.cfg.validators.len()).unwrap_or(u32::MAX);
        let added = self.state.validators.as_ref().into_iter();
        added
            .flat_map(|r| r.addresses.keys().map(|id| id.saturating_add(1)))
            .fold(genesis, u32::max)
    }

    /// Where peers dial validator `id`, if the quorum added it (a genesis validator's address
    /// is the genesis's).
    pub fn validator_address(&self, id: u32) -> Option<&str> {
        self.state
            .validators
            .as_ref()
            .and_then(|r| r.addresses.get(&id))
            .map(String::as_str)
    }

    /// Whether `key` is, or was, some validator's.
    fn validator_key_ever(&self, key: &PublicKey) -> bool {
        self.cfg.validators.contains(key)
            || self
                .state
                .validators
                .as_ref()
                .is_some_and(|r| r.members.iter().any(|(_, k)| k == key) || r.retired.contains(key))
    }

    /// Everything wrong with `change` against the set in force (empty: it may apply).
    pub fn check_validator_change(&self, change: &ValidatorChange) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(id) = change.id() {
            if !self.is_validator(id) {
                reasons.push(format!("validator {id} is not in the validator set"));
            }
        }
        match change {
            ValidatorChange::Add {
                public_key,
                address,
            } => {
                if self.validator_count() >= MAX_VALIDATORS {
                    reasons.push(format!(
                        "the validator set has {} validators, the most it may grow to",
                        self.validator_count()
                    ));
                }
                if address.len() > MAX_VALIDATOR_ADDRESS_CHARS {
                    reasons.push(format!(
                        "address is longer than {MAX_VALIDATOR_ADDRESS_CHARS} characters"
                    ));
                } else if let Err(problem) = crate::governance::admission::check_address(address) {
                    reasons.push(format!("address {problem}"));
                }
                self.check_new_validator_key(public_key, &mut reasons);
            }
            ValidatorChange::Remove { .. } => {
                if self.validator_count() <= MIN_VALIDATORS {
                    reasons.push(format!(
                        "the validator set would keep {} validators; consensus needs at least \
                         {MIN_VALIDATORS} to tolerate one fault",
                        self.validator_count().saturating_sub(1)
                    ));
                }
            }
            ValidatorChange::Rotate { public_key, .. } => {
                self.check_new_validator_key(public_key, &mut reasons)
            }
        }
        if let Some(r) = self.state.active_rollout() {
            reasons.push(format!(
                "rollout {} ({}) is in progress; validator changes wait for it",
                r.id, r.version
            ));
        }
        reasons
    }

    /// A validator key a change brings in must be valid and new to the cluster: no validator,
    /// requester or agent holds or held it.
    fn check_new_validator_key(&self, key: &PublicKey, reasons: &mut Vec<String>) {
        if !key.is_valid() {
            reasons.push("public_key is not a valid ed25519 key".into());
        } else if self.validator_key_ever(key) {
            reasons.push(
                "public_key is, or was, a validator's key: a validator needs a new one".into(),
            );
        } else if self.requesters().values().any(|k| k == key) {
            reasons.push("public_key is a requester's key".into());
        } else if self.state.agents.iter().any(|a| a.key == *key) {
            reasons.push("public_key is an agent's key".into());
        }
    }

    /// A requester proposes `change`; it opens a proposal when it could apply now.
    pub(super) fn propose_validator_change(
        &mut self,
        seq: u64,
        change: ValidatorChange,
    ) -> Result<u64, Rejection> {
        let reasons = self.check_validator_change(&change);
        let what = change.describe();
        let kind = super::ProposalKind::Validator { change };
        self.open_change(seq, reasons, kind, "validators_proposed", what)
    }

    /// An approved change applies (checked again: applying stays deterministic whatever
    /// happened since the votes were cast). The batch at `seq` is the old set's last.
    pub(super) fn apply_validator_change(
        &mut self,
        seq: u64,
        proposal: u64,
        change: ValidatorChange,
    ) {
        let reasons = self.check_validator_change(&change);
        if !self.still_applies(seq, proposal, reasons, "validators_not_applied") {
            return;
        }
        let mut what = change.describe();
        let members = self.validator_members();
        let next_id = self.next_validator_id();
        let roster = self.state.validators.get_or_insert(ValidatorRoster {
            epoch: 0,
            start: 0,
            members,
            retired: Vec::new(),
            addresses: BTreeMap::new(),
        });
        match change {
            ValidatorChange::Add {
                public_key,
                address,
            } => {
                roster.members.push((next_id, public_key));
                roster.addresses.insert(next_id, address);
                what = format!("{what} as validator {next_id}");
                if let Some(p) = self.state.proposals.get_mut(&proposal) {
                    p.validator = Some(next_id);
                }
            }
            ValidatorChange::Remove { id } => {
                if let Some(at) = roster.members.iter().position(|(i, _)| *i == id) {
                    let (_, key) = roster.members.remove(at);
                    roster.retired.push(key);
                }
            }
            ValidatorChange::Rotate { id, public_key } => {
                if let Some(m) = roster.members.iter_mut().find(|(i, _)| *i == id) {
                    roster.retired.push(m.1);
                    m.1 = public_key;
                }
            }
        }
        roster.epoch += 1;
        roster.start = seq;
        let epoch = roster.epoch;
        self.event(
            seq,
            crate::governance::stage::Tongue::UM,
            "validators_changed",
            format!("proposal:{proposal}"),
            format!("{what}; epoch {epoch} orders from seq {}", seq + 1),
        );
    }
}
