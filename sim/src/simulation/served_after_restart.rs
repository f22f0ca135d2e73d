//! After each restart: what the restarted replica would send a peer for its stable checkpoint
//! is readable by a peer (without the replica's body store) and matches the certificate. A
//! replica whose bodies are in a store persists snapshots that name them, which only its own
//! store reads; restored from one, it must serve the whole form.

use scbe_core::consensus::{state_digest, Record, StateMachine as _};
use scbe_core::governance::body_store::REFERENCE_PREFIX;
use scbe_core::governance::ledger::Ledger;
use scbe_core::validator_step::ValidatorStep;

use super::Simulation;

impl Simulation {
    /// What a restarted replica would send a peer for its stable checkpoint must be readable
    /// without its body store and match the certificate (it may have restored from a snapshot
    /// persisted naming stored bodies, which only its own store reads).
    pub(super) fn check_served_after_restart(&mut self, node: usize, step: &ValidatorStep) {
        let replica = step.replica();
        let Some(snap) = replica.stable_snapshot() else {
            return;
        };
        // A reference is a JSON string: a quote, then the prefix.
        let reference = format!("\"{REFERENCE_PREFIX}");
        let persisted_with_references = self.nodes[node].store.records().iter().any(|r| {
            matches!(r, Record::Snapshot(s) if s.seq == snap.seq
                && s.app_state.windows(reference.len()).any(|w| w == reference.as_bytes()))
        });
        let peer = Ledger::new(self.ledger_cfg.clone());
        let want = replica.stable_checkpoint().state_digest;
        match peer.snapshot_digest(&snap.app_state) {
            Ok(app) if state_digest(snap.seq, app, &snap.nonces) == want => {
                if persisted_with_references {
                    self.stats.restored_from_references += 1;
                }
            }
            Ok(_) => self.violation(
                "recovery",
                format!(
                    "replica {node} restarted serving a snapshot at {} whose digest is not its \
                     certificate's",
                    snap.seq.0
                ),
            ),
            Err(e) => self.violation(
                "recovery",
                format!(
                    "replica {node} restarted serving a snapshot at {} a peer cannot read: {e}",
                    snap.seq.0
                ),
            ),
        }
    }
}
