//! The ledger's replicated state: releases, proposals with their votes, rollouts with their
//! progress and which version every agent was put on (request outcomes and the event log live in
//! the bounded [`super::journal::Journal`]). Ordered maps only, so its serialisation (the digest
//! and snapshots) is the same on every replica.

use std::collections::{BTreeMap, BTreeSet};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::entry_map::EntryMap;
use super::lifecycle_map::{Lifecycle, LifecycleMap};
use crate::governance::release_body::ReleaseBody;
use crate::governance::stage::Stage;
use crate::rollout::baseline::Comparison;
use crate::rollout::evidence::HealthBody;
use crate::rollout::order::OrderUnit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl ProposalStatus {
    /// The status as it is serialised (`pending`, `approved`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Approved => "approved",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProposalKind {
    Promote {
        version: String,
        from: Stage,
        to: Stage,
        rollback_to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pause_before: Option<u32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps: Vec<u32>,
    },
    Rollback {
        target_version: String,
        reason: String,
    },
    /// A change to the fleet's membership.
    Agent {
        change: super::membership::AgentChange,
    },
    /// Stop a promotion in progress and roll back what it touched.
    Abort { rollout: u64, reason: String },
    /// Let rollout `rollout`, paused before `batch`, deploy it.
    Approve { rollout: u64, batch: u32 },
    /// New quality gates or health thresholds.
    Settings {
        change: super::settings::SettingsChange,
    },
    /// A requester admitted or removed.
    Requester {
        change: super::requesters::RequesterChange,
    },
    /// A validator removed or re-keyed.
    Validator {
        change: super::validators::ValidatorChange,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteRecord {
    pub approve: bool,
    pub reasons: Vec<String>,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: u64,
    pub kind: ProposalKind,
    pub opened_seq: u64,
    pub status: ProposalStatus,
    /// Votes by validator index.
    pub votes: BTreeMap<u32, VoteRecord>,
    /// Sequence number of the decision (approval, rejection or expiry).
    #[serde(default)]
    pub decided_seq: Option<u64>,
    /// The rollout an approval started.
    #[serde(default)]
    pub rollout: Option<u64>,
    /// The id an approved validator addition gave the new validator (absent otherwise, so the
    /// state digest of every other proposal is what it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<u32>,
}

impl Lifecycle for Proposal {
    /// Pending (votes still count).
    fn is_open(&self) -> bool {
        self.status == ProposalStatus::Pending
    }
}

impl Proposal {
    pub fn approvals(&self) -> usize {
        self.votes.values().filter(|v| v.approve).count()
    }
    pub fn rejections(&self) -> usize {
        self.votes.values().filter(|v| !v.approve).count()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Batches are being deployed and monitored.
    InProgress,
    /// Every batch deployed and healthy.
    Completed,
    /// Degraded, failed or silent: every agent at risk is being put back on `rollback_to`.
    RollingBack,
    /// Every agent at risk acknowledged the rollback.
    RolledBack,
    /// Never started (no agents) or superseded by a manual rollback.
    Failed,
}

impl RolloutStatus {
    /// The status as it is serialised (`in_progress`, `completed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RolloutStatus::InProgress => "in_progress",
            RolloutStatus::Completed => "completed",
            RolloutStatus::RollingBack => "rolling_back",
            RolloutStatus::RolledBack => "rolled_back",
            RolloutStatus::Failed => "failed",
        }
    }

    /// Whether the rollout still needs work from the leader.
    pub fn is_active(self) -> bool {
        matches!(self, RolloutStatus::InProgress | RolloutStatus::RollingBack)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RolloutKind {
    /// An approved promotion: deploy `version` batch by batch, monitoring each.
    Promote { from: Stage, to: Stage },
    /// An approved manual rollback: put `version` back on every agent not running it.
    Restore { reason: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: u64,
    pub proposal: u64,
    pub kind: RolloutKind,
    pub version: String,
    /// Digest and units of `version` (empty for versions known good at genesis).
    pub release_digest: String,
    pub units: Vec<OrderUnit>,
    /// Version to restore if this rollout rolls back (for a restore: the version it replaces).
    pub rollback_to: String,
    pub batches: Vec<Vec<String>>,
    /// Batches recorded as deployed and healthy.
    pub completed: u32,
    pub status: RolloutStatus,
    pub planned_seq: u64,
    /// Sequence number at which the current step (a batch, or the rollback) became current;
    /// orders and acks carry it.
    pub step_seq: u64,
    /// Agents of the current batch recorded so far (a batch may be recorded in chunks).
    pub recorded: BTreeSet<String>,
    /// Latest healthy report per agent, for the canary's safety re-check.
    pub reports: BTreeMap<String, HealthBody>,
    /// Latest report of each baseline agent (same specialty as a canary agent, still on the
    /// running version) while a canary step is compared with them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baseline: BTreeMap<String, HealthBody>,
    /// The canary-against-baseline comparison, once the canary step ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// Agents the rollback step covers (fixed when it starts) and those still to acknowledge.
    pub rollback_agents: Vec<String>,
    pub rollback_pending: BTreeSet<String>,
    /// Validators that claimed no data for the current step.
    pub no_data: BTreeSet<u32>,
    /// Validators that claimed the current step stalled, per consensus view.
    #[serde(default)]
    pub stalled: BTreeMap<u64, BTreeSet<u32>>,
    /// The view whose primary `f + 1` validators found not executing the current step.
    #[serde(default)]
    pub replace_view: Option<u64>,
    /// Why it failed or rolled back.
    pub reason: String,
    pub ended_seq: Option<u64>,
    /// The batch (1-based) that waits for an approved `Approve` before it is deployed; cleared
    /// by the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_before: Option<u32>,
}

impl Lifecycle for Rollout {
    /// Deploying or rolling back (it holds the fleet).
    fn is_open(&self) -> bool {
        self.status.is_active()
    }
}

impl Rollout {
    /// Agents of the batch being deployed, if any (none while paused for approval).
    pub fn current_batch(&self) -> Option<&[String]> {
        if self.status != RolloutStatus::InProgress || self.paused_before().is_some() {
            return None;
        }
        self.batches.get(self.completed as usize).map(Vec::as_slice)
    }

    /// The batch this rollout waits to be approved for, while it waits.
    pub fn paused_before(&self) -> Option<u32> {
        let next = self.completed + 1;
        (self.status == RolloutStatus::InProgress && self.pause_before == Some(next))
            .then_some(next)
    }

    pub fn total_agents(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseEntry {
    /// The release as its JSON ([`ReleaseBody`]): decoded only where it is read.
    pub release: ReleaseBody,
    pub stage: Stage,
    pub registered_seq: u64,
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Hex sha256 of the request's operation bytes: which request of this (signer, nonce)
    /// this outcome belongs to, so a client is never told another request's outcome.
    #[serde(default)]
    pub request: String,
    pub seq: u64,
    pub accepted: bool,
    pub reasons: Vec<String>,
    pub proposal: Option<u64>,
    pub rollout: Option<u64>,
}

/// [`LedgerState::digest`] from its [`LedgerState::digest_parts`].
pub(super) fn digest_of_parts(parts: &[Vec<u8>]) -> [u8; 32] {
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    crate::consensus::Digest::of_parts(&parts).0
}

/// The first part of the state digest under [`StateDigest::Tree`].
pub const TREE_DIGEST_TAG: &[u8] = b"ledger-state/5";

/// How the maps of releases, proposals and rollouts enter the state digest. Every validator of
/// a cluster must use the same: the genesis names it (`[ledger] state_digest`) and a settings
/// proposal may change it (`scbe propose settings --state-digest tree`), at one sequence number
/// on every replica, so a cluster upgraded one validator at a time keeps agreeing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateDigest {
    /// Every entry's digest hashed in key order at each checkpoint: O(entries). What a genesis
    /// that does not name one gets: the digest clusters signed before the tree existed.
    #[default]
    Walk,
    /// The root of each map's digest tree, updated only where entries changed: O(changes).
    Tree,
}

impl StateDigest {
    pub fn is_walk(&self) -> bool {
        *self == StateDigest::Walk
    }

    pub fn name(self) -> &'static str {
        match self {
            StateDigest::Walk => "walk",
            StateDigest::Tree => "tree",
        }
    }
}

/// The [`StateDigest::name`]s (what the genesis and `scbe propose settings` write).
impl std::str::FromStr for StateDigest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [StateDigest::Walk, StateDigest::Tree]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("{s:?} is not a state digest: tree or walk"))
    }
}

/// Everything replicated. Serialised (JSON, ordered maps) for the digest and snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerState {
    /// By version. A version is kept inline in the map's node when it is at most 24 bytes
    /// long (`CompactString`): a `String` added a 32-byte allocation to each of a million
    /// releases (issue 27, memory per release). It serialises as a string, as before.
    pub releases: EntryMap<CompactString, ReleaseEntry>,
    pub known_good: BTreeSet<String>,
    /// Which version each stage currently serves.
    pub current: BTreeMap<Stage, String>,
    /// Open or history; each finds its open entries without walking the rest.
    pub proposals: LifecycleMap<u64, Proposal>,
    pub rollouts: LifecycleMap<u64, Rollout>,
    /// The version the ledger has put each agent on (genesis: the production version).
    pub assigned: BTreeMap<String, String>,
    pub next_proposal: u64,
    pub next_rollout: u64,
    /// The fleet: the genesis's agents, then as approved membership proposals changed it
    /// (admitted agents are appended; rollout plans take them in this order's id order).
    #[serde(default)]
    pub agents: Vec<crate::rollout::plan::FleetAgent>,
    /// Per notification sink: every event before this index that its filter takes was
    /// delivered (`Operation::Notified`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notified: BTreeMap<String, u64>,
    /// The gates and health thresholds an approved proposal set (none: the genesis's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<super::settings::Settings>,
    /// Every requester by name once an approved proposal changed them, removed ones kept
    /// (none: the genesis's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesters: Option<BTreeMap<String, super::requesters::RequesterEntry>>,
    /// The validator set once an approved proposal changed it (none: the genesis's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validators: Option<super::validators::ValidatorRoster>,
}

