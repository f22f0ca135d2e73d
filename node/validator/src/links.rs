//! What this validator knows of its links: whether each peer link is up, and every refusal for
//! a genesis mismatch, either way (a peer refused us, or we refused a caller). `scbe status` and
//! `/metrics` read it; a split cluster shows here, not only in a log line.

use std::collections::BTreeMap;
use std::sync::Mutex;

use scbe_core::consensus::Digest;

/// One peer link as this validator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerLinkState {
    pub address: String,
    /// The stream to the peer is open.
    pub connected: bool,
    /// The peer refused this validator's genesis: the peer's digest.
    pub refused_genesis: Option<Digest>,
    /// The last reason the link was down, if it is.
    pub problem: Option<String>,
}

/// A caller this validator refused for presenting another genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedCaller {
    /// Who, as the connection says (its address).
    pub from: String,
    pub presented: Option<Digest>,
    pub count: u64,
}

/// How many distinct refused callers are kept for `scbe status`.
pub const MAX_REFUSED_CALLERS: usize = 32;

#[derive(Default)]
pub struct Links {
    peers: Mutex<BTreeMap<u32, PeerLinkState>>,
    refused: Mutex<BTreeMap<String, RefusedCaller>>,
}

impl Links {
    pub fn update(&self, peer: u32, f: impl FnOnce(&mut PeerLinkState)) {
        if let Ok(mut m) = self.peers.lock() {
            f(m.entry(peer).or_default());
        }
    }

    pub fn peers(&self) -> BTreeMap<u32, PeerLinkState> {
        self.peers.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// A caller presented `presented` instead of this validator's genesis.
    pub fn refused(&self, from: String, presented: Option<Digest>) {
        if let Ok(mut m) = self.refused.lock() {
            // Callers name themselves: past the cap, new names are not kept (the metric still
            // counts every refusal), so a caller cycling names cannot grow this without bound.
            if m.len() >= MAX_REFUSED_CALLERS && !m.contains_key(&from) {
                return;
            }
            let e = m.entry(from.clone()).or_insert(RefusedCaller {
                from,
                presented,
                count: 0,
            });
            e.presented = presented;
            e.count += 1;
        }
    }

    pub fn refused_callers(&self) -> Vec<RefusedCaller> {
        self.refused
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}
