//! Release bodies written as references ([`BodyKey::reference`]) in a validator's own
//! persisted snapshots, and resolved against its body store when it reads them back.
//!
//! Why: with bodies in the store, a persisted snapshot that carried every body's JSON read each
//! one back from the store to write it again (a large part of what encoding a snapshot cost),
//! made the file keep each body twice, and held the whole JSON in memory while it was written.
//! A snapshot the validator persists for itself names the bodies its store holds instead; it
//! can only be read where that store is, so it is never what a peer receives: a peer gets the
//! bodies' JSON (`consensus::AppState::bytes`, and `StateMachine::snapshot_to_serve` for a
//! snapshot read back from the file).
//!
//! Both forms are chosen per encoding or decoding, not per type: the state's types derive their
//! serde code, so the choice travels as a per-thread setting that [`write_references`] and
//! [`resolve_references_in`] set around one call (and restore when it returns or panics).

use std::cell::{Cell, RefCell};

#[cfg(doc)]
use super::body_store::BodyKey;
use super::body_store::SharedBodyStore;

thread_local! {
    static WRITING_REFERENCES: Cell<bool> = const { Cell::new(false) };
    static RESOLVING_IN: RefCell<Option<SharedBodyStore>> = const { RefCell::new(None) };
}

/// Runs `f` with stored bodies serialised as references (held ones are written whole).
pub fn write_references<T>(f: impl FnOnce() -> T) -> T {
    let before = WRITING_REFERENCES.with(|w| w.replace(true));
    let _restore = Restore(Some(move || WRITING_REFERENCES.with(|w| w.set(before))));
    f()
}

/// Runs `f` with references decoded as bodies stored in `store`; without a store, a reference
/// is a decoding error.
pub fn resolve_references_in<T>(store: Option<SharedBodyStore>, f: impl FnOnce() -> T) -> T {
    let before = RESOLVING_IN.with(|r| r.replace(store));
    let _restore = Restore(Some(move || {
        RESOLVING_IN.with(|r| *r.borrow_mut() = before)
    }));
    f()
}

/// Whether stored bodies are being written as references on this thread.
pub(super) fn writing_references() -> bool {
    WRITING_REFERENCES.with(Cell::get)
}

/// The store references resolve in on this thread, if any.
pub(super) fn resolving_in() -> Option<SharedBodyStore> {
    RESOLVING_IN.with(|r| r.borrow().clone())
}

/// Puts a setting back when dropped, also while unwinding.
struct Restore<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for Restore<F> {
    fn drop(&mut self) {
        if let Some(put_back) = self.0.take() {
            put_back();
        }
    }
}
