//! The simulated network between validators: per-message delay (hence reordering), loss,
//! duplication, partitions and one slow replica. Decides only *when* copies arrive; the event queue carries them.

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::scenario::Scenario;

pub struct Network {
    delay_min_ms: u64,
    delay_max_ms: u64,
    drop_rate: f64,
    duplicate_rate: f64,
    /// One side of the current cut, if any.
    partition: Option<BTreeSet<usize>>,
    /// A slow replica and the most extra delay each of its messages gets.
    slow: Option<(usize, u64)>,
}

impl Network {
    pub fn new(sc: &Scenario) -> Self {
        Self {
            delay_min_ms: sc.delay_min_ms,
            delay_max_ms: sc.delay_max_ms,
            drop_rate: sc.drop_rate,
            duplicate_rate: sc.duplicate_rate,
            partition: None,
            slow: sc.slow,
        }
    }

    pub fn partition(&mut self, side: BTreeSet<usize>) {
        self.partition = Some(side);
    }

    pub fn heal_partition(&mut self) {
        self.partition = None;
    }

    /// Stops loss and duplication for the liveness phase (delays and reordering stay).
    pub fn heal_all(&mut self) {
        self.partition = None;
        self.drop_rate = 0.0;
        self.duplicate_rate = 0.0;
    }

    pub fn connected(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            Some(side) => side.contains(&a) == side.contains(&b),
            None => true,
        }
    }

    /// Delays (ms from now) of the copies of one message from `from` to `to`: none if lost or
    /// cut off, two if duplicated.
    pub fn route(&self, rng: &mut ChaCha8Rng, from: usize, to: usize) -> Vec<u64> {
        if !self.connected(from, to) || rng.random_bool(self.drop_rate) {
            return Vec::new();
        }
        let mut delays = vec![rng.random_range(self.delay_min_ms..=self.delay_max_ms)];
        if rng.random_bool(self.duplicate_rate) {
            delays.push(rng.random_range(self.delay_min_ms..=self.delay_max_ms * 3));
        }
        if let Some((slow, jitter)) = self.slow {
            if slow == from {
                for d in &mut delays {
                    *d += rng.random_range(0..=jitter);
                }
            }
        }
        delays
    }
}
