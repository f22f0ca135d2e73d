//! The ledger's snapshots: the state whole and the journal's windows, as JSON. A checkpoint's
//! snapshot is lazy (the state cloned in O(1), encoded when first read; `consensus::AppState`),
//! and keeps what it was made from as a [`CheckpointProver`] for proofs. A decoded snapshot is
//! installed whole.
//!
//! With a body store, a snapshot has two forms: the whole one (every body's JSON), which peers
//! get, and the store form the validator persists, which names the bodies its store holds
//! (`governance/body_references.rs`): about a seventh of the JSON, encoded without reading a
//! body back. Only a decode given the store reads the store form
//! (`StateMachine::restore_persisted_if`); a persisted one read back is served to peers whole
//! (`Ledger::served_snapshot`).

use std::sync::Arc;

use super::checkpoint_prover::CheckpointProver;
use super::{keys_of, settings, Journal, Ledger, LedgerState};
use crate::consensus::{AppState, SnapshotError};
use crate::governance::body_references;
use crate::governance::body_store::SharedBodyStore;
use serde_json::value::RawValue;

impl Ledger {
    /// The snapshot of the state as it is now, encoded when first read: the state is cloned
    /// (its maps share every node with the live ones) and the journal, which is bounded, is
    /// encoded now.
    pub(super) fn lazy_snapshot(&self) -> AppState {
        let journal = match serde_json::value::to_raw_value(&self.journal) {
            Ok(j) => j,
            Err(_) => return AppState::new(Vec::new()),
        };
        let mode = settings::in_force(&self.state, &self.cfg).state_digest;
        let prover = Arc::new(CheckpointProver::new(
            self.state.clone(),
            self.journal.digest_parts(),
            mode,
        ));
        let hint = prover.state().json_bytes_hint() + journal.get().len();
        let source: Arc<dyn std::any::Any + Send + Sync> = prover.clone();
        let journal = Arc::new(journal);
        let whole = {
            let (prover, journal) = (Arc::clone(&prover), Arc::clone(&journal));
            move || encode(prover.state(), &journal, hint)
        };
        if self.body_source.is_none() {
            return AppState::lazy_from(hint, Some(source), whole);
        }
        // What the validator persists for itself names the bodies its store holds (about a
        // seventh of the whole JSON, hence the capacity).
        AppState::lazy_with_store_form(hint, Some(source), whole, move || {
            body_references::write_references(|| encode(prover.state(), &journal, hint / 8))
        })
    }

    /// A snapshot this ledger persisted (maybe naming stored bodies), as peers are sent it:
    /// decoded against the body store and encoded whole when first read. Without a body source
    /// it was persisted whole and is served as it is.
    pub(super) fn served_snapshot(&self, persisted: AppState) -> AppState {
        let Some(store) = self.body_source.clone() else {
            return persisted;
        };
        let hint = persisted.size_hint();
        // It decoded when restored, from the same bytes and store; should it fail now, the
        // empty bytes are refused by whichever peer receives them.
        AppState::lazy(hint, move || {
            decode_snapshot(&persisted, Some(store))
                .ok()
                .and_then(|s| {
                    let journal = serde_json::value::to_raw_value(&s.journal).ok()?;
                    Some(encode(&s.state, &journal, hint))
                })
                .unwrap_or_default()
        })
    }
}

/// A snapshot's JSON (empty if a stored body cannot be read: refused by whoever reads it).
fn encode(state: &LedgerState, journal: &RawValue, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + capacity / 8);
    let snap = SnapshotRef { state, journal };
    match serde_json::to_writer(&mut out, &snap) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// A snapshot: the state whole and the journal's windows (whose chains are re-derived on
/// restore).
#[derive(serde::Serialize)]
struct SnapshotRef<'a, J: serde::Serialize + ?Sized> {
    state: &'a LedgerState,
    /// The journal, or its JSON.
    journal: &'a J,
}

#[derive(serde::Deserialize)]
pub(super) struct SnapshotOwned {
    pub(super) state: LedgerState,
    pub(super) journal: Journal,
}

impl Ledger {
    /// Replaces the state and journal with a decoded snapshot's.
    pub(super) fn install(&mut self, s: SnapshotOwned) {
        self.state = s.state;
        self.journal = s.journal;
        self.agent_keys = keys_of(&self.state);
        self.fleet_generation += 1;
        self.offload_installed_bodies();
    }

    /// Installs a decoded snapshot if `accept` approves the digest the state would then have.
    /// The decoded state is settled first (each entry's JSON and digest cached, the digest tree
    /// built), so no later settle walks every entry again.
    pub(super) fn install_if(
        &mut self,
        mut s: SnapshotOwned,
        accept: &mut dyn FnMut(crate::consensus::Digest) -> bool,
    ) -> bool {
        s.state.settle();
        if !accept(super::state_digest_of(&s.state, &s.journal, &self.cfg)) {
            return false;
        }
        self.install(s);
        true
    }
}

/// Decodes a snapshot; references to stored bodies resolve in `bodies`, and without it are
/// refused.
pub(super) fn decode_snapshot(
    bytes: &[u8],
    bodies: Option<SharedBodyStore>,
) -> Result<SnapshotOwned, SnapshotError> {
    body_references::resolve_references_in(bodies, || serde_json::from_slice(bytes))
        .map_err(|e| SnapshotError(e.to_string()))
}
