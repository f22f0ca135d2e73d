//! An ordered map for the ledger's releases, proposals and rollouts that keeps each entry's
//! digest between changes, and clones in O(1).
//!
//! Why: the state holds every registered release, every proposal and every rollout, and each
//! checkpoint digests all of it and keeps a snapshot of it. Most entries never change after
//! they are written (a release's stage changes a few times in its life), so:
//! - each entry keeps a digest of (key, JSON) and the size of its JSON, computed by
//!   [`EntryMap::settle`] only for entries changed since the last call (the ledger calls it
//!   before a checkpoint); [`EntryMap::digest`] is the root of a Merkle tree over those
//!   32-byte digests ([`DigestTree`]), which settling updates only where entries changed, so a
//!   checkpoint's digest costs O(changes), not O(entries);
//! - the map is persistent (`imbl::OrdMap`, values behind `Arc`), so a checkpoint's snapshot is
//!   a clone that shares every node with the live map, and its bytes are encoded only if the
//!   snapshot is ever persisted or fetched (`consensus::AppState`).
//!
//! The JSON itself is not kept: it would double what an entry costs in memory (a release's
//! body is its JSON already, [`super::super::ReleaseBody`]), and it is written again only when
//! a snapshot is encoded (off the validator's loop) or an entry proven. The serialised form is
//! the plain map's, byte for byte. The only ways to change an entry (`get_mut`, `insert`,
//! `remove`) drop its cached digest.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::digest_tree::DigestTree;
use super::state::StateDigest;
use super::tree_proof::{TreeProof, TreeProofError};

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// A key's JSON. Keys are strings and integers: encoding them does not fail.
fn key_json(key: &(impl Serialize + ?Sized)) -> Vec<u8> {
    serde_json::to_vec(key).unwrap_or_default()
}

/// An entry's contribution to [`EntryMap::digest`]: SHA-256 over the length of the key's JSON
/// (8 bytes, big endian), the key's JSON and the SHA-256 of the entry's JSON.
fn entry_digest(key_json: &[u8], json: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update((key_json.len() as u64).to_be_bytes());
    h.update(key_json);
    h.update(sha256(json));
    h.finalize().into()
}

/// One entry of a map and the path from its digest to the map's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryProof {
    /// The entry's key as JSON (a version with its quotes, an id as a number).
    pub key: String,
    /// The entry's JSON, byte for byte as digested.
    pub entry: String,
    /// From the entry's digest to the root of the map's [`DigestTree`].
    pub path: TreeProof,
}

impl EntryProof {
    /// The map digest ([`EntryMap::digest`] with the tree) this entry and path lead to.
    pub fn root(&self) -> Result<[u8; 32], TreeProofError> {
        self.path
            .root_for(&entry_digest(self.key.as_bytes(), self.entry.as_bytes()))
    }
}

/// What an unchanged entry keeps: its [`entry_digest`] and the bytes it adds to
/// [`EntryMap::json_bytes`] (key, colon and comma included).
///
/// `bytes` is a `u32` (no entry's JSON nears 4 GiB: a peer's message is capped far below; a
/// larger one saturates, as the total is an estimate): with a `usize` the cache took 48 bytes
/// of each entry's allocation, with it 40, which with the one-word body store handle moves a
/// stored release's allocation down a size class (issue 27, memory per release).
#[derive(Clone)]
struct Cached {
    digest: [u8; 32],
    bytes: u32,
}

/// An entry's value and, once digested, its [`Cached`] digest, in one allocation that the
/// map's node holds a pointer to.
///
/// Why one allocation: the map's nodes (`imbl`'s B-tree, 16 entries a node, left about half
/// full when keys arrive in order, as versions and ids do) hold each entry's key and slot
/// inline, so every byte of a slot is paid about twice. A slot of a pointer and the cached
/// digest beside it took 56 bytes there; the digest inside the shared allocation costs its
/// 48 bytes once (issue 27, memory per release).
///
/// The digest is set once through a shared reference ([`OnceLock`]): a checkpoint's snapshot
/// shares the allocation, and settling the live map must not copy a value for the snapshot's
/// sake. A value is only changed through [`Arc::make_mut`], which gives this map its own copy
/// first, whose digest is then cleared.
#[derive(Clone)]
struct Held<V> {
    value: V,
    cached: OnceLock<Cached>,
}

type Slot<V> = Arc<Held<V>>;

fn slot<V>(value: V) -> Slot<V> {
    Arc::new(Held {
        value,
        cached: OnceLock::new(),
    })
}

