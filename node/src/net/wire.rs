//! Protobuf <-> domain conversion for consensus messages, and the one door peer bytes come in by.
//!
//! [`open`] enforces the order that keeps untrusted input cheap to reject: size cap, decode the
//! outer envelope only, resolve the signer against the directory, verify the signature over the
//! exact payload bytes, and only then decode the payload. Nested envelopes (requests in a batch,
//! prepares in a certificate, view changes in a new-view) are verified the same way, a whole list
//! at a time with batch verification, before their payloads are decoded.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message as _;
use scbe_proto::v1 as pb;

use crate::consensus::{
    Checkpoint, CheckpointCert, Codec, CommitCert, Digest, Directory, Envelope, Heartbeat, Kind,
    Message, NewView, PrePrepare, PreparedCert, Record, Relay, Request, Seq, Signed, Snapshot,
    SnapshotPart, StateRequest, StateResponse, Suspect, View, ViewChange, Vote,
};
use crate::crypto::{self, CryptoError, PublicKey, Signature};

/// Largest envelope accepted from a peer or client, before anything is decoded.
pub const MAX_ENVELOPE_BYTES: usize = crate::consensus::limits::MAX_MESSAGE_BYTES;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("envelope of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("{what} does not decode: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("unknown message kind {0}")]
    UnknownKind(i32),
    #[error("{what}: expected a {expected} envelope, got {got}")]
    UnexpectedKind {
        what: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("signer {0} is neither a validator nor a registered requester")]
    UnknownSigner(PublicKey),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("{what}.{field}: {reason}")]
    BadField {
        what: &'static str,
        field: &'static str,
        reason: &'static str,
    },
}

fn kind_to_proto(kind: Kind) -> pb::Kind {
    match kind {
        Kind::Request => pb::Kind::Request,
        Kind::PrePrepare => pb::Kind::PrePrepare,
        Kind::Prepare => pb::Kind::Prepare,
        Kind::Commit => pb::Kind::Commit,
        Kind::Checkpoint => pb::Kind::Checkpoint,
        Kind::ViewChange => pb::Kind::ViewChange,
        Kind::NewView => pb::Kind::NewView,
        Kind::StateRequest => pb::Kind::StateRequest,
        Kind::StateResponse => pb::Kind::StateResponse,
        Kind::Heartbeat => pb::Kind::Heartbeat,
        Kind::Relay => pb::Kind::Relay,
        Kind::Suspect => pb::Kind::Suspect,
    }
}

fn kind_from_proto(raw: i32) -> Result<Kind, WireError> {
    let kind = match pb::Kind::try_from(raw).map_err(|_| WireError::UnknownKind(raw))? {
        pb::Kind::Unspecified => return Err(WireError::UnknownKind(raw)),
        pb::Kind::Request => Kind::Request,
        pb::Kind::PrePrepare => Kind::PrePrepare,
        pb::Kind::Prepare => Kind::Prepare,
        pb::Kind::Commit => Kind::Commit,
        pb::Kind::Checkpoint => Kind::Checkpoint,
        pb::Kind::ViewChange => Kind::ViewChange,
        pb::Kind::NewView => Kind::NewView,
        pb::Kind::StateRequest => Kind::StateRequest,
        pb::Kind::StateResponse => Kind::StateResponse,
        pb::Kind::Heartbeat => Kind::Heartbeat,
        pb::Kind::Relay => Kind::Relay,
        pb::Kind::Suspect => Kind::Suspect,
    };
    Ok(kind)
}

// ----- domain -> proto --------------------------------------------------------------------

/// Domain envelope to its protobuf form, for sending.
pub fn envelope_to_proto(env: &Envelope) -> pb::Envelope {
    pb::Envelope {
        kind: kind_to_proto(env.kind) as i32,
        payload: env.payload.clone().into(),
        signer: env.signer.as_bytes().to_vec().into(),
        signature: env.signature.as_bytes().to_vec().into(),
    }
}

