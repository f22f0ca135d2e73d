//! A proof that one digest is in a [`DigestTree`](super::digest_tree::DigestTree): its leaf's
//! digests and, at each level up, the hashes of the 15 siblings of the node on its path. Whoever
//! holds the root checks it alone ([`TreeProof::root_for`] must give that root): one leaf hash
//! and four node hashes, whatever the tree holds.
//!
//! Why: a checkpoint certificate vouches for one state digest; with this a peer or a requester
//! can check one release, proposal or rollout against it without fetching the whole state
//! (`super::state_proof` carries it up from the map's root to the state digest).

use serde::{Deserialize, Serialize};

use super::digest_tree::{leaf_hash, leaf_of, node_hash, root_of, Hash, ARITY, DEPTH};

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeProof {
    /// How many digests the tree holds (its root binds the count).
    pub len: u64,
    /// Every digest in the proven digest's leaf, ascending (the proven one among them).
    #[serde(with = "hex_list")]
    pub leaf: Vec<Hash>,
    /// From the leaf up: at each level, the 15 siblings of the node on the path, in child
    /// order without it.
    #[serde(with = "hex_list::nested")]
    pub siblings: Vec<Vec<Hash>>,
}

/// Why a proof leads to no root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeProofError {
    #[error("the proof has {got} levels of siblings, not {DEPTH}")]
    Levels { got: usize },
    #[error("a level of the proof has {got} siblings, not {}", ARITY - 1)]
    Siblings { got: usize },
    #[error("the leaf's digests are not in ascending order, or not all in one leaf")]
    Leaf,
    #[error("the leaf holds more digests than the tree")]
    Count,
    #[error("the proven entry's digest is not in the leaf")]
    Absent,
}

impl TreeProof {
    /// The root of the tree this proof shows holds `digest`, for the caller to compare with
    /// the root it trusts; an error when the proof does not hold together.
    pub fn root_for(&self, digest: &Hash) -> Result<Hash, TreeProofError> {
        if self.siblings.len() != DEPTH {
            return Err(TreeProofError::Levels {
                got: self.siblings.len(),
            });
        }
        if let Some(level) = self.siblings.iter().find(|l| l.len() != ARITY as usize - 1) {
            return Err(TreeProofError::Siblings { got: level.len() });
        }
        let mut index = leaf_of(digest);
        let ordered = self.leaf.windows(2).all(|w| w[0] <= w[1]);
        if !ordered || self.leaf.iter().any(|d| leaf_of(d) != index) {
            return Err(TreeProofError::Leaf);
        }
        if self.leaf.len() as u64 > self.len {
            return Err(TreeProofError::Count);
        }
        if self.leaf.binary_search(digest).is_err() {
            return Err(TreeProofError::Absent);
        }
        let mut hash = leaf_hash(&self.leaf);
        for around in &self.siblings {
            let at = (index % ARITY) as usize;
            let mut children = [[0u8; 32]; ARITY as usize];
            children[..at].copy_from_slice(&around[..at]);
            children[at] = hash;
            children[at + 1..].copy_from_slice(&around[at..]);
            hash = node_hash(&children);
            index /= ARITY;
        }
        Ok(root_of(self.len, hash))
    }
}

