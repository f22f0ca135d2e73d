//! Outbound links: one long-lived `Consensus.Stream` per peer, fed from a bounded queue,
//! reconnecting with capped exponential backoff. Messages queued while a peer is down wait in the
//! queue; once it is full, new ones are dropped (and counted), and the core's retransmission
//! (status ticks, view-change resends) recovers them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use scbe_proto::v1::consensus_client::ConsensusClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use scbe_core::consensus::Envelope;

use scbe_wire::{envelope_to_proto, MAX_ENVELOPE_BYTES};

/// Envelopes buffered per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 8192;

/// The link to `addr`: the queue to send into, and the task that drains it (it runs until the
/// queue closes, when the validator shuts down).
pub fn peer_link(
    addr: SocketAddr,
) -> (
    mpsc::Sender<Arc<Envelope>>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel(PEER_QUEUE);
    (tx, run(addr, rx))
}

async fn run(addr: SocketAddr, mut rx: mpsc::Receiver<Arc<Envelope>>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
            Ok(e) => e.tcp_nodelay(true).connect_timeout(Duration::from_secs(2)),
            Err(e) => {
                tracing::error!(%addr, "bad peer address: {e}");
                return;
            }
        };
        let client = match endpoint.connect().await {
            Ok(ch) => ConsensusClient::new(ch)
                .max_encoding_message_size(MAX_ENVELOPE_BYTES)
                .max_decoding_message_size(MAX_ENVELOPE_BYTES),
            Err(e) => {
                tracing::debug!(%addr, "peer unreachable: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                // Keep what is queued: at start-up peers come up a few milliseconds apart, and
                // the queue is bounded (senders drop, and count, when it is full).
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        let (stx, srx) = mpsc::channel(1024);
        let mut client = client;
        let call = tokio::spawn(async move { client.stream(ReceiverStream::new(srx)).await });
        tracing::debug!(%addr, "peer stream open");
        loop {
            let Some(env) = rx.recv().await else {
                return; // node shutting down
            };
            if stx.send(envelope_to_proto(&env)).await.is_err() {
                break; // stream ended: reconnect
            }
        }
        call.abort();
    }
}