fn envelopes<T>(items: &[Signed<T>]) -> Vec<pb::Envelope> {
    items
        .iter()
        .map(|s| envelope_to_proto(s.envelope()))
        .collect()
}

fn digest_bytes(d: &Digest) -> prost::bytes::Bytes {
    d.as_bytes().to_vec().into()
}

fn checkpoint_cert_to_proto(c: &CheckpointCert) -> pb::CheckpointCertificate {
    pb::CheckpointCertificate {
        seq: c.seq.0,
        state_digest: digest_bytes(&c.state_digest),
        checkpoints: envelopes(&c.proof),
    }
}

fn prepared_to_proto(c: &PreparedCert) -> pb::PreparedCertificate {
    pb::PreparedCertificate {
        pre_prepare: Some(envelope_to_proto(c.pre_prepare.envelope())),
        prepares: envelopes(&c.prepares),
    }
}

/// A commit certificate in its protobuf form (audit export).
pub fn commit_cert_to_proto(c: &CommitCert) -> pb::CommitCertificate {
    pb::CommitCertificate {
        pre_prepare: Some(envelope_to_proto(c.pre_prepare.envelope())),
        commits: envelopes(&c.commits),
    }
}

fn snapshot_to_proto(s: &Snapshot) -> pb::Snapshot {
    pb::Snapshot {
        seq: s.seq.0,
        app_state: s.app_state.to_vec().into(),
        nonces: s
            .nonces
            .iter()
            .map(|(k, n)| pb::NonceEntry {
                signer: k.as_bytes().to_vec().into(),
                nonce: n.highest,
                below: n.below.to_be_bytes().to_vec().into(),
            })
            .collect(),
    }
}

/// Encodes an envelope for the network.
pub fn encode_envelope(env: &Envelope) -> Vec<u8> {
    envelope_to_proto(env).encode_to_vec()
}

/// The prost implementation of the core's [`Codec`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ProtoCodec;

impl Codec for ProtoCodec {
    fn encode_request(&self, v: &Request) -> Vec<u8> {
        pb::Request {
            nonce: v.nonce,
            operation: v.operation.clone().into(),
        }
        .encode_to_vec()
    }

    fn encode_pre_prepare(&self, v: &PrePrepare) -> Vec<u8> {
        pb::PrePrepare {
            view: v.view.0,
            seq: v.seq.0,
            digest: digest_bytes(&v.digest),
            batch: envelopes(&v.batch),
        }
        .encode_to_vec()
    }

    fn encode_vote(&self, v: &Vote) -> Vec<u8> {
        pb::Vote {
            view: v.view.0,
            seq: v.seq.0,
            digest: digest_bytes(&v.digest),
        }
        .encode_to_vec()
    }

    fn encode_checkpoint(&self, v: &Checkpoint) -> Vec<u8> {
        pb::Checkpoint {
            seq: v.seq.0,
            state_digest: digest_bytes(&v.state_digest),
        }
        .encode_to_vec()
    }

    fn encode_view_change(&self, v: &ViewChange) -> Vec<u8> {
        pb::ViewChange {
            new_view: v.new_view.0,
            stable: Some(checkpoint_cert_to_proto(&v.stable)),
            prepared: v.prepared.iter().map(prepared_to_proto).collect(),
        }
        .encode_to_vec()
    }

    fn encode_new_view(&self, v: &NewView) -> Vec<u8> {
        pb::NewView {
            view: v.view.0,
            view_changes: envelopes(&v.view_changes),
            pre_prepares: envelopes(&v.pre_prepares),
        }
        .encode_to_vec()
    }

    fn encode_state_request(&self, v: &StateRequest) -> Vec<u8> {
        pb::StateRequest {
            after_seq: v.after.0,
            snapshot_offset: v.snapshot_offset,
        }
        .encode_to_vec()
    }

    fn encode_heartbeat(&self, v: &Heartbeat) -> Vec<u8> {
        pb::Heartbeat {
            view: v.view.0,
            last_executed: v.last_executed.0,
        }
        .encode_to_vec()
    }

    fn encode_suspect(&self, v: &Suspect) -> Vec<u8> {
        pb::Suspect { view: v.view.0 }.encode_to_vec()
    }

