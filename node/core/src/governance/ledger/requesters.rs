//! Who may propose, changed by the quorum: a requester proposes admitting a requester (a name
//! and a public key) or removing one; every validator checks the change (name format, a valid
//! key used by no validator, agent or other requester, at least one requester left) and votes
//! like on a promotion; at `q` approvals it applies at that sequence number on every replica.
//!
//! Where it bites: the ledger refuses, at execution, every operation signed by a key that is
//! not a requester in force then (the same on every replica, since they execute the same
//! batches in the same order), and a validator refuses such a request at its client door with
//! a typed refusal. Consensus itself cannot use the set in force to decide what it orders: a
//! replica behind would refuse a batch its peers accept. So the core asks
//! [`Ledger::may_order`], which also admits keys being added (their proposal is open) and keys
//! removed: a backup that has not executed the change yet, or one that has while the primary
//! proposed just before it, both still accept the batch, and the ledger decides. Keys nobody
//! ever proposed (a Byzantine primary's padding) are refused before they are ordered.
//!
//! Until a change is approved the genesis's requesters hold and the state digest is the one a
//! cluster had before requesters could change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::membership::MAX_AGENT_NAME_CHARS;
use super::{reject, Ledger, Rejection};
use crate::crypto::PublicKey;
use crate::governance::stage::Tongue;

/// A change to the requesters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequesterChange {
    /// Admit a requester: operations it signs are accepted from the seq the change applies.
    Add { name: String, public_key: PublicKey },
    /// Remove a requester: operations it signs are refused from the seq the change applies.
    Remove { name: String },
}

impl RequesterChange {
    pub fn name(&self) -> &str {
        match self {
            RequesterChange::Add { name, .. } | RequesterChange::Remove { name } => name,
        }
    }

    /// One line for events and `scbe status`.
    pub fn describe(&self) -> String {
        match self {
            RequesterChange::Add { name, public_key } => {
                format!("add requester {name} (key {public_key})")
            }
            RequesterChange::Remove { name } => format!("remove requester {name}"),
        }
    }
}

/// A requester as the ledger holds it once requesters have changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterEntry {
    pub public_key: PublicKey,
    /// The seq its removal applied at; a removed requester is kept so that a batch ordered
    /// just before the removal still reaches the ledger (see [`Ledger::may_order`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<u64>,
}

/// The requesters by name, as the genesis lists them.
pub type Requesters = BTreeMap<String, PublicKey>;

impl Ledger {
    /// Every requester the ledger knows, as (name, key, whether removed): the genesis's until a
    /// change is approved, then the state's (removed ones kept).
    fn known_requesters(&self) -> impl Iterator<Item = (&String, &PublicKey, bool)> {
        let genesis = self
            .state
            .requesters
            .is_none()
            .then_some(&self.cfg.requesters)
            .into_iter()
            .flatten()
            .map(|(n, k)| (n, k, false));
        let changed = self
            .state
            .requesters
            .iter()
            .flatten()
            .map(|(n, e)| (n, &e.public_key, e.removed_at.is_some()));
        genesis.chain(changed)
    }

    /// The requesters in force by name: the genesis's until a change is approved.
    pub fn requesters(&self) -> Requesters {
        self.known_requesters()
            .filter(|(_, _, removed)| !removed)
            .map(|(n, k, _)| (n.clone(), *k))
            .collect()
    }

    /// Whether `key` is a requester in force: what the ledger accepts operations from.
    pub fn is_requester(&self, key: &PublicKey) -> bool {
        self.known_requesters()
            .any(|(_, k, removed)| k == key && !removed)
    }

    /// Whether consensus may order a request signed by `key` as a requester's: it is one, was
    /// one, or a proposal to admit it is open. Never decides an outcome, only what reaches the
    /// ledger (see the module's doc).
    pub fn may_order(&self, key: &PublicKey) -> bool {
        self.known_requesters().any(|(_, k, _)| k == key)
            || self
                .pending_where(|k| {
                    matches!(k, super::ProposalKind::Requester {
                        change: RequesterChange::Add { public_key, .. },
                    } if public_key == key)
                })
                .is_some()
    }

    /// Everything wrong with `change` against the requesters in force (empty: it may apply).
    pub fn check_requester_change(&self, change: &RequesterChange) -> Vec<String> {
        let mut reasons = Vec::new();
        let now = self.requesters();
        match change {
            RequesterChange::Add { name, public_key } => {
                super::membership::name_ok("name", name, &mut reasons);
                if now.contains_key(name) {
                    reasons.push(format!("requester {name} is already admitted"));
                }
                if !public_key.is_valid() {
                    reasons.push("public_key is not a valid ed25519 key".into());
                } else if now.values().any(|k| k == public_key) {
                    reasons.push("public_key is another requester's key".into());
                } else if self.validator_id(public_key).is_some() {
                    reasons.push("public_key is a validator's key".into());
                } else if self.state.agents.iter().any(|a| a.key == *public_key) {
                    reasons.push("public_key is an agent's key".into());
                }
            }
            RequesterChange::Remove { name } => {
                if !now.contains_key(name) {
                    reasons.push(format!("requester {name} is not admitted"));
                } else if now.len() == 1 {
                    reasons.push(
                        "the last requester cannot be removed: nobody could propose again".into(),
                    );
                }
            }
        }
        reasons
    }

    /// A requester proposes `change`; it opens a proposal when it could apply now.
    pub(super) fn propose_requester_change(
        &mut self,
        seq: u64,
        change: RequesterChange,
    ) -> Result<u64, Rejection> {
        // Bounded before anything is echoed into an outcome or an event.
        if change.name().chars().count() > MAX_AGENT_NAME_CHARS {
            return reject(format!(
                "requester name longer than {MAX_AGENT_NAME_CHARS} characters"
            ));
        }
        let reasons = self.check_requester_change(&change);
        let what = change.describe();
        let kind = super::ProposalKind::Requester { change };
        self.open_change(seq, reasons, kind, "requesters_proposed", what)
    }

    /// An approved change applies (checked again: applying stays deterministic whatever
    /// happened since the votes were cast).
    pub(super) fn apply_requester_change(
        &mut self,
        seq: u64,
        proposal: u64,
        change: RequesterChange,
    ) {
        let reasons = self.check_requester_change(&change);
        if !self.still_applies(seq, proposal, reasons, "requesters_not_applied") {
            return;
        }
        let what = change.describe();
        let genesis = &self.cfg.requesters;
        let all = self.state.requesters.get_or_insert_with(|| {
            genesis
                .iter()
                .map(|(n, k)| {
                    let entry = RequesterEntry {
                        public_key: *k,
                        removed_at: None,
                    };
                    (n.clone(), entry)
                })
                .collect()
        });
        match change {
            RequesterChange::Add { name, public_key } => {
                all.insert(
                    name,
                    RequesterEntry {
                        public_key,
                        removed_at: None,
                    },
                );
            }
            RequesterChange::Remove { name } => {
                if let Some(e) = all.get_mut(&name) {
                    e.removed_at = Some(seq);
                }
            }
        }
        self.event(
            seq,
            Tongue::KO,
            "requesters_changed",
            format!("proposal:{proposal}"),
            what,
        );
    }
}
