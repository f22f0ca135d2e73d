//! The validator's gRPC server: `Consensus`, `Governance`, `Audit`, `Orders`, the standard
//! `grpc.health.v1` service and server reflection, on one listener.

use std::sync::Arc;

use scbe_core::consensus::Digest;
use scbe_proto::v1 as pb;
use scbe_wire::tls::{incoming, ClientAuth, TlsError, Transport};
use scbe_wire::{VerifiedCache, MAX_ENVELOPE_BYTES};
use tokio::sync::mpsc;

use crate::inbound::Inbound;
use crate::links::Links;
use crate::metrics::Metrics;
use crate::reads::Reads;

use super::audit_service::AuditService;
use super::consensus_service::ConsensusService;
use super::governance_service::GovernanceService;
use super::orders_service::OrdersService;
use super::quota::{QuotaLimits, Quotas};

/// Envelope digests remembered as verified (about 6 MB at most).
pub const VERIFIED_CACHE: usize = 65_536;
/// Calls and streams one connection may have open at once: far above what a requester's
/// client or a peer link uses, low enough that one connection cannot pile up work.
pub const CALLS_PER_CONNECTION: usize = 256;

/// What the services share with the core task.
pub struct ServerParts {
    pub inbound: mpsc::Sender<Inbound>,
    pub directory: Arc<crate::edge_directory::EdgeDirectory>,
    pub metrics: Arc<Metrics>,
    /// What the core publishes for readers (`Status`, `Watch`, `Audit.Export`).
    pub reads: Reads,
    /// Largest request the consensus core admits; bigger ones are refused at the door.
    pub max_request_bytes: usize,
    pub quotas: QuotaLimits,
    /// The cluster's genesis digest, checked on every peer and leader call.
    pub genesis: Digest,
    pub links: Arc<Links>,
    /// TLS (anyone may call `Governance` and `Audit`; only validators `Consensus` and
    /// `Orders`), or plaintext on loopback.
    pub transport: Transport,
}

/// The server, ready to run on `listener` (it runs until the process stops, or fails).
pub async fn grpc_server(
    listener: tokio::net::TcpListener,
    p: ServerParts,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, TlsError> {
    // A client certificate is optional (requesters call anonymously), but one that is presented
    // must be a validator's; the peer-only services then require one.
    // Shared with the edge directory: they follow the validator set in force.
    let validators = p.directory.validators().clone();
    let tls = p
        .transport
        .server(ClientAuth::Optional(validators.clone()))?;
    let peers_only = p.transport.is_tls().then_some(validators);
    // Requests are verified once when they arrive, not again inside pre-prepares.
    let verified = Arc::new(VerifiedCache::new(VERIFIED_CACHE));
    let consensus = pb::consensus_server::ConsensusServer::new(ConsensusService {
        inbound: p.inbound.clone(),
        directory: Arc::clone(&p.directory),
        metrics: Arc::clone(&p.metrics),
        verified: Arc::clone(&verified),
        genesis: p.genesis,
        links: Arc::clone(&p.links),
        callers: peers_only.clone(),
    })
    .max_decoding_message_size(MAX_ENVELOPE_BYTES);
    let governance = pb::governance_server::GovernanceServer::new(GovernanceService {
        inbound: p.inbound.clone(),
        directory: Arc::clone(&p.directory),
        verified,
        reads: p.reads.clone(),
        watch_slots: Arc::new(tokio::sync::Semaphore::new(
            super::governance_service::MAX_WATCH_STREAMS,
        )),
        max_request_bytes: p.max_request_bytes,
        quotas: Arc::new(Quotas::new(p.quotas)),
        genesis: p.genesis,
    })
    .max_decoding_message_size(MAX_ENVELOPE_BYTES);
    let audit = pb::audit_server::AuditServer::new(AuditService {
        store: p.reads.store.clone(),
        exports: Arc::new(tokio::sync::Semaphore::new(
            super::audit_service::MAX_EXPORTS,
        )),
        pace: Arc::clone(&p.reads.pace),
        proofs: Arc::clone(&p.reads.proofs),
        proving: Arc::new(tokio::sync::Semaphore::new(
            super::audit_service::MAX_PROOFS,
        )),
    });
    let orders = pb::orders_server::OrdersServer::new(OrdersService {
        inbound: p.inbound,
        genesis: p.genesis,
        callers: peers_only,
    });
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::governance_server::GovernanceServer<GovernanceService>>()
        .await;
    health_reporter
        .set_serving::<pb::consensus_server::ConsensusServer<ConsensusService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(scbe_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .ok();
    Ok(async move {
        let incoming = incoming(listener, tls);
        let served = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .concurrency_limit_per_connection(CALLS_PER_CONNECTION)
            .http2_keepalive_interval(Some(scbe_wire::tls::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(scbe_wire::tls::KEEPALIVE_TIMEOUT))
            .initial_stream_window_size(scbe_wire::tls::HTTP2_WINDOW_BYTES)
            .initial_connection_window_size(scbe_wire::tls::HTTP2_WINDOW_BYTES)
            .add_service(consensus)
            .add_service(governance)
            .add_service(audit)
            .add_service(orders)
            .add_service(health)
            .add_optional_service(reflection)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = served {
            // The supervisor stops the validator: it can no longer be reached.
            tracing::error!("gRPC server stopped: {e}");
        }
    })
}