    fn encode_relay(&self, v: &Relay) -> Vec<u8> {
        pb::Relay {
            requests: envelopes(&v.requests),
        }
        .encode_to_vec()
    }

    fn encode_state_response(&self, v: &StateResponse) -> Vec<u8> {
        let (checkpoint, snapshot, part) = match &v.snapshot {
            Some((c, s, part)) => (
                Some(checkpoint_cert_to_proto(c)),
                Some(snapshot_to_proto(s)),
                *part,
            ),
            None => (
                None,
                None,
                SnapshotPart {
                    offset: 0,
                    total: 0,
                },
            ),
        };
        pb::StateResponse {
            checkpoint,
            snapshot,
            decided: v.decided.iter().map(commit_cert_to_proto).collect(),
            snapshot_offset: part.offset,
            snapshot_total: part.total,
        }
        .encode_to_vec()
    }
}

// ----- proto -> domain --------------------------------------------------------------------

/// Decoding context: who may sign, and optionally what was verified before.
struct Cx<'a> {
    dir: &'a Directory,
    cache: Option<&'a VerifiedCache>,
}

fn decode<M: prost::Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, WireError> {
    M::decode(bytes).map_err(|e| WireError::Decode {
        what,
        reason: e.to_string(),
    })
}

fn digest(what: &'static str, field: &'static str, b: &[u8]) -> Result<Digest, WireError> {
    Digest::from_slice(b).ok_or(WireError::BadField {
        what,
        field,
        reason: "must be 32 bytes",
    })
}

fn envelope_from_proto(p: pb::Envelope) -> Result<Envelope, WireError> {
    Ok(Envelope {
        kind: kind_from_proto(p.kind)?,
        signer: PublicKey::from_slice(&p.signer)?,
        signature: Signature::from_slice(&p.signature)?,
        payload: p.payload.to_vec(),
    })
}

