//! `Consensus.Stream` server: decodes, verifies and enqueues peer envelopes. It never calls into
//! the core; a full queue drops (and counts) rather than blocking the connection.

use std::sync::Arc;

use scbe_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::edge_directory::EdgeDirectory;
use crate::inbound::Inbound;
use crate::metrics::Metrics;
use scbe_core::consensus::Digest;
use scbe_wire::genesis::{caller_name, check_presented};
use scbe_wire::tls::{caller_in, PinnedKeys};

use crate::links::Links;

use scbe_wire::{open_proto_cached, VerifiedCache};

pub struct ConsensusService {
    pub inbound: mpsc::Sender<Inbound>,
    /// Peers must present this genesis; a stream under another one is refused at once.
    pub genesis: Digest,
    pub links: Arc<Links>,
    /// Resolves signers with the validator set in force (it follows epochs).
    pub directory: Arc<EdgeDirectory>,
    pub metrics: Arc<Metrics>,
    pub verified: Arc<VerifiedCache>,
    /// Under TLS, the validators' keys: a stream whose caller's certificate is not one of them
    /// is refused before anything is read.
    pub callers: Option<PinnedKeys>,
}

#[tonic::async_trait]
impl pb::consensus_server::Consensus for ConsensusService {
    async fn stream(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<pb::StreamSummary>, Status> {
        if let Err(refused) = caller_in(&request, self.callers.as_ref()) {
            self.metrics
                .dropped("peer stream without a validator's certificate");
            return Err(refused);
        }
        if let Err(mismatch) = check_presented(&request, &self.genesis) {
            // The host, not the port: a refused peer retries from a new port every time.
            let host = scbe_wire::tls::remote_addr(&request)
                .map_or_else(|| "unknown address".to_string(), |a| a.ip().to_string());
            let from = match caller_name(&request) {
                Some(name) => format!("{name} from {host}"),
                None => host,
            };
            tracing::warn!(%from, "refused a peer stream: {mismatch}");
            self.metrics.dropped("peer stream under another genesis");
            self.links.refused(from, mismatch.theirs);
            return Err(mismatch.to_status());
        }
        let mut stream = request.into_inner();
        let mut received = 0u64;
        while let Some(env) = stream.message().await? {
            received += 1;
            // Also the keys of sets a checked chain proves beyond the one in force (peers
            // re-keyed while this validator was down: `EdgeDirectory::learn_ahead`).
            let directory = self.directory.resolver();
            match open_proto_cached(env, &directory, Some(&self.verified)) {
                Ok(m) => {
                    if self.inbound.try_send(Inbound::Peer(m)).is_err() {
                        self.metrics.dropped("inbound queue full");
                    }
                }
                Err(scbe_wire::WireError::UnknownSigner(key)) => {
                    tracing::debug!("dropped peer envelope: unknown signer {key}");
                    self.metrics.dropped("peer envelope from an unknown signer");
                    self.directory.note_unknown_signer();
                }
                Err(e) => {
                    tracing::debug!("dropped peer envelope: {e}");
                    self.metrics.dropped("invalid envelope");
                }
            }
        }
        Ok(Response::new(pb::StreamSummary { received }))
    }
}
