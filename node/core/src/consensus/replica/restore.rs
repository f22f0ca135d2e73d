//! Restart (contract item 8): a replica rebuilt from the records it persisted, in the order it
//! persisted them. The vote guard makes sure it never signs a pre-prepare or prepare conflicting
//! with one it signed before, a view change it sent is resent byte for byte, and a stable
//! checkpoint whose snapshot was not persisted is reached again by re-executing the decided
//! batches from an older snapshot (or genesis), checked against the stable certificate.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::action::{Action, Record, TimerKind};
use super::super::codec::Codec;
use super::super::message::{CheckpointCert, CommitCert, PreparedCert, Snapshot};
use super::super::state_machine::StateMachine;
use super::super::types::{Seq, View};
use super::{state_digest, Replica, RestoreError, Status};
use crate::crypto::Keypair;

use super::super::config::ReplicaConfig;

impl<A: StateMachine> Replica<A> {
    /// Rebuilds a replica from its persisted records (in the order they were persisted) and a
    /// fresh application. Returns the actions the runtime must perform before anything else:
    /// re-persisting checkpoints replay produced, resending a pending view change, timers.
    /// Batches replayed from the decided log are executed again but not re-delivered.
    pub fn restore(
        cfg: ReplicaConfig,
        key: Keypair,
        codec: Arc<dyn Codec>,
        app: A,
        records: &[Record],
    ) -> Result<(Self, Vec<Action>), RestoreError> {
        let mut r = Self::build(cfg, key, codec, app)?;
        let mut snapshots = BTreeMap::new();
        let mut prepared: BTreeMap<Seq, PreparedCert> = BTreeMap::new();
        let mut committed: BTreeMap<Seq, CommitCert> = BTreeMap::new();
        let mut max_pre_prepare: BTreeMap<View, Seq> = BTreeMap::new();
        // The stable checkpoint before the last one persisted (what state transfer serves while
        // that last one is an epoch boundary short of its proof).
        let mut earlier_stable = None;
        for rec in records {
            match rec {
                Record::Signed {
                    pre_prepare,
                    view,
                    seq,
                    digest,
                } => {
                    r.guard.restore_signed(*view, *seq, *digest);
                    if *pre_prepare {
                        let e = max_pre_prepare.entry(*view).or_default();
                        *e = (*e).max(*seq);
                    }
                }
                Record::SignReserved { view, through } => {
                    r.guard.restore_reserved(*view, *through);
                }
                Record::Prepared(c) => {
                    let pp = c.pre_prepare.value();
                    let newer = prepared
                        .get(&pp.seq)
                        .is_none_or(|old| old.pre_prepare.value().view < pp.view);
                    if newer {
                        prepared.insert(pp.seq, c.clone());
                    }
                }
                Record::Committed(c) => {
                    committed.insert(c.seq(), c.clone());
                }
                Record::Snapshot(s) => {
                    snapshots.insert(s.seq, s.clone());
                }
                Record::Stable(c) => {
                    // The same seq again: an epoch's boundary certificate, completed.
                    if c.seq > r.stable.seq {
                        earlier_stable = Some(r.stable.clone());
                    }
                    if c.seq >= r.stable.seq {
                        r.stable = c.clone();
                    }
                }
                Record::ViewChange(vc) => {
                    if vc.value().new_view >= r.view {
                        r.view = vc.value().new_view;
                        r.status = Status::ViewChanging;
                        r.my_view_change = Some(vc.clone());
                    }
                }
                Record::EnteredView { view, new_view } => {
                    if *view >= r.view {
                        r.view = *view;
                        r.status = Status::Normal;
                        r.my_view_change = None;
                        r.new_view = new_view.clone();
                    }
                }
                // The validator step's, not the replica's.
                Record::NonceReservation { .. } => {}
                Record::EpochLink(link) => {
                    r.epoch_links.insert(link.epoch(), link.clone());
                }
            }
        }
        let stable_seq = r.stable.seq;
        if let Some(snap) = snapshots.remove(&stable_seq) {
            let digest = r.stable.state_digest;
            let matches = r.app.restore_persisted_if(&snap.app_state, &mut |app| {
                state_digest(snap.seq, app, &snap.nonces) == digest
            })?;
            if !matches {
                return Err(RestoreError::SnapshotMismatch(stable_seq));
            }
            r.nonces = snap.nonces.clone();
            r.last_executed = stable_seq;
            // The application now holds exactly that state: its own snapshot of it serves
            // peers in the form they read (not the store form it may have been persisted in)
            // and keeps what the application needs to prove parts of it, as a checkpoint
            // taken live does.
            let snap = Snapshot {
                app_state: r.app.snapshot(),
                ..snap
            };
            r.snapshots.insert(stable_seq, (digest, snap));
            r.enter_epoch(stable_seq);
        } else if stable_seq > Seq(0) {
            // The snapshot at the stable checkpoint was not persisted (a large state is
            // persisted only every so often, see `snapshot_persist_floor`): start from the
            // newest persisted one below it, or from genesis, and execute the decided batches
            // up to it again. The checkpoint this replay takes at `stable_seq` must match the
            // stable certificate, which checks the base snapshot and the replay together.
            if let Some((_, base)) = snapshots.range(..stable_seq).next_back() {
                r.app.restore_persisted(&base.app_state)?;
                r.nonces = base.nonces.clone();
                r.last_executed = base.seq;
                r.enter_epoch(base.seq);
            }
            while r.last_executed < stable_seq {
                let seq = r.last_executed.next();
                let cert = committed
                    .get(&seq)
                    .cloned()
                    .ok_or(RestoreError::MissingDecided(seq))?;
                r.execute(cert);
            }
            if !r.snapshots.contains_key(&stable_seq) {
                // Checkpoint rules changed since (another interval): take it here.
                r.checkpoint_clock.restart();
                r.take_checkpoint(stable_seq);
            }
            match r.snapshots.get(&stable_seq) {
                Some((digest, _)) if *digest == r.stable.state_digest => {}
                _ => return Err(RestoreError::SnapshotMismatch(stable_seq)),
            }
            r.snapshots.retain(|seq, _| *seq >= stable_seq);
            r.checkpoint_votes.retain(|seq, _| *seq >= stable_seq);
        }
        let below_boundary = r.resume_short_boundary(earlier_stable, &mut snapshots);
        // Certificates of an epoch the replica has left were voided when it left it, except
        // the decided batches up to a boundary short of its proof (served to replicas behind).
        let epoch = r.epoch();
        let current = |s: &Seq, view: View| *s > stable_seq && view.epoch() >= epoch;
        for (seq, cert) in prepared
            .into_iter()
            .filter(|(s, c)| current(s, c.pre_prepare.value().view))
        {
            let slot = r.slots.entry(seq).or_default();
            slot.enter_round(cert.pre_prepare.value().view);
            slot.set_prepared(cert);
        }
        let kept = |s: &Seq, view: View| current(s, view) || below_boundary.contains(s);
        for (seq, cert) in committed
            .into_iter()
            .filter(|(s, c)| kept(s, c.pre_prepare.value().view))
        {
            let slot = r.slots.entry(seq).or_default();
            slot.enter_round(cert.pre_prepare.value().view);
            slot.committed = Some(cert);
        }
        let last_signed = max_pre_prepare.get(&r.view).copied().unwrap_or_default();
        r.try_execute();
        r.next_seq = last_signed.max(r.last_executed).next();
        if let Some(vc) = &r.my_view_change {
            r.view_changes.insert(r.cfg.id, vc.clone());
            r.out.push(Action::Broadcast(Arc::clone(vc.envelope())));
        }
        if r.status == Status::Normal && r.is_primary() && r.guard.abstains(r.view, r.next_seq) {
            // Its earlier life may have proposed at the next seq (under a reservation, without
            // a record of what), so it can never propose there in this view; until it leaves,
            // the view would wait on it. Like a primary that crashed, it hands the view on.
            r.start_view_change(r.view.next());
        }
        r.set_timer(TimerKind::Status);
        r.set_timer(TimerKind::Heartbeat);
        let actions = std::mem::take(&mut r.out)
            .into_iter()
            .filter(|a| !matches!(a, Action::Deliver(_)))
            .collect();
        Ok((r, actions))
    }

