//! View change (PBFT §4.4, §4.5.2): leaving a view whose primary does not make progress,
//! collecting view changes, the new primary's new-view (re-proposing every prepared batch, null
//! batches for gaps) and its check by the backups, the timers that pace it (doubling while views
//! fail, back to base once one is installed) and joining the smallest higher view `f + 1`
//! replicas moved to.

use std::collections::BTreeSet;

use super::super::action::{Record, Timer, TimerKind};
use super::super::certificate::{check_batch, check_view_change, NewViewPlan};
use super::super::message::{
    batch_digest, Kind, NewView, PrePrepare, PreparedCert, Signed, ViewChange,
};
use super::super::state_machine::StateMachine;
use super::super::types::{ReplicaId, Seq, View};
use super::suspicion::Suspicion;
use super::{Replica, Status};

impl<A: StateMachine> Replica<A> {
    pub(super) fn on_timeout(&mut self, t: Timer) {
        if self.armed.get(&t.kind) != Some(&t) {
            return self.drop_input("stale timer");
        }
        self.armed.remove(&t.kind);
        match t.kind {
            TimerKind::Request => {
                // Maybe we are simply behind: ask for state before blaming the primary.
                self.state_requested = None;
                self.request_state();
                match self.status {
                    Status::Normal if !self.pending.is_empty() => {
                        // The primary may simply not hold them (it crashed and restarted, or its
                        // queue was full when our relay came): hand them on again first.
                        self.forward_waiting_requests();
                        // Leave only with f others (`suspicion.rs`); meanwhile keep watching.
                        self.suspect(Suspicion::Stalled(self.view));
                        self.arm_request_timer(true);
                    }
                    Status::Normal => {}
                    Status::ViewChanging => {
                        // Peers may have missed it; those already past this view answer with
                        // their new-view.
                        if let Some(vc) = self.my_view_change.clone() {
                            self.broadcast(&vc);
                        }
                        self.arm_request_timer(true);
                    }
                }
            }
            TimerKind::ViewChange => {
                self.backoff = self.failed_views().saturating_add(1);
                self.start_view_change(self.view.next());
            }
            TimerKind::Status => {
                self.state_requested = None;
                self.request_state();
                self.forget_unorderable();
                if let Some(vc) = self.my_view_change.clone() {
                    // Retransmit: a lost view change can stall everyone else's view change.
                    self.broadcast(&vc);
                }
                self.retransmit_uncommitted();
                self.retransmit_own_checkpoint();
                self.retransmit_own_requests();
                self.set_timer(TimerKind::Status);
            }
            TimerKind::Heartbeat => self.on_heartbeat_tick(),
        }
    }

    /// Views in a row that did not execute anything, counting the ones before a successful
    /// new-view reset the timers.
    pub(super) fn failed_views(&self) -> u32 {
        self.backoff.max(self.backoff_before_view)
    }

    pub(super) fn start_view_change(&mut self, target: View) {
        if target <= self.view {
            return;
        }
        self.view = target;
        self.status = Status::ViewChanging;
        self.primary_silent = 0;
        self.end_suspicion();
        self.cancel_timer(TimerKind::ViewChange);
        self.proposed.clear();
        self.propose_from = 0;
        let stable_seq = self.stable.seq;
        let prepared: Vec<PreparedCert> = self
            .slots
            .range(stable_seq.next()..)
            .filter_map(|(_, s)| s.prepared_cert.clone())
            .collect();
        let vc = ViewChange {
            new_view: target,
            stable: self.stable.clone(),
            prepared,
        };
        let signed = self.seal(vc, Kind::ViewChange, |c, v| c.encode_view_change(v));
        self.persist(Record::ViewChange(signed.clone()));
        self.broadcast(&signed);
        self.view_changes.insert(self.cfg.id, signed.clone());
        self.my_view_change = Some(signed);
        self.arm_request_timer(true);
        self.view_change_progress();
    }

