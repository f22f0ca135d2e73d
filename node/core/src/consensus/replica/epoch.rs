//! Epochs: the validator set changes between two batches. The application (the ledger, by
//! proposals the validators vote on) holds the set in force; right after the batch that
//! changed it, every replica takes a checkpoint there, signed under the old set, and moves to
//! the new set before it executes anything else, so every replica switches between the same
//! two batches and no batch is ordered by a mix of sets.
//!
//! - Views carry their epoch in their high bits ([`View::first_of_epoch`]): every vote names
//!   the set it was cast under, so a pre-prepare, prepare, commit, view change or certificate
//!   of one epoch never counts in another. Slots above the boundary that the old set had
//!   started ordering (pipelined proposals) are voided, on every replica alike (none executes
//!   them: each moves to the new set first), and their requests wait to be ordered again.
//! - The new epoch starts in its first view, in normal operation, with its primary the first
//!   validator of the new set; view changes continue from there. Its base is the boundary
//!   checkpoint: every replica of the epoch executed up to it, so view changes may name it
//!   without a proof.
//! - The boundary checkpoint's certificate is the old set's: the replica keeps counting the old
//!   set's checkpoints there until it holds a quorum of them (a retired key still resolves to
//!   its validator for this alone), so it can prove the state the new set started from to a
//!   replica that is still in the old epoch.
//! - A replica whose own key is not in force (removed, rotated to a key this process does not
//!   hold, or started with the new key of a rotation its store has not reached) observes: it
//!   catches up by state transfer, re-sends its boundary checkpoint, and takes part again from
//!   the epoch that puts its key in force.

use super::super::action::{Input, Record, TimerKind};
use super::super::epoch_link::EpochLink;
use super::super::message::{retype, Checkpoint, CheckpointCert, Message, Request, Signed};
use super::super::state_machine::StateMachine;
use super::super::types::{Digest, ReplicaId, Seq, View};
use super::{Replica, Status};

impl<A: StateMachine> Replica<A> {
    /// Whether the application holds a validator set of another epoch than the one in force
    /// (and not one refused already).
    pub(super) fn app_changed_epoch(&self) -> bool {
        let epoch = self.app.validator_epoch();
        epoch != self.cfg.directory.epoch() && Some(epoch) != self.refused_epoch
    }

    /// The digest of the set this replica moves to after the batch it just executed, if the
    /// batch changed it (and consensus can run it): what its checkpoint there certifies, so
    /// the old set's quorum vouches for the new set (an [`EpochLink`]).
    pub(super) fn next_set_digest(&self) -> Option<Digest> {
        if !self.app_changed_epoch() {
            return None;
        }
        let set = self.app.validator_set()?;
        // The set as the next epoch's configuration holds it (members by id): the form the
        // chain's links carry, whatever order the application keeps.
        let next = self.cfg.for_next_set(&set).ok()?;
        Some(next.directory.set().digest())
    }

    /// Moves to the application's validator set if it changed, after its own checkpoint at
    /// `seq` (the batch that changed it, or a snapshot taken after it). A set consensus cannot
    /// run (fewer than 4, a message over the cap) leaves the old one in force, on every replica
    /// alike.
    pub(super) fn enter_epoch(&mut self, seq: Seq) {
        if !self.app_changed_epoch() {
            return;
        }
        let Some(set) = self.app.validator_set() else {
            return;
        };
        let next = match self.cfg.for_next_set(&set) {
            Ok(cfg) => cfg,
            Err(_) => {
                // Remembered, so the batches after it do not each count as a change (and take
                // a checkpoint); a restart refuses it again where it restores the state.
                self.refused_epoch = Some(set.epoch);
                return self
                    .drop_input("the application's validator set is not one consensus can run");
            }
        };
        let epoch = next.directory.epoch();
        self.previous = Some(Box::new(std::mem::replace(&mut self.cfg, next)));
        // Slots the old set ordered above the boundary: nobody executes them. What they carried
        // waits to be ordered by the new set.
        let above = self.slots.split_off(&seq.next());
        for (s, slot) in above {
            let view = slot
                .committed
                .as_ref()
                .map_or(slot.view, |c| c.pre_prepare.value().view);
            if view.epoch() >= epoch {
                self.slots.insert(s, slot);
                continue;
            }
            for r in slot
                .pre_prepare
                .iter()
                .flat_map(|pp| pp.value().batch.iter())
            {
                self.requeue(r.clone());
            }
        }
        self.checkpoint_votes.retain(|s, _| *s <= seq);
        self.ahead.clear();
        if self.view.epoch() < epoch {
            self.view = View::first_of_epoch(epoch);
            self.status = Status::Normal;
            self.view_changes.clear();
            self.my_view_change = None;
            self.new_view = None;
            self.future.clear();
            self.future_per_peer.clear();
            self.suspicion = None;
            self.suspects.clear();
            self.suspect_sent = None;
            self.primary_silent = 0;
            self.backoff = 0;
            self.backoff_before_view = 0;
            self.cancel_timer(TimerKind::ViewChange);
            self.persist(Record::EnteredView {
                view: self.view,
                new_view: None,
            });
        }
        self.proposed.clear();
        self.propose_from = 0;
        self.next_seq = seq.next();
        if self.stable.seq < seq {
            // The base of the epoch: every replica of it executed up to here. Its proof is the
            // old set's checkpoints, as many as are in; `on_boundary_checkpoint` completes it.
            if let Some((digest, _)) = self.snapshots.get(&seq) {
                let digest = *digest;
                let next_set = Some(self.cfg.directory.set().digest());
                let proof = self.boundary_votes(seq, digest, next_set);
                let complete = self
                    .previous
                    .as_deref()
                    .is_none_or(|old| proof.len() >= old.quorum());
                let cert = CheckpointCert {
                    seq,
                    state_digest: digest,
                    next_set,
                    proof,
                };
                if complete {
                    self.make_stable(cert);
                } else {
                    self.make_boundary_stable(cert);
                }
            }
        }
        self.keep_boundary_link();
        self.arm_request_timer(true);
        self.try_propose();
    }

