//! Outbound links: one long-lived `Consensus.Stream` per peer, fed from a bounded queue,
//! reconnecting with capped exponential backoff. A connection counts only once the peer has
//! answered on it (its health service: see `connect_proven`), and a stream that stops taking
//! envelopes is given up. Messages queued while a peer is down wait in the
//! queue; once it is full, new ones are dropped (and counted), and the core's retransmission
//! (status ticks, view-change resends) recovers them.

use std::sync::Arc;
use std::time::Duration;

use scbe_proto::v1::consensus_client::ConsensusClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use scbe_core::consensus::{Digest, Envelope};
use scbe_wire::genesis::{present, present_caller, refused_genesis};
use scbe_wire::health_probe;
use scbe_wire::key_file::encode_hex as hex;
use scbe_wire::tls::Link;
use tonic::transport::Channel;

use crate::links::Links;

use scbe_wire::{envelope_to_proto, MAX_ENVELOPE_BYTES};

/// Envelopes buffered per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 8192;
/// Reconnect backoff: from this, doubling while connections fail, up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a new connection's health check may take (it proves the peer accepted it).
const PROVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an envelope may wait to enter an open stream before the link gives the stream up
/// and reconnects. Far above any wait behind HTTP/2 flow control on a live stream.
const STALLED_STREAM: Duration = Duration::from_secs(10);
/// A stream that ended sooner than this after it opened is retried after the backoff.
const MIN_STREAM_LIFE: Duration = Duration::from_secs(1);
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
    let mut backoff = MIN_BACKOFF;
    loop {
        let endpoint = match link.endpoint(&addr) {
            Ok(e) => e,
            Err(e) => {
                // Addresses are checked at start-up; the supervisor stops the validator.
                tracing::error!(peer, %addr, "bad peer address: {e}");
                return;
            }
        };
        let client = match connect_proven(&link, endpoint).await {
            Ok(ch) => ConsensusClient::new(ch)
                .max_encoding_message_size(MAX_ENVELOPE_BYTES)
                .max_decoding_message_size(MAX_ENVELOPE_BYTES),
            Err(e) => {
                tracing::debug!(peer, %addr, "peer unreachable: {e}; retrying in {backoff:?}");
                links.update(peer, |l| {
                    l.connected = false;
                    l.problem = Some(format!("unreachable: {e}"));
                });
                tokio::time::sleep(backoff).await;
                if rx.is_closed() {
                    return; // node shutting down
                }
                backoff = doubled(backoff);
                // Keep what is queued: at start-up peers come up a few milliseconds apart, and
                // the queue is bounded (senders drop, and count, when it is full).
                continue;
            }
        };
        let (stx, srx) = mpsc::channel(1024);
        let mut client = client;
        let mut request = tonic::Request::new(ReceiverStream::new(srx));
        present(&mut request, &genesis);
        present_caller(&mut request, &format!("validator {me}"));
        let mut call = tokio::spawn(async move { client.stream(request).await });
        let opened = tokio::time::Instant::now();
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
                    // The call is watched while an envelope waits to enter the stream, and the
                    // wait is bounded: a stream that stopped draining without its call ending
                    // must not hold the link for good.
                    tokio::select! {
                        sent = tokio::time::timeout(STALLED_STREAM, stx.send(envelope_to_proto(&env))) => match sent {
                            Ok(Ok(())) => {}
                            // The call dropped its end: it has ended, or is about to.
                            Ok(Err(_)) => break tokio::time::timeout(STALLED_STREAM, &mut call)
                                .await
                                .unwrap_or_else(|_| Ok(Err(stalled()))),
                            Err(_) => break Ok(Err(stalled())),
                        },
                        ended = &mut call => break ended,
                    }
                }
                ended = &mut call => break ended,
            }
        };
        call.abort();
        let status = match ended {
            Ok(Err(status)) => status,
            _ => tonic::Status::unavailable("the stream ended"),
        };
        let pause = match refused_genesis(&status) {
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
                REFUSED_BACKOFF
            }
            None => {
                links.update(peer, |l| {
                    l.connected = false;
                    l.problem = Some(format!("stream ended: {}", status.message()));
                });
                tracing::debug!(peer, %addr, "peer stream ended: {}", status.message());
                // A stream that ended soon after it opened (the peer took the connection and
                // then dropped the stream) is retried after the backoff, not at once in a loop.
                if opened.elapsed() < MIN_STREAM_LIFE {
                    let pause = backoff;
                    backoff = doubled(backoff);
                    pause
                } else {
                    backoff = MIN_BACKOFF;
                    Duration::ZERO
                }
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// The next reconnect backoff after `backoff`.
fn doubled(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// A connection to the peer, proven by an answer from its health service on it. Under TLS 1.3
/// the client's handshake completes before the server has checked the client's certificate: a
/// peer that does not (yet) accept this validator's key (it has not learnt a rotation) drops
/// the connection only after `connect` returned. Streaming on it at once made a refused link
/// look up, and reconnect in a tight loop (about 600 handshakes a second per peer); and now
/// and then the stream neither ended nor drained, and the link stayed silent for good (a
/// validator that was down while its peers were re-keyed never heard one of them:
/// `services/peer_tests.rs`).
async fn connect_proven(
    link: &Link,
    endpoint: tonic::transport::Endpoint,
) -> Result<Channel, String> {
    // A refused certificate is in the error's causes, not its message.
    let ch = link
        .connect(endpoint)
        .await
        .map_err(|e| scbe_wire::tls::error_chain(&e))?;
    match tokio::time::timeout(PROVE_TIMEOUT, health_probe::serving(ch.clone())).await {
        Ok(Ok(_)) => Ok(ch),
        // The innermost cause names a refusal: the peer's TLS alert for a certificate it does
        // not accept ("received fatal alert: CertificateUnknown"). HTTP/2 keeps only its text.
        Ok(Err(status)) => Err(format!(
            "the connection was made but the peer did not answer on it: {}",
            innermost(&status)
        )),
        Err(_) => Err(format!(
            "the connection was made but the peer did not answer on it within {PROVE_TIMEOUT:?}"
        )),
    }
}

/// The innermost cause of `e` (tonic's own text repeats every level above it).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(cause) = inner.source() {
        inner = cause;
    }
    inner.to_string()
}

/// Why a stream that stopped draining was given up.
fn stalled() -> tonic::Status {
    tonic::Status::unavailable(format!(
        "the stream took no envelope for {STALLED_STREAM:?}; reconnecting"
    ))
}
