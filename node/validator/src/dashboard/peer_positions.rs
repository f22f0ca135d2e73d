//! The other validators' positions for the dashboard: while at least one dashboard stream is
//! open, the serving validator asks each peer's `Status` (brief: no summary) every
//! [`POLL_EVERY`], over the same pinned TLS link a requester would use. A peer that does not
//! answer keeps its last position, marked with its age; nothing here touches consensus.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scbe_proto::v1 as pb;
use scbe_wire::tls::Link;
use tokio::sync::Semaphore;

/// How often peers are asked while someone watches.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// One peer's answer, at most.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A peer's position as it last answered.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerPosition {
    pub view: u64,
    pub status: String,
    pub executed: u64,
    pub stable_checkpoint: u64,
    pub diverged_at: Option<u64>,
    pub at: Instant,
}

/// The peers to ask: id, address, and the link that pins the peer's key.
pub type Peer = (u32, String, Link);

#[derive(Default)]
pub struct PeerPositions {
    latest: Mutex<BTreeMap<u32, PeerPosition>>,
    /// Peers the quorum added while this node ran (the ones it started with are given to
    /// [`PeerPositions::poll`]).
    added: Mutex<Vec<Peer>>,
}

impl PeerPositions {
    pub fn latest(&self) -> BTreeMap<u32, PeerPosition> {
        self.latest.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// A validator the quorum added: asked like the others from the next poll on.
    pub fn add_peer(&self, peer: Peer) {
        if let Ok(mut a) = self.added.lock() {
            a.push(peer);
        }
    }

    fn record(&self, id: u32, p: PeerPosition) {
        if let Ok(mut m) = self.latest.lock() {
            m.insert(id, p);
        }
    }

    /// Polls every peer while `watching` has permits taken (open dashboard streams, out of
    /// `max_watching`), until the task is dropped.
    pub async fn poll(
        self: Arc<Self>,
        peers: Vec<Peer>,
        watching: Arc<Semaphore>,
        max_watching: usize,
    ) {
        let mut channels: BTreeMap<u32, tonic::transport::Channel> = BTreeMap::new();
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if watching.available_permits() == max_watching {
                continue; // nobody is looking
            }
            let added = self.added.lock().map(|a| a.clone()).unwrap_or_default();
            for (id, addr, link) in peers.iter().chain(&added) {
                let ch = match channels.get(id) {
                    Some(ch) => ch.clone(),
                    None => match tokio::time::timeout(CALL_TIMEOUT, link.connect_to(addr)).await {
                        Ok(Ok(ch)) => {
                            channels.insert(*id, ch.clone());
                            ch
                        }
                        _ => continue,
                    },
                };
                let mut c = pb::governance_client::GovernanceClient::new(ch);
                let asked = c.status(pb::StatusRequest {
                    brief: true,
                    ..Default::default()
                });
                match tokio::time::timeout(CALL_TIMEOUT, asked).await {
                    Ok(Ok(r)) => {
                        let r = r.into_inner();
                        self.record(
                            *id,
                            PeerPosition {
                                view: r.view,
                                status: r.status,
                                executed: r.last_executed,
                                stable_checkpoint: r.stable_checkpoint,
                                diverged_at: (r.diverged_at > 0).then_some(r.diverged_at),
                                at: Instant::now(),
                            },
                        );
                    }
                    _ => {
                        // Connect again next time (the peer may have restarted elsewhere).
                        channels.remove(id);
                    }
                }
            }
        }
    }
}
