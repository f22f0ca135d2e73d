//! Keeps a primary's heartbeats going while its loop is inside one long turn.
//!
//! Backups count their primary's silence in heartbeat intervals (4 of 50 ms by default), and the
//! core signs a heartbeat only between turns. A turn can be long: it waits for its redb commit
//! (under saturation the primary's commits took 100-200 ms, and in disk stalls every validator's
//! took up to 320 ms at once) and, at the start of saturation, checks hundreds of requests. That
//! was long enough for backups to suspect a working primary (a 1,200 s `scbe-sim bench` run had
//! two such view changes in 400 s of saturation; one at light load stranded a replica in a higher
//! view). The pacer re-sends the latest heartbeat the core signed, once per interval, while a
//! turn has been running for at least an interval, and for at most [`PACE_LIMIT`]. A heartbeat
//! carries no vote, so sending it before the turn's records are durable promises nothing; it
//! says "alive, in this view", which is true. A primary whose loop
//! is stuck beyond the limit goes silent and is replaced as before, and one that heartbeats but
//! does not order is still caught by the request timer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use scbe_core::consensus::Envelope;

/// Longest turn a primary's heartbeats are kept going through: the default request timeout,
/// well above the slowest commits seen (320 ms), well below anything that should pass as alive.
pub const PACE_LIMIT: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    /// The last heartbeat the core signed while this validator led its view in normal operation.
    latest: Option<Arc<Envelope>>,
    /// When the running loop turn started, if one is running.
    turn_since: Option<Instant>,
}

#[derive(Default)]
pub struct HeartbeatPacer {
    state: Mutex<State>,
    /// Links to peers the quorum added while this node ran (the ones it started with are given
    /// to [`HeartbeatPacer::run`]).
    added: Mutex<Vec<mpsc::Sender<Arc<Envelope>>>>,
}

impl HeartbeatPacer {
    /// The core signed `heartbeat` this turn.
    pub fn signed(&self, heartbeat: Arc<Envelope>) {
        if let Ok(mut s) = self.state.lock() {
            s.latest = Some(heartbeat);
        }
    }

    /// A link to a peer the quorum added: due heartbeats go to it too.
    pub fn add_peer(&self, link: mpsc::Sender<Arc<Envelope>>) {
        if let Ok(mut a) = self.added.lock() {
            a.push(link);
        }
    }

    /// This validator no longer leads a view in normal operation: nothing to keep going.
    pub fn forget(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.latest = None;
        }
    }

    pub fn turn_started(&self, at: Instant) {
        if let Ok(mut s) = self.state.lock() {
            s.turn_since = Some(at);
        }
    }

    pub fn turn_ended(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.turn_since = None;
        }
    }

    /// The heartbeat to re-send at `now`, if one is due: a turn running for at least
    /// `interval` and at most [`PACE_LIMIT`], and a heartbeat to send.
    pub fn due(&self, now: Instant, interval: Duration) -> Option<Arc<Envelope>> {
        let s = self.state.lock().ok()?;
        let running = now.saturating_duration_since(s.turn_since?);
        if running < interval || running > PACE_LIMIT {
            return None;
        }
        s.latest.clone()
    }

    /// Every `interval`, re-sends a due heartbeat to every peer (dropped if a peer's queue is
    /// full: a heartbeat is worth nothing late).
    pub async fn run(self: Arc<Self>, peers: Vec<mpsc::Sender<Arc<Envelope>>>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(hb) = self.due(Instant::now(), interval) {
                let added = self.added.lock().map(|a| a.clone()).unwrap_or_default();
                for p in peers.iter().chain(&added) {
                    let _ = p.try_send(Arc::clone(&hb));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> Arc<Envelope> {
        let key = scbe_core::crypto::Keypair::from_label("primary");
        Arc::new(Envelope::seal(
            scbe_core::consensus::Kind::Heartbeat,
            vec![1, 2, 3],
            &key,
        ))
    }

    #[test]
    fn a_heartbeat_is_due_only_during_a_turn_between_one_interval_and_the_limit() {
        let p = HeartbeatPacer::default();
        let iv = Duration::from_millis(50);
        let t0 = Instant::now();
        assert!(p.due(t0, iv).is_none(), "nothing signed, no turn");
        p.signed(heartbeat());
        assert!(
            p.due(t0, iv).is_none(),
            "no turn running: the loop sends its own"
        );
        p.turn_started(t0);
        assert!(
            p.due(t0 + Duration::from_millis(10), iv).is_none(),
            "too soon"
        );
        assert_eq!(
            p.due(t0 + Duration::from_millis(60), iv),
            Some(heartbeat()),
            "a turn one interval long"
        );
        assert!(p.due(t0 + PACE_LIMIT, iv).is_some());
        assert!(
            p.due(t0 + PACE_LIMIT + Duration::from_millis(1), iv)
                .is_none(),
            "a loop stuck beyond the limit lets the primary go silent"
        );
        p.turn_ended();
        assert!(p.due(t0 + Duration::from_millis(60), iv).is_none());
        p.turn_started(t0);
        p.forget();
        assert!(
            p.due(t0 + Duration::from_millis(60), iv).is_none(),
            "no longer leading"
        );
    }
}
