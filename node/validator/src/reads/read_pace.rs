//! The byte budget of anonymous reads. `Status`, `Watch` and `Audit.Export` need no key, and
//! encoding, encrypting and sending what they ask for takes the cores consensus runs on: on a
//! busy machine a crowd of readers looping over them raised a requester's submit-to-decided
//! p50 fifteen-fold. Every reply, event chunk and export chunk books its size here and is sent
//! when the budget reaches it, so readers together cost a bounded share of the machine
//! whatever their number; a reader waits at most for the bookings of the readers ahead of it
//! (bounded by the caps on streams and calls).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second all anonymous reads of one validator are sent at, together.
pub const READ_BYTES_PER_SECOND: f64 = 8.0 * 1024.0 * 1024.0;

/// A shared byte budget: each booking takes its share of time after the ones before it.
pub struct ReadPace {
    next: Mutex<Instant>,
    bytes_per_second: f64,
}

impl Default for ReadPace {
    fn default() -> Self {
        Self::new(READ_BYTES_PER_SECOND)
    }
}

impl ReadPace {
    pub fn new(bytes_per_second: f64) -> Self {
        Self {
            next: Mutex::new(Instant::now()),
            bytes_per_second: bytes_per_second.max(1.0),
        }
    }

    /// Books `bytes`; when they may be sent (now if the budget has room).
    pub fn book(&self, bytes: usize) -> Instant {
        let now = Instant::now();
        let Ok(mut next) = self.next.lock() else {
            return now;
        };
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
        start
    }

    /// Books `bytes` and waits for their turn.
    pub async fn wait(&self, bytes: usize) {
        tokio::time::sleep_until(self.book(bytes).into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_queue_behind_each_other_at_the_rate() {
        let pace = ReadPace::new(1000.0);
        let first = pace.book(500);
        let second = pace.book(500);
        let third = pace.book(1);
        assert!(first <= Instant::now(), "room now: at once");
        let gap = second.duration_since(first);
        assert!(
            (Duration::from_millis(490)..=Duration::from_millis(510)).contains(&gap),
            "500 bytes at 1,000/s: half a second, {gap:?}"
        );
        assert!(third.duration_since(first) >= Duration::from_millis(990));
    }

    /// `wait` holds a reply until its booking's turn (on tokio's paused clock, which jumps to
    /// each deadline instead of sleeping, so this takes no real time).
    #[tokio::test(start_paused = true)]
    async fn wait_holds_a_reply_until_its_turn() {
        let pace = ReadPace::new(1000.0);
        let start = tokio::time::Instant::now();
        pace.wait(500).await;
        assert!(start.elapsed() < Duration::from_millis(10), "room now");
        pace.wait(500).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(490),
            "the second 500 bytes wait their half second: {waited:?}"
        );
    }

    #[test]
    fn the_default_budget_sends_eight_mebibytes_a_second() {
        let pace = ReadPace::default();
        let first = pace.book(4 * 1024 * 1024);
        let second = pace.book(1);
        let gap = second.duration_since(first);
        assert!(
            (Duration::from_millis(490)..=Duration::from_millis(510)).contains(&gap),
            "4 MiB at the default budget: half a second, {gap:?}"
        );
    }
}
