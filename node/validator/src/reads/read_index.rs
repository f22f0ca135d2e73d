//! The reads by key that `Status` answers: one proposal by id, a requester's highest executed
//! nonce. The core copies only what a turn changed (the ledger names the proposals it touched;
//! a decided batch names its signers), and everything after a restore, so a turn never costs
//! O(history).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use scbe_core::consensus::Replica;
use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::Proposal;
use scbe_core::governance::Ledger;

#[derive(Default)]
pub struct ReadIndex {
    proposals: RwLock<BTreeMap<u64, Arc<Proposal>>>,
    nonces: RwLock<BTreeMap<PublicKey, u64>>,
}

impl ReadIndex {
    /// Copies every proposal and nonce (at start and after a restore from a snapshot).
    pub fn rebuild(&self, ledger: &Ledger, replica: &Replica<Ledger>) {
        if let Ok(mut p) = self.proposals.write() {
            *p = ledger
                .state()
                .proposals
                .iter()
                .map(|(id, p)| (*id, Arc::new(p.clone())))
                .collect();
        }
        if let Ok(mut n) = self.nonces.write() {
            *n = replica.last_nonces().map(|(k, v)| (*k, v)).collect();
        }
    }

    /// Copies the proposals a turn touched and the nonces of the signers it executed.
    pub fn update<'a>(
        &self,
        ledger: &Ledger,
        replica: &Replica<Ledger>,
        proposals: &BTreeSet<u64>,
        signers: impl IntoIterator<Item = &'a PublicKey>,
    ) {
        if !proposals.is_empty() {
            if let Ok(mut p) = self.proposals.write() {
                for id in proposals {
                    match ledger.state().proposals.get(id) {
                        Some(now) => p.insert(*id, Arc::new(now.clone())),
                        None => p.remove(id),
                    };
                }
            }
        }
        let mut signers = signers.into_iter().peekable();
        if signers.peek().is_some() {
            if let Ok(mut n) = self.nonces.write() {
                for k in signers {
                    n.insert(*k, replica.last_nonce(k));
                }
            }
        }
    }

    pub fn proposal(&self, id: u64) -> Option<Arc<Proposal>> {
        self.proposals.read().ok()?.get(&id).cloned()
    }

    /// The highest nonce executed for `signer` (0 if none).
    pub fn last_nonce(&self, signer: &PublicKey) -> u64 {
        self.nonces
            .read()
            .ok()
            .and_then(|n| n.get(signer).copied())
            .unwrap_or(0)
    }
}