    pub(super) fn on_view_change(&mut self, vc: Signed<ViewChange>, from: ReplicaId) {
        if check_view_change(&self.cfg, vc.value(), self.genesis).is_err() {
            return self.drop_input("invalid view change");
        }
        let w = vc.value().new_view;
        if w < self.view || (w == self.view && self.status == Status::Normal) {
            // The sender is behind us: the new-view that started our view brings it along. At
            // most once per `SUSPICION_TICKS` intervals per peer, as for its suspicions: a
            // new-view carries a quorum of view changes, and a peer that sent one small
            // message per new-view it got back could make us send many times its traffic. A
            // behind peer re-sends its view change at every status interval until it joins.
            return self.offer_new_view(from);
        }
        if self
            .view_changes
            .get(&from)
            .is_some_and(|old| old.value().new_view >= w)
        {
            return self.drop_input("duplicate or older view change");
        }
        self.view_changes.insert(from, vc);
        // §4.5.2: f + 1 view changes for higher views include an honest one; join the smallest.
        let me = self.cfg.id;
        let higher: Vec<View> = self
            .view_changes
            .iter()
            .filter(|(id, v)| **id != me && v.value().new_view > self.view)
            .map(|(_, v)| v.value().new_view)
            .collect();
        if higher.len() > self.cfg.f() {
            if let Some(min) = higher.iter().min().copied() {
                // The view failed for us too: count it like the replicas whose timers fired, so
                // every honest replica's timers (and silence allowed) stay in step.
                self.backoff = self.failed_views().saturating_add(1);
                self.start_view_change(min);
                return;
            }
        }
        self.view_change_progress();
        // A view change for a higher view is a suspicion of ours.
        self.leave_view_if_suspected();
    }

    /// With `q` view changes for our target view: arm the view-change timer, and if we are its
    /// primary, send the new-view.
    fn view_change_progress(&mut self) {
        if self.status != Status::ViewChanging {
            return;
        }
        let view = self.view;
        let q = self.cfg.quorum();
        // The timer starts once q replicas have given up on the views below ours (§4.5.2). A view
        // change for a *higher* view counts too: its sender has given up on ours as well, and
        // keeps only its latest message, so waiting for exact matches could wait forever.
        let changing = self
            .view_changes
            .values()
            .filter(|v| v.value().new_view >= view)
            .count();
        if changing >= q && !self.armed.contains_key(&TimerKind::ViewChange) {
            self.set_timer(TimerKind::ViewChange);
        }
        let vcs: Vec<Signed<ViewChange>> = self
            .view_changes
            .values()
            .filter(|v| v.value().new_view == view)
            .take(q)
            .cloned()
            .collect();
        if vcs.len() >= q && self.is_primary() {
            self.send_new_view(vcs);
        }
    }

    fn send_new_view(&mut self, vcs: Vec<Signed<ViewChange>>) {
        let Some(plan) = NewViewPlan::compute(&vcs) else {
            return;
        };
        let view = self.view;
        let conflict = plan
            .slots
            .iter()
            .any(|(seq, batch)| self.guard.conflicts(view, *seq, batch_digest(batch)));
        if conflict {
            // Only after a restart mid-view-change with a different view-change set; signing
            // would equivocate, so let this view time out instead.
            return self.drop_input("new-view would conflict with the vote guard");
        }
        let mut pre_prepares = Vec::with_capacity(plan.slots.len());
        for (seq, batch) in &plan.slots {
            let digest = batch_digest(batch);
            if let Some(record) = self.guard.sign_exact(true, view, *seq, digest) {
                self.persist(record);
            }
            pre_prepares.push(self.seal_pre_prepare(PrePrepare {
                view,
                seq: *seq,
                digest,
                batch: batch.clone(),
            }));
        }
        let nv = NewView {
            view,
            view_changes: vcs,
            pre_prepares,
        };
        let signed = self.seal(nv, Kind::NewView, |c, v| c.encode_new_view(v));
        self.broadcast(&signed);
        self.enter_view(signed, plan);
    }