pub struct EntryMap<K, V> {
    entries: imbl::OrdMap<K, Slot<V>>,
    /// Keys changed since the last [`EntryMap::settle`] (some may be gone since).
    dirty: BTreeSet<K>,
    /// Bytes of the digested entries' JSON, keys included: about what serialising the map
    /// takes.
    json_bytes: usize,
    /// The digests of the cached entries (exactly those), once built: the first
    /// [`EntryMap::settle`] of a map builds it, later ones update it. Its length is how many
    /// entries are cached.
    tree: Option<DigestTree>,
}

/// A clone shares every entry but not the digest tree: clones are checkpoints' snapshots, which
/// are encoded, not digested again (a clone that is settled builds its own tree).
impl<K: Clone, V> Clone for EntryMap<K, V> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            dirty: self.dirty.clone(),
            json_bytes: self.json_bytes,
            tree: None,
        }
    }
}

impl<K, V> Default for EntryMap<K, V> {
    fn default() -> Self {
        Self {
            entries: imbl::OrdMap::new(),
            dirty: BTreeSet::new(),
            json_bytes: 0,
            tree: None,
        }
    }
}

impl<K: Ord + Clone, V> EntryMap<K, V> {
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key).map(|s| &s.value)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.entries.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, s)| (k, &s.value))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.entries.keys()
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.entries.values().map(|s| &s.value)
    }

    /// About how many bytes serialising the map takes (exact for digested entries, which after
    /// a [`EntryMap::settle`] is all of them, but for the JSON punctuation between them).
    pub fn json_bytes(&self) -> usize {
        self.json_bytes
    }

    /// The digest this map counted for `slot` (in its tree and size), if any: none while the
    /// key waits to be settled (`dirty`), when a digest there was set by another map sharing
    /// the entry.
    fn counted<Q: Ord + ?Sized>(&self, key: &Q, slot: &Slot<V>) -> Option<Cached>
    where
        K: Borrow<Q>,
    {
        if self.dirty.contains(key) {
            return None;
        }
        slot.cached.get().cloned()
    }

    /// Takes a counted digest out of the tree and the size (its entry is about to change or go).
    fn uncount(&mut self, counted: Option<Cached>) {
        if let Some(c) = counted {
            // Saturating: an estimate must never be a reason to panic.
            self.json_bytes = self.json_bytes.saturating_sub(c.bytes as usize);
            if let Some(tree) = &mut self.tree {
                tree.remove(&c.digest);
            }
        }
    }
}

impl<K: Ord + Clone + Serialize, V: Clone + Serialize> EntryMap<K, V> {
    /// The entry, to change: its cached digest is dropped. (Its value is copied first if a
    /// checkpoint's snapshot still shares it.)
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        Q: Ord + ?Sized,
        K: Borrow<Q>,
    {
        let (owned, slot) = self.entries.get_key_value(key)?;
        let (owned, counted) = (owned.clone(), self.counted(key, slot));
        self.uncount(counted);
        self.dirty.insert(owned);
        let held = Arc::make_mut(self.entries.get_mut(key)?);
        held.cached.take();
        Some(&mut held.value)
    }

    /// Replaces the entry's value with what `f` makes of it (`None`: leaves it), keeping its
    /// cached digest: `f` must return a value that serialises to the same JSON (a release body
    /// moved to a store). Whether it replaced.
    pub fn replace_same_json<Q>(&mut self, key: &Q, f: impl FnOnce(&V) -> Option<V>) -> bool
    where
        Q: Ord + ?Sized,
        K: Borrow<Q>,
    {
        let Some(slot) = self.entries.get_mut(key) else {
            return false;
        };
        match f(&slot.value) {
            Some(value) => {
                *slot = Arc::new(Held {
                    value,
                    cached: slot.cached.clone(),
                });
                true
            }
            None => false,
        }
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.entries.insert(key.clone(), slot(value));
        let old = old.map(|old| self.dropped(&key, old));
        self.dirty.insert(key);
        old
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let old = self.entries.remove(key)?;
        Some(self.dropped(key, old))
    }

    fn dropped<Q: Ord + ?Sized>(&mut self, key: &Q, old: Slot<V>) -> V
    where
        K: Borrow<Q>,
    {
        self.uncount(self.counted(key, &old));
        Arc::try_unwrap(old)
            .map(|held| held.value)
            .unwrap_or_else(|shared| shared.value.clone())
    }

