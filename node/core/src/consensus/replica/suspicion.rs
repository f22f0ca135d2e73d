//! Suspicion before a view change (the part Raft's pre-vote plays): a backup whose timer fires —
//! its primary silent for the silence allowed, or requests waiting without progress — does not
//! leave its view at once. It broadcasts `Suspect(view)` and keeps working in the view; it starts
//! the view change only once `f` other replicas suspect the same view too (a fresh `Suspect`, or
//! a view change for a higher view, which says as much). A backup one heartbeat interval short of
//! its own silence limit joins once `f` others suspect, so the view changes when the first
//! backup's clock reaches the limit, not the `f + 1`-th; any backup joins once `f + 1` others
//! suspect (they leave anyway, and their view changes would bring it a delay later). And a replica whose own suspicion ended
//! (its primary heard again) while peers were leaving on it follows them, so they are not
//! stranded in the higher view (`follows_those_who_left`).
//!
//! Warnings, so that the round of suspicions costs no delay of its own: a backup one interval
//! short of its silence limit sends `Suspect` marked early, once. A backup that reaches its
//! limit leaves if `f` others suspect *or warned* (a warning counts for `WARNING_TICKS`), so
//! where the silence limits of the backups fall within an interval of each other and a delay
//! is at most an interval, each leaves at its own limit rather than a delay after the `f`-th
//! other's; and a backup further from its limit joins on one suspicion and `f` warnings, as
//! soon as the first suspicion arrives. Across a WAN the view change thus starts at the
//! silence limit, not a delay after it (`scbe-sim bench --delay 50ms`). A warning is not a
//! suspicion: warnings alone make no one join or leave, so no view changes before some
//! backup reached its limit. And a warner whose primary is heard again follows a peer that
//! left on its warning, as a suspecter does, so the leaver is not stranded.
//!
//! Why: a view change cannot be taken back. A replica that sent `ViewChange(v + 1)` must never
//! prepare in `v` again, or a new-view built on that older message could miss a request it
//! helped commit. So a replica that left alone — restarted and still catching up, or cut off
//! for a moment — sat in `v + 1` without voting while the others went on in `v`, and the cluster
//! ran with no fault tolerance to spare until its next view change. With suspicion, a replica
//! whose timer fires alone stays in `v` and votes there once it hears from the others again.
//!
//! Liveness is unchanged for the cases the timers exist for: a crashed or silent primary, or one
//! that does not order, is noticed by every honest backup. With the primary faulty at least
//! `2f + 1` backups are honest, so each finds `2f >= f` others suspecting within a heartbeat
//! interval or two; with f = 0 a replica's own suspicion is enough. A replica that is merely
//! behind executes what the others decide (state transfer), and progress ends its suspicion.
//! A replica alone in a higher view (its view change is on record) still counts for the
//! others: its view change is a suspicion of theirs. What suspicion cannot do: `f` Byzantine replicas that suspect every view
//! give an honest replica's lone timer the company it needs, which is no worse than before.
//! Suspicions are a liveness hint only; nothing is persisted and no vote depends on them.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::super::action::Action;
use super::super::message::{Kind, Suspect};
use super::super::state_machine::StateMachine;
use super::super::types::{ReplicaId, View};
use super::{Replica, Status};

/// Heartbeat intervals a peer's suspicion counts after it arrived. A suspecting replica re-sends
/// its suspicion every interval, so a suspicion lapses soon after its sender stopped suspecting.
pub const SUSPICION_TICKS: u64 = 4;

/// Heartbeat intervals a peer's warning (`Suspect` marked early) counts after it arrived: it is
/// sent once, an interval before its sender's limit, and by the next interval it has become a
/// suspicion or lapsed (the primary was heard).
pub const WARNING_TICKS: u64 = 1;

/// A peer's latest `Suspect`, as this replica counts it.
#[derive(Clone, Copy, Debug)]
pub(super) struct PeerSuspect {
    view: View,
    /// `ticks` when it arrived.
    at: u64,
    /// A warning (`Suspect::early`), not yet a suspicion.
    early: bool,
}

/// Why this replica suspects its view's primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Suspicion {
    /// The primary was silent for the silence allowed; hearing from it ends the suspicion.
    Silent(View),
    /// Requests waited a whole request timer without anything executing; only progress (or a
    /// new view) ends it: a primary that heartbeats but does not order stays suspected.
    Stalled(View),
}

impl Suspicion {
    pub(super) fn view(self) -> View {
        match self {
            Suspicion::Silent(v) | Suspicion::Stalled(v) => v,
        }
    }
}