    pub(super) fn on_new_view(&mut self, nv: Signed<NewView>, from: ReplicaId) {
        let v = nv.value().view;
        if v < self.view || (v == self.view && self.status == Status::Normal) {
            return self.drop_input("stale new-view");
        }
        if from != self.cfg.primary(v) {
            return self.drop_input("new-view not from the new primary");
        }
        match self.check_new_view(nv.value(), from) {
            Ok(plan) => self.enter_view(nv, plan),
            Err(reason) => self.drop_input(reason),
        }
    }

    /// Recomputes the new primary's plan from the view changes it included and checks that its
    /// pre-prepares are exactly that plan (PBFT §4.4).
    fn check_new_view(
        &self,
        nv: &NewView,
        primary: ReplicaId,
    ) -> Result<NewViewPlan, &'static str> {
        let mut senders = BTreeSet::new();
        for vc in &nv.view_changes {
            let id = vc.validator().ok_or("new-view includes a non-validator")?;
            if vc.value().new_view != nv.view {
                return Err("new-view includes a view change for another view");
            }
            check_view_change(&self.cfg, vc.value(), self.genesis)
                .map_err(|_| "new-view includes an invalid view change")?;
            senders.insert(id);
        }
        if senders.len() < self.cfg.quorum() {
            return Err("new-view without a quorum of view changes");
        }
        let plan = NewViewPlan::compute(&nv.view_changes).ok_or("new-view without view changes")?;
        if plan.slots.len() != nv.pre_prepares.len() {
            return Err("new-view pre-prepares differ from the recomputed plan");
        }
        for ((seq, batch), pp) in plan.slots.iter().zip(&nv.pre_prepares) {
            let p = pp.value();
            let consistent = pp.validator() == Some(primary)
                && p.view == nv.view
                && p.seq == *seq
                && p.digest == batch_digest(batch)
                && check_batch(&self.cfg, p).is_ok();
            if !consistent {
                return Err("new-view pre-prepares differ from the recomputed plan");
            }
            if self.guard.conflicts(p.view, p.seq, p.digest) {
                return Err("new-view conflicts with the vote guard");
            }
        }
        Ok(plan)
    }

    fn enter_view(&mut self, nv: Signed<NewView>, plan: NewViewPlan) {
        let view = nv.value().view;
        self.view = view;
        self.status = Status::Normal;
        self.end_suspicion();
        self.cancel_timer(TimerKind::ViewChange);
        // A successful new view: timers back to their base value.
        self.backoff_before_view = self.failed_views();
        self.backoff = 0;
        self.persist(Record::EnteredView {
            view,
            new_view: Some(nv.clone()),
        });
        self.view_changes.retain(|_, vc| vc.value().new_view > view);
        self.my_view_change = None;
        self.proposed.clear();
        self.propose_from = 0;
        // Set before anything below can call `try_propose` (make_stable, execution).
        let max_seq = nv
            .value()
            .pre_prepares
            .iter()
            .map(|pp| pp.value().seq)
            .fold(plan.min_s, Seq::max);
        self.next_seq = max_seq.max(self.last_executed).next();
        let primary = self.is_primary();
        if primary {
            for pp in &nv.value().pre_prepares {
                for r in &pp.value().batch {
                    self.proposed.insert((*r.signer(), r.value().nonce));
                }
            }
        }
        if plan.min_s > self.stable.seq {
            match self.snapshots.get(&plan.min_s) {
                Some((d, _)) if *d == plan.checkpoint.state_digest => {
                    self.make_stable(plan.checkpoint.clone())
                }
                _ => {
                    self.state_requested = None;
                    self.request_state();
                }
            }
        }
        for pp in &nv.value().pre_prepares {
            let (seq, digest) = (pp.value().seq, pp.value().digest);
            if !self.in_window(seq) {
                continue;
            }
            let slot = self.slots.entry(seq).or_default();
            slot.enter_round(view);
            slot.set_pre_prepare(pp.clone());
            if !primary {
                self.send_prepare(view, seq, digest);
            }
            self.check_prepared(seq);
        }
        self.new_view = Some(nv);
        self.replay_future();
        self.arm_request_timer(true);
        self.try_propose();
    }
}
