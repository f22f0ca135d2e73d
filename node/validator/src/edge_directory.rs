//! Who the network edge accepts, following the validator set in force: the directory signers
//! are resolved with before anything is decoded, and the keys TLS accepts from validators
//! (every peer stream, and each outbound link's pin on its peer). The runtime moves it on when
//! the replica enters a new epoch (a rotated key is accepted from then on, a removed or
//! rotated-out one only for the epoch after, to ask for state), so a rotation needs no
//! restart of the other validators.
//!
//! A validator that was down while its peers were re-keyed learns the later sets from a chain
//! checked from the genesis (`chain_fetcher.rs`): the edge then also resolves and accepts
//! their keys ([`EdgeDirectory::learn_ahead`]), so the peers' state responses, which carry the
//! links the replica checks itself, reach it; until the replica has entered the last of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use scbe_core::consensus::{Directory, ReplicaId, ValidatorSet};
use scbe_wire::tls::PinnedKeys;

pub struct EdgeDirectory {
    current: RwLock<Arc<Directory>>,
    /// Every validator key the directory resolves: the callers the peer-only services accept.
    validators: PinnedKeys,
    /// Per peer, the keys its outbound link accepts from the server it dials (a validator the
    /// quorum added gets its entry when a link to it is made).
    peers: RwLock<BTreeMap<u32, PinnedKeys>>,
    /// Sets a checked chain proves beyond the one in force, oldest first, and the directory
    /// that resolves their keys as well as the current ones (the current one if none).
    ahead: RwLock<(Vec<ValidatorSet>, Arc<Directory>)>,
    /// Peer envelopes refused for a signer no set the edge knows lists (`chain_fetcher.rs`
    /// asks for the chain when this moves).
    unknown_signers: AtomicU64,
}

impl EdgeDirectory {
    /// The edge of `dir` (the epoch the replica restored into), with a link pin for each of
    /// `peers`.
    pub fn new(dir: Directory, peers: impl IntoIterator<Item = u32>) -> Self {
        let validators = PinnedKeys::new(
            dir.validator_keys().map(|(_, k)| k),
            "a validator of this cluster",
        );
        let peers = peers
            .into_iter()
            .map(|p| {
                let pins = PinnedKeys::new(
                    keys_of(&dir, p),
                    format!("validator {p}'s key in the validator set in force"),
                );
                (p, pins)
            })
            .collect();
        let dir = Arc::new(dir);
        EdgeDirectory {
            current: RwLock::new(Arc::clone(&dir)),
            validators,
            peers: RwLock::new(peers),
            ahead: RwLock::new((Vec::new(), dir)),
            unknown_signers: AtomicU64::new(0),
        }
    }

    /// A peer envelope was refused: its signer is in no set the edge knows.
    pub fn note_unknown_signer(&self) {
        self.unknown_signers.fetch_add(1, Ordering::Relaxed);
    }

    /// How many peer envelopes were refused for an unknown signer so far.
    pub fn unknown_signers(&self) -> u64 {
        self.unknown_signers.load(Ordering::Relaxed)
    }

    /// The directory peer envelopes are opened with: the one in force, resolving also the keys
    /// of the later sets learnt ([`Self::learn_ahead`]). The replica checks every signer
    /// against the set it is in, or the chain it holds.
    pub fn resolver(&self) -> Arc<Directory> {
        Arc::clone(&self.ahead.read().unwrap_or_else(|p| p.into_inner()).1)
    }

    /// The newest epoch the edge knows of: the one in force, or the last set learnt ahead.
    pub fn newest_epoch(&self) -> u64 {
        let ahead = self.ahead.read().unwrap_or_else(|p| p.into_inner());
        ahead
            .0
            .last()
            .map_or_else(|| self.current().epoch(), |s| s.epoch)
    }

    /// `sets`, from a chain the caller checked from the genesis: those beyond the set in force
    /// are resolved and accepted by TLS (each peer's key in them, every caller's) besides the
    /// current ones, until the replica enters them. Returns whether anything new was learnt.
    pub fn learn_ahead(&self, sets: impl IntoIterator<Item = ValidatorSet>) -> bool {
        let now = self.current().epoch();
        let sets: Vec<ValidatorSet> = sets.into_iter().filter(|s| s.epoch > now).collect();
        if sets.last().map(|s| s.epoch) <= Some(self.newest_epoch()) {
            return false;
        }
        self.ahead.write().unwrap_or_else(|p| p.into_inner()).0 = sets;
        self.refresh();
        true
    }

    /// The directory in force now.
    pub fn current(&self) -> Arc<Directory> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The keys peer-only services accept from callers (shared: they follow [`Self::follow`]).
    pub fn validators(&self) -> &PinnedKeys {
        &self.validators
    }