    /// Encodes every entry changed since the last call, keeps its digest and size, and
    /// updates the digest tree with them. Digesting is correct without it (entries not
    /// digested yet are encoded for the call, the tree built for it), only slower.
    pub fn settle(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        // The first settle (or the first of a clone) builds the tree from the entries digested
        // before. Not from every digest set: a clone shares its entries, so an entry this map
        // has yet to settle may have been digested by another map sharing it.
        let tree = self.tree.get_or_insert_with(|| {
            DigestTree::of(
                self.entries
                    .iter()
                    .filter(|(k, _)| !dirty.contains(*k))
                    .filter_map(|(_, s)| Some(s.cached.get()?.digest)),
            )
        });
        for key in dirty {
            let Some(slot) = self.entries.get(&key) else {
                continue;
            };
            let cached = match slot.cached.get() {
                Some(c) => c.clone(),
                // Serialising derived types to JSON does not fail; if it ever did, the entry
                // stays uncached and is encoded for each digest (and fails there the same way).
                None => match serde_json::to_vec(&slot.value) {
                    Ok(json) => {
                        let key = key_json(&key);
                        let c = Cached {
                            digest: entry_digest(&key, &json),
                            bytes: u32::try_from(key.len() + json.len() + 2).unwrap_or(u32::MAX),
                        };
                        // Another map sharing the entry may have set the same digest meanwhile.
                        let _ = slot.cached.set(c.clone());
                        c
                    }
                    Err(_) => continue,
                },
            };
            self.json_bytes += cached.bytes as usize;
            tree.insert(cached.digest);
        }
        tree.refresh();
    }

    /// The map's digest: same entries, same digest, whatever was cached.
    /// - [`StateDigest::Tree`]: the root of the [`DigestTree`] over every entry's
    ///   [`entry_digest`]. O(1) after a [`EntryMap::settle`] with no change since; otherwise the
    ///   tree is built for the call (O(entries)).
    /// - [`StateDigest::Walk`]: SHA-256 over the number of entries (8 bytes, big endian) and
    ///   every entry's [`entry_digest`] in key order. O(entries) always.
    pub fn digest(&self, mode: StateDigest) -> [u8; 32] {
        match (mode, &self.tree) {
            // Fresh, and holding every entry (all of them cached).
            (StateDigest::Tree, Some(tree))
                if tree.is_fresh() && tree.len() == self.entries.len() as u64 =>
            {
                tree.root()
            }
            (StateDigest::Tree, _) => DigestTree::of(self.entry_digests()).root(),
            (StateDigest::Walk, _) => {
                use sha2::Digest as _;
                let mut h = sha2::Sha256::new();
                h.update((self.entries.len() as u64).to_be_bytes());
                for d in self.entry_digests() {
                    h.update(d);
                }
                h.finalize().into()
            }
        }
    }

    /// Every entry's [`entry_digest`] in key order (cached, or encoded for the call): what the
    /// digest tree holds. (`scbe-sim bench-digest` hashes them in a row, as the digest before
    /// the tree did, to compare.)
    pub fn entry_digests(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.entries
            .iter()
            .map(|(k, slot)| match slot.cached.get() {
                Some(c) => c.digest,
                None => entry_digest(
                    &key_json(k),
                    &serde_json::to_vec(&slot.value).unwrap_or_default(),
                ),
            })
    }

    /// A tree of every entry's digest, built for the call (O(entries); a checkpoint's snapshot
    /// keeps none, see `Clone`): what [`EntryMap::prove`] proves against.
    pub fn digest_tree(&self) -> DigestTree {
        DigestTree::of(self.entry_digests())
    }

    /// The entry at `key`, its JSON exactly as digested and the path from its digest to
    /// `tree`'s root, for a peer that trusts the root ([`EntryProof::root`]). `tree` must be
    /// this map's [`EntryMap::digest_tree`]; None without the entry.
    pub fn prove<Q: Ord + ?Sized>(&self, tree: &DigestTree, key: &Q) -> Option<EntryProof>
    where
        K: Borrow<Q> + Serialize,
        V: Serialize,
    {
        let (k, slot) = self.entries.get_key_value(key)?;
        let entry = serde_json::to_string(&slot.value).ok()?;
        let key = String::from_utf8(key_json(k)).ok()?;
        let path = tree.prove(&entry_digest(key.as_bytes(), entry.as_bytes()))?;
        Some(EntryProof { key, entry, path })
    }

    /// Whether the digest tree is up to date and holds every entry (the digest is O(1)).
    #[cfg(test)]
    pub fn tree_is_whole(&self) -> bool {
        self.tree
            .as_ref()
            .is_some_and(|t| t.is_fresh() && t.len() == self.entries.len() as u64)
    }

