//! The ledger's proposals and rollouts: an [`EntryMap`] that finds its open entries without
//! walking the closed ones.
//!
//! Why: a proposal is open while it is pending, a rollout while it deploys or rolls back;
//! every other entry is history, and history only grows. Every decided seq looks for pending
//! proposals to expire, every request that starts something asks for the pending proposal or
//! the active rollout, and each validator's watcher asks for the votes it owes and the active
//! rollout at every tick: walks over every entry made each of those O(history) (issue 27,
//! work that grows with history). This map also keeps the keys of the entries that may be
//! open (each key inserted open or changed since the last [`LifecycleMap::settle`]), so those
//! questions cost O(open + changed since the last checkpoint), and
//! [`LifecycleMap::open_values`] yields exactly what a walk over every entry filtered by
//! [`Lifecycle::is_open`] yields, in key order.
//!
//! Read access is the inner [`EntryMap`]'s (`Deref`); every change goes through this type, so
//! the set cannot miss one. The set is derived: not serialised, compared or digested.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::entry_map::EntryMap;

/// An entry that is open for a while and then history.
pub trait Lifecycle {
    fn is_open(&self) -> bool;
}

pub struct LifecycleMap<K, V> {
    map: EntryMap<K, V>,
    /// The key of every open entry, and maybe some that closed since the last settle.
    maybe_open: BTreeSet<K>,
}

impl<K: Ord + Clone, V: Lifecycle> LifecycleMap<K, V> {
    /// The open entries in key order: those [`Lifecycle::is_open`] takes.
    pub fn open_values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.maybe_open
            .iter()
            .filter_map(|k| self.map.get(k))
            .filter(|v| v.is_open())
    }

    fn computed(map: EntryMap<K, V>) -> Self {
        let maybe_open = map
            .iter()
            .filter(|(_, v)| v.is_open())
            .map(|(k, _)| k.clone())
            .collect();
        Self { map, maybe_open }
    }
}

impl<K: Ord + Clone + Serialize, V: Clone + Serialize + Lifecycle> LifecycleMap<K, V> {
    /// The entry, to change ([`EntryMap::get_mut`]); its key counts as maybe open until the
    /// next settle, whatever the change makes of it.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let value = self.map.get_mut(key)?;
        self.maybe_open.insert(key.clone());
        Some(value)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if value.is_open() {
            self.maybe_open.insert(key.clone());
        } else {
            self.maybe_open.remove(&key);
        }
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.maybe_open.remove(key);
        self.map.remove(key)
    }

    /// [`EntryMap::settle`], and forgets the keys of entries that closed.
    pub fn settle(&mut self) {
        self.map.settle();
        let map = &self.map;
        self.maybe_open
            .retain(|k| map.get(k).is_some_and(Lifecycle::is_open));
    }

    /// Keys the set holds (open or changed since the last settle), for tests.
    #[cfg(test)]
    pub fn maybe_open_len(&self) -> usize {
        self.maybe_open.len()
    }
}

impl<K, V> std::ops::Deref for LifecycleMap<K, V> {
    type Target = EntryMap<K, V>;
    fn deref(&self) -> &EntryMap<K, V> {
        &self.map
    }
}

impl<K: Clone, V> Clone for LifecycleMap<K, V> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
            maybe_open: self.maybe_open.clone(),
        }
    }
}

impl<K, V> Default for LifecycleMap<K, V> {
    fn default() -> Self {
        Self {
            map: EntryMap::default(),
            maybe_open: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone, V: PartialEq> PartialEq for LifecycleMap<K, V> {
    /// The entries only: the set is derived from them.
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Ord + Clone + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for LifecycleMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

impl<K: Ord + Clone, V: Lifecycle> From<BTreeMap<K, V>> for LifecycleMap<K, V> {
    fn from(entries: BTreeMap<K, V>) -> Self {
        Self::computed(EntryMap::from(entries))
    }
}

impl<K: Ord + Serialize, V: Serialize> Serialize for LifecycleMap<K, V> {
    /// The entries, as [`EntryMap`] writes them.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, K, V> Deserialize<'de> for LifecycleMap<K, V>
where
    K: Ord + Clone + Deserialize<'de>,
    V: Deserialize<'de> + Lifecycle,
{
    /// A restored or transferred map: its open entries found in one walk.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EntryMap::deserialize(d).map(Self::computed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Item {
        open: bool,
        n: u64,
    }

    impl Lifecycle for Item {
        fn is_open(&self) -> bool {
            self.open
        }
    }

    fn walked(m: &LifecycleMap<u64, Item>) -> Vec<(u64, u64)> {
        m.iter()
            .filter(|(_, v)| v.is_open())
            .map(|(k, v)| (*k, v.n))
            .collect()
    }

    fn found(m: &LifecycleMap<u64, Item>) -> Vec<(u64, u64)> {
        m.open_values()
            .map(|v| {
                let k = m.iter().find(|(_, w)| *w == v).map(|(k, _)| *k);
                (k.unwrap_or(u64::MAX), v.n)
            })
            .collect()
    }

    proptest! {
        /// Whatever changes and settles come, the open entries found are those a walk over
        /// every entry finds, in the same order; a clone and a map read back from its JSON
        /// find the same; after a settle the set holds only open keys.
        #[test]
        fn open_values_are_what_a_walk_finds(ops in proptest::collection::vec((0u8..5, 0u64..24, any::<bool>()), 0..200)) {
            let mut m: LifecycleMap<u64, Item> = LifecycleMap::default();
            for (i, (op, key, open)) in ops.into_iter().enumerate() {
                // Values unique per step, so `found` can tell entries apart.
                let n = i as u64;
                match op {
                    0 | 1 => {
                        m.insert(key, Item { open, n });
                    }
                    2 => {
                        if let Some(v) = m.get_mut(&key) {
                            v.open = open;
                            v.n = n;
                        }
                    }
                    3 => {
                        m.remove(&key);
                    }
                    _ => {
                        m.settle();
                        let open_keys = m.values().filter(|v| v.is_open()).count();
                        prop_assert_eq!(m.maybe_open_len(), open_keys);
                    }
                }
                prop_assert_eq!(found(&m), walked(&m));
                prop_assert_eq!(m.open_values().rev().count(), walked(&m).len());
            }
            let copy = m.clone();
            prop_assert_eq!(found(&copy), walked(&m));
            let json = serde_json::to_string(&m).expect("encodes");
            let back: LifecycleMap<u64, Item> = serde_json::from_str(&json).expect("decodes");
            prop_assert!(back == m);
            prop_assert_eq!(found(&back), walked(&m));
            prop_assert_eq!(back.maybe_open_len(), walked(&m).len());
        }
    }

    #[test]
    fn an_entry_closed_through_get_mut_leaves_the_set_at_the_settle() {
        let mut m: LifecycleMap<u64, Item> = LifecycleMap::default();
        m.insert(1, Item { open: true, n: 1 });
        m.insert(2, Item { open: false, n: 2 });
        assert_eq!(m.maybe_open_len(), 1, "only the open one");
        m.get_mut(&1).expect("present").open = false;
        assert_eq!(m.open_values().count(), 0, "closed at once");
        assert_eq!(m.maybe_open_len(), 1, "kept until the settle");
        m.settle();
        assert_eq!(m.maybe_open_len(), 0);
        m.get_mut(&2).expect("present").open = true;
        assert_eq!(m.open_values().map(|v| v.n).collect::<Vec<_>>(), vec![2]);
    }
}
