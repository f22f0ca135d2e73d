//! Links to the other validators: made at start for the peers this node knows (the genesis's,
//! and `[peers]` in node.toml), and while it runs for each validator the quorum adds. An added
//! validator is dialed where node.toml's `[peers]` says, or else at the address its addition
//! named (the ledger keeps it), pinned to its key in the set in force like every other link.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;

use scbe_core::consensus::{Digest, Envelope};
use scbe_wire::tls::Transport;

use crate::edge_directory::EdgeDirectory;
use crate::links::Links;
use crate::services::peer::peer_link;

/// Why a link to a peer was not made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("no address is known for validator {0}: neither node.toml's [peers] nor its addition names one")]
    NoAddress(u32),
    #[error("validator {peer} is reached at {address}, which is not loopback, and this node runs plaintext (remove tls.plaintext)")]
    PlaintextOffLoopback { peer: u32, address: String },
    #[error("TLS for the link to validator {peer}: {detail}")]
    Tls { peer: u32, detail: String },
}

/// Makes the links to peers (see the module doc).
pub struct PeerDialer {
    me: u32,
    genesis: Digest,
    transport: Transport,
    /// Where node.toml (over the genesis) says each peer is reached.
    configured: BTreeMap<u32, String>,
    links: Arc<Links>,
    edge: Arc<EdgeDirectory>,
    /// The dashboard's peer poller, if this node serves a dashboard: added validators are
    /// asked too.
    dashboard: Option<Arc<crate::dashboard::peer_positions::PeerPositions>>,
    /// Members this node could not link to (warned about once each).
    unlinked: std::collections::BTreeSet<u32>,
}

/// A link: the queue the runtime sends on, and the task that drives it.
pub type PeerLink = (
    mpsc::Sender<Arc<Envelope>>,
    std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
);

impl PeerDialer {
    pub fn new(
        me: u32,
        genesis: Digest,
        transport: Transport,
        configured: BTreeMap<u32, String>,
        links: Arc<Links>,
        edge: Arc<EdgeDirectory>,
    ) -> Self {
        PeerDialer {
            me,
            genesis,
            transport,
            configured,
            links,
            edge,
            dashboard: None,
            unlinked: Default::default(),
        }
    }

    /// Links to each of `members` (validator ids of the set in force) other than this node
    /// that `linked` lacks, each at node.toml's address or the one `named` gives (its
    /// addition's): (peer, task name, link). A member that cannot be linked is warned about
    /// once, and tried again the next time.
    pub fn link_new<Q>(
        &mut self,
        members: &[u32],
        linked: &BTreeMap<u32, Q>,
        named: impl Fn(u32) -> Option<String>,
    ) -> Vec<(u32, String, PeerLink)> {
        let mut made = Vec::new();
        for &peer in members {
            if peer == self.me || linked.contains_key(&peer) {
                continue;
            }
            let dialed = self
                .address_of(peer, named(peer).as_deref())
                .ok_or(DialError::NoAddress(peer))
                .and_then(|address| {
                    let name = format!("peer link to validator {peer} at {address}");
                    let link = self.dial(peer, address.clone())?;
                    self.show_on_dashboard(peer, address)?;
                    Ok((name, link))
                });
            match dialed {
                Ok((name, link)) => {
                    self.unlinked.remove(&peer);
                    made.push((peer, name, link));
                }
                Err(e) => {
                    if self.unlinked.insert(peer) {
                        tracing::warn!(node = self.me, peer, "no link to validator {peer}: {e}");
                    }
                }
            }
        }
        made
    }

    /// The dashboard's peer poller, which links made from now on are handed to.
    pub fn with_dashboard(
        mut self,
        peers: Option<Arc<crate::dashboard::peer_positions::PeerPositions>>,
    ) -> Self {
        self.dashboard = peers;
        self
    }

    /// A validator the quorum added is polled by the dashboard too (at `address`, pinned
    /// like its link).
    fn show_on_dashboard(&self, peer: u32, address: String) -> Result<(), DialError> {
        if let Some(d) = &self.dashboard {
            d.add_peer((peer, address, self.pinned_link(peer)?));
        }
        Ok(())
    }

    /// A link whose TLS accepts only `peer`'s keys in the set in force (they follow epochs).
    fn pinned_link(&self, peer: u32) -> Result<scbe_wire::tls::Link, DialError> {
        self.transport
            .link(self.edge.add_peer(peer))
            .map_err(|e| DialError::Tls {
                peer,
                detail: e.to_string(),
            })
    }

    /// Where `peer` is reached: node.toml's say, else `named` (its addition's).
    fn address_of(&self, peer: u32, named: Option<&str>) -> Option<String> {
        self.configured
            .get(&peer)
            .cloned()
            .or_else(|| named.map(str::to_string))
    }

    /// A link to `peer` at `address`, its TLS pinned to the peer's keys in the set in force.
    pub fn dial(&self, peer: u32, address: String) -> Result<PeerLink, DialError> {
        if !self.transport.is_tls() {
            scbe_wire::tls::plaintext_on_loopback("tls.plaintext", [address.clone()]).map_err(
                |_| DialError::PlaintextOffLoopback {
                    peer,
                    address: address.clone(),
                },
            )?;
        }
        let to = self.pinned_link(peer)?;
        let (queue, task) = peer_link(
            self.me,
            peer,
            (address, to),
            self.genesis,
            Arc::clone(&self.links),
        );
        Ok((queue, Box::pin(task)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::Directory;
    use scbe_core::crypto::Keypair;

    /// Which members get a link: not this node, not one linked already, one with an address
    /// (node.toml's over its addition's), and never a plaintext link off loopback.
    #[test]
    fn links_are_made_to_unlinked_members_at_the_address_node_toml_or_the_addition_gives() {
        let keys: Vec<_> = (0..4)
            .map(|i| Keypair::from_label(&format!("dialer{i}")).public())
            .collect();
        let edge = Arc::new(EdgeDirectory::new(
            Directory::new(keys, Vec::new()).expect("directory"),
            [1, 2, 3],
        ));
        let configured = BTreeMap::from([(5, "127.0.0.1:7005".to_string())]);
        let mut d = PeerDialer::new(
            0,
            Digest([1; 32]),
            Transport::Plaintext,
            configured,
            Arc::new(Links::default()),
            edge,
        );
        let linked: BTreeMap<u32, ()> = BTreeMap::from([(1, ()), (2, ()), (3, ())]);
        let named = |p: u32| match p {
            4 => Some("127.0.0.1:7004".to_string()),
            5 => Some("127.0.0.1:9999".to_string()),
            7 => Some("validator-7.example.net:7000".to_string()),
            _ => None,
        };
        let made = d.link_new(&[0, 1, 2, 3, 4, 5, 6, 7], &linked, named);
        let names: Vec<(u32, String)> = made.into_iter().map(|(p, n, _)| (p, n)).collect();
        assert_eq!(
            names,
            vec![
                (4, "peer link to validator 4 at 127.0.0.1:7004".to_string()),
                (5, "peer link to validator 5 at 127.0.0.1:7005".to_string()),
            ],
            "6 has no address, 7 is off loopback under plaintext"
        );
        assert_eq!(d.unlinked.iter().copied().collect::<Vec<_>>(), vec![6, 7]);
    }
}