    /// Entries whose digest is cached.
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        self.entries
            .values()
            .filter(|s| s.cached.get().is_some())
            .count()
    }
}

/// Like `BTreeMap`'s: panics if the key is missing (for tests and checked lookups).
impl<K: Ord + Clone + Borrow<Q>, Q: Ord + ?Sized, V> std::ops::Index<&Q> for EntryMap<K, V> {
    type Output = V;
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry found for key")
    }
}

impl<K: Ord + Clone, V: PartialEq> PartialEq for EntryMap<K, V> {
    /// The entries only: the cache is a copy of them.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((ka, va), (kb, vb))| ka == kb && va == vb)
    }
}

impl<K: Ord + Clone + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for EntryMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Ord + Clone, V> From<BTreeMap<K, V>> for EntryMap<K, V> {
    fn from(entries: BTreeMap<K, V>) -> Self {
        Self {
            dirty: entries.keys().cloned().collect(),
            entries: entries.into_iter().map(|(k, v)| (k, slot(v))).collect(),
            json_bytes: 0,
            tree: None,
        }
    }
}

impl<K: Ord + Serialize, V: Serialize> Serialize for EntryMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, slot) in &self.entries {
            map.serialize_entry(k, &slot.value)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for EntryMap<K, V>
where
    K: Ord + Clone + Deserialize<'de>,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What one of a million stored releases costs beside its map slot: its entry and cached
    /// digest in one allocation, with the `Arc`'s two counts 16 bytes more. At 104 bytes or
    /// less that is 120, which glibc's allocator serves from its 128-byte chunks; a `usize`
    /// size in the cache and a two-word store pointer in each body made it 136, served from
    /// 144 (issue 27, memory per release). Versions of up to 24 bytes are kept in the slot.
    #[test]
    fn a_stored_release_entry_fits_its_allocation_class() {
        use crate::governance::ledger::state::ReleaseEntry;
        let held = std::mem::size_of::<Held<ReleaseEntry>>();
        assert!(held <= 104, "{held} bytes");
        let key = compact_str::CompactString::from("b0123456789ab-1000000");
        assert!(!key.is_heap_allocated(), "a bench version is inline");
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Entry {
        name: String,
        n: u64,
        x: f64,
        tags: Vec<String>,
    }

    fn entry(n: u64) -> Entry {
        Entry {
            name: format!("e\"{n}\\\u{e9}"),
            n,
            x: n as f64 / 3.0,
            tags: vec!["a".into(); (n % 3) as usize],
        }
    }

    #[test]
    fn equality_is_the_entries_whatever_was_cached() {
        let mut a: EntryMap<u64, Entry> = EntryMap::default();
        let mut b: EntryMap<u64, Entry> = EntryMap::default();
        assert!(a.is_empty() && a == b);
        a.insert(1, entry(1));
        a.insert(2, entry(2));
        assert!(!a.is_empty());
        assert_ne!(a, b, "another length");
        b.insert(1, entry(1));
        b.insert(3, entry(2));
        assert_ne!(a, b, "another key");
        b.remove(&3);
        b.insert(2, entry(5));
        assert_ne!(a, b, "another value");
        b.insert(2, entry(2));
        a.settle();
        assert_eq!(a, b, "the cache is not compared");
        assert_eq!(
            format!("{a:?}"),
            format!("{:?}", BTreeMap::from([(1, entry(1)), (2, entry(2))]))
        );
    }

    /// 0: insert, 1: change through get_mut, 2: remove, 3: settle.
    fn ops() -> impl Strategy<Value = Vec<(u8, u64, u64)>> {
        prop::collection::vec((0u8..4, 0u64..12, 0u64..1000), 1..80)
    }

    proptest! {
        #[test]
        fn serialises_exactly_as_the_plain_map_whatever_was_cached(ops in ops()) {
            let mut plain: BTreeMap<u64, Entry> = BTreeMap::new();
            let mut cached: EntryMap<u64, Entry> = EntryMap::default();
            let mut strings: EntryMap<String, Entry> = EntryMap::default();
            for (op, k, v) in ops {
                match op {
                    0 => {
                        plain.insert(k, entry(v));
                        cached.insert(k, entry(v));
                        strings.insert(format!("k{k}"), entry(v));
                    }
                    1 => {
                        if let Some(e) = plain.get_mut(&k) { e.n = v; }
                        if let Some(e) = cached.get_mut(&k) { e.n = v; }
                        if let Some(e) = strings.get_mut(&format!("k{k}")) { e.n = v; }
                    }
                    2 => {
                        plain.remove(&k);
                        cached.remove(&k);
                        strings.remove(&format!("k{k}"));
                    }
                    _ => {
                        cached.settle();
                        strings.settle();
                        // The size hint is the settled JSON's, keys included, exactly.
                        let json: usize = plain
                            .iter()
                            .map(|(k, e)| {
                                key_json(k).len() + 2 + serde_json::to_vec(e).expect("encodes").len()
                            })
                            .sum();
                        prop_assert_eq!(cached.json_bytes(), json);
                        // And its tree holds every entry: the digest stays O(1), even where a
                        // settled clone digested entries this map shares (below).
                        prop_assert!(cached.tree_is_whole());
                        prop_assert!(strings.tree_is_whole());
                    }
                }
                prop_assert_eq!(
                    serde_json::to_vec(&cached).expect("encodes"),
                    serde_json::to_vec(&plain).expect("encodes")
                );
                let by_name: BTreeMap<String, Entry> =
                    plain.iter().map(|(k, e)| (format!("k{k}"), e.clone())).collect();
                prop_assert_eq!(
                    serde_json::to_vec(&strings).expect("encodes"),
                    serde_json::to_vec(&by_name).expect("encodes")
                );
                prop_assert!(cached.iter().eq(plain.iter()));
                // The digest depends on the entries only, not on what was cached, nor on
                // whether the tree was updated in place or built for the call (a clone).
                for mode in [StateDigest::Tree, StateDigest::Walk] {
                    let want = EntryMap::from(plain.clone()).digest(mode);
                    prop_assert_eq!(cached.digest(mode), want);
                    let mut clone = cached.clone();
                    clone.settle();
                    prop_assert_eq!(clone.digest(mode), want);
                }
            }
            // A decoded map serialises the same, before and after it caches everything.
            let bytes = serde_json::to_vec(&cached).expect("encodes");
            let mut back: EntryMap<u64, Entry> = serde_json::from_slice(&bytes).expect("decodes");
            prop_assert_eq!(serde_json::to_vec(&back).expect("encodes"), bytes.clone());
            back.settle();
            prop_assert_eq!(back.cached(), back.len());
            prop_assert_eq!(serde_json::to_vec(&back).expect("encodes"), bytes);
        }
    }

    #[test]
    fn the_digest_tells_apart_any_change_of_key_value_or_count() {
        for mode in [StateDigest::Tree, StateDigest::Walk] {
            tells_apart(mode);
        }
        let mut a: EntryMap<u64, Entry> = EntryMap::default();
        a.insert(1, entry(1));
        a.settle();
        assert_ne!(a.digest(StateDigest::Tree), a.digest(StateDigest::Walk));
    }

    fn tells_apart(mode: StateDigest) {
        let mut a: EntryMap<u64, Entry> = EntryMap::default();
        a.insert(1, entry(1));
        a.insert(2, entry(2));
        a.settle();
        let base = a.digest(mode);
        let mut changed = a.clone();
        changed.get_mut(&2).expect("present").n = 3;
        let mut moved = EntryMap::default();
        moved.insert(1, entry(1));
        moved.insert(3, entry(2));
        let mut fewer = a.clone();
        fewer.remove(&2);
        let mut more = a.clone();
        more.insert(0, entry(0));
        for (what, m) in [
            ("value", changed),
            ("key", moved),
            ("fewer", fewer),
            ("more", more),
        ] {
            assert_ne!(m.digest(mode), base, "{what}");
        }
        // Equal entries, cached or not: equal digests.
        let mut same: EntryMap<u64, Entry> = EntryMap::default();
        same.insert(2, entry(2));
        same.insert(1, entry(1));
        assert_eq!(same.digest(mode), base);
    }

    #[test]
    fn a_change_drops_the_cached_json_until_the_next_settle() {
        let mut m: EntryMap<u64, Entry> = EntryMap::default();
        m.insert(1, entry(1));
        m.insert(2, entry(2));
        m.settle();
        assert_eq!(m.cached(), 2);
        m.get_mut(&1).expect("present").n = 99;
        assert_eq!(m.cached(), 1);
        assert!(String::from_utf8(serde_json::to_vec(&m).expect("encodes"))
            .expect("utf-8")
            .contains("\"n\":99"));
        m.settle();
        assert_eq!(m.cached(), 2);
        m.remove(&2);
        assert_eq!((m.cached(), m.len()), (1, 1));
    }
}
