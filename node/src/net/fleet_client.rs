//! gRPC clients of the fleet: the leader's order delivery to agents, its endorsement requests to
//! validators, and every validator's health streams from agents. Conversions from the wire are
//! typed (`fleet_wire`); what the answers prove is checked by the caller against known keys.

use std::net::SocketAddr;
use std::time::Duration;

use scbe_proto::v1 as pb;
use scbe_proto::v1::fleet_agent_client::FleetAgentClient;
use scbe_proto::v1::orders_client::OrdersClient;
use tonic::transport::{Channel, Endpoint};

use crate::rollout::evidence::{DeployAck, HealthReport, OrderAction};
use crate::rollout::order::{Endorsement, SignedOrder};

use super::fleet_wire::{agent_signed_from_proto, endorsement_from_proto, signed_order_to_proto};

/// A channel that connects on first use and reconnects by itself.
pub fn channel(addr: SocketAddr, call_timeout: Duration) -> Result<Channel, String> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .timeout(call_timeout)
        .connect_lazy())
}

fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Sends an order to an agent; returns its signed answer (not yet verified).
pub async fn deliver(
    ch: Channel,
    order: &SignedOrder,
    action: OrderAction,
) -> Result<DeployAck, String> {
    let mut c = FleetAgentClient::new(ch);
    let req = signed_order_to_proto(order);
    let reply = match action {
        OrderAction::Deploy => c.deploy(req).await,
        OrderAction::Rollback => c.rollback(req).await,
    }
    .map_err(status)?;
    agent_signed_from_proto(reply.into_inner()).map_err(|e| e.to_string())
}

/// Asks a validator to endorse an order (it signs only if its own ledger derives the same).
pub async fn endorse(ch: Channel, rollout: u64, order: &[u8]) -> Result<Endorsement, String> {
    let reply = OrdersClient::new(ch)
        .endorse(pb::EndorseRequest {
            rollout,
            order: order.to_vec().into(),
        })
        .await
        .map_err(status)?;
    endorsement_from_proto(&reply.into_inner()).map_err(|e| e.to_string())
}

/// An agent's stream of signed reports and acks (not yet verified).
pub async fn health_stream(ch: Channel) -> Result<tonic::Streaming<pb::HealthUpdate>, String> {
    Ok(FleetAgentClient::new(ch)
        .watch_health(pb::HealthRequest {})
        .await
        .map_err(status)?
        .into_inner())
}

/// One update of a health stream, converted but not yet verified.
pub struct Update {
    pub report: Option<Result<HealthReport, String>>,
    pub ack: Option<Result<DeployAck, String>>,
}

/// The next update of a stream; `Ok(None)` when the agent ended it.
pub async fn next_update(
    s: &mut tonic::Streaming<pb::HealthUpdate>,
) -> Result<Option<Update>, String> {
    match s.message().await.map_err(status)? {
        None => Ok(None),
        Some(u) => Ok(Some(Update {
            report: u
                .report
                .map(|p| agent_signed_from_proto(p).map_err(|e| e.to_string())),
            ack: u
                .ack
                .map(|p| agent_signed_from_proto(p).map_err(|e| e.to_string())),
        })),
    }
}

/// What an agent says about itself (unsigned).
pub async fn describe(ch: Channel) -> Result<pb::DescribeReply, String> {
    Ok(FleetAgentClient::new(ch)
        .describe(pb::DescribeRequest {})
        .await
        .map_err(status)?
        .into_inner())
}
