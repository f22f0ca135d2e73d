//! Peer links to a server that refuses this validator's certificate for a while (a peer that
//! has not yet learnt this validator's rotated key). Under TLS 1.3 the client's handshake
//! completes before the server checks the client's certificate, so the refusal arrives on a
//! connection that looks made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scbe_core::consensus::{Codec, Digest, Kind, Principal, Request, Signed};
use scbe_core::crypto::Keypair;
use scbe_proto::v1 as pb;
use scbe_wire::tls::{incoming, ClientAuth, PinnedKeys, Transport};
use scbe_wire::ProtoCodec;
use tonic::{Response, Status, Streaming};

use super::peer::peer_link;
use crate::links::Links;

/// Links tried, one after another, each to its own server: the hang was rare (a few in a
/// hundred refused-then-accepted links on a loaded machine), so one link proves little.
const LINKS: u64 = 40;

/// Counts the envelopes its streams deliver, and the streams opened.
#[derive(Clone, Default)]
struct Counting {
    envelopes: Arc<AtomicU64>,
    streams: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl pb::consensus_server::Consensus for Counting {
    async fn stream(
        &self,
        request: tonic::Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<pb::StreamSummary>, Status> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        let mut s = request.into_inner();
        while s.message().await?.is_some() {
            self.envelopes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Response::new(pb::StreamSummary::default()))
    }
}

/// Link `n`: a server that accepts only some other client key, a link to it fed an envelope
/// every 2 ms; after a while the server accepts the link's key. Returns what the link
/// delivered within 20 s of that.
async fn refused_then_accepted(n: u64) -> Result<u64, String> {
    let server_key = Keypair::from_label(&format!("server {n}"));
    let client_key = Keypair::from_label(&format!("client {n}"));
    let callers = PinnedKeys::new([Keypair::from_label("other").public()], "a validator");
    let tls = Transport::tls(&server_key)
        .map_err(|e| e.to_string())?
        .server(ClientAuth::Optional(callers.clone()))
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let counting = Counting::default();
    let (_, health) = tonic_health::server::health_reporter();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::consensus_server::ConsensusServer::new(counting.clone()))
            .add_service(health)
            .serve_with_incoming(incoming(listener, tls)),
    );
    let link = Transport::tls(&client_key)
        .and_then(|t| t.link_to(server_key.public(), "the server"))
        .map_err(|e| e.to_string())?;
    let links = Arc::new(Links::default());
    let (queue, task) = peer_link(0, 1, (addr, link), Digest([0; 32]), Arc::clone(&links));
    let task = tokio::spawn(task);
    let client_public = client_key.public();
    let feeder = tokio::spawn(async move {
        for nonce in 0.. {
            let r = Signed::seal(
                Request {
                    nonce,
                    operation: vec![1],
                },
                Kind::Request,
                |r| ProtoCodec.encode_request(r),
                &client_key,
                Principal::Requester,
            );
            let _ = queue.try_send(Arc::clone(r.envelope()));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    // Refused for a while (a different while for each link), then accepted.
    tokio::time::sleep(Duration::from_millis(300 + 37 * (n % 20))).await;
    // While refused, the link is down and says why (what `scbe status` shows the operator).
    let refused = links.peers().get(&1).cloned().unwrap_or_default();
    if refused.connected
        || !refused
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("did not answer on it"))
    {
        return Err(format!("link {n}, refused, says {refused:?}"));
    }
    callers.replace([client_public]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        let delivered = counting.envelopes.load(Ordering::Relaxed);
        if delivered >= 10 {
            break Ok(delivered);
        }
        if tokio::time::Instant::now() >= deadline {
            break Err(format!(
                "link {n}: {delivered} envelopes delivered 20 s after the server accepted its \
                 key ({} streams opened); the link says {:?}",
                counting.streams.load(Ordering::Relaxed),
                links.peers().get(&1)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    feeder.abort();
    task.abort();
    server.abort();
    outcome
}

/// Every link delivers once its server accepts its key. Before links proved a connection by a
/// health check, some stayed "connected" on a refused connection and delivered nothing, for
/// good (a validator back after its peers were re-keyed never heard one of them). It showed on
/// a busy machine (that validator refused about 1,700 handshakes a second): two threads spin
/// beside the links, as many as the machine has cores in CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_refused_until_the_server_learns_its_key_delivers_once_it_has() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let mut failed = None;
    for n in 0..LINKS {
        if let Err(e) = refused_then_accepted(n).await {
            failed = Some(e);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    assert!(failed.is_none(), "{failed:?}");
}
