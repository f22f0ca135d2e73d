//! Channels to peers and agents kept from one rollout step to the next. A tonic channel
//! multiplexes calls over one HTTP/2 connection and reconnects by itself; made afresh for every
//! step, each step paid a TCP and a TLS handshake (two round trips) to every validator it asked
//! for endorsements and to every agent it ordered, before the first byte of the order. Across a
//! WAN that is most of a rollback's reaction time (`scbe-sim bench-fleet --delay`).
//!
//! A channel is kept per (callee key, address, call timeout): a re-keyed or moved agent gets a
//! new one. Bounded: when full, the cache starts over (the dropped channels close once their
//! calls end).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use scbe_core::crypto::PublicKey;
use tonic::transport::Channel;

/// Channels kept at most (validators and agents, each with a few call timeouts).
const MAX_CHANNELS: usize = 16 * 1024;

type ChannelKey = (PublicKey, String, Duration);

#[derive(Default)]
pub struct ChannelCache {
    channels: Mutex<BTreeMap<ChannelKey, Channel>>,
}

impl ChannelCache {
    /// The kept channel for `(key, addr, timeout)`, or the one `make` returns (then kept).
    pub fn get_or_make<E>(
        &self,
        key: PublicKey,
        addr: &str,
        timeout: Duration,
        make: impl FnOnce() -> Result<Channel, E>,
    ) -> Result<Channel, E> {
        let id = (key, addr.to_string(), timeout);
        // A poisoned lock only means another task panicked while holding it; the map is intact.
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = channels.get(&id) {
            return Ok(ch.clone());
        }
        let ch = make()?;
        if channels.len() >= MAX_CHANNELS {
            channels.clear();
        }
        channels.insert(id, ch.clone());
        Ok(ch)
    }

    /// Channels kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.channels.lock().map_or(0, |c| c.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::crypto::Keypair;

    fn lazy(addr: &str) -> Result<Channel, String> {
        Ok(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| e.to_string())?
                .connect_lazy(),
        )
    }

    #[tokio::test]
    async fn a_channel_is_made_once_per_callee_address_and_timeout() {
        let cache = ChannelCache::default();
        let (a, b) = (
            Keypair::from_label("a").public(),
            Keypair::from_label("b").public(),
        );
        let second = Duration::from_secs(1);
        let mut made = 0;
        for (key, addr, timeout) in [
            (a, "127.0.0.1:1", second),
            (a, "127.0.0.1:1", second),
            (a, "127.0.0.1:2", second),
            (b, "127.0.0.1:1", second),
            (a, "127.0.0.1:1", second * 2),
            (b, "127.0.0.1:1", second),
        ] {
            cache
                .get_or_make(key, addr, timeout, || {
                    made += 1;
                    lazy(addr)
                })
                .expect("made");
        }
        assert_eq!(made, 4, "the repeats were served from the cache");
        assert_eq!(cache.len(), 4);
        let refused: Result<Channel, String> =
            cache.get_or_make(b, "127.0.0.1:3", second, || Err("no".into()));
        assert!(refused.is_err());
        assert_eq!(cache.len(), 4, "a failure is not kept");
    }
}
