//! Who the network edge accepts, following the validator set in force: the directory signers
//! are resolved with before anything is decoded, and the keys TLS accepts from validators
//! (every peer stream, and each outbound link's pin on its peer). The runtime moves it on when
//! the replica enters a new epoch (a rotated key is accepted from then on, a removed or
//! rotated-out one only for the epoch after, to ask for state), so a rotation needs no
//! restart of the other validators.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use scbe_core::consensus::{Directory, ReplicaId};
use scbe_wire::tls::PinnedKeys;

pub struct EdgeDirectory {
    current: RwLock<Arc<Directory>>,
    /// Every validator key the directory resolves: the callers the peer-only services accept.
    validators: PinnedKeys,
    /// Per peer, the keys its outbound link accepts from the server it dials (a validator the
    /// quorum added gets its entry when a link to it is made).
    peers: RwLock<BTreeMap<u32, PinnedKeys>>,
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
        EdgeDirectory {
            current: RwLock::new(Arc::new(dir)),
            validators,
            peers: RwLock::new(peers),
        }
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
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer)
            .or_insert_with(|| {
                PinnedKeys::new(
                    keys_of(&dir, peer),
                    format!("validator {peer}'s key in the validator set in force"),
                )
            })
            .clone()
    }

    /// Moves the edge to the directory of the epoch the replica entered.
    pub fn follow(&self, dir: &Directory) {
        self.validators
            .replace(dir.validator_keys().map(|(_, k)| k));
        for (p, pins) in self.peers.read().unwrap_or_else(|p| p.into_inner()).iter() {
            pins.replace(keys_of(dir, *p));
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(dir.clone());
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
    use scbe_core::crypto::Keypair;

    /// After validator 3 is re-keyed, the edge resolves its new key, its link accepts the new
    /// certificate (and the old one, for the epoch after), and callers are checked against
    /// the new set; a clone of the pins taken before (what a server or link holds) sees it.
    #[test]
    fn the_edge_follows_a_rotation_without_a_restart() {
        let keys: Vec<_> = (0..4)
            .map(|i| Keypair::from_label(&format!("edge{i}")).public())
            .collect();
        let genesis = Directory::new(keys.clone(), Vec::new()).expect("directory");
        let edge = EdgeDirectory::new(genesis.clone(), [1, 2, 3]);
        let link_to_3 = edge.peer_pins(3).expect("a peer").clone();
        let callers = edge.validators().clone();
        let new = Keypair::from_label("edge3 rotated").public();
        assert!(!link_to_3.contains(&new));
        assert!(!callers.contains(&new));
        assert!(edge.current().principal(&new).is_none());

        let mut set = ValidatorSet::genesis(&keys);
        set.epoch = 1;
        set.start = scbe_core::consensus::Seq(5);
        set.members[3].1 = new;
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
}
