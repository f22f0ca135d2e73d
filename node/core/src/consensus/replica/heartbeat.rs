//! Heartbeats: fast failover without waiting for a request to time out. The primary broadcasts a
//! signed heartbeat every interval while it leads its view in normal operation; a backup counts
//! the intervals in which it heard nothing from its primary for its view (a heartbeat, or any
//! pre-prepare or vote of that view) and suspects the primary after `silence_ticks` of them,
//! warning the others one interval before (it changes view once `f` others suspect it too, or
//! warned: `suspicion.rs`). The silence
//! allowed doubles with every consecutive failed view, like the other timers, so a cluster whose
//! messages are slow everywhere settles instead of deposing primary after primary; and it grows
//! with the longest silences an honest-looking primary kept recently (`silence_gauge.rs`), so a
//! jittery link does not get its primary deposed for nothing. Heartbeats
//! come from a timer, not from load: a busy but honest primary keeps sending them (and its
//! pre-prepares count too); while its runtime is inside one long turn (a slow storage commit, a
//! CPU-heavy batch), the runtime re-sends the latest one (`heartbeat_pacer.rs`, up to 500 ms). A primary that heartbeats
//! but does not order is caught by the request timer as before.

use super::super::action::TimerKind;
use super::super::message::{Heartbeat, Kind};
use super::super::state_machine::StateMachine;
use super::super::types::ReplicaId;
use super::suspicion::Suspicion;
use super::{Replica, Status};

/// Cap on the doubling of the silence allowed (2^16 intervals is hours at any sane interval).
const MAX_SILENCE_DOUBLINGS: u32 = 16;

impl<A: StateMachine> Replica<A> {
    pub(super) fn on_heartbeat_tick(&mut self) {
        self.set_timer(TimerKind::Heartbeat);
        self.tick_suspicions();
        if self.status != Status::Normal {
            self.primary_silent = 0;
            return;
        }
        if self.is_primary() {
            let hb = Heartbeat {
                view: self.view,
                last_executed: self.last_executed,
            };
            let signed = self.seal(hb, Kind::Heartbeat, |c, v| c.encode_heartbeat(v));
            return self.broadcast(&signed);
        }
        if self.cfg.silence_ticks == 0 {
            return;
        }
        self.primary_silent += 1;
        let allowed = self.silence_allowed();
        if self.primary_silent >= allowed {
            self.primary_silent = 0;
            // Leave only with f others (`suspicion.rs`).
            self.suspect(Suspicion::Silent(self.view));
        } else if self.primary_silent.saturating_add(1) == allowed {
            // An interval short: warn, so the others need not wait for our suspicion.
            self.warn_of_silence();
        }
    }

    /// Intervals of silence tolerated in the current view: what the silences measured so far
    /// call for (`silence_gauge.rs`), doubled per view in a row that failed.
    pub(super) fn silence_allowed(&self) -> u32 {
        let doublings = self.failed_views().min(MAX_SILENCE_DOUBLINGS);
        self.silence_gauge
            .allowed(self.cfg.silence_ticks)
            .saturating_mul(1 << doublings)
    }

    /// A heartbeat already reset the silence count (in `on_message`, like any message of the
    /// primary for this view). What it adds: a backup that knows of nothing beyond what it
    /// executed while the primary has executed more missed the tail of the log, and asks for it
    /// now rather than at the next status tick.
    pub(super) fn on_heartbeat(&mut self, hb: Heartbeat, from: ReplicaId) {
        if hb.view != self.view || from != self.cfg.primary(self.view) {
            if hb.view < self.view {
                // The primary of a view we left, still leading it: it missed the new-view, and
                // as a primary it suspects no one (seed 1034 at n = 4: replica 3 led view 3
                // alone while 0 and 1 sat in view 4 without a quorum). Bring it along.
                self.offer_new_view(from);
            }
            return self.drop_input("heartbeat from a replica that does not lead this view");
        }
        let knows_more = self
            .slots
            .range(self.last_executed.next()..)
            .next()
            .is_some();
        if hb.last_executed > self.last_executed && !knows_more {
            self.request_state();
        }
    }
}
