//! How long the consensus core's timers last. The core's timers are data (a kind and a backoff);
//! the runtime turns them into durations here: the configured base, doubled per backoff step.
//!
//! The view-change timeout follows what this validator measures: the time from a batch's
//! pre-prepare reaching it to the batch executing here (a consensus round: three message delays,
//! the votes' fsyncs, and any queueing under load). Once it has seen enough rounds, the base of
//! the view-change timeout is a multiple of the slow end (p99) of recent rounds, between a floor
//! and the configured value. On a quiet loopback cluster, where rounds take a few milliseconds, a
//! new primary that is dead too is given up on after a fraction of a second instead of the
//! configured second; under load or on a slow network rounds take longer and so does the
//! timeout, up to the configured value. It still doubles with every view in a row that fails
//! (the core's backoff), which is what PBFT's liveness needs. Without measurements (the primary,
//! which sees no pre-prepare from others, or a fresh validator) the configured value applies.
//!
//! Across a slow or jittery WAN the configured values can be too short for an honest cluster:
//! at 50 ms one way with 150 ms of jitter a round's slow end passes 400 ms, and a request waits
//! about two rounds, so the configured 500 ms request timeout fires while the primary does its
//! job. Both the request and the view-change timeouts therefore last at least four slow rounds,
//! up to eight times their configured value. (The silence tolerated before suspecting the
//! primary adapts in the core, in heartbeat intervals: `replica/silence_gauge.rs`.)

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use std::time::Instant;

use scbe_core::consensus::{Seq, Timer, TimerKind};

/// Recent rounds kept (a sliding window, so the timeout follows the current load).
const SAMPLES: usize = 128;
/// Rounds needed before the measurement replaces the configured value.
const MIN_SAMPLES: usize = 16;
/// Pre-prepares awaiting their execution that are remembered (bounded against a flood).
const MAX_OPEN_ROUNDS: usize = 4096;
/// View-change timeout as a multiple of the p99 latency: a view change takes a few message
/// delays more than a decision, and its messages are bigger.
const LATENCY_FACTOR: u32 = 20;
/// The request and view-change timeouts last at least this many slow (p99) rounds: a request
/// at a backup waits for its relay to the primary, the pre-prepare and the round (about two
/// rounds), and a view change for the new-view and the round after it.
const ROUNDS_AT_LEAST: u32 = 4;
/// How far past its configured value a timeout stretches at most (a primary that slows every
/// round on purpose buys at most this much).
const MAX_STRETCH: u32 = 8;
/// The shortest view-change timeout, however fast decisions are.
const FLOOR: Duration = Duration::from_millis(100);
/// Doublings applied at most (2^6 times the base).
const MAX_DOUBLINGS: u32 = 6;

pub struct Timeouts {
    configured: BTreeMap<TimerKind, Duration>,
    recent: VecDeque<Duration>,
    /// When the pre-prepare of each not yet executed sequence number arrived.
    open: BTreeMap<Seq, Instant>,
}

impl Timeouts {
    pub fn new(configured: BTreeMap<TimerKind, Duration>) -> Self {
        Self {
            configured,
            recent: VecDeque::with_capacity(SAMPLES),
            open: BTreeMap::new(),
        }
    }

    /// A pre-prepare for `seq` arrived from a peer at `at` (the first one counts).
    pub fn pre_prepared(&mut self, seq: Seq, at: Instant) {
        if self.open.len() < MAX_OPEN_ROUNDS {
            self.open.entry(seq).or_insert(at);
        }
    }

    /// `seq` executed here at `at`: its round is measured, and rounds at or below it are closed.
    pub fn executed(&mut self, seq: Seq, at: Instant) {
        if let Some(start) = self.open.get(&seq) {
            let round = at.saturating_duration_since(*start);
            self.observe(round);
        }
        self.open = self.open.split_off(&seq.next());
    }

    /// One consensus round took `latency`.
    pub fn observe(&mut self, latency: Duration) {
        if self.recent.len() == SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back(latency);
    }

    /// The duration of timer `t`: its base doubled per backoff step.
    pub fn duration(&self, t: &Timer) -> Duration {
        self.base(t.kind) * (1u32 << t.backoff.min(MAX_DOUBLINGS))
    }

    /// The base of `kind` before any doubling.
    pub fn base(&self, kind: TimerKind) -> Duration {
        let configured = self
            .configured
            .get(&kind)
            .copied()
            .unwrap_or(Duration::from_secs(1));
        // Only the view-change and request timers adapt; the periodic ones (heartbeats every
        // 50 ms) skip the sort.
        if !matches!(kind, TimerKind::ViewChange | TimerKind::Request) {
            return configured;
        }
        // Lengthening needs one round: never fewer than ROUNDS_AT_LEAST slow rounds, whatever
        // was configured, since across a slow or jittery WAN the configured value can be shorter
        // than what an honest primary needs. Shortening (the view change below its configured
        // value) waits for MIN_SAMPLES.
        let Some(slow) = self.slow_round() else {
            return configured;
        };
        let rounds = slow
            .saturating_mul(ROUNDS_AT_LEAST)
            .min(configured.saturating_mul(MAX_STRETCH));
        let ceiling = configured.max(rounds);
        match (kind, self.p99()) {
            (TimerKind::ViewChange, Some(p99)) => {
                (p99 * LATENCY_FACTOR).clamp(FLOOR.min(configured), ceiling)
            }
            _ => ceiling,
        }
    }

