//! The normal case (PBFT §4.2): pre-prepare, prepare and commit, certificates, in-order
//! execution (with the checkpoints it triggers) and retransmission of what this replica signed
//! for slots not committed yet.

use std::sync::Arc;

use super::super::action::{Action, Decision, Record};
use super::super::certificate::check_batch;
use super::super::execution::apply_fresh;
use super::super::limits;
use super::super::message::{CommitCert, Envelope, Kind, PrePrepare, PreparedCert, Signed, Vote};
use super::super::state_machine::StateMachine;
use super::super::types::{Digest, ReplicaId, Seq, View};
use super::vote_guard::Refusal;
use super::{Replica, RequestId, Status};

impl<A: StateMachine> Replica<A> {
    pub(super) fn on_pre_prepare(&mut self, pp: Signed<PrePrepare>, from: ReplicaId) {
        let v = pp.value();
        if self.status != Status::Normal {
            return self.drop_input("pre-prepare during view change");
        }
        if v.view != self.view {
            return self.drop_input("pre-prepare for another view");
        }
        if from != self.cfg.primary(v.view) {
            return self.drop_input("pre-prepare not from the primary");
        }
        if !self.in_window(v.seq) {
            return self.drop_input("pre-prepare outside the window");
        }
        if check_batch(&self.cfg, v).is_err() {
            return self.drop_input("pre-prepare with an invalid batch");
        }
        if !v.batch.iter().all(|r| self.app.may_order(r)) {
            return self
                .drop_input("pre-prepare with a request from a signer the ledger never knew");
        }
        let (view, seq, digest) = (v.view, v.seq, v.digest);
        if self.guard.conflicts(view, seq, digest) {
            return self.drop_input("pre-prepare conflicts with the vote guard");
        }
        let bytes = limits::batch_bytes(&v.batch);
        if self.held_bytes(Some(seq)) + bytes > self.cfg.max_window_bytes {
            // Accepting it could make this replica's view change too large to send. An honest
            // primary stays within the same budget; it sends again once checkpoints free room.
            return self.drop_input("pre-prepare over the window byte budget");
        }
        let slot = self.slots.entry(seq).or_default();
        slot.enter_round(view);
        if let Some(existing) = &slot.pre_prepare {
            let reason = if existing.value().digest == digest {
                "duplicate pre-prepare"
            } else {
                "equivocating pre-prepare"
            };
            return self.drop_input(reason);
        }
        slot.set_pre_prepare(pp);
        self.send_prepare(view, seq, digest);
        self.check_prepared(seq);
    }

    /// Guards (a reservation persisted first when this seq is beyond it), broadcasts and counts
    /// this backup's prepare; none where the guard refuses (`replica/vote_guard.rs`).
    pub(super) fn send_prepare(&mut self, view: View, seq: Seq, digest: Digest) {
        match self.sign_reserved(view, seq, digest) {
            Ok(()) => {}
            Err(Refusal::Conflict) => {
                return self.drop_input("prepare conflicts with the vote guard")
            }
            Err(Refusal::Abstain) => {
                return self.drop_input("prepare withheld: reserved before a restart")
            }
        }
        let signed = self.seal_vote(Kind::Prepare, Vote { view, seq, digest });
        self.broadcast(&signed);
        let me = self.cfg.id;
        if let Some(slot) = self.slots.get_mut(&seq) {
            slot.prepares.insert(me, signed);
        }
    }

    pub(super) fn on_vote(&mut self, kind: Kind, vote: Signed<Vote>, from: ReplicaId) {
        let v = *vote.value();
        if self.status != Status::Normal {
            return self.drop_input("vote during view change");
        }
        if v.view != self.view {
            return self.drop_input("vote for another view");
        }
        if !self.in_window(v.seq) {
            return self.drop_input("vote outside the window");
        }
        if kind == Kind::Prepare && from == self.cfg.primary(v.view) {
            return self.drop_input("prepare from the primary");
        }
        let slot = self.slots.entry(v.seq).or_default();
        slot.enter_round(v.view);
        let votes = if kind == Kind::Prepare {
            &mut slot.prepares
        } else {
            &mut slot.commits
        };
        if votes.contains_key(&from) {
            return self.drop_input("duplicate vote");
        }
        votes.insert(from, vote);
        if kind == Kind::Prepare {
            self.check_prepared(v.seq);
        } else {
            self.check_committed(v.seq);
        }
    }