    /// The keys the link to `peer` accepts from the server it dials (shared likewise), if the
    /// edge was made with that peer or one was added since.
    pub fn peer_pins(&self, peer: u32) -> Option<PinnedKeys> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .cloned()
    }

    /// Pins for a link to `peer` (a validator the quorum added), following its keys in the set
    /// in force from now on; the existing ones if it has some.
    pub fn add_peer(&self, peer: u32) -> PinnedKeys {
        let dir = self.current();
        let pins = self
            .peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer)
            .or_insert_with(|| {
                PinnedKeys::new(
                    keys_of(&dir, peer),
                    format!("validator {peer}'s key in the validator set in force"),
                )
            })
            .clone();
        // Its keys in the sets learnt ahead too.
        self.refresh();
        pins
    }

    /// Moves the edge to the directory of the epoch the replica entered (the sets learnt
    /// ahead up to it are done with).
    pub fn follow(&self, dir: &Directory) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(dir.clone());
        self.ahead
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .retain(|s| s.epoch > dir.epoch());
        self.refresh();
    }

    /// Pins and resolver from the set in force and the sets learnt ahead.
    fn refresh(&self) {
        let dir = self.current();
        let mut ahead = self.ahead.write().unwrap_or_else(|p| p.into_inner());
        let later = |p: Option<u32>| {
            ahead
                .0
                .iter()
                .flat_map(|s| s.members.iter())
                .filter(move |(id, _)| p.is_none_or(|p| id.0 == p))
                .map(|(_, k)| *k)
                .collect::<Vec<_>>()
        };
        self.validators
            .replace(dir.validator_keys().map(|(_, k)| k).chain(later(None)));
        for (p, pins) in self.peers.read().unwrap_or_else(|p| p.into_inner()).iter() {
            pins.replace(keys_of(&dir, *p).into_iter().chain(later(Some(*p))));
        }
        ahead.1 = if ahead.0.is_empty() {
            Arc::clone(&dir)
        } else {
            // A key that is not a valid point cannot be in a checked chain; if it were, the
            // edge keeps resolving the current keys only.
            dir.resolving(ahead.0.iter())
                .map(Arc::new)
                .unwrap_or_else(|_| Arc::clone(&dir))
        };
    }
}

/// Validator `p`'s keys in `dir`: the one in force and a retired one (a peer not yet restarted
/// with its rotated key still serves with its old certificate).
fn keys_of(dir: &Directory, p: u32) -> Vec<scbe_core::crypto::PublicKey> {
    dir.validator_keys()
        .filter(|(id, _)| *id == ReplicaId(p))
        .map(|(_, k)| k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::ValidatorSet;
    use scbe_core::crypto::{Keypair, PublicKey};

    /// Four genesis validators and an edge with links to 1, 2 and 3; validator 3's new key
    /// and the epoch-1 set (from seq 5) that puts it in force.
    fn validator_3_rekeyed() -> (
        Vec<PublicKey>,
        Directory,
        EdgeDirectory,
        PublicKey,
        ValidatorSet,
    ) {
        let keys: Vec<_> = (0..4)
            .map(|i| Keypair::from_label(&format!("edge{i}")).public())
            .collect();
        let genesis = Directory::new(keys.clone(), Vec::new()).expect("directory");
        let edge = EdgeDirectory::new(genesis.clone(), [1, 2, 3]);
        let new = Keypair::from_label("edge3 rotated").public();
        let mut set = ValidatorSet::genesis(&keys);
        set.epoch = 1;
        set.start = scbe_core::consensus::Seq(5);
        set.members[3].1 = new;
        (keys, genesis, edge, new, set)
    }

    /// After validator 3 is re-keyed, the edge resolves its new key, its link accepts the new
    /// certificate (and the old one, for the epoch after), and callers are checked against
    /// the new set; a clone of the pins taken before (what a server or link holds) sees it.
    #[test]
    fn the_edge_follows_a_rotation_without_a_restart() {
        let (keys, genesis, edge, new, set) = validator_3_rekeyed();
        let link_to_3 = edge.peer_pins(3).expect("a peer").clone();
        let callers = edge.validators().clone();
        assert!(!link_to_3.contains(&new));
        assert!(!callers.contains(&new));
        assert!(edge.current().principal(&new).is_none());

        edge.follow(&genesis.next(&set).expect("next"));
        assert!(link_to_3.contains(&new) && link_to_3.contains(&keys[3]));
        assert!(!link_to_3.contains(&keys[2]), "only validator 3's keys");
        assert!(callers.contains(&new));
        assert_eq!(edge.current().epoch(), 1);
        assert!(edge.current().in_force(ReplicaId(3), &new));

        // One epoch on, the retired key is gone.
        let mut later = set.clone();
        later.epoch = 2;
        later.start = scbe_core::consensus::Seq(9);
        let dir2 = edge.current().next(&later).expect("next");
        edge.follow(&dir2);
        assert!(!link_to_3.contains(&keys[3]));
        assert!(!callers.contains(&keys[3]));
    }

    /// Sets learnt ahead (validator 3 re-keyed in epoch 1, which the replica has not reached):
    /// the resolver and the pins accept the new key besides the ones in force; an older or
    /// the same chain teaches nothing; once the replica enters epoch 1, the edge is that
    /// epoch's alone.
    #[test]
    fn sets_learnt_ahead_are_accepted_until_the_replica_reaches_them() {
        let (keys, genesis, edge, new, set) = validator_3_rekeyed();
        let link_to_3 = edge.peer_pins(3).expect("a peer").clone();
        let callers = edge.validators().clone();

        assert!(
            !edge.learn_ahead([ValidatorSet::genesis(&keys)]),
            "not beyond"
        );
        assert!(edge.learn_ahead([set.clone()]));
        assert!(!edge.learn_ahead([set.clone()]), "nothing new");
        assert_eq!(edge.newest_epoch(), 1);
        assert_eq!(
            edge.current().epoch(),
            0,
            "the set in force is the replica's"
        );
        assert!(edge.current().principal(&new).is_none());
        assert!(edge.resolver().principal(&new).is_some());
        assert!(edge.resolver().principal(&keys[0]).is_some());
        assert!(link_to_3.contains(&new) && link_to_3.contains(&keys[3]));
        assert!(!link_to_3.contains(&keys[2]), "only validator 3's keys");
        assert!(callers.contains(&new) && callers.contains(&keys[0]));

        edge.follow(&genesis.next(&set).expect("next"));
        assert_eq!(edge.newest_epoch(), 1);
        assert_eq!(edge.resolver().epoch(), 1, "nothing ahead any more");
    }
}