impl<A: StateMachine> Replica<A> {
    /// A timer says the primary of the current view fails: suspect it, and leave the view if
    /// enough others do.
    pub(super) fn suspect(&mut self, why: Suspicion) {
        if self.status != Status::Normal || why.view() != self.view {
            return;
        }
        // A stalled view stays suspected even if its primary is heard from later.
        if !matches!(self.suspicion, Some(Suspicion::Stalled(v)) if v == self.view) {
            self.suspicion = Some(why);
        }
        self.broadcast_suspicion();
        self.leave_view_if_suspected();
    }

    /// Re-sends the current suspicion (every heartbeat interval while it stands).
    pub(super) fn broadcast_suspicion(&mut self) {
        let Some(s) = self.suspicion else { return };
        if self.status != Status::Normal || s.view() != self.view {
            self.suspicion = None;
            return;
        }
        self.send_suspect(false);
    }

    /// One interval short of its silence limit, a backup warns the others (see the module doc):
    /// a peer that reaches its own limit first leaves on the warning instead of waiting for
    /// this replica's suspicion an interval later, one delay after it was sent.
    pub(super) fn warn_of_silence(&mut self) {
        if self.status != Status::Normal || self.is_primary() || self.suspicion.is_some() {
            return;
        }
        self.send_suspect(true);
        self.leave_view_if_suspected();
    }

    fn send_suspect(&mut self, early: bool) {
        let suspect = Suspect {
            view: self.view,
            early,
        };
        let signed = self.seal(suspect, Kind::Suspect, |c, v| c.encode_suspect(v));
        self.broadcast(&signed);
        self.suspect_sent = Some((self.view, self.ticks));
    }

    pub(super) fn on_suspect(&mut self, s: Suspect, from: ReplicaId) {
        if s.view < self.view {
            self.offer_new_view(from);
            return self.drop_input("suspicion of a view already left");
        }
        let heard = PeerSuspect {
            view: s.view,
            at: self.ticks,
            early: s.early,
        };
        self.suspects.insert(from, heard);
        self.leave_view_if_suspected();
    }

    /// A peer suspects a view this replica has left (or, as its primary, heartbeats in it:
    /// `on_heartbeat`): it missed the new-view that ended that view and is stranded there, in
    /// normal operation, suspecting alone (or not at all, as its primary). Nobody else will join its
    /// suspicion (they left that view), and it cannot vote in ours, so with one more replica
    /// down the cluster has no quorum, and no view change either: the replicas of the higher
    /// view only suspect *their* view, which the stranded one does not count (seed 1329: a
    /// rotated validator's restart took its votes away while replica 0 sat in view 5 and the two
    /// others in view 6, for good). The new-view that started our view brings it along, as it
    /// does for a peer whose view change is behind (`on_view_change`, through here too); it
    /// carries its own proof (a quorum's view changes), so the peer checks it like any
    /// new-view. Offered at most once per `SUSPICION_TICKS` intervals per peer (a new-view
    /// installed since is offered at once): a suspicion is re-sent every interval, and a
    /// new-view can be large.
    pub(super) fn offer_new_view(&mut self, to: ReplicaId) {
        let Some(nv) = &self.new_view else { return };
        let view = nv.value().view;
        let recently = self.new_view_offered.get(&to).is_some_and(|(offered, at)| {
            *offered == view && self.ticks.saturating_sub(*at) < SUSPICION_TICKS
        });
        if recently {
            return;
        }
        let envelope = Arc::clone(nv.envelope());
        self.new_view_offered.insert(to, (view, self.ticks));
        self.out.push(Action::Send { to, envelope });
    }

    /// The primary was heard from: a suspicion that rested on its silence ends.
    pub(super) fn primary_heard(&mut self) {
        self.silence_gauge.heard(self.view, self.ticks);
        self.primary_silent = 0;
        if matches!(self.suspicion, Some(Suspicion::Silent(_))) {
            self.suspicion = None;
        }
    }

    /// Something executed, or the view changed: every suspicion of this replica ends, and those
    /// received for views it has left are forgotten.
    pub(super) fn end_suspicion(&mut self) {
        self.suspicion = None;
        let view = self.view;
        self.suspects.retain(|_, s| s.view >= view);
    }

    /// Other replicas that currently suspect the current view: a fresh `Suspect` for it, or a
    /// view change for a higher view; and warnings, if `warnings_count_for` says for how many
    /// intervals after they arrived.
    pub(super) fn suspected_by(&self, warnings_count_for: Option<u64>) -> usize {
        let me = self.cfg.id;
        let fresh = |id: &ReplicaId| {
            self.suspects.get(id).is_some_and(|s| {
                let counts_for = if s.early {
                    warnings_count_for
                } else {
                    Some(SUSPICION_TICKS)
                };
                s.view == self.view
                    && counts_for.is_some_and(|t| self.ticks.saturating_sub(s.at) <= t)
            })
        };
        let left = |id: &ReplicaId| {
            self.view_changes
                .get(id)
                .is_some_and(|vc| vc.value().new_view > self.view)
        };
        let peers: BTreeSet<ReplicaId> = self
            .suspects
            .keys()
            .chain(self.view_changes.keys())
            .copied()
            .collect();
        peers
            .into_iter()
            .filter(|id| *id != me && (fresh(id) || left(id)))
            .count()
    }

