//! `Governance` server: the client API. Only requesters in force may submit; a request is
//! verified here, then handed to the core, and the reply waits for the decided outcome.
//! `Status` and `Watch` need no key: they read what the core published (`crate::reads`) and
//! never enter its queue; open `Watch` streams are capped.

use std::sync::Arc;
use std::time::Duration;

use scbe_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use scbe_core::consensus::{retype_request, Digest, Kind, Principal};
use scbe_core::governance::event::Event;
use scbe_wire::genesis::check_if_presented;

use crate::inbound::Inbound;
use crate::reads::read_model::{StatusDetail, StatusQuery, StatusReport};
use crate::reads::Reads;
use scbe_core::validator_step::{ClientReply, SubmitRefusal};

use futures_util::FutureExt as _;

use scbe_wire::{open_many_cached, VerifiedCache, WireError};

/// How long `Submit` waits for a decision before telling the client to check status later.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests of one `SubmitStream` call waiting for a decision at a time. Beyond it the server
/// stops reading the stream (HTTP/2 flow control then holds the client back). Requests are
/// also bounded by the requester's quota and the core's pending cap.
pub const STREAM_IN_FLIGHT: usize = 1024;
/// Requests of one stream whose signatures are checked in one batch at most: large enough for
/// the batch to pay (about half the cost per signature), small enough that one batch holds a
/// runtime worker for a couple of milliseconds only.
const STREAM_VERIFY_BATCH: usize = 64;

/// `Watch` streams open at once on one validator; more are refused (`RESOURCE_EXHAUSTED`).
pub const MAX_WATCH_STREAMS: usize = 256;

/// A request handed to the core: its decision arrives here.
type Decision = oneshot::Receiver<Result<ClientReply, SubmitRefusal>>;

#[derive(Clone)]
pub struct GovernanceService {
    pub inbound: mpsc::Sender<Inbound>,
    /// Resolves signers with the validator set in force (it follows epochs).
    pub directory: Arc<crate::edge_directory::EdgeDirectory>,
    pub verified: Arc<VerifiedCache>,
    /// What the core published for readers.
    pub reads: Reads,
    /// One permit per open `Watch` stream.
    pub watch_slots: Arc<tokio::sync::Semaphore>,
    /// Largest request the consensus core admits; bigger ones are refused here, unordered.
    pub max_request_bytes: usize,
    pub quotas: Arc<super::quota::Quotas>,
    /// A client that presents a genesis must present this one.
    pub genesis: Digest,
}

