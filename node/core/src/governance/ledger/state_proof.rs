//! A proof that one release, proposal or rollout was in the ledger's state at a checkpoint: the
//! entry, the path from its digest to its map's digest-tree root ([`EntryProof`]), and the rest
//! of what the state digest hashes. [`StateProof::state_digest`] recomputes the digest a
//! checkpoint certificate vouches for, so whoever trusts the validator set trusts the entry,
//! without the rest of the state (which at a million releases is a gigabyte).
//!
//! Only a state digested with the tree ([`StateDigest::Tree`]) can be proven in part: the walk
//! hashes every entry in a row.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::entry_map::EntryProof;
use super::state::{StateDigest, TREE_DIGEST_TAG};
use super::tree_proof::TreeProofError;
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
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateProof {
    pub map: ProvenMap,
    pub entry: EntryProof,
    /// Everything the ledger state's digest hashes, in order (the proven map's root among
    /// them, checked against the entry's path).
    #[serde(with = "hex_parts")]
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
        let parts: Vec<&[u8]> = self.state_parts.iter().map(Vec::as_slice).collect();
        let state = Digest::of_parts(&parts);
        Ok(ledger_digest(&state.0, &self.journal))
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

/// Whether a state under `mode` can be proven in part.
pub fn provable(mode: StateDigest) -> bool {
    mode == StateDigest::Tree
}

mod hex_parts {
    use super::*;

    pub fn serialize<S: Serializer>(parts: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(parts.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|h| hex::decode(h).map_err(serde::de::Error::custom))
            .collect()
    }
}
