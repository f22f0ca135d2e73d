//! The summary's JSON, built once per published model and reused for a short while: a crowd
//! polling `Status` costs a copy of shared bytes each, not a summary and an encoding each.
//! Health is monitored outside the core and changes between models, so an entry also expires
//! after [`STATUS_CACHE_TTL`]; a new model (a decision, a view change) replaces it at once, so
//! a client that saw its request decided reads the state after it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one encoded summary is served for the same model.
pub const STATUS_CACHE_TTL: Duration = Duration::from_millis(100);

pub struct StatusCache {
    entry: Mutex<Option<(u64, Instant, Arc<String>)>>,
    ttl: Duration,
}

impl Default for StatusCache {
    fn default() -> Self {
        Self::with_ttl(STATUS_CACHE_TTL)
    }
}

impl StatusCache {
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            entry: Mutex::new(None),
            ttl,
        }
    }

    /// The cached JSON for model `generation`, or `build`'s (then cached).
    pub fn get_or_build(&self, generation: u64, build: impl FnOnce() -> String) -> Arc<String> {
        if let Ok(e) = self.entry.lock() {
            if let Some((g, at, json)) = e.as_ref() {
                if *g == generation && at.elapsed() < self.ttl {
                    return Arc::clone(json);
                }
            }
        }
        // Built outside the lock: two readers may both build; neither waits on the other.
        let json = Arc::new(build());
        if let Ok(mut e) = self.entry.lock() {
            *e = Some((generation, Instant::now(), Arc::clone(&json)));
        }
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_build_per_model_and_a_new_model_replaces_it() {
        let cache = StatusCache::default();
        let mut builds = 0;
        for _ in 0..5 {
            cache.get_or_build(1, || {
                builds += 1;
                "a".into()
            });
        }
        assert_eq!(builds, 1);
        let b = cache.get_or_build(2, || "b".into());
        assert_eq!(*b, "b", "a new model is never served the old summary");
    }

    #[test]
    fn an_expired_entry_is_rebuilt() {
        // Health moves between models: with no time to live, every read builds.
        let cache = StatusCache::with_ttl(Duration::ZERO);
        cache.get_or_build(1, || "a".into());
        let again = cache.get_or_build(1, || "a2".into());
        assert_eq!(*again, "a2");
    }
}
