//! A Merkle tree over a set of 32-byte entry digests, updated only where entries changed.
//!
//! Why: a checkpoint's state digest used to hash every entry's digest in key order, so its cost
//! grew with history (at ~110,000 releases it led the validators' profile, issue 27). Here the
//! digest of a map is the root of a tree of fixed shape whose leaves are addressed by the
//! entries' own digests, so a change touches one leaf and the four nodes above it, and the root
//! is a function of the set of digests alone (not of the order they came in, nor of how the map
//! is stored), which every replica computes alike.
//!
//! Shape: a 16-ary tree of depth 4 over 65,536 leaves. An entry digest `d` lives in leaf
//! `d[0..2]` (big endian); a leaf holds its digests sorted. Hashes are domain-separated:
//! - leaf: SHA-256(`"scbe/digest-tree/leaf"` ++ its digests in ascending order);
//! - node: SHA-256(`"scbe/digest-tree/node"` ++ its 16 children's hashes in order);
//! - an empty subtree hashes as one built of empty leaves (a constant per level), so only
//!   non-empty subtrees are stored and a small map costs little.
//!
//! The tree's [`DigestTree::root`] binds the number of digests too. The shape lets a peer check
//! that a digest is in the set from its leaf's digests and the 15 siblings' hashes at each level
//! ([`DigestTree::prove`], checked by [`TreeProof::root_for`]): about 2 KB of hashes, whatever
//! the size.

use std::collections::{BTreeMap, BTreeSet};

use sha2::Digest as _;

use super::tree_proof::TreeProof;

/// Levels below the root; level `DEPTH` holds the leaves.
pub(super) const DEPTH: usize = 4;
/// Children per node.
pub(super) const ARITY: u32 = 16;
const LEAF_TAG: &[u8] = b"scbe/digest-tree/leaf";
const NODE_TAG: &[u8] = b"scbe/digest-tree/node";
const ROOT_TAG: &[u8] = b"scbe/digest-tree/root";

pub(super) type Hash = [u8; 32];

/// The set of digests and the hashes of its non-empty subtrees. See the module documentation.
#[derive(Clone)]
pub struct DigestTree {
    /// Non-empty leaves: their digests, ascending (a multiset: equal digests are kept twice).
    leaves: BTreeMap<u32, Vec<Hash>>,
    /// `hashes[l]`: the hash of every non-empty node at level `l + 1` (index within its level),
    /// as of the last [`DigestTree::refresh`].
    hashes: [BTreeMap<u32, Hash>; DEPTH],
    /// `empty[l]`: the hash of an empty subtree whose top is at level `l`.
    empty: [Hash; DEPTH + 1],
    /// Leaves changed since the last refresh.
    dirty: BTreeSet<u32>,
    len: u64,
    /// The root as of the last refresh (valid while `dirty` is empty).
    root: Hash,
}

impl Default for DigestTree {
    fn default() -> Self {
        let mut empty = [[0u8; 32]; DEPTH + 1];
        empty[DEPTH] = sha2::Sha256::digest(LEAF_TAG).into();
        for level in (0..DEPTH).rev() {
            empty[level] = node_hash(&[empty[level + 1]; ARITY as usize]);
        }
        let mut tree = Self {
            leaves: BTreeMap::new(),
            hashes: Default::default(),
            empty,
            dirty: BTreeSet::new(),
            len: 0,
            root: [0; 32],
        };
        tree.root = tree.root_of(empty[0]);
        tree
    }
}

pub(super) fn node_hash(children: &[Hash; ARITY as usize]) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update(NODE_TAG);
    for c in children {
        h.update(c);
    }
    h.finalize().into()
}

/// A leaf's hash from its digests, ascending.
pub(super) fn leaf_hash(digests: &[Hash]) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update(LEAF_TAG);
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

/// The root of a tree of `len` digests whose top node hashes to `top`.
pub(super) fn root_of(len: u64, top: Hash) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update(ROOT_TAG);
    h.update(len.to_be_bytes());
    h.update(top);
    h.finalize().into()
}

pub(super) fn leaf_of(digest: &Hash) -> u32 {
    u32::from(u16::from_be_bytes([digest[0], digest[1]]))
}

impl DigestTree {
    /// A tree of these digests (any order).
    pub fn of(digests: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::default();
        for d in digests {
            tree.leaves.entry(leaf_of(&d)).or_default().push(d);
            tree.len += 1;
        }
        for (&leaf, digests) in &mut tree.leaves {
            digests.sort_unstable();
            digests.shrink_to_fit();
            tree.dirty.insert(leaf);
        }
        tree.refresh();
        tree
    }