    /// The old set's checkpoints at `seq` certifying `digest` and `next_set`, from keys it
    /// held in force.
    fn boundary_votes(
        &self,
        seq: Seq,
        digest: Digest,
        next_set: Option<Digest>,
    ) -> Vec<Signed<Checkpoint>> {
        let Some(old) = self.previous.as_deref() else {
            return Vec::new();
        };
        self.checkpoint_votes
            .get(&seq)
            .into_iter()
            .flat_map(|votes| votes.iter())
            .filter(|(id, cp)| {
                cp.value().state_digest == digest
                    && cp.value().next_set == next_set
                    && old.directory.in_force(**id, cp.signer())
            })
            .map(|(_, cp)| cp.clone())
            .take(old.quorum())
            .collect()
    }

    /// Once the boundary's certificate holds the old set's quorum (and names the set in
    /// force), keeps and persists the link to this epoch: what proves the set to replicas
    /// still behind it. A replica that reached the epoch by checking the link already has it.
    fn keep_boundary_link(&mut self) {
        let Some(old) = self.previous.as_deref() else {
            return;
        };
        let epoch = self.cfg.directory.epoch();
        let set = self.cfg.directory.set();
        let complete = self.stable.seq == self.cfg.directory.start()
            && self.stable.next_set == Some(set.digest())
            && self.stable.proof.len() >= old.quorum();
        if !complete || self.epoch_links.contains_key(&epoch) {
            return;
        }
        let link = EpochLink {
            previous: old.directory.set(),
            boundary: self.stable.clone(),
            set,
        };
        self.epoch_links.insert(epoch, link.clone());
        self.persist(Record::EpochLink(link));
    }

    /// A checkpoint at the batch this epoch started after, signed by the old set: counted
    /// until the boundary's certificate holds a quorum of the old set.
    pub(super) fn on_boundary_checkpoint(&mut self, cp: Signed<Checkpoint>, from: ReplicaId) {
        let seq = cp.value().seq;
        let Some(old) = self.previous.as_deref() else {
            return self.drop_input("checkpoint signed by a key not in force");
        };
        if !old.directory.in_force(from, cp.signer()) {
            return self.drop_input("checkpoint signed by a key not in force");
        }
        let need = old.quorum();
        // Only at the boundary: a retired key's checkpoint further on (a removed validator
        // still following) must not complete a later stable checkpoint by the old set's rule.
        if seq != self.cfg.directory.start()
            || self.stable.seq != seq
            || self.stable.proof.len() >= need
        {
            return self.drop_input("stale checkpoint");
        }
        self.checkpoint_votes
            .entry(seq)
            .or_default()
            .insert(from, cp);
        let proof = self.boundary_votes(seq, self.stable.state_digest, self.stable.next_set);
        if proof.len() >= need {
            let mut cert = self.stable.clone();
            cert.proof = proof;
            // Complete: what was kept below the boundary for replicas behind can go.
            self.make_stable(cert);
            self.keep_boundary_link();
        }
    }

    /// Puts a request of a voided slot back among those waiting, unless it executed or waits
    /// already.
    fn requeue(&mut self, r: Signed<Request>) {
        let id = (*r.signer(), r.value().nonce);
        if !self.nonce_fresh(&id.0, id.1)
            || self.pending_ids.contains_key(&id)
            || self.pending.len() >= self.cfg.max_pending
        {
            return;
        }
        self.enqueue(id, r);
    }

    /// Out of the set in force: it asks for decided state at every status tick and executes
    /// what peers of the set send back (which may bring it to an epoch where its key is in
    /// force), re-sends its boundary checkpoint (the old set's certificate there may still
    /// need it), and serves state to replicas behind it. Nothing else.
    pub(super) fn handle_observing(&mut self, input: Input) {
        match input {
            Input::Timeout(t)
                if t.kind == TimerKind::Status && self.armed.get(&t.kind) == Some(&t) =>
            {
                self.armed.remove(&t.kind);
                self.state_requested = None;
                self.request_state();
                self.retransmit_own_checkpoint();
                self.set_timer(TimerKind::Status);
            }
            Input::Message(m) => match (m.validator(), m.value()) {
                (Some(from), Message::StateResponse(r))
                    if self.cfg.directory.in_force(from, m.signer()) =>
                {
                    self.on_state_response(r.clone(), from)
                }
                (Some(from), Message::StateResponse(r)) => {
                    self.on_state_response_under_a_later_key(r.clone(), from, m.signer())
                }
                // A rotated validator still on its old key may be the only honest one that
                // executed the change: until the old set's quorum certifies the boundary, the
                // replicas still behind it can open nothing else it signs (simulator seed 1072:
                // the others in the old epoch, a Byzantine one silent, no quorum for either
                // set). What it serves is proven by certificates, as any state response is.
                (Some(from), Message::StateRequest(r)) => self.on_state_request(*r, from),
                // Its boundary certificate still counts the old set's checkpoints: completed,
                // it is the link that proves the set to others (and, for a validator re-keyed
                // by the change, the proof its store takes the new key from).
                (Some(from), Message::Checkpoint(c))
                    if self.previous.is_some() && c.seq == self.cfg.directory.start() =>
                {
                    self.on_boundary_checkpoint(retype(&m, *c), from)
                }
                _ => self.drop_input("message to a validator whose key is not in force"),
            },
            _ => self.drop_input("input to a validator whose key is not in force"),
        }
    }
}