/// Resolves signers and batch-verifies a list of nested envelopes of one expected kind, then
/// decodes each payload.
fn open_many<T>(
    cx: &Cx<'_>,
    what: &'static str,
    expected: Kind,
    list: Vec<pb::Envelope>,
    decode_one: impl Fn(&Cx<'_>, &[u8]) -> Result<T, WireError>,
) -> Result<Vec<Signed<T>>, WireError> {
    let envs = list
        .into_iter()
        .map(envelope_from_proto)
        .collect::<Result<Vec<_>, _>>()?;
    let mut principals = Vec::with_capacity(envs.len());
    let mut items = Vec::with_capacity(envs.len());
    let mut fresh = Vec::new();
    for e in &envs {
        if e.kind != expected {
            return Err(WireError::UnexpectedKind {
                what,
                expected: expected.name(),
                got: e.kind.name(),
            });
        }
        let (principal, verifier) = cx
            .dir
            .lookup(&e.signer)
            .ok_or(WireError::UnknownSigner(e.signer))?;
        principals.push(principal);
        let digest = cx.cache.map(|_| e.digest());
        if digest.is_some_and(|d| cx.cache.is_some_and(|c| c.contains(&d))) {
            continue;
        }
        fresh.extend(digest);
        items.push(e.signed_item(verifier));
    }
    crypto::verify_batch(&items)?;
    drop(items);
    if let Some(c) = cx.cache {
        for d in fresh {
            c.insert(d);
        }
    }
    envs.into_iter()
        .zip(principals)
        .map(|(e, p)| {
            let value = decode_one(cx, &e.payload)?;
            Ok(Signed::from_verified(value, Arc::new(e), p))
        })
        .collect()
}

fn open_one<T>(
    cx: &Cx<'_>,
    what: &'static str,
    field: &'static str,
    expected: Kind,
    env: Option<pb::Envelope>,
    decode_one: impl Fn(&Cx<'_>, &[u8]) -> Result<T, WireError>,
) -> Result<Signed<T>, WireError> {
    let env = env.ok_or(WireError::BadField {
        what,
        field,
        reason: "missing",
    })?;
    let mut v = open_many(cx, what, expected, vec![env], decode_one)?;
    v.pop().ok_or(WireError::BadField {
        what,
        field,
        reason: "missing",
    })
}

fn decode_request(_: &Cx<'_>, b: &[u8]) -> Result<Request, WireError> {
    let p: pb::Request = decode("request", b)?;
    Ok(Request {
        nonce: p.nonce,
        operation: p.operation.to_vec(),
    })
}

fn decode_pre_prepare(cx: &Cx<'_>, b: &[u8]) -> Result<PrePrepare, WireError> {
    const W: &str = "pre_prepare";
    let p: pb::PrePrepare = decode(W, b)?;
    Ok(PrePrepare {
        view: View(p.view),
        seq: Seq(p.seq),
        digest: digest(W, "digest", &p.digest)?,
        batch: open_many(cx, W, Kind::Request, p.batch, decode_request)?,
    })
}

fn decode_vote(_: &Cx<'_>, b: &[u8]) -> Result<Vote, WireError> {
    let p: pb::Vote = decode("vote", b)?;
    Ok(Vote {
        view: View(p.view),
        seq: Seq(p.seq),
        digest: digest("vote", "digest", &p.digest)?,
    })
}

fn decode_checkpoint(_: &Cx<'_>, b: &[u8]) -> Result<Checkpoint, WireError> {
    let p: pb::Checkpoint = decode("checkpoint", b)?;
    Ok(Checkpoint {
        seq: Seq(p.seq),
        state_digest: digest("checkpoint", "state_digest", &p.state_digest)?,
    })
}

fn checkpoint_cert_from_proto(
    cx: &Cx<'_>,
    p: pb::CheckpointCertificate,
) -> Result<CheckpointCert, WireError> {
    const W: &str = "checkpoint_certificate";
    Ok(CheckpointCert {
        seq: Seq(p.seq),
        state_digest: digest(W, "state_digest", &p.state_digest)?,
        proof: open_many(cx, W, Kind::Checkpoint, p.checkpoints, decode_checkpoint)?,
    })
}

fn prepared_from_proto(cx: &Cx<'_>, p: pb::PreparedCertificate) -> Result<PreparedCert, WireError> {
    const W: &str = "prepared_certificate";
    Ok(PreparedCert {
        pre_prepare: open_one(
            cx,
            W,
            "pre_prepare",
            Kind::PrePrepare,
            p.pre_prepare,
            decode_pre_prepare,
        )?,
        prepares: open_many(cx, W, Kind::Prepare, p.prepares, decode_vote)?,
    })
}

fn commit_cert_from_proto(cx: &Cx<'_>, p: pb::CommitCertificate) -> Result<CommitCert, WireError> {
    const W: &str = "commit_certificate";
    Ok(CommitCert {
        pre_prepare: open_one(
            cx,
            W,
            "pre_prepare",
            Kind::PrePrepare,
            p.pre_prepare,
            decode_pre_prepare,
        )?,
        commits: open_many(cx, W, Kind::Commit, p.commits, decode_vote)?,
    })
}

fn decode_view_change(cx: &Cx<'_>, b: &[u8]) -> Result<ViewChange, WireError> {
    const W: &str = "view_change";
    let p: pb::ViewChange = decode(W, b)?;
    let stable = p.stable.ok_or(WireError::BadField {
        what: W,
        field: "stable",
        reason: "missing",
    })?;
    Ok(ViewChange {
        new_view: View(p.new_view),
        stable: checkpoint_cert_from_proto(cx, stable)?,
        prepared: p
            .prepared
            .into_iter()
            .map(|c| prepared_from_proto(cx, c))
            .collect::<Result<_, _>>()?,
    })
}

fn decode_new_view(cx: &Cx<'_>, b: &[u8]) -> Result<NewView, WireError> {
    const W: &str = "new_view";
    let p: pb::NewView = decode(W, b)?;
    Ok(NewView {
        view: View(p.view),
        view_changes: open_many(cx, W, Kind::ViewChange, p.view_changes, decode_view_change)?,
        pre_prepares: open_many(cx, W, Kind::PrePrepare, p.pre_prepares, decode_pre_prepare)?,
    })
}

fn snapshot_from_proto(p: pb::Snapshot) -> Result<Snapshot, WireError> {
    let mut nonces = BTreeMap::new();
    for e in p.nonces {
        let key = PublicKey::from_slice(&e.signer)?;
        let below: [u8; 16] = match e.below.len() {
            0 => [0; 16],
            _ => e
                .below
                .as_ref()
                .try_into()
                .map_err(|_| WireError::BadField {
                    what: "snapshot",
                    field: "nonces.below",
                    reason: "must be 16 bytes",
                })?,
        };
        let window = crate::consensus::nonce::NonceWindow {
            highest: e.nonce,
            below: u128::from_be_bytes(below),
        };
        if nonces.insert(key, window).is_some() {
            return Err(WireError::BadField {
                what: "snapshot",
                field: "nonces",
                reason: "a signer appears twice",
            });
        }
    }
    Ok(Snapshot {
        seq: Seq(p.seq),
        app_state: p.app_state.to_vec().into(),
        nonces,
    })
}

fn decode_state_response(cx: &Cx<'_>, b: &[u8]) -> Result<StateResponse, WireError> {
    const W: &str = "state_response";
    let p: pb::StateResponse = decode(W, b)?;
    let snapshot = match (p.checkpoint, p.snapshot) {
        (Some(c), Some(s)) => {
            let s = snapshot_from_proto(s)?;
            let len = s.app_state.len() as u64;
            let total = if p.snapshot_total == 0 {
                len
            } else {
                p.snapshot_total
            };
            if p.snapshot_offset
                .checked_add(len)
                .is_none_or(|end| end > total)
            {
                return Err(WireError::BadField {
                    what: W,
                    field: "snapshot_offset",
                    reason: "chunk extends past the snapshot's total",
                });
            }
            let part = SnapshotPart {
                offset: p.snapshot_offset,
                total,
            };
            Some((checkpoint_cert_from_proto(cx, c)?, s, part))
        }
        (None, None) => None,
        _ => {
            return Err(WireError::BadField {
                what: W,
                field: "snapshot",
                reason: "checkpoint and snapshot must come together",
            })
        }
    };
    Ok(StateResponse {
        snapshot,
        decided: p
            .decided
            .into_iter()
            .map(|c| commit_cert_from_proto(cx, c))
            .collect::<Result<_, _>>()?,
    })
}

fn decode_message(cx: &Cx<'_>, kind: Kind, b: &[u8]) -> Result<Message, WireError> {
    Ok(match kind {
        Kind::Request => Message::Request(decode_request(cx, b)?),
        Kind::PrePrepare => Message::PrePrepare(decode_pre_prepare(cx, b)?),
        Kind::Prepare => Message::Prepare(decode_vote(cx, b)?),
        Kind::Commit => Message::Commit(decode_vote(cx, b)?),
        Kind::Checkpoint => Message::Checkpoint(decode_checkpoint(cx, b)?),
        Kind::ViewChange => Message::ViewChange(decode_view_change(cx, b)?),
        Kind::NewView => Message::NewView(decode_new_view(cx, b)?),
        Kind::StateRequest => {
            let p: pb::StateRequest = decode("state_request", b)?;
            Message::StateRequest(StateRequest {
                after: Seq(p.after_seq),
                snapshot_offset: p.snapshot_offset,
            })
        }
        Kind::StateResponse => Message::StateResponse(decode_state_response(cx, b)?),
        Kind::Heartbeat => {
            let p: pb::Heartbeat = decode("heartbeat", b)?;
            Message::Heartbeat(Heartbeat {
                view: View(p.view),
                last_executed: Seq(p.last_executed),
            })
        }
        Kind::Suspect => {
            let p: pb::Suspect = decode("suspect", b)?;
            Message::Suspect(Suspect { view: View(p.view) })
        }
        Kind::Relay => {
            let p: pb::Relay = decode("relay", b)?;
            // Every client signature checked in one batch (or skipped if seen before).
            Message::Relay(Relay {
                requests: open_many(cx, "relay", Kind::Request, p.requests, decode_request)?,
            })
        }
    })
}

/// Opens an envelope from the network: size cap, outer decode, signer lookup, signature check,
/// and only then the payload (with nested envelopes verified the same way).
pub fn open(bytes: &[u8], dir: &Directory) -> Result<Signed<Message>, WireError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    open_proto(decode("envelope", bytes)?, dir)
}

/// [`open`] for an envelope tonic already decoded (its size was capped by the server).
pub fn open_proto(env: pb::Envelope, dir: &Directory) -> Result<Signed<Message>, WireError> {
    open_proto_cached(env, dir, None)
}

/// [`open_proto`] that skips signature checks of envelopes in `cache` and adds the ones it checks.
pub fn open_proto_cached(
    env: pb::Envelope,
    dir: &Directory,
    cache: Option<&VerifiedCache>,
) -> Result<Signed<Message>, WireError> {
    let cx = Cx { dir, cache };
    let env = envelope_from_proto(env)?;
    let (principal, verifier) = dir
        .lookup(&env.signer)
        .ok_or(WireError::UnknownSigner(env.signer))?;
    let digest = cache.map(|_| env.digest());
    let known = digest.is_some_and(|d| cache.is_some_and(|c| c.contains(&d)));
    if !known {
        verifier.verify(env.kind.name(), &env.payload, &env.signature)?;
        if let (Some(c), Some(d)) = (cache, digest) {
            c.insert(d);
        }
    }
    let message = decode_message(&cx, env.kind, &env.payload)?;
    Ok(Signed::from_verified(message, Arc::new(env), principal))
}

/// [`open_proto_cached`] for many envelopes at once (a client stream's requests that arrived
/// together): the signatures not in `cache` are checked in one batch, about twice as fast per
/// signature as one by one. If the batch fails, each is checked alone, so one forged envelope
/// costs only its own result. Each result is what [`open_proto_cached`] would have returned.
pub fn open_many_cached(
    envs: Vec<pb::Envelope>,
    dir: &Directory,
    cache: &VerifiedCache,
) -> Vec<Result<Signed<Message>, WireError>> {
    struct Opened<'d> {
        env: Envelope,
        principal: crate::consensus::Principal,
        verifier: &'d crypto::Verifier,
        digest: Digest,
        known: bool,
    }
    let opened: Vec<Result<Opened<'_>, WireError>> = envs
        .into_iter()
        .map(|p| {
            let env = envelope_from_proto(p)?;
            let (principal, verifier) = dir
                .lookup(&env.signer)
                .ok_or(WireError::UnknownSigner(env.signer))?;
            let digest = env.digest();
            let known = cache.contains(&digest);
            Ok(Opened {
                env,
                principal,
                verifier,
                digest,
                known,
            })
        })
        .collect();
    let items: Vec<crypto::SignedItem<'_>> = opened
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .filter(|o| !o.known)
        .map(|o| o.env.signed_item(o.verifier))
        .collect();
    let all_good = crypto::batch_holds(&items);
    drop(items);
    let cx = Cx {
        dir,
        cache: Some(cache),
    };
    opened
        .into_iter()
        .map(|o| {
            let o = o?;
            if !o.known {
                if !all_good {
                    o.verifier
                        .verify(o.env.kind.name(), &o.env.payload, &o.env.signature)?;
                }
                cache.insert(o.digest);
            }
            let message = decode_message(&cx, o.env.kind, &o.env.payload)?;
            Ok(Signed::from_verified(message, Arc::new(o.env), o.principal))
        })
        .collect()
}

#[path = "wire_records.rs"]
mod records;
pub use records::{
    decode_commit_cert, decode_record, encode_record, open_commit_cert, record_key,
    stored_record_key, StoredKind,
};
#[path = "verified_cache.rs"]
mod verified_cache;
pub use verified_cache::VerifiedCache;

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