impl LedgerState {
    /// What a checkpoint's digest covers: every field. The maps of releases, proposals and
    /// rollouts contribute their [`EntryMap::digest`] (with [`StateDigest::Tree`], a Merkle
    /// root over per-entry digests kept up to date as entries change); the rest (small:
    /// versions, stage heads, agent assignments, counters) its JSON.
    pub fn digest(&self, mode: StateDigest) -> [u8; 32] {
        let roots = [
            self.releases.digest(mode),
            self.proposals.digest(mode),
            self.rollouts.digest(mode),
        ];
        digest_of_parts(&self.digest_parts(mode, roots))
    }

    /// What [`LedgerState::digest`] hashes, in order, given the digests of the releases,
    /// proposals and rollouts (parts 1, 2 and 3; part 0 names the mode): what a
    /// [`super::state_proof::StateProof`] carries to lead from one entry to the state digest.
    pub fn digest_parts(&self, mode: StateDigest, roots: [[u8; 32]; 3]) -> Vec<Vec<u8>> {
        // Destructured so that a field added later cannot be left out of the digest.
        let LedgerState {
            releases: _,
            known_good,
            current,
            proposals: _,
            rollouts: _,
            assigned,
            next_proposal,
            next_rollout,
            agents,
            notified,
            settings,
            requesters,
            validators,
        } = self;
        let rest = serde_json::to_vec(&(
            known_good,
            current,
            assigned,
            next_proposal,
            next_rollout,
            agents,
        ))
        .unwrap_or_default();
        let tag: &[u8] = match mode {
            StateDigest::Walk => b"ledger-state/4",
            StateDigest::Tree => TREE_DIGEST_TAG,
        };
        let [releases, proposals, rollouts] = roots;
        let mut parts = vec![
            tag.to_vec(),
            releases.to_vec(),
            proposals.to_vec(),
            rollouts.to_vec(),
            rest,
        ];
        // Notification records and changed settings join the digest once there are any, so
        // a cluster without `[[notify]]` or an approved settings change keeps the digests it
        // had before they existed. Settings go in tagged: both parts are JSON.
        let notified =
            (!notified.is_empty()).then(|| serde_json::to_vec(notified).unwrap_or_default());
        let settings = settings.map(|s| {
            let mut tagged = b"settings:".to_vec();
            tagged.extend(serde_json::to_vec(&s).unwrap_or_default());
            tagged
        });
        // Changed requesters likewise, tagged.
        let requesters = requesters.as_ref().map(|r| {
            let mut tagged = b"requesters:".to_vec();
            tagged.extend(serde_json::to_vec(r).unwrap_or_default());
            tagged
        });
        let validators = validators.as_ref().map(|v| {
            let mut tagged = b"validators:".to_vec();
            tagged.extend(serde_json::to_vec(v).unwrap_or_default());
            tagged
        });
        parts.extend(notified);
        parts.extend(settings);
        parts.extend(requesters);
        parts.extend(validators);
        parts
    }

