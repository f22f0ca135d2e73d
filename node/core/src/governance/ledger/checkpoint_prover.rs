//! What proves entries of the state at one checkpoint: the state as the checkpoint took it (a
//! clone sharing every entry with the live maps, the one its snapshot encodes) and the journal's
//! part of its digest. Each map's digest tree is built on the first proof asked of that map,
//! from the digests the entries keep (no entry is encoded again), and kept for the next ones.
//!
//! Why not the live map's tree: it moves on with every batch after the checkpoint, and keeping
//! a copy of it per checkpoint would cost 32 bytes per entry at every checkpoint whether or not
//! anyone asks. Here the cost is paid once per checkpoint and map, and only when asked (1.45 s
//! at 1,000,000 releases, 0.11 s at 100,000: `scbe-sim bench-digest --prove-releases`; off the
//! validator's loop).

use std::sync::{Arc, OnceLock};

use super::digest_tree::DigestTree;
use super::state::{digest_of_parts, LedgerState, StateDigest};
use super::state_proof::{ledger_digest, ProvenMap, StateProof};
use crate::consensus::{AppState, Digest};

/// See the module documentation.
pub struct CheckpointProver {
    state: LedgerState,
    /// `Journal::digest_parts` at the checkpoint.
    journal: Vec<u8>,
    mode: StateDigest,
    /// Per map (in [`ProvenMap::ALL`]'s order), once built.
    trees: [OnceLock<DigestTree>; 3],
}

/// Why no proof is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    #[error(
        "this cluster digests its state with the walk (a genesis from before the digest tree): \
         an entry cannot be proven without the whole state; a settings proposal \
         (`--state-digest tree`) moves it to the tree"
    )]
    WalkDigest,
    #[error("no entry {key} in {}", .map.name())]
    NoEntry { map: ProvenMap, key: String },
}

impl CheckpointProver {
    /// `state` is settled (as before a checkpoint: every entry's digest cached).
    pub fn new(state: LedgerState, journal: Vec<u8>, mode: StateDigest) -> Self {
        Self {
            state,
            journal,
            mode,
            trees: Default::default(),
        }
    }

    /// The prover a checkpoint's snapshot keeps, if the ledger made it here (bytes from a store
    /// or a peer keep none).
    pub fn of(snapshot: &AppState) -> Option<Arc<Self>> {
        Arc::clone(snapshot.source()?).downcast::<Self>().ok()
    }

    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    fn tree(&self, map: ProvenMap) -> &DigestTree {
        let i = map.part() - 1;
        self.trees[i].get_or_init(|| match map {
            ProvenMap::Releases => self.state.releases.digest_tree(),
            ProvenMap::Proposals => self.state.proposals.digest_tree(),
            ProvenMap::Rollouts => self.state.rollouts.digest_tree(),
        })
    }

    /// Only a state digested with the tree can be proven in part: the walk hashes every entry
    /// in a row.
    fn provable(&self) -> Result<(), ProveError> {
        match self.mode {
            StateDigest::Tree => Ok(()),
            StateDigest::Walk => Err(ProveError::WalkDigest),
        }
    }

    fn roots(&self) -> [[u8; 32]; 3] {
        ProvenMap::ALL.map(|m| self.tree(m).root())
    }

    /// The ledger's digest at the checkpoint (what its certificate names), from the trees.
    pub fn digest(&self) -> Result<Digest, ProveError> {
        self.provable()?;
        let parts = self.state.digest_parts(self.mode, self.roots());
        Ok(ledger_digest(&digest_of_parts(&parts), &self.journal))
    }

    /// Proves the entry `key` of `map`: a version for releases, an id for proposals and
    /// rollouts.
    pub fn prove(&self, map: ProvenMap, key: &str) -> Result<StateProof, ProveError> {
        self.provable()?;
        let missing = || ProveError::NoEntry {
            map,
            key: key.to_string(),
        };
        let tree = self.tree(map);
        let id = || ProvenMap::id(key).ok_or_else(missing);
        let entry = match map {
            ProvenMap::Releases => self.state.releases.prove(tree, key),
            ProvenMap::Proposals => self.state.proposals.prove(tree, &id()?),
            ProvenMap::Rollouts => self.state.rollouts.prove(tree, &id()?),
        }
        .ok_or_else(missing)?;
        Ok(StateProof {
            map,
            entry,
            state_parts: self.state.digest_parts(self.mode, self.roots()),
            journal: self.journal.clone(),
        })
    }
}
