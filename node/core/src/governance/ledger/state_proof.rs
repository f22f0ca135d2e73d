//! A proof that one release, proposal or rollout was in the ledger's state at a checkpoint: the
//! entry, the path from its digest to its map's digest-tree root ([`EntryProof`]), and the rest
//! of what the state digest hashes. [`StateProof::state_digest`] recomputes the digest a
//! checkpoint certificate vouches for, so whoever trusts the validator set trusts the entry,
//! without the rest of the state (which at a million releases is a gigabyte).
//!
//! Only a state digested with the tree ([`StateDigest::Tree`]) can be proven in part: the walk
//! hashes every entry in a row.

use serde::{Deserialize, Serialize};

use super::entry_map::EntryProof;
use super::state::{digest_of_parts, TREE_DIGEST_TAG};
use super::tree_proof::{hex_list, TreeProofError};
use crate::consensus::Digest;

/// The maps of the ledger state an entry can be proven in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvenMap {
    Releases,
    Proposals,
    Rollouts,
}

impl ProvenMap {
    pub const ALL: [ProvenMap; 3] = [
        ProvenMap::Releases,
        ProvenMap::Proposals,
        ProvenMap::Rollouts,
    ];

    /// Where the map's root is among the state digest's parts (`LedgerState::digest_parts`).
    pub fn part(self) -> usize {
        match self {
            ProvenMap::Releases => 1,
            ProvenMap::Proposals => 2,
            ProvenMap::Rollouts => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProvenMap::Releases => "releases",
            ProvenMap::Proposals => "proposals",
            ProvenMap::Rollouts => "rollouts",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// An entry's key as the map reads `key` and a proof names it (`EntryProof::key`): a
    /// version as a JSON string, an id as its number ("07" is 7); None for an id that is not a
    /// number.
    pub fn key_json(self, key: &str) -> Option<String> {
        match self {
            ProvenMap::Releases => serde_json::to_string(key).ok(),
            ProvenMap::Proposals | ProvenMap::Rollouts => Self::id(key).map(|id| id.to_string()),
        }
    }

    /// A proposal's or rollout's id as the map reads `key`.
    pub(super) fn id(key: &str) -> Option<u64> {
        key.parse().ok()
    }
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateProof {
    pub map: ProvenMap,
    pub entry: EntryProof,
    /// Everything the ledger state's digest hashes, in order (the proven map's root among
    /// them, checked against the entry's path).
    #[serde(with = "hex_list")]
    pub state_parts: Vec<Vec<u8>>,
    /// The journal's part of the digest: its chains' tips.
    #[serde(with = "hex::serde")]
    pub journal: Vec<u8>,
}

/// Why a proof does not lead to a state digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the entry's path: {0}")]
    Path(#[from] TreeProofError),
    #[error("the proof is not of a state digested with the tree")]
    NotTree,
    #[error("the proof has {got} state parts; the state digest has at least 5")]
    Parts { got: usize },
    #[error("the entry's path leads to another root than the {} the state digest holds", .0.name())]
    MapRoot(ProvenMap),
}

impl StateProof {
    /// The state digest (what a checkpoint certificate names) this proof leads to, for the
    /// caller to compare with the one a quorum signed.
    pub fn state_digest(&self) -> Result<Digest, ProofError> {
        if self.state_parts.len() < 5 {
            return Err(ProofError::Parts {
                got: self.state_parts.len(),
            });
        }
        if self.state_parts[0] != TREE_DIGEST_TAG {
            return Err(ProofError::NotTree);
        }
        let root = self.entry.root()?;
        if self.state_parts[self.map.part()] != root {
            return Err(ProofError::MapRoot(self.map));
        }
        Ok(ledger_digest(
            &digest_of_parts(&self.state_parts),
            &self.journal,
        ))
    }

    /// The entry, decoded.
    pub fn value<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.entry.entry)
    }
}

/// The ledger's digest (`StateMachine::digest`) from its state's and its journal's parts.
pub(super) fn ledger_digest(state: &[u8; 32], journal: &[u8]) -> Digest {
    Digest::of_parts(&[b"ledger", state, journal])
}
