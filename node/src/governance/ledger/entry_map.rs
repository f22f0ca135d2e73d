//! An ordered map that keeps each entry's JSON between changes, so serialising the ledger's
//! state for a checkpoint (its digest and its snapshot) copies the JSON of entries that did not
//! change instead of encoding them again.
//!
//! Why: the state holds every registered release (about 1.5 KB of JSON each), every proposal
//! and every rollout, and a checkpoint serialises all of it twice (digest, snapshot). With
//! registrations that work grew with every request; most entries never change after they are
//! written (a release's stage changes a few times in its life).
//!
//! The serialised form is the plain map's, byte for byte (a cached entry is the compact JSON
//! `serde_json` writes for it; an entry not cached yet is encoded in place), so digests and
//! snapshots are exactly what they were. Reads go through `Deref` to the map; the only ways to
//! change an entry (`get_mut`, `insert`, `remove`) drop its cached JSON, and
//! [`EntryMap::settle`] encodes what changed since (the ledger calls it before a checkpoint).
//!
//! Each cached entry also keeps the SHA-256 of its JSON, and [`EntryMap::digest`] hashes the
//! keys with those digests: a checkpoint's state digest hashes 32 bytes per unchanged entry
//! instead of its whole JSON.

use std::collections::BTreeMap;
use std::ops::Deref;

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

#[derive(Clone, Debug)]
pub struct EntryMap<K, V> {
    entries: BTreeMap<K, V>,
    /// The compact JSON of entries unchanged since it was encoded, with its SHA-256. An entry
    /// missing here changed (or was added) since.
    json: BTreeMap<K, (Box<RawValue>, [u8; 32])>,
}

impl<K, V> Default for EntryMap<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            json: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, V: Serialize> EntryMap<K, V> {
    /// The entry, to change: its cached JSON is dropped.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let v = self.entries.get_mut(key)?;
        self.json.remove(key);
        Some(v)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.json.remove(&key);
        self.entries.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.json.remove(key);
        self.entries.remove(key)
    }

    /// Encodes the JSON of every entry changed since the last call (one lookup per entry for
    /// the rest). Serialising is correct without it (entries not cached are encoded in place),
    /// only slower.
    pub fn settle(&mut self) {
        for (key, v) in &self.entries {
            if self.json.contains_key(key) {
                continue;
            }
            // Serialising derived types to JSON does not fail; if it ever did, the entry stays
            // uncached and is encoded in place (and fails there the same way as before).
            if let Ok(raw) = serde_json::value::to_raw_value(v) {
                let digest = sha256(raw.get().as_bytes());
                self.json.insert(key.clone(), (raw, digest));
            }
        }
    }

    /// SHA-256 over every entry in key order: the length of the key's JSON (8 bytes, big
    /// endian), the key's JSON and the SHA-256 of the entry's JSON. Same entries, same digest,
    /// whatever was cached; an entry not cached is encoded here.
    pub fn digest(&self) -> [u8; 32]
    where
        K: Serialize,
    {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update((self.entries.len() as u64).to_be_bytes());
        let mut key = Vec::new();
        for (k, v) in &self.entries {
            key.clear();
            // Keys are strings and integers: encoding them does not fail.
            let _ = serde_json::to_writer(&mut key, k);
            h.update((key.len() as u64).to_be_bytes());
            h.update(&key);
            match self.json.get(k) {
                Some((_, d)) => h.update(d),
                None => h.update(sha256(&serde_json::to_vec(v).unwrap_or_default())),
            }
        }
        h.finalize().into()
    }

    /// Entries whose JSON is cached.
    #[cfg(test)]
    pub fn cached(&self) -> usize {
        self.json.len()
    }
}

impl<K, V> Deref for EntryMap<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.entries
    }
}

impl<K: Ord, V: PartialEq> PartialEq for EntryMap<K, V> {
    /// The entries only: the cache is a copy of them.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<K, V> From<BTreeMap<K, V>> for EntryMap<K, V> {
    fn from(entries: BTreeMap<K, V>) -> Self {
        Self {
            entries,
            json: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Serialize, V: Serialize> Serialize for EntryMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            match self.json.get(k) {
                Some((raw, _)) => map.serialize_entry(k, raw)?,
                None => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for EntryMap<K, V>
where
    K: Ord + Clone + Deserialize<'de>,
    V: Serialize + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
                prop_assert_eq!(&*cached, &plain);
                // The digest depends on the entries only, not on what was cached.
                prop_assert_eq!(cached.digest(), EntryMap::from(plain.clone()).digest());
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
        let mut a: EntryMap<u64, Entry> = EntryMap::default();
        a.insert(1, entry(1));
        a.insert(2, entry(2));
        a.settle();
        let base = a.digest();
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
            assert_ne!(m.digest(), base, "{what}");
        }
        // Equal entries, cached or not: equal digests.
        let mut same: EntryMap<u64, Entry> = EntryMap::default();
        same.insert(2, entry(2));
        same.insert(1, entry(1));
        assert_eq!(same.digest(), base);
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
