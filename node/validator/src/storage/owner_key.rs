//! Whose store this is: the key that created it, or the key a validator-set rotation the store
//! itself has executed gave the same validator. A store opened with any other key is refused
//! (running one validator on another's data could sign twice for it), but a validator restarted
//! with the key its rotation named keeps its data.

use scbe_core::consensus::{EpochLink, ReplicaId};
use scbe_core::crypto::PublicKey;

/// The validator `key` belongs to in any set of `links` (as the set before or after a change).
fn holder(links: &[EpochLink], key: &PublicKey) -> Option<ReplicaId> {
    links
        .iter()
        .flat_map(|l| l.previous.members.iter().chain(&l.set.members))
        .find(|(_, k)| k == key)
        .map(|(id, _)| *id)
}

/// Whether the chain `links` (as the store holds them) re-keyed the validator that `owner`
/// belonged to, to `node`, in some epoch: only a key a set put in force after a change counts
/// (restarting with a key the validator held before is refused like any other).
pub fn rotated_to(links: &[EpochLink], owner: &PublicKey, node: &PublicKey) -> bool {
    let Some(id) = holder(links, owner) else {
        return false;
    };
    links
        .iter()
        .any(|l| l.set.key_of(id) == Some(node) && l.previous.key_of(id) != Some(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::{CheckpointCert, Digest, Seq, ValidatorSet};
    use scbe_core::crypto::Keypair;

    fn key(label: &str) -> PublicKey {
        Keypair::from_label(label).public()
    }

    fn link(previous: &ValidatorSet, set: ValidatorSet) -> EpochLink {
        EpochLink {
            previous: previous.clone(),
            boundary: CheckpointCert {
                seq: set.start,
                state_digest: Digest::default(),
                next_set: Some(set.digest()),
                proof: Vec::new(),
            },
            set,
        }
    }

    /// Validator 1 re-keyed from a to b, then from b to c: its store opens with b or c (each a
    /// key a change put in force for it), not with a key another validator holds, an unknown
    /// key, or its own earlier key.
    #[test]
    fn only_a_key_a_rotation_gave_the_same_validator_takes_over_its_store() {
        let genesis = ValidatorSet::genesis(&[key("v0"), key("a"), key("v2"), key("v3")]);
        let mut first = genesis.clone();
        first.epoch = 1;
        first.start = Seq(5);
        first.members[1].1 = key("b");
        let mut second = first.clone();
        second.epoch = 2;
        second.start = Seq(9);
        second.members[1].1 = key("c");
        let links = vec![link(&genesis, first.clone()), link(&first, second)];
        assert!(rotated_to(&links, &key("a"), &key("b")));
        assert!(rotated_to(&links, &key("a"), &key("c")));
        assert!(rotated_to(&links, &key("b"), &key("c")));
        assert!(!rotated_to(&links, &key("a"), &key("v2")), "another's key");
        assert!(
            !rotated_to(&links, &key("a"), &key("d")),
            "a key no set names"
        );
        assert!(
            !rotated_to(&links, &key("c"), &key("a")),
            "back to a retired key"
        );
        assert!(
            !rotated_to(&[], &key("a"), &key("b")),
            "no rotation reached"
        );
        assert!(
            !rotated_to(&links, &key("x"), &key("b")),
            "an owner no set names"
        );
    }
}
