//! The reads by key that `Status` answers: one proposal by id, a requester's highest executed
//! nonce. The core copies only what a turn changed (the ledger names the proposals it touched;
//! a decided batch names its signers), and everything after a restore, so a turn never costs
//! O(history).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::Proposal;
use scbe_core::governance::Ledger;

#[derive(Default)]
pub struct ReadIndex {
    proposals: RwLock<BTreeMap<u64, Arc<Proposal>>>,
    nonces: RwLock<BTreeMap<PublicKey, u64>>,
}

impl ReadIndex {
    /// Copies every proposal and nonce (at start and after a restore from a snapshot);
    /// `last_nonces` is the replica's (`Replica::last_nonces`).
    pub fn rebuild<'a>(
        &self,
        ledger: &Ledger,
        last_nonces: impl IntoIterator<Item = (&'a PublicKey, u64)>,
    ) {
        if let Ok(mut p) = self.proposals.write() {
            *p = ledger
                .state()
                .proposals
                .iter()
                .map(|(id, p)| (*id, Arc::new(p.clone())))
                .collect();
        }
        if let Ok(mut n) = self.nonces.write() {
            *n = last_nonces.into_iter().map(|(k, v)| (*k, v)).collect();
        }
    }

    /// Copies the proposals a turn touched and the nonces of the signers it executed;
    /// `last_nonce` is the replica's (`Replica::last_nonce`).
    pub fn update<'a>(
        &self,
        ledger: &Ledger,
        last_nonce: impl Fn(&PublicKey) -> u64,
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
                    n.insert(*k, last_nonce(k));
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

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::crypto::Keypair;
    use scbe_core::governance::ledger::{ProposalStatus, SettingsChange};
    use scbe_core::governance::ledger_world::World;
    use scbe_core::governance::Operation;

    fn key(label: &str) -> PublicKey {
        Keypair::from_label(label).public()
    }

    /// A rebuild copies every proposal and nonce; an update copies only the proposals named
    /// as touched (and drops one the ledger no longer holds) and the nonces of the signers
    /// named; nothing else moves.
    #[test]
    fn a_rebuild_copies_everything_and_an_update_only_what_a_turn_touched() {
        let mut w = World::new();
        let index = ReadIndex::default();
        assert!(index.proposal(0).is_none());
        assert_eq!(index.last_nonce(&key("a")), 0, "unknown signer: 0");
        let o = w.request(Operation::ProposeSettings {
            change: SettingsChange {
                min_quality: Some(0.85),
                ..SettingsChange::default()
            },
        });
        let p = o.proposal.expect("proposal");
        let (a, b) = (key("a"), key("b"));
        index.rebuild(&w.ledger, [(&a, 7), (&b, 3)]);
        assert_eq!(
            index.proposal(p).map(|x| x.status),
            Some(ProposalStatus::Pending)
        );
        assert_eq!((index.last_nonce(&a), index.last_nonce(&b)), (7, 3));

        // A vote changes the proposal; an update that does not name it keeps the old copy.
        w.vote(0, p, false);
        w.vote(1, p, false);
        let replica_nonce = |k: &PublicKey| if *k == a { 9 } else { 4 };
        index.update(&w.ledger, replica_nonce, &BTreeSet::new(), [&a]);
        assert_eq!(index.proposal(p).map(|x| x.votes.len()), Some(0));
        assert_eq!(
            (index.last_nonce(&a), index.last_nonce(&b)),
            (9, 3),
            "only the signer named moves"
        );
        index.update(&w.ledger, replica_nonce, &BTreeSet::from([p]), [&b]);
        let now = index.proposal(p).expect("still listed");
        assert_eq!((now.votes.len(), now.status), (2, ProposalStatus::Rejected));
        assert_eq!(index.last_nonce(&b), 4);

        // A touched proposal the ledger no longer holds leaves the index.
        let gone = p + 1;
        index.rebuild(&w.ledger, [(&a, 1)]);
        assert_eq!(index.last_nonce(&b), 0, "a rebuild replaces the nonces");
        index.update(&w.ledger, replica_nonce, &BTreeSet::from([p, gone]), []);
        assert!(index.proposal(gone).is_none());
        let empty = World::new();
        index.update(&empty.ledger, replica_nonce, &BTreeSet::from([p]), []);
        assert!(
            index.proposal(p).is_none(),
            "dropped when the ledger lost it"
        );
    }
}
