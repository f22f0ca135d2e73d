//! gRPC clients of the fleet: the leader's order delivery to agents, its endorsement requests to
//! validators, and every validator's health streams from agents. Conversions from the wire are
//! typed (`fleet_wire`); what the answers prove is checked by the caller against known keys.

use std::time::Duration;

use scbe_proto::v1 as pb;
use scbe_proto::v1::fleet_agent_client::FleetAgentClient;
use scbe_proto::v1::orders_client::OrdersClient;
use tonic::transport::Channel;

use scbe_core::consensus::{Digest, EpochLink};
use scbe_core::rollout::evidence::{DeployAck, HealthReport, OrderAction};
use scbe_core::rollout::order::{Endorsement, SignedOrder};

use crate::fleet_wire::{
    agent_signed_from_proto, endorsement_from_proto, signed_order_to_proto, FleetWireError,
};
use crate::genesis::present;

/// Why a call between validators and agents gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetClientError {
    #[error("bad address {addr}: {detail}")]
    BadAddress { addr: String, detail: String },
    #[error("{code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
    /// The other side runs another genesis (its digest): it is in another cluster, or one of
    /// the two holds an edited copy of the genesis file.
    #[error("refused: it runs genesis {theirs}, another cluster's (or an edited copy)")]
    GenesisMismatch { theirs: Digest },
    #[error(transparent)]
    Wire(#[from] FleetWireError),
}

impl From<tonic::Status> for FleetClientError {
    fn from(s: tonic::Status) -> Self {
        if let Some(theirs) = crate::genesis::refused_genesis(&s) {
            return FleetClientError::GenesisMismatch { theirs };
        }
        // A refused certificate or an unreachable host is in the status's source, not its
        // message ("transport error").
        let message = match std::error::Error::source(&s) {
            Some(cause) => format!("{}: {}", s.message(), crate::tls::error_chain(cause)),
            None => s.message().to_string(),
        };
        FleetClientError::Rpc {
            code: s.code(),
            message,
        }
    }
}

/// A channel to `addr` (`host:port`) over `link` (TLS with the other side's key pinned, or
/// plaintext) that connects on first use and reconnects by itself, resolving the host again
/// each time.
pub fn channel(
    link: &crate::tls::Link,
    addr: &str,
    call_timeout: Duration,
) -> Result<Channel, FleetClientError> {
    let endpoint = link
        .endpoint(addr)
        .map_err(|e| FleetClientError::BadAddress {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?
        .timeout(call_timeout);
    Ok(link.connect_lazy(endpoint))
}

/// Sends an order to an agent; returns its signed answer (not yet verified).
pub async fn deliver(
    ch: Channel,
    genesis: &Digest,
    order: &SignedOrder,
    action: OrderAction,
) -> Result<DeployAck, FleetClientError> {
    let mut c = FleetAgentClient::new(ch);
    let mut req = tonic::Request::new(signed_order_to_proto(order));
    present(&mut req, genesis);
    let reply = match action {
        OrderAction::Deploy => c.deploy(req).await,
        OrderAction::Rollback => c.rollback(req).await,
    }?;
    Ok(agent_signed_from_proto(reply.into_inner())?)
}

/// Asks a validator to endorse an order (it signs only if its own ledger derives the same).
pub async fn endorse(
    ch: Channel,
    genesis: &Digest,
    rollout: u64,
    order: &[u8],
) -> Result<Endorsement, FleetClientError> {
    let mut req = tonic::Request::new(pb::EndorseRequest {
        rollout,
        order: order.to_vec().into(),
    });
    present(&mut req, genesis);
    let reply = OrdersClient::new(ch).endorse(req).await?;
    Ok(endorsement_from_proto(&reply.into_inner())?)
}

/// An agent's stream of signed reports and acks (not yet verified). `chain` proves the
/// caller's validator set to an agent that has not heard of it yet.
pub async fn health_stream(
    ch: Channel,
    genesis: &Digest,
    chain: &[EpochLink],
) -> Result<tonic::Streaming<pb::HealthUpdate>, FleetClientError> {
    let mut req = tonic::Request::new(pb::HealthRequest {
        epochs: crate::epoch_links_to_proto(chain),
    });
    present(&mut req, genesis);
    Ok(FleetAgentClient::new(ch)
        .watch_health(req)
        .await?
        .into_inner())
}

/// One update of a health stream, converted but not yet verified.
pub struct Update {
    pub report: Option<Result<HealthReport, FleetWireError>>,
    pub ack: Option<Result<DeployAck, FleetWireError>>,
    /// The agent cannot sample its health source, and why (unsigned; capped in length).
    pub source_problem: Option<String>,
}

/// Longest source problem kept from an agent (it is shown, not parsed).
const MAX_SOURCE_PROBLEM: usize = 512;

/// The next update of a stream; `Ok(None)` when the agent ended it.
pub async fn next_update(
    s: &mut tonic::Streaming<pb::HealthUpdate>,
) -> Result<Option<Update>, FleetClientError> {
    match s.message().await? {
        None => Ok(None),
        Some(u) => Ok(Some(Update {
            report: u.report.map(agent_signed_from_proto),
            ack: u.ack.map(agent_signed_from_proto),
            source_problem: (!u.source_problem.is_empty()).then(|| {
                u.source_problem
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_SOURCE_PROBLEM)
                    .collect()
            }),
        })),
    }
}

/// What an agent says about itself (unsigned).
pub async fn describe(ch: Channel) -> Result<pb::DescribeReply, FleetClientError> {
    Ok(FleetAgentClient::new(ch)
        .describe(pb::DescribeRequest {})
        .await?
        .into_inner())
}
