//! The replicated application the core executes committed requests against (the governance
//! ledger in a validator and in the simulator, a hash chain in `scbe-sim bench-core` and the
//! consensus tests). It must be deterministic: the same requests in the same order give the same
//! digest on every replica.

use super::app_state::AppState;
use super::message::{Request, Signed};
use super::types::{Digest, Seq};
use super::validator_set::ValidatorSet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot rejected: {0}")]
pub struct SnapshotError(pub String);

pub trait StateMachine: Send {
    /// Applies one committed, authenticated, non-duplicate request.
    fn apply(&mut self, seq: Seq, request: &Signed<Request>);
    /// Whether `request` may be ordered at all: asked before a request joins the queue and
    /// before a backup accepts a batch holding it. Not its outcome (decided when it applies);
    /// a filter against requests nobody meant, such as ones signed by keys the application
    /// never knew. It must admit whatever a replica ahead or behind of this one might, or
    /// backups would refuse batches their peers accept.
    fn may_order(&self, _request: &Signed<Request>) -> bool {
        true
    }
    /// The epoch of the validator set the application holds in force: 0 while it is the
    /// genesis set, then one more for each change its own governance applied (validators
    /// added, removed or re-keyed by proposal). Asked after every batch, so it must be cheap;
    /// part of the state (a snapshot restores it).
    fn validator_epoch(&self) -> u64 {
        0
    }
    /// The validator set in force, when [`Self::validator_epoch`] is not 0. The replica moves
    /// to it right after the batch that changed it, at a checkpoint it takes there
    /// (`replica/epoch.rs`).
    fn validator_set(&self) -> Option<ValidatorSet> {
        None
    }
    /// Digest of the current state; feeds the checkpoint's state digest.
    fn digest(&self) -> Digest;
    /// Called just before a checkpoint's [`Self::digest`] and [`Self::snapshot`], with the
    /// state they will read: a place to bring caches up to date. Must not change the state.
    fn before_checkpoint(&mut self) {}
    /// The current state's snapshot: its bytes now ([`AppState::new`]), or a cheap copy of the
    /// state that encodes them when first read ([`AppState::lazy`]); the core reads them only
    /// to persist a snapshot or to send it to a peer.
    fn snapshot(&self) -> AppState;
    /// Digest the state would have after restoring `snapshot`, without changing anything, so a
    /// bad snapshot from a peer can be refused before it overwrites good state.
    fn snapshot_digest(&self, snapshot: &[u8]) -> Result<Digest, SnapshotError>;
    /// Replaces the state with `snapshot`.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError>;
    /// Replaces the state with `snapshot` only if `accept` approves the digest the state would
    /// then have (`Ok(false)`: refused, nothing changed). An application that can decode once
    /// and keep what it decoded overrides it (the ledger: a large snapshot's JSON is the most
    /// expensive thing a restart or a state transfer reads); this default decodes twice.
    fn restore_if(
        &mut self,
        snapshot: &[u8],
        accept: &mut dyn FnMut(Digest) -> bool,
    ) -> Result<bool, SnapshotError> {
        if !accept(self.snapshot_digest(snapshot)?) {
            return Ok(false);
        }
        self.restore(snapshot)?;
        Ok(true)
    }
    /// [`Self::restore_if`] for a snapshot this replica persisted itself (read back on
    /// restart), which may be in the form only this application's own storage can read
    /// ([`AppState::bytes_for_store`]). A peer's snapshot never is: it goes through
    /// [`Self::restore_if`], which must refuse that form rather than read the local storage on
    /// a peer's word.
    fn restore_persisted_if(
        &mut self,
        snapshot: &[u8],
        accept: &mut dyn FnMut(Digest) -> bool,
    ) -> Result<bool, SnapshotError> {
        self.restore_if(snapshot, accept)
    }
    /// [`Self::restore`] for a snapshot this replica persisted itself.
    fn restore_persisted(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        self.restore(snapshot)
    }
    /// What to send peers for a snapshot this replica persisted itself and read back: a
    /// snapshot in its store form ([`AppState::bytes_for_store`]) made into the form anyone can
    /// read, encoded when first read. Returned as is by an application without a store form.
    fn snapshot_to_serve(&self, persisted: AppState) -> AppState {
        persisted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An application with no validator governance of its own: only what the trait requires.
    struct Plain;

    impl StateMachine for Plain {
        fn apply(&mut self, _seq: Seq, _request: &Signed<Request>) {}
        fn digest(&self) -> Digest {
            Digest::default()
        }
        fn snapshot(&self) -> AppState {
            AppState::new(Vec::new())
        }
        fn snapshot_digest(&self, _snapshot: &[u8]) -> Result<Digest, SnapshotError> {
            Ok(Digest::default())
        }
        fn restore(&mut self, _snapshot: &[u8]) -> Result<(), SnapshotError> {
            Ok(())
        }
    }

    /// The replica asks the application after every batch whether its validator set moved on;
    /// one that never changes it must answer the genesis epoch and no set, or the replica
    /// would leave for a set nobody certified. (cargo-mutants at 8c1a26e: the defaults
    /// answering epoch 1 or a default set went unseen; every test application overrides them.)
    #[test]
    fn an_application_without_governance_stays_in_the_genesis_set() {
        assert_eq!(Plain.validator_epoch(), 0);
        assert_eq!(Plain.validator_set(), None);
    }
}