    /// Encodes the JSON of every release, proposal and rollout that changed since the last
    /// call, so the next serialisation copies it (see [`EntryMap`]).
    pub fn settle(&mut self) {
        self.releases.settle();
        self.proposals.settle();
        self.rollouts.settle();
    }

    /// About how many bytes the state's JSON takes once settled (the sizes of the maps'
    /// entries, kept when they are digested; the rest is small), to size a snapshot without
    /// encoding it.
    pub fn json_bytes_hint(&self) -> usize {
        self.releases.json_bytes() + self.proposals.json_bytes() + self.rollouts.json_bytes() + 4096
    }

    /// The agent with this id, if it is in the fleet.
    pub fn agent(&self, id: &str) -> Option<&crate::rollout::plan::FleetAgent> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The rollout that holds the fleet (one at a time), if any.
    pub fn active_rollout(&self) -> Option<&Rollout> {
        self.rollouts.open_values().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_their_serialised_form() {
        for p in [
            ProposalStatus::Pending,
            ProposalStatus::Approved,
            ProposalStatus::Rejected,
            ProposalStatus::Expired,
        ] {
            assert_eq!(serde_json::to_value(p).ok(), Some(p.name().into()));
        }
        for r in [
            RolloutStatus::InProgress,
            RolloutStatus::Completed,
            RolloutStatus::RollingBack,
            RolloutStatus::RolledBack,
            RolloutStatus::Failed,
        ] {
            assert_eq!(serde_json::to_value(r).ok(), Some(r.name().into()));
        }
    }
}
