//! The ledger's snapshots: the state whole and the journal's windows, as JSON. A checkpoint's
//! snapshot is lazy (the state cloned in O(1), encoded when first read; `consensus::AppState`),
//! and keeps what it was made from as a [`CheckpointProver`] for proofs. A decoded snapshot is
//! installed whole.

use std::sync::Arc;

use super::checkpoint_prover::CheckpointProver;
use super::{keys_of, settings, Journal, Ledger, LedgerState};
use crate::consensus::{AppState, SnapshotError};

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
        AppState::lazy_from(hint, Some(source), move || {
            let mut out = Vec::with_capacity(hint + hint / 8);
            let snap = SnapshotRef {
                state: prover.state(),
                journal: &*journal,
            };
            match serde_json::to_writer(&mut out, &snap) {
                Ok(()) => out,
                Err(_) => Vec::new(),
            }
        })
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
}

pub(super) fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotOwned, SnapshotError> {
    serde_json::from_slice(bytes).map_err(|e| SnapshotError(e.to_string()))
}