/// Serde for a list of byte strings as hex strings (`#[serde(with = "hex_list")]`, for hashes and
/// other bytes alike), and for a list of such lists (`hex_list::nested`).
pub(super) mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(items: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(items.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: hex::FromHex,
        T::Error: std::fmt::Display,
    {
        decode(Vec::<String>::deserialize(d)?)
    }

    fn decode<T, E>(list: Vec<String>) -> Result<Vec<T>, E>
    where
        T: hex::FromHex,
        T::Error: std::fmt::Display,
        E: serde::de::Error,
    {
        list.iter()
            .map(|h| T::from_hex(h).map_err(E::custom))
            .collect()
    }

    pub mod nested {
        use super::*;

        pub fn serialize<S: Serializer, T: AsRef<[u8]>>(
            lists: &[Vec<T>],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_seq(
                lists
                    .iter()
                    .map(|l| l.iter().map(hex::encode).collect::<Vec<_>>()),
            )
        }

        pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<Vec<T>>, D::Error>
        where
            D: Deserializer<'de>,
            T: hex::FromHex,
            T::Error: std::fmt::Display,
        {
            Vec::<Vec<String>>::deserialize(d)?
                .into_iter()
                .map(decode)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::digest_tree::DigestTree;
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest as _;

    fn d(i: u32) -> Hash {
        sha2::Sha256::digest(i.to_be_bytes()).into()
    }

    /// Digests crowded into leaf 0x0001, a few to a leaf and sharing every node on the path.
    fn crowded(i: u32) -> Hash {
        let mut x = d(i);
        x[0] = 0;
        x[1] = 1;
        x
    }

    #[test]
    fn every_held_digest_proves_the_root_and_nothing_else_is_proven() {
        let held: Vec<Hash> = (0..200).map(d).chain((0..5).map(crowded)).collect();
        let tree = DigestTree::of(held.clone());
        for x in &held {
            let proof = tree.prove(x).expect("held");
            assert_eq!(proof.root_for(x), Ok(tree.root()));
        }
        assert_eq!(tree.prove(&d(1000)), None, "not held");
        // A proof for one digest does not stand for a neighbour in its leaf that is not held.
        let proof = tree.prove(&crowded(0)).expect("held");
        assert_eq!(proof.root_for(&crowded(99)), Err(TreeProofError::Absent));
        // The only digest of an otherwise empty tree, and a tree changed since its refresh.
        let one = DigestTree::of([d(7)]);
        assert_eq!(
            one.prove(&d(7)).expect("held").root_for(&d(7)),
            Ok(one.root())
        );
        let mut stale = DigestTree::of([d(7)]);
        stale.insert(d(8));
        assert_eq!(
            stale.prove(&d(7)),
            None,
            "a root not refreshed is no root to prove"
        );
    }

    /// Each part of a proof is bound: bend any of them and it leads to another root, or to
    /// none.
    #[test]
    fn a_bent_proof_leads_to_another_root_or_to_none() {
        let held: Vec<Hash> = (0..100).map(d).chain((0..3).map(crowded)).collect();
        let tree = DigestTree::of(held);
        let x = crowded(1);
        let good = tree.prove(&x).expect("held");
        let root = tree.root();
        let leads_elsewhere = |p: &TreeProof| p.root_for(&x) != Ok(root);
        for level in 0..DEPTH {
            for i in 0..ARITY as usize - 1 {
                let mut p = good.clone();
                p.siblings[level][i][31] ^= 1;
                assert!(leads_elsewhere(&p), "sibling {i} at level {level}");
            }
        }
        let mut p = good.clone();
        p.len += 1;
        assert!(leads_elsewhere(&p), "the count");
        let mut p = good.clone();
        p.leaf.retain(|h| *h != crowded(0));
        assert!(leads_elsewhere(&p), "a digest left out of the leaf");
        let mut p = good.clone();
        p.leaf.reverse();
        assert_eq!(p.root_for(&x), Err(TreeProofError::Leaf));
        let mut p = good.clone();
        p.leaf.insert(0, [0; 32]);
        assert_eq!(
            p.root_for(&x),
            Err(TreeProofError::Leaf),
            "a digest of another leaf"
        );
        let mut p = good.clone();
        p.siblings.pop();
        assert_eq!(p.root_for(&x), Err(TreeProofError::Levels { got: 3 }));
        let mut p = good.clone();
        p.siblings[2].push([0; 32]);
        assert_eq!(p.root_for(&x), Err(TreeProofError::Siblings { got: 16 }));
        let mut p = good.clone();
        p.len = 2;
        assert_eq!(p.root_for(&x), Err(TreeProofError::Count));
    }

    #[test]
    fn a_proof_reads_back_from_its_json() {
        let tree = DigestTree::of((0..20).map(d));
        let proof = tree.prove(&d(3)).expect("held");
        let json = serde_json::to_string(&proof).expect("encodes");
        let back: TreeProof = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, proof);
        let not_hex = json.replace(&hex::encode(proof.leaf[0]), &"zz".repeat(32));
        assert!(serde_json::from_str::<TreeProof>(&not_hex).is_err());
        let short = json.replace(&hex::encode(proof.siblings[0][0]), "00");
        assert!(serde_json::from_str::<TreeProof>(&short).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Whatever the set and however it was reached, every digest it holds proves its root.
        #[test]
        fn any_set_proves_each_member(
            members in proptest::collection::btree_set(0u32..400, 1..60),
            crowd in any::<bool>(),
        ) {
            let held: Vec<Hash> = members
                .iter()
                .map(|&i| if crowd { crowded(i) } else { d(i) })
                .collect();
            let tree = DigestTree::of(held.clone());
            for x in &held {
                let proof = tree.prove(x).expect("held");
                prop_assert_eq!(proof.root_for(x), Ok(tree.root()));
            }
        }
    }
}