#[tonic::async_trait]
impl pb::governance_server::Governance for GovernanceService {
    type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::LedgerEvent, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        check_if_presented(&request, &self.genesis).map_err(|m| m.to_status())?;
        let permit = Arc::clone(&self.watch_slots)
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "this validator serves {MAX_WATCH_STREAMS} Watch streams at most; try another \
                     validator or later"
                ))
            })?;
        let mut next = request.into_inner().from_event;
        let reads = self.reads.clone();
        let mut changed = self.reads.events.subscribe();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                // Marked seen before reading: an event added meanwhile wakes the wait below.
                changed.borrow_and_update();
                let chunk = reads.events_from(next).await;
                if chunk.is_empty() {
                    // Caught up: wait for the core to publish more, or the client to leave.
                    tokio::select! {
                        c = changed.changed() => if c.is_err() { return },
                        () = tx.closed() => return,
                    }
                    continue;
                }
                let bytes: usize = chunk
                    .iter()
                    .map(|(_, e)| e.kind.len() + e.subject.len() + e.detail.len() + 32)
                    .sum();
                reads.pace.wait(bytes).await;
                for (index, e) in chunk {
                    next = index + 1;
                    if tx.send(Ok(event_to_proto(index, e))).await.is_err() {
                        return; // the client went away
                    }
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn submit(
        &self,
        request: Request<pb::Envelope>,
    ) -> Result<Response<pb::SubmitReply>, Status> {
        check_if_presented(&request, &self.genesis).map_err(|m| m.to_status())?;
        let decision = self.admit(request.into_inner()).await?;
        decided(decision).await.map(Response::new)
    }

    type SubmitStreamStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::SubmitResult, Status>>;

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<pb::Envelope>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        check_if_presented(&request, &self.genesis).map_err(|m| m.to_status())?;
        let mut incoming = request.into_inner();
        let this = self.clone();
        let (tx, rx) = mpsc::channel(STREAM_IN_FLIGHT);
        tokio::spawn(async move {
            // Dropped with this task when the client goes away: waiting requests stop being
            // watched (they may still be decided).
            let mut waiting = tokio::task::JoinSet::new();
            let mut index = 0u64;
            let mut open = true;
            while open || !waiting.is_empty() {
                tokio::select! {
                    next = incoming.message(), if open && waiting.len() < STREAM_IN_FLIGHT => {
                        let env = match next {
                            Ok(Some(env)) => env,
                            Ok(None) | Err(_) => { open = false; continue; }
                        };
                        // Every request already received joins this one, so that their
                        // signatures are checked in one batch.
                        let room = (STREAM_IN_FLIGHT - waiting.len()).min(STREAM_VERIFY_BATCH);
                        let mut envs = vec![env];
                        while envs.len() < room {
                            match incoming.message().now_or_never() {
                                Some(Ok(Some(env))) => envs.push(env),
                                Some(Ok(None)) | Some(Err(_)) => { open = false; break; }
                                None => break,
                            }
                        }
                        for admitted in this.admit_many(envs).await {
                            let i = index;
                            index += 1;
                            match admitted {
                                Ok(decision) => {
                                    waiting.spawn(async move { (i, decided(decision).await) });
                                }
                                Err(status) => {
                                    if tx.send(Ok(result(i, Err(status)))).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    Some(done) = waiting.join_next(), if !waiting.is_empty() => {
                        let Ok((i, outcome)) = done else { continue };
                        if tx.send(Ok(result(i, outcome))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        check_if_presented(&request, &self.genesis).map_err(|m| m.to_status())?;
        let request = request.into_inner();
        let signer = match request.signer.len() {
            0 => None,
            _ => Some(
                scbe_core::crypto::PublicKey::from_slice(&request.signer)
                    .map_err(|e| Status::invalid_argument(format!("signer: {e}")))?,
            ),
        };
        let report = self
            .reads
            .status(StatusQuery {
                proposal: request.proposal,
                signer,
                brief: request.brief,
            })
            .await;
        let reply = status_to_proto(report);
        self.reads.pace.wait(reply.detail_json.len() + 256).await;
        Ok(Response::new(reply))
    }
}

impl GovernanceService {
    /// Every check `Submit` makes before ordering (kind, size, signature, role, quota), then
    /// hands the request to the core. Nothing is ordered when it fails.
    async fn admit(&self, env: pb::Envelope) -> Result<Decision, Status> {
        let mut one = self.admit_many(vec![env]).await;
        one.pop()
            .unwrap_or_else(|| Err(Status::internal("request lost while opening")))
    }

    /// [`Self::admit`] for requests that arrived together on one stream: the same checks and
    /// answers, in order, with the signatures checked in one batch.
    async fn admit_many(&self, envs: Vec<pb::Envelope>) -> Vec<Result<Decision, Status>> {
        let mut checked: Vec<Result<usize, Status>> = Vec::with_capacity(envs.len());
        let mut passed = Vec::with_capacity(envs.len());
        for env in envs {
            let c = self.precheck(&env);
            if c.is_ok() {
                passed.push(env);
            }
            checked.push(c);
        }
        let directory = self.directory.current();
        let mut opened = open_many_cached(passed, &directory, &self.verified).into_iter();
        let mut out = Vec::with_capacity(checked.len());
        for c in checked {
            // Only a request that passed the precheck was opened: take its result, and none
            // for one that did not (taking one there shifted every later answer onto the
            // request before it, and lost the last).
            out.push(match c {
                Ok(size) => match opened.next() {
                    Some(o) => self.hand_over(o, size).await,
                    None => Err(Status::internal("request lost while opening")),
                },
                Err(status) => Err(status),
            });
        }
        out
    }

    /// The checks before the signature: kind and size. Returns the size the quota counts.
    fn precheck(&self, env: &pb::Envelope) -> Result<usize, Status> {
        if env.kind != pb::Kind::Request as i32 {
            return Err(Status::invalid_argument(
                "only request envelopes may be submitted",
            ));
        }
        let size = env.payload.len() + scbe_core::consensus::limits::REQUEST_FRAMING_BYTES;
        if size > self.max_request_bytes {
            // Refused before the signature is even checked: nothing is ordered.
            return Err(Status::invalid_argument(format!(
                "request of {size} bytes exceeds this cluster's {}-byte request limit (operations up to {} bytes); nothing was ordered",
                self.max_request_bytes,
                scbe_core::governance::operation::max_operation_bytes(self.max_request_bytes),
            )));
        }
        Ok(size)
    }

    /// After the signature check: the signer's role and quota, then the core.
    async fn hand_over(
        &self,
        opened: Result<scbe_core::consensus::Signed<scbe_core::consensus::Message>, WireError>,
        size: usize,
    ) -> Result<Decision, Status> {
        let signed = opened.map_err(|e| match e {
            WireError::UnknownSigner(k) => {
                Status::permission_denied(format!("signer {k} is not a usable ed25519 public key"))
            }
            WireError::Crypto(c) => {
                Status::permission_denied(format!("signature check failed: {c}"))
            }
            other => Status::invalid_argument(other.to_string()),
        })?;
        if signed.principal() != Principal::Requester || signed.envelope().kind != Kind::Request {
            return Err(Status::permission_denied(
                "only registered requesters submit through the client API; validators vote through consensus",
            ));
        }
        let Some(request) = retype_request(&signed) else {
            return Err(Status::invalid_argument("envelope does not hold a request"));
        };
        self.quotas
            .admit(signed.signer(), size as u64, std::time::Instant::now())
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.inbound
            .send(Inbound::Client { request, reply: tx })
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))?;
        Ok(rx)
    }
}

/// Waits for the core's decision (at most `SUBMIT_TIMEOUT`).
async fn decided(decision: Decision) -> Result<pb::SubmitReply, Status> {
    match tokio::time::timeout(SUBMIT_TIMEOUT, decision).await {
        Ok(Ok(Ok(r))) => Ok(pb::SubmitReply {
            seq: r.seq,
            accepted: r.outcome.accepted,
            reasons: r.outcome.reasons,
            proposal: r.outcome.proposal,
            rollout: r.outcome.rollout,
            already_decided: r.already,
        }),
        Ok(Ok(Err(refused))) => Err(refusal_status(&refused)),
        Ok(Err(_)) => Err(Status::unavailable("node dropped the request")),
        Err(_) => Err(Status::deadline_exceeded(
            "not decided within 30 s; the request may still be ordered: check `scbe status`",
        )),
    }
}

/// The gRPC status of a refused request: a nonce that can never execute is the client's
/// mistake (INVALID_ARGUMENT); one already used, or used by another request, is a state the
/// client must move past by signing again (FAILED_PRECONDITION).
pub fn refusal_status(refused: &SubmitRefusal) -> Status {
    use scbe_core::consensus::nonce::NonceError;
    let message = refused.to_string();
    match refused {
        SubmitRefusal::NotARequester(_) => Status::permission_denied(message),
        SubmitRefusal::Nonce(NonceError::TooFarAhead { .. }) => Status::invalid_argument(message),
        SubmitRefusal::Nonce(NonceError::Used { .. } | NonceError::TooOld { .. })
        | SubmitRefusal::NonceTaken { .. } => Status::failed_precondition(message),
    }
}

/// A ledger event as `Watch` streams it.
fn event_to_proto(index: u64, e: Event) -> pb::LedgerEvent {
    pb::LedgerEvent {
        index,
        seq: e.seq,
        tag: format!("{:?}", e.tongue),
        tongue: e.tongue.tongue().into(),
        phase: e.tongue.phase().into(),
        kind: e.kind,
        subject: e.subject,
        detail: e.detail,
    }
}

/// The core's status report as `Status` returns it: the detail as JSON (the typed
/// `StatusSummary`, or one proposal).
fn status_to_proto(r: StatusReport) -> pb::StatusReply {
    let brief = matches!(r.detail, StatusDetail::Nothing);
    let detail_json = match r.detail {
        StatusDetail::Summary(s) => String::clone(&s),
        StatusDetail::Proposal(p) => serde_json::to_string(&p.as_deref()).unwrap_or_default(),
        StatusDetail::Nothing => String::new(),
    };
    let hex = |d: &Digest| scbe_wire::key_file::encode_hex(d.as_bytes());
    let at = &r.position;
    pb::StatusReply {
        node: at.node,
        view: at.view,
        status: format!("{:?}", at.status),
        last_executed: at.last_executed,
        stable_checkpoint: at.stable_checkpoint,
        detail_json,
        last_nonce: r.last_nonce,
        genesis: hex(&r.genesis),
        cluster: r.cluster,
        stable_digest: at.stable_digest.as_bytes().to_vec().into(),
        state_digest: at
            .state_digest
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
            .into(),
        diverged_at: at.diverged_at.unwrap_or(0),
        epoch: at.epoch,
        observing: at.observing,
        epoch_proven: at.epoch_proven,
        silence_tolerated_ms: at.silence_tolerated.as_millis() as u64,
        epochs: if brief {
            Vec::new()
        } else {
            scbe_wire::epoch_links_to_proto(&at.chain.links)
        },
        peers: r
            .peers
            .into_iter()
            .map(|(id, p)| pb::PeerLink {
                id,
                address: p.address,
                connected: p.connected,
                refused_genesis: p.refused_genesis.as_ref().map(hex).unwrap_or_default(),
                problem: p.problem.unwrap_or_default(),
            })
            .collect(),
        refused: r
            .refused
            .into_iter()
            .map(|c| pb::RefusedCaller {
                from: c.from,
                presented: c.presented.as_ref().map(hex).unwrap_or_default(),
                count: c.count,
            })
            .collect(),
    }
}

/// One stream answer: the outcome, or the status unary `Submit` would have returned.
fn result(index: u64, outcome: Result<pb::SubmitReply, Status>) -> pb::SubmitResult {
    match outcome {
        Ok(reply) => pb::SubmitResult {
            index,
            reply: Some(reply),
            code: 0,
            message: String::new(),
        },
        Err(status) => pb::SubmitResult {
            index,
            reply: None,
            code: status.code() as i32,
            message: status.message().to_string(),
        },
    }
}
