//! What `Audit.Prove` proves from: the newest stable checkpoint whose state this validator took
//! itself (its snapshot keeps the ledger's `CheckpointProver`), with the checkpoint's
//! certificate and the validator-set links from the genesis. The core publishes it when the
//! stable checkpoint moves; readers prove from it on blocking threads, never on the core task.
//!
//! A validator restarted, or caught up by state transfer, holds the checkpoint's bytes but not
//! the state they were made from; it keeps proving from the last checkpoint it took (still
//! certified: a proof names its seq) or, with none yet, refuses until its next checkpoint.

use std::sync::{Arc, Mutex};

use scbe_core::consensus::NoncePart;
use scbe_core::consensus::{CheckpointCert, EpochLink, Seq};
use scbe_core::governance::ledger::checkpoint_prover::CheckpointProver;

/// A stable checkpoint to prove from.
pub struct ProofSource {
    pub cert: CheckpointCert,
    /// The checkpoint's nonce table, as its state digest hashes it.
    pub nonces: Vec<NoncePart>,
    /// From the genesis to the set in force when it was published.
    pub links: Vec<EpochLink>,
    pub prover: Arc<CheckpointProver>,
}

/// The newest [`ProofSource`], shared by the core (which publishes) and readers.
#[derive(Default)]
pub struct StableProofs {
    current: Mutex<Option<Arc<ProofSource>>>,
}

impl StableProofs {
    /// The newest source's checkpoint, if any.
    pub fn seq(&self) -> Option<Seq> {
        self.current().map(|s| s.cert.seq)
    }

    pub fn current(&self) -> Option<Arc<ProofSource>> {
        // A poisoned lock only means a reader panicked while cloning an `Arc`.
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn publish(&self, source: ProofSource) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(source));
    }
}
