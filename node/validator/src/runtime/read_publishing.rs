//! The runtime's side of the read path: after each turn, what readers may see of it is
//! published (`crate::reads`); when a reader asks, the summary or the state digest is brought up
//! to date while the core is idle.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use scbe_core::consensus::Action;

use super::Runtime;
use crate::reads::published::position_of;
use crate::reads::ReadModel;

impl Runtime {
    /// Publishes what this turn changed for readers: the events, the proposals and nonces it
    /// touched, and a new model if the position or the ledger moved (its summary then marked
    /// out of date; `refresh_summary` rebuilds it when a reader asks).
    pub(super) fn publish_reads(
        &mut self,
        actions: &[Action],
        history: &scbe_core::governance::ledger::Fresh,
    ) {
        let restored = actions.iter().any(|a| matches!(a, Action::Restored { .. }));
        let (ledger, replica) = (self.step.ledger(), self.step.replica());
        if restored {
            self.reads.index.rebuild(ledger, replica.last_nonces());
        } else {
            let signers = actions.iter().flat_map(|a| match a {
                Action::Deliver(d) => d.certificate.pre_prepare.value().batch.as_slice(),
                _ => &[],
            });
            self.reads.index.update(
                ledger,
                |k| replica.last_nonce(k),
                history.proposals_touched,
                signers.map(|r| r.signer()),
            );
        }
        self.reads.events.catch_up(&ledger.journal().events);
        self.reads
            .follow_registrations(ledger, restored, &history.events);
        self.reads.follow_stable_checkpoint(&self.step);
        let current = Arc::clone(&self.reads.model.borrow());
        let executed = replica.last_executed().0;
        let ledger_moved = restored || executed != current.position.last_executed;
        let digest = if ledger_moved {
            None
        } else {
            current.position.state_digest
        };
        let position = position_of(&self.step, digest, self.reads.heartbeat);
        if !ledger_moved && position == current.position {
            return;
        }
        self.reads.model.send_replace(Arc::new(ReadModel {
            position,
            summary_current: current.summary_current && !ledger_moved,
            ..ReadModel::clone(&current)
        }));
    }

    /// Rebuilds the summary if the ledger moved since it was built (a reader asked for it).
    pub(super) fn refresh_summary(&mut self) {
        let current = Arc::clone(&self.reads.model.borrow());
        if current.summary_current {
            return;
        }
        let ledger = self.step.ledger();
        self.reads.model.send_replace(Arc::new(ReadModel {
            generation: current.generation + 1,
            summary: Arc::new(self.reads.summary_of(ledger)),
            summary_current: true,
            thresholds: ledger.health(),
            position: current.position.clone(),
        }));
    }

    /// With nothing waiting: the state digest for the published position, if a reader asked
    /// for it and it has none (it hashes the whole ledger: computed after every batch it cost
    /// a validator with 26,000 releases most of a core).
    pub(super) fn settle_reads(&mut self) {
        let current = Arc::clone(&self.reads.model.borrow());
        if current.position.state_digest.is_some()
            || !self.reads.digest_wanted.swap(false, Ordering::Relaxed)
        {
            return;
        }
        let digest = self.step.state_digest_now();
        let mut model = ReadModel::clone(&current);
        model.position.state_digest = Some(digest);
        self.reads.model.send_replace(Arc::new(model));
    }
}
