//! A release requester's gRPC client of the `Governance` service: signs and submits
//! operations, reads status and the ledger summary, and waits for proposals and rollouts to be
//! decided. Used by `scbe` and `scbe-sim demo`.

use std::time::{Duration, Instant};

use scbe_proto::v1 as pb;
use scbe_proto::v1::governance_client::GovernanceClient;
use tonic::transport::Channel;

use scbe_core::consensus::{Codec as _, Kind, Principal, Request, Signed};
use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::{Proposal, ProposalStatus, VoteRecord};
use scbe_core::governance::Operation;

use crate::status_summary::StatusSummary;
use crate::tls::{Dial, DialError};

use crate::{envelope_to_proto, ProtoCodec, MAX_ENVELOPE_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("{code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
    #[error("a requester key is needed to sign requests: --key FILE or SCBE_KEY (create one with `scbe keygen --out FILE`)")]
    NoKey,
    #[error("the validator's {what} does not decode: {detail}")]
    Decode { what: &'static str, detail: String },
    #[error("no proposal {id} on {node}")]
    NoSuchProposal { id: u64, node: String },
    #[error("proposal {id} still pending after {}; check `scbe status --proposal {id}`", humantime::format_duration(*.timeout))]
    StillPending { id: u64, timeout: Duration },
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Rpc {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

pub struct Client {
    pub node: String,
    inner: GovernanceClient<Channel>,
    key: Option<Keypair>,
    last_nonce: u64,
}

impl Client {
    pub async fn connect(node: &Dial, key: Option<Keypair>) -> Result<Self, ClientError> {
        let inner = GovernanceClient::new(node.connect().await?)
            .max_decoding_message_size(MAX_ENVELOPE_BYTES);
        Ok(Client {
            node: node.url().to_string(),
            inner,
            key,
            last_nonce: 0,
        })
    }

    /// Signs `op` with the requester key and a fresh nonce: counted up from the highest nonce
    /// the cluster executed for this key (asked once per client), plus a small random step so
    /// that two CLIs started at once with the same key rarely pick the same one. No clock is
    /// read, so a clock stepping back changes nothing.
    pub async fn sign(&mut self, op: &Operation) -> Result<pb::Envelope, ClientError> {
        let key = self.key.clone().ok_or(ClientError::NoKey)?;
        if self.last_nonce == 0 {
            let s = self
                .inner
                .status(pb::StatusRequest {
                    proposal: None,
                    signer: key.public().as_bytes().to_vec().into(),
                    // Only the nonce is wanted, not the summary.
                    brief: true,
                })
                .await?
                .into_inner();
            let step = getrandom::u64().unwrap_or(0) % 32;
            self.last_nonce = s.last_nonce + step;
        }
        self.last_nonce += 1;
        let request = Signed::seal(
            Request {
                nonce: self.last_nonce,
                operation: op.to_bytes(),
            },
            Kind::Request,
            |r| ProtoCodec.encode_request(r),
            &key,
            Principal::Requester,
        );
        Ok(envelope_to_proto(request.envelope()))
    }

    /// Submits a signed request and waits for its decided outcome.
    pub async fn submit_signed(
        &mut self,
        env: pb::Envelope,
    ) -> Result<pb::SubmitReply, ClientError> {
        Ok(self.inner.submit(env).await?.into_inner())
    }

    pub async fn submit(&mut self, op: &Operation) -> Result<pb::SubmitReply, ClientError> {
        let env = self.sign(op).await?;
        self.submit_signed(env).await
    }

    pub async fn status(&mut self, proposal: Option<u64>) -> Result<pb::StatusReply, ClientError> {
        Ok(self
            .inner
            .status(pb::StatusRequest {
                proposal,
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    /// The ledger summary (`scbe status --json`) with the validator's consensus position.
    pub async fn status_summary(
        &mut self,
    ) -> Result<(pb::StatusReply, StatusSummary), ClientError> {
        let s = self.status(None).await?;
        let summary = serde_json::from_str(&s.detail_json).map_err(|e| ClientError::Decode {
            what: "status summary",
            detail: e.to_string(),
        })?;
        Ok((s, summary))
    }

    /// The ledger summary.
    pub async fn summary(&mut self) -> Result<StatusSummary, ClientError> {
        Ok(self.status_summary().await?.1)
    }

    /// One proposal as the ledger holds it.
    pub async fn proposal(&mut self, id: u64) -> Result<Proposal, ClientError> {
        let s = self.status(Some(id)).await?;
        let p: Option<Proposal> =
            serde_json::from_str(&s.detail_json).map_err(|e| ClientError::Decode {
                what: "proposal",
                detail: e.to_string(),
            })?;
        p.ok_or_else(|| ClientError::NoSuchProposal {
            id,
            node: self.node.clone(),
        })
    }

    /// Polls proposal `id` until it is decided (approved, rejected or expired) or `timeout`
    /// passes; `on_vote` sees each validator's vote once, as it arrives.
    pub async fn wait_decision(
        &mut self,
        id: u64,
        timeout: Duration,
        mut on_vote: impl FnMut(u32, &VoteRecord),
    ) -> Result<Proposal, ClientError> {
        let start = Instant::now();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let p = self.proposal(id).await?;
            for (v, vote) in &p.votes {
                if seen.insert(*v) {
                    on_vote(*v, vote);
                }
            }
            if p.status != ProposalStatus::Pending {
                return Ok(p);
            }
            if start.elapsed() > timeout {
                return Err(ClientError::StillPending { id, timeout });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ledger's events from index `from` on, as they happen.
    pub async fn watch(
        &mut self,
        from: u64,
    ) -> Result<tonic::Streaming<pb::LedgerEvent>, ClientError> {
        Ok(self
            .inner
            .watch(pb::WatchRequest { from_event: from })
            .await?
            .into_inner())
    }
}
