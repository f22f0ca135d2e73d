//! The way back for a validator whose peers were re-keyed while it was down. Their
//! certificates carry keys its links do not pin, and their envelopes keys its edge cannot
//! resolve, so it hears nothing from them and cannot catch up. While a peer link is down, or
//! the edge has refused envelopes from unknown signers since the last look, [`ChainFetcher`]
//! asks the peers for their chain of validator sets (the `Status` call `scbe` makes), accepting
//! any certificate for that one call: the chain proves itself, each link checked from the
//! genesis. The sets it proves beyond the one in force go to the edge
//! ([`EdgeDirectory::learn_ahead`]), whose pins and resolver then accept the peers' new keys;
//! their state responses carry the same links, which the replica checks itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use scbe_core::consensus::ValidatorSet;
use scbe_wire::tls::{Dial, PinnedKeys};

use crate::edge_directory::EdgeDirectory;
use crate::links::Links;

/// How often the fetcher looks whether it should ask.
const LOOK_INTERVAL: Duration = Duration::from_secs(3);
/// A peer link down for good is looked into at most every `LOOK_INTERVAL << 5` (96 s).
const MAX_BACKOFF_SHIFT: u32 = 5;
/// How long one round of asks may take.
const ASK_DEADLINE: Duration = Duration::from_secs(3);

pub struct ChainFetcher {
    pub me: u32,
    /// The genesis's validator set: every chain is checked from it.
    pub genesis: ValidatorSet,
    /// Where each peer is reached (`[peers]` or the genesis).
    pub peers: BTreeMap<u32, String>,
    pub tls: bool,
    pub edge: Arc<EdgeDirectory>,
    pub links: Arc<Links>,
}

impl ChainFetcher {
    pub async fn run(self) {
        let mut strangers_seen = 0;
        // Asks for a link that stays down (a peer simply off) back off, up to
        // `LOOK_INTERVAL << MAX_BACKOFF_SHIFT`; new unknown signers ask at the next look.
        let mut backoff = 0u32;
        let mut next_for_links = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(LOOK_INTERVAL).await;
            let strangers = self.edge.unknown_signers();
            let link_down = self.links.peers().values().any(|p| !p.connected);
            let now = tokio::time::Instant::now();
            if strangers != strangers_seen {
                backoff = 0;
            } else if !link_down || now < next_for_links {
                continue;
            }
            strangers_seen = strangers;
            if self.ask_once().await.is_some() {
                backoff = 0;
            } else {
                backoff = (backoff + 1).min(MAX_BACKOFF_SHIFT);
            }
            next_for_links = now + LOOK_INTERVAL * (1 << backoff);
        }
    }

    /// Asks every peer for its chain at once and gives the edge the longest that checks from
    /// the genesis; returns the newest epoch it proves beyond what the edge knew, if any.
    pub async fn ask_once(&self) -> Option<u64> {
        let dials = self.peers.iter().filter_map(|(peer, address)| {
            if self.tls {
                let any =
                    PinnedKeys::any_key(format!("validator {peer}'s key, whatever it is now"));
                Dial::tls(address, any).ok()
            } else {
                Some(Dial::plaintext(address))
            }
        });
        let longest =
            scbe_wire::chain_ask::longest_checked_chain(dials, &self.genesis, ASK_DEADLINE).await?;
        let newest = longest.last()?.epoch();
        if !self.edge.learn_ahead(longest.into_iter().map(|l| l.set)) {
            return None;
        }
        tracing::warn!(
            node = self.me,
            in_force = self.edge.current().epoch(),
            newest,
            "peers are in later validator-set epochs, proven from the genesis by their chain: \
             accepting their keys in those sets to catch up"
        );
        Some(newest)
    }
}
