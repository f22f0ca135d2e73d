//! Checkpoints (PBFT §4.3): after every `K` sequence numbers, or once the batches executed since
//! the last checkpoint reach `checkpoint_bytes`, a replica snapshots its state and broadcasts a
//! signed digest; `q` matching ones make it stable, the low watermark moves and everything at or
//! below it is garbage-collected. A replica that sees `f + 1` checkpoints beyond its window, or a
//! quorum disagreeing with its own digest, fetches state.

use std::collections::BTreeMap;

use super::super::action::Record;
use super::super::message::{Checkpoint, CheckpointCert, Kind, Signed, Snapshot};
use super::super::state_machine::StateMachine;
use super::super::types::{Digest, ReplicaId, Seq};
use super::{state_digest, Replica};

impl<A: StateMachine> Replica<A> {
    pub(super) fn take_checkpoint(&mut self, seq: Seq) {
        self.app.before_checkpoint();
        let digest = state_digest(seq, self.app.digest(), &self.nonces);
        let snap = Snapshot {
            seq,
            app_state: self.app.snapshot(),
            nonces: self.nonces.clone(),
        };
        // Persisted when small, or once the batches a restart would otherwise re-execute add
        // up to its size (see `snapshot_persist_floor`); kept in memory either way, for peers
        // that fetch state.
        let len = snap.app_state.size_hint();
        // An epoch's first state is always persisted: a restart must find the boundary.
        if len <= self.cfg.snapshot_persist_floor
            || self.bytes_since_persisted >= len
            || seq <= self.persist_snapshots_through
            || self.app_changed_epoch()
        {
            self.bytes_since_persisted = 0;
            self.persist(Record::Snapshot(snap.clone()));
        }
        self.snapshots.insert(seq, (digest, snap));
        let cp = Checkpoint {
            seq,
            state_digest: digest,
            next_set: self.next_set_digest(),
        };
        let signed = self.seal(cp, Kind::Checkpoint, |c, v| c.encode_checkpoint(v));
        self.broadcast(&signed);
        self.checkpoint_votes
            .entry(seq)
            .or_default()
            .insert(self.cfg.id, signed);
        self.check_stable(seq);
    }

    pub(super) fn on_checkpoint(&mut self, cp: Signed<Checkpoint>, from: ReplicaId) {
        let seq = cp.value().seq;
        if seq <= self.stable.seq {
            return self.drop_input("stale checkpoint");
        }
        if !self.in_window(seq) {
            // Beyond our window: f + 1 such replicas mean at least one honest one is ahead.
            // (`make_stable` forgets those at or below the new stable checkpoint.)
            self.ahead.insert(from, seq);
            if self.ahead.len() > self.cfg.f() {
                self.request_state();
            }
            return;
        }
        self.checkpoint_votes
            .entry(seq)
            .or_default()
            .insert(from, cp);
        self.check_stable(seq);
    }

    fn check_stable(&mut self, seq: Seq) {
        if seq <= self.stable.seq {
            return;
        }
        let Some(votes) = self.checkpoint_votes.get(&seq) else {
            return;
        };
        // Grouped by what they certify: the state and, at an epoch's boundary, the next set.
        type Certified = (Digest, Option<Digest>);
        let mut by_digest: BTreeMap<Certified, Vec<Signed<Checkpoint>>> = BTreeMap::new();
        // Only keys in force count: a vote kept from before an epoch change (received in the
        // old epoch, or restored with the store) may be a removed or rotated-out validator's,
        // and a certificate holding it would fail every peer's check.
        let in_force = votes
            .iter()
            .filter(|(id, v)| self.cfg.directory.in_force(**id, v.signer()));
        for (_, v) in in_force {
            by_digest
                .entry((v.value().state_digest, v.value().next_set))
                .or_default()
                .push(v.clone());
        }
        let q = self.cfg.quorum();
        let Some(((digest, next_set), proof)) = by_digest.into_iter().find(|(_, v)| v.len() >= q)
        else {
            return;
        };
        let cert = CheckpointCert {
            seq,
            state_digest: digest,
            next_set,
            proof: proof.into_iter().take(q).collect(),
        };
        let my_next_set = votes.get(&self.cfg.id).map(|cp| cp.value().next_set);
        match self.snapshots.get(&seq) {
            Some((mine, _)) if *mine == digest && my_next_set.is_none_or(|n| n == next_set) => {
                self.make_stable(cert)
            }
            Some(_) => {
                // A quorum disagrees with our own state: we diverged; refetch.
                self.drop_input("own checkpoint digest differs from a quorum");
                self.diverged_at = Some(seq);
                // News even if an earlier request went unanswered: ask again.
                self.state_requested = None;
                self.request_state();
            }
            None => self.request_state(),
        }
    }

    /// Sends again this replica's newest checkpoint at or above the stable one. Sent only once,
    /// a lost checkpoint can leave a replica short of a matching quorum for good: its window
    /// never moves and, if it is the primary, nothing is ordered again (simulator seed 444).
    /// The one at the stable sequence is sent too, since replicas that already count it stable
    /// would otherwise never help the ones that do not. The newest is enough: a stable
    /// checkpoint at `n` subsumes every one below it. One small message per status tick.
    pub(super) fn retransmit_own_checkpoint(&mut self) {
        let me = self.cfg.id;
        let newest = self
            .checkpoint_votes
            .range(self.stable.seq..)
            .rev()
            .find_map(|(_, votes)| votes.get(&me))
            .map(|cp| std::sync::Arc::clone(cp.envelope()));
        if let Some(env) = newest {
            self.out.push(super::super::action::Action::Broadcast(env));
        }
    }

    /// Moves the low watermark to `cert.seq` and discards everything at or below it.
    pub(super) fn make_stable(&mut self, cert: CheckpointCert) {
        let s = cert.seq;
        if self.diverged_at.is_some_and(|d| d <= s) {
            // Its own state matched a quorum's at a later checkpoint (or it installed theirs).
            self.diverged_at = None;
        }
        self.stable = cert.clone();
        self.before_boundary = None;
        self.persist(Record::Stable(cert));
        self.keep_decided_tail(s);
        self.slots.retain(|seq, _| *seq > s);
        self.snapshots.retain(|seq, _| *seq >= s);
        // Votes at `s` stay: this replica's own one is what it re-sends to peers still short.
        self.checkpoint_votes.retain(|seq, _| *seq >= s);
        self.guard.forget_through(s);
        self.ahead.retain(|_, seq| *seq > s);
        self.try_propose();
    }

    /// An epoch boundary becomes the base of the new epoch before its proof holds the old set's
    /// quorum (`enter_epoch`). Nothing below it is dropped yet: a replica still in the old epoch
    /// can check neither a short proof nor anything the new set signed, and its own checkpoint
    /// at the boundary, sent once it executes the boundary batch, may be the one that completes
    /// the proof; it is served the stable checkpoint before the boundary and the decided batches
    /// up to it (`serving_stable`). `make_stable` prunes once the proof is complete.
    pub(super) fn make_boundary_stable(&mut self, cert: CheckpointCert) {
        if self.before_boundary.is_none() {
            self.before_boundary = Some(self.stable.clone());
        }
        self.stable = cert.clone();
        self.persist(Record::Stable(cert));
        self.try_propose();
    }

    /// The stable checkpoint state transfer serves: the one in force, or, while that is a
    /// boundary short of its proof, the one before it.
    pub(super) fn serving_stable(&self) -> &CheckpointCert {
        self.before_boundary.as_ref().unwrap_or(&self.stable)
    }
}