    pub fn insert(&mut self, digest: Hash) {
        let leaf = leaf_of(&digest);
        let digests = self.leaves.entry(leaf).or_default();
        let at = digests.partition_point(|d| *d < digest);
        // Exactly one more: a leaf's digests are kept without the spare room a `Vec` doubles
        // into, which at a million entries (15 a leaf) came to about 14 bytes an entry (issue
        // 27, memory per release). The reallocation copies the leaf, as the shift `insert`
        // makes moves it anyway: O(leaf) either way.
        digests.reserve_exact(1);
        digests.insert(at, digest);
        self.dirty.insert(leaf);
        self.len += 1;
    }

    /// Removes one copy of `digest`; false if the tree did not hold it.
    pub fn remove(&mut self, digest: &Hash) -> bool {
        let leaf = leaf_of(digest);
        let Some(digests) = self.leaves.get_mut(&leaf) else {
            return false;
        };
        let Ok(at) = digests.binary_search(digest) else {
            return false;
        };
        digests.remove(at);
        if digests.is_empty() {
            self.leaves.remove(&leaf);
        }
        self.dirty.insert(leaf);
        self.len -= 1;
        true
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when [`DigestTree::root`] is current (no change since the last refresh).
    pub fn is_fresh(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Re-hashes the leaves changed since the last call and the nodes above them: O(changes),
    /// not O(digests).
    pub fn refresh(&mut self) {
        let mut changed = std::mem::take(&mut self.dirty);
        // Leaves first.
        let leaf_hashes = &mut self.hashes[DEPTH - 1];
        for leaf in &changed {
            match self.leaves.get(leaf) {
                Some(digests) => {
                    leaf_hashes.insert(*leaf, leaf_hash(digests));
                }
                None => {
                    leaf_hashes.remove(leaf);
                }
            }
        }
        // Then each level's changed nodes, from their children one level down.
        for level in (0..DEPTH).rev() {
            let parents: BTreeSet<u32> = changed.iter().map(|i| i / ARITY).collect();
            let empty_child = self.empty[level + 1];
            for &p in &parents {
                let mut children = [empty_child; ARITY as usize];
                let below = &self.hashes[level];
                let mut any = false;
                for (i, h) in below.range(p * ARITY..(p + 1) * ARITY) {
                    children[(i - p * ARITY) as usize] = *h;
                    any = true;
                }
                let hash = any.then(|| node_hash(&children));
                if level == 0 {
                    self.root = self.root_of(hash.unwrap_or(self.empty[0]));
                } else {
                    let nodes = &mut self.hashes[level - 1];
                    match hash {
                        Some(h) => nodes.insert(p, h),
                        None => nodes.remove(&p),
                    };
                }
            }
            changed = parents;
        }
    }

    fn root_of(&self, top: Hash) -> Hash {
        root_of(self.len, top)
    }

    /// The root as of the last [`DigestTree::refresh`].
    pub fn root(&self) -> Hash {
        self.root
    }

    /// What shows that `digest` is in the set to whoever holds [`DigestTree::root`]: its
    /// leaf's digests and, at each level up, the hashes of the 15 siblings of the node on its
    /// path. None when the tree does not hold `digest`, or is not fresh (its root would not
    /// be the one the proof leads to).
    pub fn prove(&self, digest: &Hash) -> Option<TreeProof> {
        if !self.is_fresh() {
            return None;
        }
        let mut index = leaf_of(digest);
        let leaf = self.leaves.get(&index)?;
        leaf.binary_search(digest).ok()?;
        let mut siblings = Vec::with_capacity(DEPTH);
        // `hashes[level]` holds the nodes one level down from `level`: the leaves' hashes
        // first, then each level's nodes, up to the root's children.
        for level in (0..DEPTH).rev() {
            let parent = index / ARITY;
            let nodes = &self.hashes[level];
            let around = (parent * ARITY..(parent + 1) * ARITY)
                .filter(|&i| i != index)
                .map(|i| nodes.get(&i).copied().unwrap_or(self.empty[level + 1]))
                .collect();
            siblings.push(around);
            index = parent;
        }
        Some(TreeProof {
            len: self.len,
            leaf: leaf.clone(),
            siblings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(i: u32) -> Hash {
        sha2::Sha256::digest(i.to_be_bytes()).into()
    }

    /// Digests crowded into a few leaves under one node, to share leaves and paths.
    fn crowded(i: u32) -> Hash {
        let mut x = d(i);
        x[0] = 0;
        x[1] = (i % 5) as u8;
        x
    }

    /// The root by definition: every leaf and node of the full tree hashed, nothing cached
    /// (leaves addressed here, not by `leaf_of`, so a wrong address cannot cancel out).
    fn by_definition(digests: &[Hash]) -> Hash {
        let mut by_leaf: BTreeMap<u32, Vec<Hash>> = BTreeMap::new();
        for x in digests {
            let leaf = u32::from(x[0]) << 8 | u32::from(x[1]);
            by_leaf.entry(leaf).or_default().push(*x);
        }
        let mut level: Vec<Hash> = (0..1u32 << 16)
            .map(|leaf| {
                let mut h = sha2::Sha256::new();
                h.update(LEAF_TAG);
                let mut held = by_leaf.remove(&leaf).unwrap_or_default();
                held.sort();
                for x in held {
                    h.update(x);
                }
                h.finalize().into()
            })
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(ARITY as usize)
                .map(|c| node_hash(c.try_into().expect("16 children")))
                .collect();
        }
        let mut h = sha2::Sha256::new();
        h.update(ROOT_TAG);
        h.update((digests.len() as u64).to_be_bytes());
        h.update(level[0]);
        h.finalize().into()
    }

    #[test]
    fn the_root_is_the_full_trees_whatever_was_stored() {
        assert_eq!(DigestTree::default().root(), by_definition(&[]));
        let some: Vec<Hash> = (0..50).map(d).collect();
        assert_eq!(DigestTree::of(some.clone()).root(), by_definition(&some));
        let crowd: Vec<Hash> = (0..30).map(crowded).collect();
        assert_eq!(DigestTree::of(crowd.clone()).root(), by_definition(&crowd));
        // Two digests in one leaf, in either order.
        let mut a = d(1);
        let mut b = d(2);
        a[0..2].copy_from_slice(&[7, 7]);
        b[0..2].copy_from_slice(&[7, 7]);
        assert_eq!(DigestTree::of([a, b]).root(), by_definition(&[a, b]));
        assert_eq!(DigestTree::of([b, a]).root(), DigestTree::of([a, b]).root());
        assert_ne!(DigestTree::of([a]).root(), DigestTree::of([a, a]).root());
    }

    /// The root is current only between a refresh and the next change (`EntryMap::digest`
    /// reads it only then); emptiness and the count follow inserts and removes.
    #[test]
    fn freshness_and_size_follow_changes() {
        let mut t = DigestTree::default();
        assert!(t.is_fresh() && t.is_empty());
        t.insert(d(1));
        assert!(!t.is_fresh() && !t.is_empty());
        assert_eq!(t.len(), 1);
        t.refresh();
        assert!(t.is_fresh());
        assert!(t.remove(&d(1)));
        assert!(!t.is_fresh() && t.is_empty());
        t.refresh();
        assert!(t.is_fresh());
    }

    #[test]
    fn removing_what_is_not_there_changes_nothing() {
        let mut t = DigestTree::of([d(1), d(2)]);
        let before = t.root();
        assert!(!t.remove(&d(3)));
        t.refresh();
        assert_eq!(t.root(), before);
        assert!(t.remove(&d(2)));
        t.refresh();
        assert_eq!(t.root(), DigestTree::of([d(1)]).root());
        assert!(t.remove(&d(1)));
        t.refresh();
        assert_eq!(t.root(), DigestTree::default().root());
        assert_eq!(t.hashes.iter().map(BTreeMap::len).sum::<usize>(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any sequence of inserts and removes, refreshed at any points, ends at the root of a
        /// tree built at once from what is left.
        #[test]
        fn incremental_updates_reach_the_root_built_at_once(
            steps in proptest::collection::vec((any::<bool>(), 0u32..40, any::<bool>()), 0..120),
            crowd in any::<bool>(),
        ) {
            let mut t = DigestTree::default();
            let mut held: Vec<Hash> = Vec::new();
            for (add, i, refresh) in steps {
                let x = if crowd { crowded(i) } else { d(i) };
                if add {
                    t.insert(x);
                    held.push(x);
                } else if let Some(at) = held.iter().position(|h| *h == x) {
                    prop_assert!(t.remove(&x));
                    held.remove(at);
                } else {
                    prop_assert!(!t.remove(&x));
                }
                if refresh {
                    t.refresh();
                    prop_assert_eq!(t.root(), DigestTree::of(held.clone()).root());
                }
            }
            t.refresh();
            prop_assert_eq!(t.root(), DigestTree::of(held.clone()).root());
            prop_assert_eq!(t.len(), held.len() as u64);
        }
    }
}
