//! The fleet's membership, changed by the quorum: a requester proposes admitting, removing or
//! updating an agent; every validator checks the change against the ledger's fleet (key
//! format and validity, unique id and key, address, specialty) and votes like on a promotion;
//! at `q` approvals the change applies at that sequence number on every replica. One change
//! to the fleet at a time: none while a rollout holds it or another proposal is open.

use serde::{Deserialize, Serialize};

use super::{reject, Ledger, Rejection};
use crate::crypto::PublicKey;
use crate::governance::admission;
use crate::governance::stage::{Stage, Tongue};
use crate::rollout::plan::FleetAgent;

/// Longest agent id or specialty accepted.
pub const MAX_AGENT_NAME_CHARS: usize = 64;

/// A change to the fleet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentChange {
    /// Admit an agent: it joins the next rollout's plan.
    Add {
        id: String,
        specialty: String,
        public_key: PublicKey,
        address: String,
    },
    /// Remove an agent: no later order names it and its evidence stops counting.
    Remove { id: String },
    /// Move an agent (a new address) or re-key it (its old key's evidence stops counting).
    Update {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_key: Option<PublicKey>,
    },
}

impl AgentChange {
    pub fn agent(&self) -> &str {
        match self {
            AgentChange::Add { id, .. }
            | AgentChange::Remove { id }
            | AgentChange::Update { id, .. } => id,
        }
    }

    /// One line for events and `scbe status`.
    pub fn describe(&self) -> String {
        match self {
            AgentChange::Add {
                id,
                specialty,
                address,
                ..
            } => format!("add agent {id} ({specialty}) at {address}"),
            AgentChange::Remove { id } => format!("remove agent {id}"),
            AgentChange::Update {
                id,
                address,
                public_key,
            } => {
                let mut what = Vec::new();
                if let Some(a) = address {
                    what.push(format!("address {a}"));
                }
                if public_key.is_some() {
                    what.push("a new key".to_string());
                }
                format!("update agent {id}: {}", what.join(", "))
            }
        }
    }
}

pub(super) fn name_ok(field: &str, v: &str, reasons: &mut Vec<String>) {
    let ok = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if v.is_empty() || v.chars().count() > MAX_AGENT_NAME_CHARS || !ok {
        reasons.push(format!(
            "{field} must be 1 to {MAX_AGENT_NAME_CHARS} letters, digits or . - _"
        ));
    }
}

impl Ledger {
    /// Everything wrong with `change` against the fleet as it is now (empty: it may apply).
    pub fn check_agent_change(&self, change: &AgentChange) -> Vec<String> {
        let mut reasons = Vec::new();
        let agents = &self.state.agents;
        let key_taken =
            |key: &PublicKey, except: &str| agents.iter().any(|a| a.key == *key && a.id != except);
        let key_ok = |key: &PublicKey, except: &str, reasons: &mut Vec<String>| {
            if !key.is_valid() {
                reasons.push("public_key is not a valid ed25519 key".into());
            } else if key_taken(key, except) {
                reasons.push("public_key is another agent's key".into());
            }
        };
        let address_ok = |a: &str, reasons: &mut Vec<String>| {
            if let Err(e) = admission::check_address(a) {
                reasons.push(format!("address {e}"));
            }
        };
        match change {
            AgentChange::Add {
                id,
                specialty,
                public_key,
                address,
            } => {
                name_ok("id", id, &mut reasons);
                name_ok("specialty", specialty, &mut reasons);
                if self.state.agent(id).is_some() {
                    reasons.push(format!("agent {id} is already in the fleet"));
                }
                key_ok(public_key, id, &mut reasons);
                address_ok(address, &mut reasons);
            }
            AgentChange::Remove { id } => {
                if self.state.agent(id).is_none() {
                    reasons.push(format!("agent {id} is not in the fleet"));
                } else if agents.len() == 1 {
                    reasons.push("the fleet's last agent cannot be removed".into());
                }
            }
            AgentChange::Update {
                id,
                address,
                public_key,
            } => {
                if self.state.agent(id).is_none() {
                    reasons.push(format!("agent {id} is not in the fleet"));
                }
                if address.is_none() && public_key.is_none() {
                    reasons.push("an update changes the address, the key or both".into());
                }
                if let Some(a) = address {
                    address_ok(a, &mut reasons);
                }
                if let Some(k) = public_key {
                    key_ok(k, id, &mut reasons);
                }
            }
        }
        if let Some(r) = self.state.active_rollout() {
            reasons.push(format!(
                "rollout {} ({}) holds the fleet; membership changes wait for it",
                r.id, r.version
            ));
        }
        reasons
    }

    /// A requester proposes `change`; it opens a proposal when it could apply now.
    pub(super) fn propose_agent_change(
        &mut self,
        seq: u64,
        change: AgentChange,
    ) -> Result<u64, Rejection> {
        // Bounded before anything is echoed into an outcome or an event.
        if change.agent().chars().count() > MAX_AGENT_NAME_CHARS {
            return reject(format!(
                "agent id longer than {MAX_AGENT_NAME_CHARS} characters"
            ));
        }
        let reasons = self.check_agent_change(&change);
        let what = change.describe();
        let kind = super::ProposalKind::Agent { change };
        self.open_change(seq, reasons, kind, "membership_proposed", what)
    }

    /// An approved change applies (checked again: applying stays deterministic whatever
    /// happened since the votes were cast).
    pub(super) fn apply_agent_change(&mut self, seq: u64, proposal: u64, change: AgentChange) {
        let reasons = self.check_agent_change(&change);
        if !self.still_applies(seq, proposal, reasons, "membership_not_applied") {
            return;
        }
        let what = change.describe();
        match change {
            AgentChange::Add {
                id,
                specialty,
                public_key,
                address,
            } => {
                // It runs what the fleet runs until a rollout orders otherwise.
                if let Some(v) = self.state.current.get(&Stage::Production) {
                    self.state.assigned.insert(id.clone(), v.clone());
                }
                self.state.agents.push(FleetAgent {
                    id,
                    specialty,
                    key: public_key,
                    address,
                });
            }
            AgentChange::Remove { id } => {
                self.state.agents.retain(|a| a.id != id);
                self.state.assigned.remove(&id);
            }
            AgentChange::Update {
                id,
                address,
                public_key,
            } => {
                if let Some(a) = self.state.agents.iter_mut().find(|a| a.id == id) {
                    if let Some(address) = address {
                        a.address = address;
                    }
                    if let Some(k) = public_key {
                        a.key = k;
                    }
                }
            }
        }
        self.agent_keys = super::keys_of(&self.state);
        self.fleet_generation += 1;
        self.event(
            seq,
            Tongue::KO,
            "membership_changed",
            format!("proposal:{proposal}"),
            what,
        );
    }
}
