//! `Audit.Export`: streams every decided batch's commit certificate, read from the record store
//! through the core task in chunks.

use scbe_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::inbound::Inbound;

/// Certificates read per round trip to the core task.
pub const AUDIT_CHUNK: usize = 512;

pub struct AuditService {
    pub inbound: mpsc::Sender<Inbound>,
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    type ExportStream = ReceiverStream<Result<pb::CommitCertificate, Status>>;

    async fn export(
        &self,
        request: Request<pb::AuditRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        use prost::Message as _;
        let mut from = request.into_inner().from_seq.max(1);
        let inbound = self.inbound.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (reply, wait) = oneshot::channel();
                if inbound.send(Inbound::Audit { from, reply }).await.is_err() {
                    let _ = tx
                        .send(Err(Status::unavailable("node is shutting down")))
                        .await;
                    return;
                }
                let chunk = match wait.await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                    Err(_) => return,
                };
                if chunk.is_empty() {
                    return;
                }
                for (seq, bytes) in chunk {
                    from = seq + 1;
                    let item = pb::CommitCertificate::decode(bytes.as_slice()).map_err(|e| {
                        Status::internal(format!("stored certificate {seq} does not decode: {e}"))
                    });
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