    /// Pre-prepare plus `q - 1` matching prepares from distinct backups: persist the prepared
    /// certificate, then commit.
    pub(super) fn check_prepared(&mut self, seq: Seq) {
        let q = self.cfg.quorum();
        let primary = self.cfg.primary(self.view);
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Some(pp) = slot.pre_prepare.clone() else {
            return;
        };
        if slot.prepared {
            return;
        }
        let d = pp.value().digest;
        let prepares: Vec<Signed<Vote>> = slot
            .prepares
            .iter()
            .filter(|(id, v)| **id != primary && v.value().digest == d)
            .map(|(_, v)| v.clone())
            .take(q - 1)
            .collect();
        if 1 + prepares.len() < q {
            return;
        }
        let cert = PreparedCert {
            pre_prepare: pp.clone(),
            prepares,
        };
        slot.prepared = true;
        slot.set_prepared(cert.clone());
        self.persist(Record::Prepared(cert));
        let (view, seq) = (pp.value().view, pp.value().seq);
        let commit = self.seal_vote(
            Kind::Commit,
            Vote {
                view,
                seq,
                digest: d,
            },
        );
        self.broadcast(&commit);
        let me = self.cfg.id;
        if let Some(slot) = self.slots.get_mut(&seq) {
            slot.commits.insert(me, commit);
        }
        self.check_committed(seq);
    }

    pub(super) fn check_committed(&mut self, seq: Seq) {
        let q = self.cfg.quorum();
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        if !slot.prepared || slot.committed.is_some() {
            return;
        }
        let Some(pp) = slot.pre_prepare.clone() else {
            return;
        };
        let d = pp.value().digest;
        let commits: Vec<Signed<Vote>> = slot
            .commits
            .values()
            .filter(|v| v.value().digest == d)
            .take(q)
            .cloned()
            .collect();
        if commits.len() < q {
            return;
        }
        let cert = CommitCert {
            pre_prepare: pp,
            commits,
        };
        slot.committed = Some(cert.clone());
        self.persist(Record::Committed(cert));
        self.try_execute();
    }

    /// Executes committed batches in sequence order.
    pub(super) fn try_execute(&mut self) {
        let mut progressed = false;
        while let Some(cert) = self
            .slots
            .get(&self.last_executed.next())
            .and_then(|s| s.committed.clone())
        {
            self.execute(cert);
            progressed = true;
        }
        if progressed {
            self.backoff = 0;
            self.backoff_before_view = 0;
            self.end_suspicion();
            self.arm_request_timer(true);
            self.try_propose();
        }
    }

    pub(super) fn execute(&mut self, cert: CommitCert) {
        let seq = cert.seq();
        let batch = &cert.pre_prepare.value().batch;
        let bytes = limits::batch_bytes(batch);
        self.bytes_since_persisted += bytes;
        let mut executed = Vec::new();
        apply_fresh(&mut self.app, &mut self.nonces, seq, batch, |r, window| {
            executed.push(r.clone());
            // Pending requests of this signer that can no longer execute: this nonce
            // (another request may have carried it) and those that fell out of the window.
            let signer = *r.signer();
            let stale: Vec<RequestId> = self
                .pending_ids
                .range((signer, 0)..=(signer, window.highest))
                .map(|(id, _)| *id)
                .filter(|(_, n)| !window.is_fresh(*n))
                .collect();
            for id in stale {
                if let Some(arrival) = self.pending_ids.remove(&id) {
                    self.pending.remove(&arrival);
                }
                self.proposed.remove(&id);
            }
        });
        self.last_executed = seq;
        let new_epoch = self.app_changed_epoch();
        let checkpoint_due = self
            .checkpoint_clock
            .executed(&self.cfg, seq, bytes, new_epoch);
        self.out.push(Action::Deliver(Decision {
            seq,
            certificate: cert,
            executed,
        }));
        if checkpoint_due {
            self.take_checkpoint(seq);
        }
        // After the checkpoint: it is signed under the set that ordered the batch.
        self.enter_epoch(seq);
    }

    /// PBFT's retransmission: for slots of the current view that are not committed yet, send
    /// again what this replica signed for them (its pre-prepare as primary, its prepare and
    /// commit), so one lost message cannot stall a slot. Receivers drop duplicates cheaply.
    pub(super) fn retransmit_uncommitted(&mut self) {
        if self.status != Status::Normal {
            return;
        }
        let me = self.cfg.id;
        let primary = self.is_primary();
        let mut again: Vec<Arc<Envelope>> = Vec::new();
        for slot in self
            .slots
            .range(self.last_executed.next()..)
            .map(|(_, s)| s)
        {
            if slot.view != self.view || slot.committed.is_some() {
                continue;
            }
            if primary {
                again.extend(slot.pre_prepare.iter().map(|p| Arc::clone(p.envelope())));
            }
            again.extend(slot.prepares.get(&me).map(|v| Arc::clone(v.envelope())));
            again.extend(slot.commits.get(&me).map(|v| Arc::clone(v.envelope())));
        }
        for env in again {
            self.out.push(Action::Broadcast(env));
        }
    }
}