    /// The slow end of recent rounds: their p99 once there are enough, the slowest before.
    fn slow_round(&self) -> Option<Duration> {
        self.p99().or_else(|| self.recent.iter().copied().max())
    }

    /// The 99th percentile of recent latencies, once there are enough of them.
    fn p99(&self) -> Option<Duration> {
        if self.recent.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        let i = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
        sorted.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts::new(BTreeMap::from([
            (TimerKind::Request, Duration::from_millis(500)),
            (TimerKind::ViewChange, Duration::from_millis(1000)),
        ]))
    }

    fn timer(kind: TimerKind, backoff: u32) -> Timer {
        Timer {
            kind,
            view: scbe_core::consensus::View(0),
            backoff,
            id: 1,
        }
    }

    #[test]
    fn rounds_are_measured_from_pre_prepare_to_execution() {
        let mut t = timeouts();
        let t0 = Instant::now();
        for i in 1..=MIN_SAMPLES as u64 {
            let start = t0 + Duration::from_millis(i * 100);
            t.pre_prepared(Seq(i), start);
            // A duplicate pre-prepare later does not restart the round.
            t.pre_prepared(Seq(i), start + Duration::from_millis(3));
            t.executed(Seq(i), start + Duration::from_millis(6));
        }
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(120));
        // A batch learned by state transfer (no pre-prepare seen) adds no sample, and closes the
        // rounds below it.
        t.pre_prepared(Seq(100), t0);
        t.executed(Seq(101), t0 + Duration::from_secs(9));
        assert!(t.open.is_empty());
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(120));
    }

    #[test]
    fn without_enough_measurements_the_configured_values_apply() {
        let mut t = timeouts();
        assert_eq!(t.base(TimerKind::Request), Duration::from_millis(500));
        for _ in 0..MIN_SAMPLES - 1 {
            t.observe(Duration::from_millis(2));
        }
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(1000));
        assert_eq!(t.base(TimerKind::Request), Duration::from_millis(500));
    }

    #[test]
    fn one_slow_round_is_enough_to_lengthen_the_timeouts() {
        let mut t = timeouts();
        t.observe(Duration::from_millis(150));
        t.observe(Duration::from_millis(300));
        assert_eq!(t.base(TimerKind::Request), Duration::from_millis(1200));
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(1200));
    }

    #[test]
    fn the_view_change_timeout_follows_the_p99_latency_between_floor_and_configured() {
        let mut t = timeouts();
        // 99 fast decisions in 100 and one slow: the p99 is the slow end of the fast ones.
        for i in 0..200 {
            t.observe(Duration::from_millis(if i % 100 == 0 { 40 } else { 8 }));
        }
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(160));
        assert_eq!(
            t.base(TimerKind::Request),
            Duration::from_millis(500),
            "four slow rounds (160 ms) are within the configured request timeout"
        );
        // Very fast: the floor.
        for _ in 0..SAMPLES {
            t.observe(Duration::from_micros(500));
        }
        assert_eq!(t.base(TimerKind::ViewChange), FLOOR);
        // Slow (saturated): not beyond the configured value while it holds four slow rounds.
        for _ in 0..SAMPLES {
            t.observe(Duration::from_millis(200));
        }
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(1000));
    }

    #[test]
    fn across_a_slow_wan_timeouts_last_four_slow_rounds_up_to_eight_times_configured() {
        let mut t = timeouts();
        // Rounds of 300-420 ms (50 ms one way, jitter): the p99 is 420 ms.
        for i in 0..SAMPLES {
            t.observe(Duration::from_millis(if i % 10 == 0 { 420 } else { 300 }));
        }
        assert_eq!(t.base(TimerKind::Request), Duration::from_millis(1680));
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(1680));
        assert_eq!(
            t.base(TimerKind::Heartbeat),
            Duration::from_millis(1000),
            "periodic timers never adapt (here: the default of a kind not configured)"
        );
        // Rounds of seconds: capped at eight times the configured value.
        for _ in 0..SAMPLES {
            t.observe(Duration::from_secs(3));
        }
        assert_eq!(t.base(TimerKind::Request), Duration::from_millis(4000));
        assert_eq!(t.base(TimerKind::ViewChange), Duration::from_millis(8000));
    }

    #[test]
    fn adapted_timeouts_still_double_with_every_failed_view() {
        let mut t = timeouts();
        for _ in 0..SAMPLES {
            t.observe(Duration::from_millis(10));
        }
        let base = t.base(TimerKind::ViewChange);
        assert_eq!(base, Duration::from_millis(200));
        assert_eq!(t.duration(&timer(TimerKind::ViewChange, 0)), base);
        assert_eq!(t.duration(&timer(TimerKind::ViewChange, 3)), base * 8);
        assert_eq!(
            t.duration(&timer(TimerKind::ViewChange, 40)),
            base * 64,
            "capped doubling"
        );
    }
}
