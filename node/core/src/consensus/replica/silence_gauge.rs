//! How much silence from the primary a backup tolerates, learned from the silences it has seen.
//!
//! A backup suspects its primary after `silence_ticks` heartbeat intervals without a word from
//! it (`heartbeat.rs`). Over a link with a constant delay heartbeats arrive one interval apart
//! however long the delay, but jitter bunches them: with 150 ms of jitter on 50 ms heartbeats an
//! honest primary regularly goes four intervals unheard, the configured limit, and a backup
//! whose peers see the same would depose it for nothing. So each backup measures, in its own
//! heartbeat intervals, the silences after which the primary of its view was heard again, and
//! tolerates twice the longest of the recent ones: never less than configured (a steady link
//! fails over as fast as before), never more than [`MAX_STRETCH`] times it, so a primary that
//! stalls on purpose to train its backups buys at most that much. A silence is measured between
//! two messages of one view's primary, so a view change's own pause does not count. Until it
//! first hears a primary a replica has just started, and its links' handshakes across a WAN
//! take several round trips: it tolerates the most. Counted in
//! the replica's ticks, not clock time: the core stays deterministic and the simulator exercises
//! it as it runs.

use std::collections::VecDeque;

use super::super::types::View;

/// Silences remembered: a primary is heard about once per interval, so at 50 ms heartbeats these
/// are the last ~13 s (a rare long gap keeps counting for that long).
pub const SAMPLES: usize = 256;
/// The silence tolerated is at most this many times the configured one.
pub const MAX_STRETCH: u32 = 4;

#[derive(Debug, Default)]
pub struct SilenceGauge {
    /// Recent silences, in heartbeat intervals (at least 1: messages within one interval of each
    /// other are not a silence).
    recent: VecDeque<u32>,
    /// The view and tick in which its primary was last heard.
    heard_at: Option<(View, u64)>,
}

impl SilenceGauge {
    /// The primary of `view` was heard at tick `now`.
    pub fn heard(&mut self, view: View, now: u64) {
        if let Some((v, at)) = self.heard_at {
            let silence = now.saturating_sub(at);
            if v == view && silence > 0 {
                if self.recent.len() == SAMPLES {
                    self.recent.pop_front();
                }
                self.recent
                    .push_back(u32::try_from(silence).unwrap_or(u32::MAX));
            }
        }
        self.heard_at = Some((view, now));
    }

    /// Intervals of silence tolerated before any doubling for failed views: twice the longest
    /// recent silence, between `configured` and `MAX_STRETCH` times it; the most until a primary
    /// was first heard (a replica just started: its links are still being set up, and their
    /// handshakes across a WAN take several round trips).
    pub fn allowed(&self, configured: u32) -> u32 {
        let most = configured.saturating_mul(MAX_STRETCH);
        if self.heard_at.is_none() {
            return most;
        }
        let longest = self.recent.iter().copied().max().unwrap_or(0);
        longest.saturating_mul(2).clamp(configured, most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_primary_keeps_the_configured_silence() {
        let mut g = SilenceGauge::default();
        assert_eq!(g.allowed(4), 16, "no primary heard yet: the most");
        for t in 0..100 {
            g.heard(View(0), t);
        }
        assert_eq!(g.allowed(4), 4);
    }

    #[test]
    fn the_longest_recent_silence_counts_twice_within_bounds() {
        let mut g = SilenceGauge::default();
        g.heard(View(0), 0);
        g.heard(View(0), 3);
        g.heard(View(0), 4);
        assert_eq!(g.allowed(4), 6, "a silence of 3 intervals: 6 tolerated");
        g.heard(View(0), 100);
        assert_eq!(g.allowed(4), 16, "at most 4 times the configured");
        assert_eq!(g.allowed(0), 0, "silence detection off stays off");
    }

    #[test]
    fn a_view_change_pause_is_not_a_silence() {
        let mut g = SilenceGauge::default();
        g.heard(View(0), 0);
        g.heard(View(1), 50);
        g.heard(View(1), 51);
        // Heard twice within one interval: no silence either.
        g.heard(View(1), 51);
        assert_eq!(g.recent, [1]);
        assert_eq!(g.allowed(4), 4);
    }

    #[test]
    fn only_the_last_samples_count() {
        let mut g = SilenceGauge::default();
        g.heard(View(0), 0);
        g.heard(View(0), 5);
        assert_eq!(g.allowed(4), 10);
        for t in 6..5 + SAMPLES as u64 {
            g.heard(View(0), t);
        }
        assert_eq!(g.recent.len(), SAMPLES);
        assert_eq!(
            g.allowed(4),
            10,
            "the long silence is the oldest sample still"
        );
        g.heard(View(0), 5 + SAMPLES as u64);
        assert_eq!(g.allowed(4), 4, "and now it is forgotten");
    }
}
