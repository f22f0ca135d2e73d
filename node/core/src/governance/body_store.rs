//! Where a ledger's release bodies go once they leave memory: a store the runtime hands the
//! ledger (the validator's redb file), read when a body is needed.
//!
//! Why: the ledger keeps every release ever registered, and a body (about 1 KB of JSON) was
//! two thirds of what one costs in memory, although a body is read only when a promotion of
//! it is evaluated or rolled out, a snapshot is encoded or an entry proven. With a store, RAM
//! holds a body only from its registration until the store has it (a checkpoint later).
//!
//! A body is addressed by the sequence number that registered it and the SHA-256 of its JSON
//! ([`BodyKey`]), and [`super::ReleaseBody`] checks every read against that digest, so what the
//! decision code reads does not depend on where a body is: the same bytes, or an error. (The
//! sequence number first: a store's B-tree then appends bodies in the order they come, instead
//! of rewriting a random page for each.) A store answers only for bodies it holds durably enough to
//! read back (committed); it never loses one it confirmed, so an error means a broken store,
//! which the runtime must treat as fatal (a replica that decided without the body would differ
//! from its peers).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

/// The SHA-256 of a body's compact JSON: its address in a [`BodyStore`].
pub type BodyDigest = [u8; 32];

/// The SHA-256 of `json`.
pub fn body_digest(json: &str) -> BodyDigest {
    use sha2::Digest as _;
    sha2::Sha256::digest(json.as_bytes()).into()
}

/// Where a body is in a [`BodyStore`]: the sequence number of the batch that registered its
/// release, and its [`BodyDigest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BodyKey {
    pub seq: u64,
    pub digest: BodyDigest,
}

impl BodyKey {
    /// The key as 40 bytes: the sequence number (big endian, so bytes sort as numbers), then
    /// the digest.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..].copy_from_slice(&self.digest);
        out
    }
}

/// What starts a [`BodyKey::reference`] (and so a JSON string in a persisted snapshot that
/// names a stored body).
pub const REFERENCE_PREFIX: &str = "stored-body:";

impl BodyKey {
    /// The key as a JSON-safe string, `stored-body:<seq>:<hex digest>`: how a validator's own
    /// persisted snapshot names a body its store holds ([`super::body_references`]). A release
    /// body is a JSON object, so a string in its place can only be a reference.
    pub fn reference(&self) -> String {
        format!(
            "{REFERENCE_PREFIX}{}:{}",
            self.seq,
            super::release::hex(&self.digest)
        )
    }

    /// The key a [`BodyKey::reference`] names; `None` for anything else.
    pub fn from_reference(s: &str) -> Option<Self> {
        let (seq, digest) = s.strip_prefix(REFERENCE_PREFIX)?.split_once(':')?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digest, &mut bytes).ok()?;
        Some(Self {
            seq: seq.parse().ok()?,
            digest: bytes,
        })
    }
}

impl std::fmt::Display for BodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (registered at seq {})",
            super::release::hex(&self.digest),
            self.seq
        )
    }
}

/// A body a store could not give back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("release body {key} is unavailable: {detail}")]
pub struct BodyUnavailable {
    pub key: BodyKey,
    pub detail: String,
}

/// Release bodies by [`BodyKey`], written by the runtime (from [`super::ledger::Fresh`]'s
/// `bodies`) and read by the ledger.
pub trait BodyStore: Send + Sync {
    /// Whether a read of `digest` would find it now.
    fn contains(&self, key: &BodyKey) -> Result<bool, BodyUnavailable>;
    /// [`BodyStore::contains`] for each of `keys`, in order (a store may answer them in one
    /// read).
    fn contains_each(&self, keys: &[BodyKey]) -> Result<Vec<bool>, BodyUnavailable> {
        keys.iter().map(|k| self.contains(k)).collect()
    }
    /// The JSON stored under `key` (checked against its digest by the caller).
    fn read(&self, key: &BodyKey) -> Result<Box<RawValue>, BodyUnavailable>;
}

/// A [`BodyStore`] behind one thin pointer: what each stored body keeps to be read.
///
/// Why not `Arc<dyn BodyStore>`: that is two words, and a million stored releases each keep
/// one; the extra word moved a release's ledger entry up an allocator size class (issue 27,
/// memory per release). The ledger wraps its store once and every body shares that handle.
#[derive(Clone)]
pub struct SharedBodyStore(Arc<Arc<dyn BodyStore>>);

impl SharedBodyStore {
    pub fn new(store: Arc<dyn BodyStore>) -> Self {
        Self(Arc::new(store))
    }
}

impl std::ops::Deref for SharedBodyStore {
    type Target = dyn BodyStore;
    fn deref(&self) -> &(dyn BodyStore + 'static) {
        &**self.0
    }
}

/// Bodies in memory: for tests of the ledger with a store, and for the simulator. Not a way to
/// save memory.
#[derive(Default)]
pub struct MemoryBodies {
    bodies: Mutex<BTreeMap<BodyKey, Box<RawValue>>>,
}

impl MemoryBodies {
    /// Stores `json` under `key`.
    pub fn put(&self, key: BodyKey, json: &str) -> Result<(), serde_json::Error> {
        let raw = RawValue::from_string(json.to_owned())?;
        if let Ok(mut b) = self.bodies.lock() {
            b.insert(key, raw);
        }
        Ok(())
    }

    /// Forgets what is stored under `key` (for tests of a store that lost a body).
    pub fn remove(&self, key: &BodyKey) {
        if let Ok(mut b) = self.bodies.lock() {
            b.remove(key);
        }
    }
}

impl BodyStore for MemoryBodies {
    fn contains(&self, key: &BodyKey) -> Result<bool, BodyUnavailable> {
        Ok(self.bodies.lock().is_ok_and(|b| b.contains_key(key)))
    }

    fn read(&self, key: &BodyKey) -> Result<Box<RawValue>, BodyUnavailable> {
        self.bodies
            .lock()
            .ok()
            .and_then(|b| b.get(key).cloned())
            .ok_or_else(|| BodyUnavailable {
                key: *key,
                detail: "not in the store".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_its_key_and_nothing_else_reads_as_one() {
        let key = BodyKey {
            seq: 4242,
            digest: body_digest("{}"),
        };
        let r = key.reference();
        assert!(r.starts_with("stored-body:4242:"), "{r}");
        assert_eq!(BodyKey::from_reference(&r), Some(key));
        for not_one in [
            "",
            "stored-body:",
            "stored-body:4242",
            "stored-body:x:00",
            &r[..r.len() - 2],
            &r.replace("stored-body", "stored-bodies"),
            &format!("{r}00"),
        ] {
            assert_eq!(BodyKey::from_reference(not_one), None, "{not_one:?}");
        }
    }
}