    /// A persisted snapshot of a state the application does not hold, as state transfer will
    /// serve it: in the form peers can read, not the store form it may have been persisted in
    /// ([`StateMachine::snapshot_to_serve`]).
    fn served(&self, persisted: Snapshot) -> Snapshot {
        Snapshot {
            app_state: self.app.snapshot_to_serve(persisted.app_state),
            ..persisted
        }
    }

    /// The stable checkpoint restored is an epoch boundary whose proof was still short of the
    /// old set's quorum when the replica stopped: it resumes where the live replica was
    /// (`make_boundary_stable`). The old set's checkpoints in the proof count again (so those
    /// still to come complete it), and state transfer serves the stable checkpoint before the
    /// boundary (its snapshot, if one was persisted) and the decided batches up to the
    /// boundary, whose seqs are returned for the decided log to keep in the slots. Without
    /// this, a validator restarted there (a re-key, a crash) served the boundary to replicas
    /// still in the old epoch, which cannot check its short proof, and they never executed the
    /// boundary batch whose checkpoints would complete it (simulator seed 1538 at n = 4).
    fn resume_short_boundary(
        &mut self,
        earlier: Option<CheckpointCert>,
        snapshots: &mut BTreeMap<Seq, Snapshot>,
    ) -> std::ops::RangeInclusive<Seq> {
        let empty = Seq(1)..=Seq(0);
        let seq = self.stable.seq;
        let short = self.stable.next_set.is_some()
            && seq == self.cfg.directory.start()
            && self
                .previous
                .as_deref()
                .is_some_and(|old| self.stable.proof.len() < old.quorum());
        if !short {
            return empty;
        }
        for vote in &self.stable.proof {
            if let Some(id) = vote.validator() {
                self.checkpoint_votes
                    .entry(seq)
                    .or_default()
                    .insert(id, vote.clone());
            }
        }
        let Some(before) = earlier.filter(|b| b.seq < seq) else {
            return empty;
        };
        if let Some(snap) = snapshots.remove(&before.seq) {
            let snap = self.served(snap);
            self.snapshots
                .insert(before.seq, (before.state_digest, snap));
        }
        let range = before.seq.next()..=seq;
        self.before_boundary = Some(before);
        range
    }
}