    /// Leaves the view when this replica suspects it and `f` others suspect it too, or warn of
    /// it (their limit an interval away), or when peers left on its own word (below).
    pub(super) fn leave_view_if_suspected(&mut self) {
        self.join_others_suspicion();
        if self.status != Status::Normal {
            return;
        }
        let suspecting = self.suspicion.is_some_and(|s| s.view() == self.view)
            && self.suspected_by(Some(WARNING_TICKS)) >= self.cfg.f();
        if suspecting || self.follows_those_who_left() {
            self.suspicion = None;
            self.primary_silent = 0;
            self.backoff = self.failed_views().saturating_add(1);
            self.start_view_change(self.view.next());
        }
    }

    /// Whether peers left the current view (a view change for a higher one) while this
    /// replica's last `Suspect` of it, suspicion or warning, may still have counted for them:
    /// sent at most `SUSPICION_TICKS` intervals ago (the time a peer counts a suspicion), plus
    /// one for a view change still on its way. It follows them, even if its own suspicion has
    /// ended since or its warning never became one (its primary heard again), once at least one
    /// left and `f` others in all left or suspect the view, warnings included: they may have
    /// left because this replica suspected or warned too, and without it they would sit in the
    /// higher view without voting while the view went on with no fault tolerance to spare,
    /// until its next view change (a 300 ms disk stall at light load stranded one replica for
    /// six minutes that way). Following makes more view changes, up to `f + 1`, and then
    /// everyone moves: one view change instead. Outside that window nothing changes (a
    /// Byzantine peer cannot use an old, passing doubt to move an honest replica), and within
    /// it `f` others are needed, as for a suspicion.
    fn follows_those_who_left(&self) -> bool {
        let recent = self.suspect_sent.is_some_and(|(v, at)| {
            v == self.view && self.ticks.saturating_sub(at) <= SUSPICION_TICKS + 1
        });
        let me = self.cfg.id;
        let left = self
            .view_changes
            .iter()
            .any(|(id, vc)| *id != me && vc.value().new_view > self.view);
        recent && left && self.suspected_by(Some(SUSPICION_TICKS)) >= self.cfg.f()
    }

    /// A backup suspects the view too, now, when it hears
    /// - `f` others suspect it while it is one interval short of its own silence limit. Each
    ///   backup counts silence on its own clock, so without this the view change waited for the
    ///   slowest of the first `f + 1` clocks to reach the limit, up to a whole interval after the
    ///   first (a fifth of a failover). The first suspecter still needs the full silence, and
    ///   the joiners all but one interval of it.
    /// - `f + 1` others suspect it, whatever its own clock says. They include an honest one,
    ///   and each of them has `f` others suspecting, so they leave and their `f + 1` view
    ///   changes would move this replica anyway (PBFT §4.5.2), one delay later: a backup that
    ///   tolerates more silence than they do (its gauge saw its primaries keep longer silences)
    ///   made the new primary wait that delay for the last view change of its quorum (50 ms of
    ///   a 533 ms failover at 50 ms one way, `scbe-sim bench --delay 50ms`).
    /// - one other suspects it and `f` more warn of it: the same `f + 1`, as soon as the first
    ///   of them reached its limit, rather than a delay after the second did (whose warning
    ///   said it would within an interval). Warnings alone make no one join: some replica must
    ///   have reached its limit, so no view changes before the silence tolerated.
    fn join_others_suspicion(&mut self) {
        let company = self.suspected_by(None);
        let with_warnings = self.suspected_by(Some(WARNING_TICKS));
        let nearly_silent = self.cfg.silence_ticks > 0
            && self.primary_silent.saturating_add(1) >= self.silence_allowed();
        let f = self.cfg.f();
        let joins =
            company > f || (nearly_silent && company >= f) || (company >= 1 && with_warnings > f);
        if self.suspicion.is_some() || self.status != Status::Normal || self.is_primary() || !joins
        {
            return;
        }
        self.suspicion = Some(Suspicion::Silent(self.view));
        self.broadcast_suspicion();
    }

    /// Counted once per heartbeat interval, whatever the replica's role: the clock suspicions
    /// age by.
    pub(super) fn tick_suspicions(&mut self) {
        self.ticks += 1;
        self.broadcast_suspicion();
    }
}
