//! The application's part of a checkpoint snapshot: its bytes, made when first needed.
//!
//! Why: a replica takes a snapshot at every checkpoint but needs its bytes only when it persists
//! one (rarely, by size: `ReplicaConfig::snapshot_persist_floor`) or a peer fetches state. With
//! a ledger of 80,000 releases, encoding and copying ~90 MB at every checkpoint was most of a
//! validator's time. An application whose state clones cheaply (the ledger's maps are
//! persistent) hands the core a closure over that clone instead, and the bytes are encoded once,
//! if ever. The bytes are a pure function of the state at the checkpoint, so when they are made
//! does not change what they are.

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

type Make = Box<dyn FnOnce() -> Vec<u8> + Send>;
type MakeForStore = Box<dyn Fn() -> Vec<u8> + Send + Sync>;

/// Clones share one encoding.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    bytes: OnceLock<Vec<u8>>,
    /// Taken by the first reader; `None` once the bytes are made (or for ready bytes).
    make: Mutex<Option<Make>>,
    /// What the application expects the bytes to take, for decisions that must not encode them
    /// (whether to persist). Exact for ready bytes.
    size_hint: usize,
    /// What the application made the snapshot from, for readers that need a part of the state
    /// without decoding the bytes (the ledger's `CheckpointProver`). None for bytes from a
    /// store or a peer.
    source: Option<Arc<dyn Any + Send + Sync>>,
    /// The application's store form, if it has one ([`AppState::bytes_for_store`]).
    for_store: Option<MakeForStore>,
}

impl AppState {
    /// Bytes already encoded.
    pub fn new(bytes: Vec<u8>) -> Self {
        let size_hint = bytes.len();
        Self(Arc::new(Inner {
            bytes: OnceLock::from(bytes),
            make: Mutex::new(None),
            size_hint,
            source: None,
            for_store: None,
        }))
    }

    /// Bytes `make` encodes when they are first read; `size_hint` estimates their length.
    pub fn lazy(size_hint: usize, make: impl FnOnce() -> Vec<u8> + Send + 'static) -> Self {
        Self::lazy_from(size_hint, None, make)
    }

    /// As [`AppState::lazy`], keeping what the bytes are made from ([`AppState::source`]).
    pub fn lazy_from(
        size_hint: usize,
        source: Option<Arc<dyn Any + Send + Sync>>,
        make: impl FnOnce() -> Vec<u8> + Send + 'static,
    ) -> Self {
        Self::unencoded(size_hint, source, Box::new(make), None)
    }

    /// As [`AppState::lazy_from`], with a store form: bytes for the replica's own store that
    /// `for_store` makes at each [`AppState::bytes_for_store`] (not kept), which only the
    /// application's `restore_persisted` reads back (the ledger's names release bodies its
    /// store holds instead of carrying their JSON).
    pub fn lazy_with_store_form(
        size_hint: usize,
        source: Option<Arc<dyn Any + Send + Sync>>,
        make: impl FnOnce() -> Vec<u8> + Send + 'static,
        for_store: impl Fn() -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        Self::unencoded(size_hint, source, Box::new(make), Some(Box::new(for_store)))
    }

    fn unencoded(
        size_hint: usize,
        source: Option<Arc<dyn Any + Send + Sync>>,
        make: Make,
        for_store: Option<MakeForStore>,
    ) -> Self {
        Self(Arc::new(Inner {
            bytes: OnceLock::new(),
            make: Mutex::new(Some(make)),
            size_hint,
            source,
            for_store,
        }))
    }

    /// The bytes to persist in the replica's own store: the store form if the application gave
    /// one (made now, not kept: a persisted snapshot is written once), else [`Self::bytes`].
    pub fn bytes_for_store(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.0.for_store {
            Some(make) => std::borrow::Cow::Owned(make()),
            None => std::borrow::Cow::Borrowed(self.bytes()),
        }
    }

    /// Whether [`Self::bytes_for_store`] differs from [`Self::bytes`] in form.
    pub fn has_store_form(&self) -> bool {
        self.0.for_store.is_some()
    }

    /// What the application made this snapshot from, if it was made here (not read from a
    /// store or a peer).
    pub fn source(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.0.source.as_ref()
    }

    /// The bytes, encoded now if this is the first read.
    pub fn bytes(&self) -> &[u8] {
        self.0.bytes.get_or_init(|| {
            // A poisoned lock means an earlier `make` panicked; there is nothing to retry with.
            let make = self.0.make.lock().ok().and_then(|mut m| m.take());
            make.map(|f| f()).unwrap_or_default()
        })
    }

    /// The exact length once encoded, else the application's estimate (never encodes).
    pub fn size_hint(&self) -> usize {
        self.0.bytes.get().map_or(self.0.size_hint, Vec::len)
    }

    /// Whether the bytes have been made (for tests of laziness).
    pub fn is_encoded(&self) -> bool {
        self.0.bytes.get().is_some()
    }
}

impl std::ops::Deref for AppState {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl From<Vec<u8>> for AppState {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl PartialEq for AppState {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.bytes() == other.bytes()
    }
}

impl Eq for AppState {}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.bytes.get() {
            Some(b) => write!(f, "AppState({} bytes)", b.len()),
            None => write!(f, "AppState(not encoded, ~{} bytes)", self.0.size_hint),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn lazy_bytes_are_made_once_when_first_read_and_shared_by_clones() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let s = AppState::lazy(3, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            b"abcd".to_vec()
        });
        let copy = s.clone();
        assert_eq!(s.size_hint(), 3, "the estimate until encoded");
        assert!(!s.is_encoded());
        assert_eq!(format!("{s:?}"), "AppState(not encoded, ~3 bytes)");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing encoded yet");
        assert_eq!(copy.bytes(), b"abcd");
        assert!(s.is_encoded(), "a clone's read encodes for both");
        assert_eq!(format!("{s:?}"), "AppState(4 bytes)");
        assert_eq!(&s[1..3], b"bc");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "encoded once for both");
        assert_eq!(s.size_hint(), 4, "exact once encoded");
        assert_eq!(s, AppState::new(b"abcd".to_vec()));
        assert_ne!(s, AppState::new(b"abc".to_vec()));
    }
}
