//! `Consensus.Stream` server: decodes, verifies and enqueues peer envelopes. It never calls into
//! the core; a full queue drops (and counts) rather than blocking the connection.

use std::sync::Arc;

use scbe_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::inbound::Inbound;
use crate::metrics::Metrics;
use scbe_core::consensus::Directory;

use scbe_wire::{open_proto_cached, VerifiedCache};

pub struct ConsensusService {
    pub inbound: mpsc::Sender<Inbound>,
    pub directory: Arc<Directory>,
    pub metrics: Arc<Metrics>,
    pub verified: Arc<VerifiedCache>,
}

#[tonic::async_trait]
impl pb::consensus_server::Consensus for ConsensusService {
    async fn stream(
        &self,
        request: Request<Streaming<pb::Envelope>>,
    ) -> Result<Response<pb::StreamSummary>, Status> {
        let mut stream = request.into_inner();
        let mut received = 0u64;
        while let Some(env) = stream.message().await? {
            received += 1;
            match open_proto_cached(env, &self.directory, Some(&self.verified)) {
                Ok(m) => {
                    if self.inbound.try_send(Inbound::Peer(m)).is_err() {
                        self.metrics.dropped("inbound queue full");
                    }
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
