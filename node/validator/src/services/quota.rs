//! Per-requester quotas at the client API: at most `requests` requests and `bytes` bytes per
//! `window` from one key, checked after its signature (so only registered keys take a slot) and
//! before anything is ordered; over it, `Submit` answers RESOURCE_EXHAUSTED with when to retry.
//! Each validator counts what reaches it, so a requester spreading over every validator gets at
//! most `n` times the quota. Local to this node (a fixed window on its own clock), never part of
//! the replicated state.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scbe_core::crypto::PublicKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaLimits {
    pub requests: u32,
    pub bytes: u64,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requester quota exceeded: {what} per {window:?} on this validator; retry in {retry_in:?}")]
pub struct QuotaExceeded {
    pub what: String,
    pub window: Duration,
    pub retry_in: Duration,
}

struct Usage {
    since: Instant,
    requests: u32,
    bytes: u64,
}

pub struct Quotas {
    limits: QuotaLimits,
    usage: Mutex<BTreeMap<PublicKey, Usage>>,
}

impl Quotas {
    pub fn new(limits: QuotaLimits) -> Self {
        Self {
            limits,
            usage: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts a request of `bytes` from `signer` at `now`, or refuses it (then nothing counts).
    pub fn admit(&self, signer: &PublicKey, bytes: u64, now: Instant) -> Result<(), QuotaExceeded> {
        let l = self.limits;
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = usage.entry(*signer).or_insert(Usage {
            since: now,
            requests: 0,
            bytes: 0,
        });
        if now.saturating_duration_since(u.since) >= l.window {
            *u = Usage {
                since: now,
                requests: 0,
                bytes: 0,
            };
        }
        let over = if u.requests >= l.requests {
            Some(format!("{} requests", l.requests))
        } else if u.bytes.saturating_add(bytes) > l.bytes {
            Some(format!("{} bytes", l.bytes))
        } else {
            None
        };
        if let Some(what) = over {
            return Err(QuotaExceeded {
                what,
                window: l.window,
                retry_in: (u.since + l.window).saturating_duration_since(now),
            });
        }
        u.requests += 1;
        u.bytes = u.bytes.saturating_add(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::crypto::Keypair;

    #[test]
    fn requests_and_bytes_are_capped_per_window_and_per_key() {
        let q = Quotas::new(QuotaLimits {
            requests: 3,
            bytes: 1000,
            window: Duration::from_secs(60),
        });
        let a = Keypair::from_label("a").public();
        let b = Keypair::from_label("b").public();
        let t0 = Instant::now();
        for _ in 0..3 {
            q.admit(&a, 10, t0).expect("within quota");
        }
        let e = q.admit(&a, 10, t0).expect_err("fourth request");
        assert!(e.what.contains("3 requests"), "{e}");
        assert_eq!(e.retry_in, Duration::from_secs(60));
        q.admit(&b, 999, t0).expect("another key has its own quota");
        let e = q.admit(&b, 2, t0).expect_err("over the bytes");
        assert!(e.what.contains("1000 bytes"), "{e}");
        q.admit(&a, 10, t0 + Duration::from_secs(60))
            .expect("a new window");
    }
}
