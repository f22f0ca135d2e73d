//! The reads by key that `Status` answers: one proposal by id, a requester's highest executed
//! nonce. The proposals are a clone of the ledger's map, which shares every entry with it and
//! costs O(1) ([`EntryMap`] is persistent), taken when a turn touched a proposal and after a
//! restore; the nonces are copied for the signers a decided batch names, and all of them after
//! a restore. So neither a turn nor a restore costs O(history), and no proposal is held twice
//! (issue 27: this index once copied every proposal at each restore, and kept the copies).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::entry_map::EntryMap;
use scbe_core::governance::ledger::Proposal;
use scbe_core::governance::Ledger;

#[derive(Default)]
pub struct ReadIndex {
    proposals: RwLock<EntryMap<u64, Proposal>>,
    nonces: RwLock<BTreeMap<PublicKey, u64>>,
}

impl ReadIndex {
    /// Takes the ledger's proposals and copies every nonce (at start and after a restore from a
    /// snapshot); `last_nonces` is the replica's (`Replica::last_nonces`).
    pub fn rebuild<'a>(
        &self,
        ledger: &Ledger,
        last_nonces: impl IntoIterator<Item = (&'a PublicKey, u64)>,
    ) {
        self.take_proposals(ledger);
        if let Ok(mut n) = self.nonces.write() {
            *n = last_nonces.into_iter().map(|(k, v)| (*k, v)).collect();
        }
    }

    /// Takes the ledger's proposals if the turn touched any, and copies the nonces of the
    /// signers it executed; `last_nonce` is the replica's (`Replica::last_nonce`).
    pub fn update<'a>(
        &self,
        ledger: &Ledger,
        last_nonce: impl Fn(&PublicKey) -> u64,
        proposals_touched: bool,
        signers: impl IntoIterator<Item = &'a PublicKey>,
    ) {
        if proposals_touched {
            self.take_proposals(ledger);
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

    /// An O(1) clone of the ledger's proposals (it shares every entry with the ledger's map,
    /// which copies an entry only when it changes one this clone still holds).
    fn take_proposals(&self, ledger: &Ledger) {
        let now = EntryMap::clone(&ledger.state().proposals);
        if let Ok(mut p) = self.proposals.write() {
            *p = now;
        }
    }

    /// A copy of proposal `id` as the last turn that touched a proposal left it.
    pub fn proposal(&self, id: u64) -> Option<Arc<Proposal>> {
        self.proposals.read().ok()?.get(&id).cloned().map(Arc::new)
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

    /// A rebuild takes every proposal and nonce; an update takes the proposals only when the
    /// turn touched one (and then drops one the ledger no longer holds), and the nonces of the
    /// signers named; nothing else moves.
    #[test]
    fn a_rebuild_takes_everything_and_an_update_only_what_a_turn_touched() {
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
        index.update(&w.ledger, replica_nonce, false, [&a]);
        assert_eq!(index.proposal(p).map(|x| x.votes.len()), Some(0));
        assert_eq!(
            (index.last_nonce(&a), index.last_nonce(&b)),
            (9, 3),
            "only the signer named moves"
        );
        index.update(&w.ledger, replica_nonce, true, [&b]);
        let now = index.proposal(p).expect("still listed");
        assert_eq!((now.votes.len(), now.status), (2, ProposalStatus::Rejected));
        assert_eq!(index.last_nonce(&b), 4);

        // A touched proposal the ledger no longer holds leaves the index.
        let gone = p + 1;
        index.rebuild(&w.ledger, [(&a, 1)]);
        assert_eq!(index.last_nonce(&b), 0, "a rebuild replaces the nonces");
        index.update(&w.ledger, replica_nonce, true, []);
        assert!(index.proposal(gone).is_none());
        let empty = World::new();
        index.update(&empty.ledger, replica_nonce, true, []);
        assert!(
            index.proposal(p).is_none(),
            "dropped when the ledger lost it"
        );
    }
}
