//! Requests (PBFT §4.2): admitting a client's or a peer's request into the pending queue, the
//! primary's proposals (batches within the window, the pipeline depth and the byte budgets), and
//! a validator re-sending its own requests until they execute.

use std::sync::Arc;

use super::super::action::Action;
use super::super::limits;
use super::super::message::{batch_digest, Envelope, PrePrepare, Request, Signed};
use super::super::state_machine::StateMachine;
use super::{Replica, RequestId, Status, MAX_OWN_RETRANSMIT};

impl<A: StateMachine> Replica<A> {
    pub(super) fn on_request(&mut self, r: Signed<Request>, from_client: bool) {
        if limits::request_bytes(&r) > self.cfg.max_request_bytes {
            // The client API refuses these before they get here; a peer relaying one is faulty.
            return self.drop_input("request over the size limit");
        }
        if !self.app.may_order(&r) {
            return self.drop_input("request from a signer the ledger never knew");
        }
        let id = (*r.signer(), r.value().nonce);
        if !self.nonce_fresh(&id.0, id.1) {
            return self.drop_input("request nonce already executed or out of the window");
        }
        if self.pending_ids.contains_key(&id) {
            if from_client {
                // The client retried: our relay (or the primary's proposal) may have been lost.
                self.broadcast(&r);
            }
            return self.drop_input("request already pending");
        }
        if self.pending.len() >= self.cfg.max_pending {
            return self.drop_input("pending queue full");
        }
        self.enqueue(id, r.clone());
        if from_client {
            self.relay(r);
        }
        self.arm_request_timer(false);
        self.try_propose();
    }

    /// Forgets pending requests the application no longer orders: their signer was removed
    /// (a validator taken out or re-keyed, a requester removed) after they were admitted. No
    /// primary may propose them (every backup refuses the batch), and waiting for them would
    /// time out primary after primary for good (simulator seed 33 at n = 7, a removed
    /// validator's own requests). Called on every status tick.
    pub(super) fn forget_unorderable(&mut self) {
        let gone: Vec<(u64, RequestId)> = self
            .pending
            .iter()
            .filter(|(_, r)| !self.app.may_order(r))
            .map(|(arrival, r)| (*arrival, (*r.signer(), r.value().nonce)))
            .collect();
        for (arrival, id) in gone {
            self.pending.remove(&arrival);
            self.pending_ids.remove(&id);
            self.drop_input("pending request whose signer the ledger no longer knows");
        }
    }

    /// Adds `r` (identified by `id`) at the end of the pending queue.
    pub(super) fn enqueue(&mut self, id: RequestId, r: Signed<Request>) {
        self.arrivals += 1;
        self.pending_ids.insert(id, self.arrivals);
        self.pending.insert(self.arrivals, r);
    }

    /// The primary proposes batches while it has unproposed requests, room in the window and
    /// fewer than `max_inflight_batches` unexecuted batches. Batching falls out of pipelining:
    /// requests that arrive while the pipeline is full wait and go together in the next batch.
    pub(super) fn try_propose(&mut self) {
        if self.status != Status::Normal || !self.is_primary() {
            return;
        }
        // Sequence numbers at or below what executed were decided in earlier views.
        self.next_seq = self.next_seq.max(self.last_executed.next());
        while self.guard.taken(self.view, self.next_seq) {
            if self.guard.abstains(self.view, self.next_seq) {
                // An earlier life may have proposed here: it leaves this view on restore.
                return;
            }
            // Already signed in this view (e.g. re-issued by our own new-view): never reuse.
            self.next_seq = self.next_seq.next();
        }
        loop {
            let inflight = self.next_seq.0.saturating_sub(self.last_executed.0 + 1);
            if !self.in_window(self.next_seq) || inflight >= self.cfg.max_inflight_batches {
                return;
            }
            // Within the batch's byte cap, and within what the window may hold so that a view
            // change carrying every prepared batch still fits in a message. What the slot itself
            // holds from an earlier view does not count: the new batch takes its place, as the
            // backups' check reckons it too. (Counting it left a primary unable to propose
            // anything while a certificate prepared in an abandoned view sat in that slot: no
            // batch, no checkpoint to free the window, a view change every request timeout;
            // seed 161 at n = 7.)
            let room = self.cfg.max_batch_bytes.min(
                self.cfg
                    .max_window_bytes
                    .saturating_sub(self.held_bytes(Some(self.next_seq))),
            );
            let mut bytes = 0;
            let picked: Vec<(u64, Signed<Request>)> = self
                .pending
                .range(self.propose_from..)
                .filter(|(_, r)| !self.proposed.contains(&(*r.signer(), r.value().nonce)))
                // Its signer removed since it was admitted: the backups would refuse the batch
                // (the status tick forgets it).
                .filter(|(_, r)| self.app.may_order(r))
                .take(self.cfg.max_batch)
                .take_while(|(_, r)| {
                    bytes += limits::request_bytes(r);
                    bytes <= room
                })
                .map(|(arrival, r)| (*arrival, r.clone()))
                .collect();
            let Some(last) = picked.last().map(|(arrival, _)| *arrival) else {
                return;
            };
            // Everything pending up to `last` is now proposed (picked, or proposed before).
            self.propose_from = last + 1;
            let batch: Vec<Signed<Request>> = picked.into_iter().map(|(_, r)| r).collect();
            for r in &batch {
                self.proposed.insert((*r.signer(), r.value().nonce));
            }
            let seq = self.next_seq;
            self.next_seq = seq.next();
            let digest = batch_digest(&batch);
            let pp = PrePrepare {
                view: self.view,
                seq,
                digest,
                batch,
            };
            if self.sign_reserved(self.view, seq, digest).is_err() {
                // `taken` was checked just above: unreachable, but never sign regardless.
                return;
            }
            let signed = self.seal_pre_prepare(pp);
            self.broadcast(&signed);
            let view = self.view;
            let slot = self.slots.entry(seq).or_default();
            slot.enter_round(view);
            slot.set_pre_prepare(signed);
            self.check_prepared(seq);
        }
    }

    /// On a backup's request timeout: relays again the requests that have waited longest, up to
    /// one batch's bytes. A request reaches the primary once, relayed by whoever got it from
    /// its client; if the primary lost it (a crash, a full queue) and its client never retries
    /// (a flooder, a client that died), only the backups still hold it, and without this it
    /// would wait for good (simulator seeds 629 and 1767 at n = 4). BFT-SMaRt forwards on its
    /// first request timeout the same way, before it suspects the leader.
    pub(super) fn forward_waiting_requests(&mut self) {
        let mut bytes = 0;
        let oldest: Vec<Signed<Request>> = self
            .pending
            .values()
            .take_while(|r| {
                bytes += limits::request_bytes(r);
                bytes <= self.cfg.max_batch_bytes
            })
            .cloned()
            .collect();
        for r in oldest {
            self.relay(r);
        }
    }

    /// A validator is the client of its own requests (votes, rollout evidence): like any client
    /// it sends them again until they execute, since the one relay it sent may have been lost
    /// (a partition, a full queue) and nobody else would ever ask for it.
    pub(super) fn retransmit_own_requests(&mut self) {
        let me = self.key.public();
        let again: Vec<Arc<Envelope>> = self
            .pending
            .values()
            .filter(|r| *r.signer() == me)
            .take(MAX_OWN_RETRANSMIT)
            .map(|r| Arc::clone(r.envelope()))
            .collect();
        for env in again {
            self.out.push(Action::Broadcast(env));
        }
    }
}
