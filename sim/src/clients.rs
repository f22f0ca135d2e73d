//! Requesters' traffic in a simulation run: honest clients with one request outstanding at a
//! time (sent to one validator, resent to all until it executes) and the flooding Byzantine
//! requester of `Scenario::floods`.

use rand::Rng;
use scbe_core::consensus::{Codec as _, Kind, Request, Signed};
use scbe_core::crypto::Keypair;
use scbe_wire::ProtoCodec;

use crate::simulation::{Event, Phase, Simulation};

/// An honest client of the cluster (client 0 is the release requester, driven by its script).
pub(crate) struct Client {
    pub(crate) key: Keypair,
    pub(crate) nonce: u64,
    pub(crate) outstanding: Option<Signed<Request>>,
    pub(crate) safety_left: usize,
    pub(crate) liveness_left: usize,
}

impl Simulation {
    /// A client has one request outstanding at a time (nonces must increase). It sends a new
    /// request to one random validator, and resends to all validators until it executes.
    pub(crate) fn client_send(&mut self, client: usize, nonce: u64, retry: bool) {
        if client == 0 && !retry {
            return; // the release requester sends from its script (fleet_tick)
        }
        let c = &mut self.clients[client];
        if retry {
            let still = c
                .outstanding
                .as_ref()
                .is_some_and(|o| o.value().nonce == nonce);
            if !still {
                return;
            }
        } else {
            if c.outstanding.is_some() || c.nonce + 1 != nonce {
                return;
            }
            let budget = match self.phase {
                Phase::Safety => &mut c.safety_left,
                Phase::Liveness => {
                    if c.safety_left > 0 {
                        &mut c.safety_left
                    } else {
                        &mut c.liveness_left
                    }
                }
            };
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            c.nonce = nonce;
            let op: Vec<u8> = (0..self.rng.random_range(4..24))
                .map(|_| self.rng.random())
                .collect();
            let request = Request {
                nonce,
                operation: op,
            };
            let signed = Signed::seal(
                request,
                Kind::Request,
                |r| ProtoCodec.encode_request(r),
                &self.clients[client].key,
                scbe_core::consensus::Principal::Requester,
            );
            self.validity.on_submitted(signed.envelope().digest());
            self.clients[client].outstanding = Some(signed);
        }
        self.resend(client, nonce, retry);
    }

    /// Sends the client's outstanding request (to one validator, or to all on a retry) and
    /// schedules the next retry.
    pub(crate) fn resend(&mut self, client: usize, nonce: u64, retry: bool) {
        let Some(request) = self.clients[client].outstanding.clone() else {
            return;
        };
        self.trace(&[
            b"client",
            &(client as u64).to_be_bytes(),
            &nonce.to_be_bytes(),
        ]);
        let targets: Vec<usize> = if retry {
            (0..self.sc.nodes()).collect()
        } else {
            vec![self.rng.random_range(0..self.sc.nodes())]
        };
        for t in targets {
            self.submit(t, request.clone());
        }
        self.schedule(
            self.sc.client_retry_ms,
            Event::ClientSend {
                client,
                nonce,
                retry: true,
            },
        );
    }

    /// The flooding requester: `count` requests with operations of the largest admitted size
    /// (junk the ledger rejects), each handed to every validator that is up.
    pub(crate) fn flood(&mut self, count: u32) {
        let op_bytes = scbe_core::governance::operation::MAX_OPERATION_BYTES;
        for _ in 0..count {
            self.flooder_nonce += 1;
            let request = Signed::seal(
                Request {
                    nonce: self.flooder_nonce,
                    operation: vec![b'x'; op_bytes],
                },
                Kind::Request,
                |r| ProtoCodec.encode_request(r),
                &self.flooder,
                scbe_core::consensus::Principal::Requester,
            );
            self.trace(&[b"flood", &self.flooder_nonce.to_be_bytes()]);
            self.validity.on_submitted(request.envelope().digest());
            for node in 0..self.sc.nodes() {
                self.submit(node, request.clone());
            }
        }
    }
}
