//! Outbound links: one long-lived `Consensus.Stream` per peer, fed from a bounded queue,
//! reconnecting with capped exponential backoff. Messages queued while a peer is down wait in the
//! queue; once it is full, new ones are dropped (and counted), and the core's retransmission
//! (status ticks, view-change resends) recovers them.

use std::sync::Arc;
use std::time::Duration;

use scbe_proto::v1::consensus_client::ConsensusClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use scbe_core::consensus::{Digest, Envelope};
use scbe_wire::genesis::{present, present_caller, refused_genesis};
use scbe_wire::key_file::encode_hex as hex;
use scbe_wire::tls::Link;

use crate::links::Links;

use scbe_wire::{envelope_to_proto, MAX_ENVELOPE_BYTES};

/// Envelopes buffered per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 8192;
/// Wait before calling again a peer that refused this validator's genesis (it will not change
/// its mind until an operator fixes one side).
const REFUSED_BACKOFF: Duration = Duration::from_secs(5);

/// The link to validator `peer` at `addr` (`host:port`, resolved again at every reconnect): the
/// queue to send into, and the task that drains it (it runs until the queue closes, when the
/// validator shuts down). Every stream presents `genesis` and names validator `me` as its
/// caller; what happens to the link is kept in `links`.
pub fn peer_link(
    me: u32,
    peer: u32,
    (addr, link): (String, Link),
    genesis: Digest,
    links: Arc<Links>,
) -> (
    mpsc::Sender<Arc<Envelope>>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel(PEER_QUEUE);
    (tx, run(me, peer, (addr, link), genesis, links, rx))
}

async fn run(
    me: u32,
    peer: u32,
    (addr, link): (String, Link),
    genesis: Digest,
    links: Arc<Links>,
    mut rx: mpsc::Receiver<Arc<Envelope>>,
) {
    links.update(peer, |l| l.address = addr.clone());
    let mut backoff = Duration::from_millis(20);
    loop {
        let endpoint = match link.endpoint(&addr) {
            Ok(e) => e,
            Err(e) => {
                // Addresses are checked at start-up; the supervisor stops the validator.
                tracing::error!(peer, %addr, "bad peer address: {e}");
                return;
            }
        };
        let client = match link.connect(endpoint).await {
            Ok(ch) => ConsensusClient::new(ch)
                .max_encoding_message_size(MAX_ENVELOPE_BYTES)
                .max_decoding_message_size(MAX_ENVELOPE_BYTES),
            Err(e) => {
                // A refused certificate is in the error's causes, not its message.
                let e = scbe_wire::tls::error_chain(&e);
                tracing::debug!(peer, %addr, "peer unreachable: {e}; retrying in {backoff:?}");
                links.update(peer, |l| {
                    l.connected = false;
                    l.problem = Some(format!("unreachable: {e}"));
                });
                tokio::time::sleep(backoff).await;
                if rx.is_closed() {
                    return; // node shutting down
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                // Keep what is queued: at start-up peers come up a few milliseconds apart, and
                // the queue is bounded (senders drop, and count, when it is full).
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        let (stx, srx) = mpsc::channel(1024);
        let mut client = client;
        let mut request = tonic::Request::new(ReceiverStream::new(srx));
        present(&mut request, &genesis);
        present_caller(&mut request, &format!("validator {me}"));
        let mut call = tokio::spawn(async move { client.stream(request).await });
        tracing::debug!(peer, %addr, "peer stream open");
        links.update(peer, |l| {
            l.connected = true;
            l.problem = None;
        });
        let ended = loop {
            tokio::select! {
                env = rx.recv() => {
                    let Some(env) = env else {
                        call.abort();
                        return; // node shutting down
                    };
                    if stx.send(envelope_to_proto(&env)).await.is_err() {
                        break (&mut call).await;
                    }
                }
                ended = &mut call => break ended,
            }
        };
        let status = match ended {
            Ok(Err(status)) => status,
            _ => tonic::Status::unavailable("the stream ended"),
        };
        match refused_genesis(&status) {
            Some(theirs) => {
                tracing::warn!(
                    peer,
                    %addr,
                    ours = %hex(genesis.as_bytes()),
                    theirs = %hex(theirs.as_bytes()),
                    "the peer refuses this validator's genesis: one of the two runs another cluster's genesis file"
                );
                links.update(peer, |l| {
                    l.connected = false;
                    l.refused_genesis = Some(theirs);
                    l.problem = Some(status.message().to_string());
                });
                tokio::time::sleep(REFUSED_BACKOFF).await;
            }
            None => {
                links.update(peer, |l| {
                    l.connected = false;
                    l.problem = Some(format!("stream ended: {}", status.message()));
                });
            }
        }
    }
}
