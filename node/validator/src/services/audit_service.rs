//! `Audit.Export`: streams every decided batch's commit certificate and the stable checkpoints
//! signed along the way, read from the record store in chunks on blocking threads (through a
//! [`StoreReader`], never the core task's queue), each chunk bounded in count and in bytes.
//! `Audit.Prove`: one entry of the state at the newest stable checkpoint, with its proof
//! ([`StableProofs`]), made on a blocking thread.

use scbe_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use scbe_core::governance::ledger::checkpoint_prover::ProveError;
use scbe_core::governance::ledger::state_proof::ProvenMap;

use crate::reads::{ReadPace, StableProofs};
use crate::storage::{AuditChunk, StoreReader};

/// Certificates read per chunk, at most.
pub const AUDIT_CHUNK: usize = 512;
/// Bytes of certificates read per chunk, about (a chunk holds at least one): a batch at the
/// request cap is megabytes, and 512 of them would be held in memory at once.
pub const AUDIT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Exports read at once on one validator; further ones wait their turn (they are streams that
/// read the whole history: several at once would only share the same disk and cores).
pub const MAX_EXPORTS: usize = 2;
/// Proofs made at once on one validator (the first after a checkpoint builds a map's digest
/// tree, 1.45 s at 1,000,000 releases; the others wait rather than build it again).
pub const MAX_PROOFS: usize = 2;
/// The longest key a proof is asked for (versions and ids are far shorter).
pub const MAX_PROOF_KEY_BYTES: usize = 256;

pub struct AuditService {
    pub store: StoreReader,
    /// One permit per export being read.
    pub exports: std::sync::Arc<tokio::sync::Semaphore>,
    /// The validator's budget for anonymous reads (`crate::reads::ReadPace`).
    pub pace: std::sync::Arc<ReadPace>,
    /// The stable checkpoint `Prove` proves from.
    pub proofs: std::sync::Arc<StableProofs>,
    /// One permit per proof being made.
    pub proving: std::sync::Arc<tokio::sync::Semaphore>,
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    type ExportStream = ReceiverStream<Result<pb::AuditEntry, Status>>;

    async fn export(
        &self,
        request: Request<pb::AuditRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let mut from = request.into_inner().from_seq.max(1);
        let store = self.store.clone();
        let exports = std::sync::Arc::clone(&self.exports);
        let pace = std::sync::Arc::clone(&self.pace);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // A client that leaves while its export waits for a turn frees its place.
            let _permit = tokio::select! {
                p = exports.acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                () = tx.closed() => return,
            };
            loop {
                let reader = store.clone();
                let read = tokio::task::spawn_blocking(move || {
                    reader.audit_from(from, (AUDIT_CHUNK, AUDIT_CHUNK_BYTES))
                })
                .await;
                let chunk = match read {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                    Err(_) => {
                        let _ = tx
                            .send(Err(Status::unavailable("node is shutting down")))
                            .await;
                        return;
                    }
                };
                if chunk.is_empty() {
                    return;
                }
                let bytes: usize = chunk.decided.iter().map(|(_, b)| b.len()).sum::<usize>()
                    + chunk.checkpoints.values().map(Vec::len).sum::<usize>();
                tokio::time::sleep_until(pace.book(bytes).into()).await;
                let AuditChunk {
                    decided,
                    mut checkpoints,
                } = chunk;
                for (seq, bytes) in decided {
                    from = seq + 1;
                    // Checkpoints below this batch first (one at a seq this validator
                    // did not execute itself, after a state transfer), then the batch, then
                    // the checkpoint it completed.
                    let later = checkpoints.split_off(&seq);
                    let due = std::mem::replace(&mut checkpoints, later);
                    for (cp_seq, cp) in due {
                        if tx.send(checkpoint_entry(cp_seq, &cp)).await.is_err() {
                            return;
                        }
                    }
                    if tx.send(decided_entry(seq, &bytes)).await.is_err() {
                        return;
                    }
                    if let Some(cp) = checkpoints.remove(&seq) {
                        if tx.send(checkpoint_entry(seq, &cp)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn prove(
        &self,
        request: Request<pb::ProveRequest>,
    ) -> Result<Response<pb::ProveReply>, Status> {
        let pb::ProveRequest { map, key } = request.into_inner();
        let map = ProvenMap::from_name(&map).ok_or_else(|| {
            Status::invalid_argument(format!("map {map:?}: one of releases, proposals, rollouts"))
        })?;
        if key.len() > MAX_PROOF_KEY_BYTES {
            return Err(Status::invalid_argument(format!(
                "key of {} bytes: at most {MAX_PROOF_KEY_BYTES}",
                key.len()
            )));
        }
        let source = self.proofs.current().ok_or_else(|| {
            Status::failed_precondition(
                "this validator holds no stable checkpoint of its own state yet (it caught up \
                 by state transfer since): ask again after its next checkpoint, or ask another \
                 validator",
            )
        })?;
        let _permit = self
            .proving
            .acquire()
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))?;
        let made = tokio::task::spawn_blocking(move || {
            let proof = source.prover.prove(map, &key)?;
            Ok::<_, ProveError>(scbe_wire::state_proof_check::reply(
                &proof,
                &source.cert,
                &source.nonces,
                &source.links,
            ))
        })
        .await
        .map_err(|_| Status::unavailable("node is shutting down"))?;
        let reply = made.map_err(|e| match e {
            ProveError::NoEntry { .. } => Status::not_found(e.to_string()),
            ProveError::WalkDigest => Status::failed_precondition(e.to_string()),
        })?;
        tokio::time::sleep_until(self.pace.book(reply.proof_json.len() + 1024).into()).await;
        Ok(Response::new(reply))
    }
}

fn decided_entry(seq: u64, bytes: &[u8]) -> Result<pb::AuditEntry, Status> {
    use prost::Message as _;
    let cert = pb::CommitCertificate::decode(bytes)
        .map_err(|e| Status::internal(format!("stored certificate {seq} does not decode: {e}")))?;
    Ok(pb::AuditEntry {
        entry: Some(pb::audit_entry::Entry::Decided(cert)),
    })
}

fn checkpoint_entry(seq: u64, bytes: &[u8]) -> Result<pb::AuditEntry, Status> {
    use prost::Message as _;
    let cert = pb::CheckpointCertificate::decode(bytes)
        .map_err(|e| Status::internal(format!("stored checkpoint {seq} does not decode: {e}")))?;
    Ok(pb::AuditEntry {
        entry: Some(pb::audit_entry::Entry::Checkpoint(cert)),
    })
}
