//! `Orders` server: a validator endorses a rollout order for the leader only if its own ledger
//! derives exactly the same bytes. The handler enqueues; the core task decides.

use scbe_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use scbe_core::consensus::Digest;
use scbe_wire::genesis::check_presented;
use scbe_wire::tls::{caller_in, PinnedKeys};

use crate::inbound::Inbound;
use scbe_core::rollout::order::MAX_ORDER_BYTES;

use scbe_wire::fleet_wire::endorsement_to_proto;

pub struct OrdersService {
    pub inbound: mpsc::Sender<Inbound>,
    /// The leader asking must run this genesis.
    pub genesis: Digest,
    /// Under TLS, the validators' keys: only a validator's certificate may ask.
    pub callers: Option<PinnedKeys>,
}

#[tonic::async_trait]
impl pb::orders_server::Orders for OrdersService {
    async fn endorse(
        &self,
        request: Request<pb::EndorseRequest>,
    ) -> Result<Response<pb::Endorsement>, Status> {
        caller_in(&request, self.callers.as_ref())?;
        check_presented(&request, &self.genesis).map_err(|m| m.to_status())?;
        let r = request.into_inner();
        if r.order.len() > MAX_ORDER_BYTES {
            return Err(Status::invalid_argument(format!(
                "order of {} bytes exceeds the {MAX_ORDER_BYTES}-byte limit",
                r.order.len()
            )));
        }
        let (tx, rx) = oneshot::channel();
        self.inbound
            .send(Inbound::Endorse {
                rollout: r.rollout,
                order: r.order.to_vec(),
                reply: tx,
            })
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))?;
        match rx.await {
            Ok(Ok(e)) => Ok(Response::new(endorsement_to_proto(&e))),
            // Behind, ahead or lied to: the leader asks again later.
            Ok(Err(refused)) => Err(Status::failed_precondition(refused.to_string())),
            Err(_) => Err(Status::unavailable("node dropped the request")),
        }
    }
}
