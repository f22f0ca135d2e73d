//! The core's side of the read path (`crate::reads`): after every turn the runtime publishes
//! a new [`ReadModel`] (position, status summary, thresholds) here, feeds the event journal and
//! the read index, and follows new registrations from the ledger's events so the summary never
//! rescans every release.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::watch;

use scbe_core::governance::ledger::checkpoint_prover::CheckpointProver;
use scbe_core::validator_step::ValidatorStep;
use scbe_wire::status_summary::StatusSummary;

use super::{
    EventFeed, NewestRegistrations, Position, ProofSource, ReadIndex, ReadModel, StableProofs,
};

/// The core's side of the read path: where it publishes, and how far it has.
pub(crate) struct Published {
    pub(crate) model: watch::Sender<Arc<ReadModel>>,
    pub(crate) events: Arc<EventFeed>,
    pub(crate) index: Arc<ReadIndex>,
    /// A reader asked for the state digest the model lacks: computed when the core is idle.
    pub(crate) digest_wanted: Arc<AtomicBool>,
    /// A reader wants the summary rebuilt (`ReadModel::summary_current`).
    pub(crate) summary_wanted: Arc<tokio::sync::Notify>,
    /// What `Audit.Prove` proves from.
    pub(crate) proofs: Arc<StableProofs>,
    /// The newest registrations (registered seq, version), followed from the ledger's events
    /// so the summary does not scan every release after every batch.
    newest: NewestRegistrations,
    /// The configured heartbeat interval: what the replica's silence counts are in.
    pub(crate) heartbeat: std::time::Duration,
}

impl Published {
    /// The read path of a step as it starts (everything copied once); `heartbeat` is the
    /// configured heartbeat interval (the unit the replica counts silence in).
    pub(crate) fn new(
        step: &ValidatorStep,
        heartbeat: std::time::Duration,
    ) -> (Self, watch::Receiver<Arc<ReadModel>>) {
        let index = Arc::new(ReadIndex::default());
        index.rebuild(step.ledger(), step.replica().last_nonces());
        let events = Arc::new(EventFeed::new(scbe_core::governance::ledger::EVENTS_KEPT));
        events.catch_up(&step.ledger().journal().events);
        let ledger = step.ledger();
        let newest = NewestRegistrations::of(ledger);
        let summary = StatusSummary::of_ledger_listing(ledger, newest.versions());
        let (tx, rx) = watch::channel(Arc::new(ReadModel {
            generation: 0,
            position: position_of(step, None, heartbeat),
            summary: Arc::new(summary),
            summary_current: true,
            thresholds: ledger.health(),
        }));
        let published = Self {
            model: tx,
            events,
            index,
            digest_wanted: Arc::default(),
            summary_wanted: Arc::default(),
            proofs: Arc::default(),
            newest,
            heartbeat,
        };
        (published, rx)
    }

    /// Keeps the newest registrations current (see [`NewestRegistrations::follow`]).
    pub(crate) fn follow_registrations(
        &mut self,
        ledger: &scbe_core::governance::Ledger,
        all: bool,
        fresh: &[(u64, Vec<u8>)],
    ) {
        let _ = self.newest.follow(ledger, all, fresh);
    }

    /// Publishes the stable checkpoint to prove from, once it moved and the replica holds the
    /// state it took there (a seq compare on most turns).
    pub(crate) fn follow_stable_checkpoint(&self, step: &ValidatorStep) {
        let replica = step.replica();
        let stable = replica.stable_checkpoint();
        if self.proofs.seq() == Some(stable.seq) {
            return;
        }
        let Some(snapshot) = replica.stable_snapshot() else {
            return;
        };
        if let Some(prover) = CheckpointProver::of(&snapshot.app_state) {
            self.proofs.publish(ProofSource {
                cert: stable.clone(),
                nonces: scbe_core::consensus::nonce_parts(&snapshot.nonces),
                links: replica.epoch_chain().links,
                prover,
            });
        }
    }

    pub(crate) fn summary_of(&self, ledger: &scbe_core::governance::Ledger) -> StatusSummary {
        StatusSummary::of_ledger_listing(ledger, self.newest.versions())
    }
}

/// The step's consensus position, with `state_digest` if known for its last executed seq.
pub(crate) fn position_of(
    step: &ValidatorStep,
    state_digest: Option<scbe_core::consensus::Digest>,
    heartbeat: std::time::Duration,
) -> Position {
    let r = step.replica();
    Position {
        node: r.id().0,
        view: r.view().0,
        status: r.status(),
        last_executed: r.last_executed().0,
        stable_checkpoint: r.stable_checkpoint().seq.0,
        stable_digest: r.stable_checkpoint().state_digest,
        state_digest,
        diverged_at: r.diverged_at().map(|s| s.0),
        epoch: r.epoch(),
        observing: r.observing(),
        epoch_proven: r.epoch_proven(),
        silence_tolerated: heartbeat.saturating_mul(r.silence_tolerated()),
        chain: step.epoch_chain(),
    }
}
