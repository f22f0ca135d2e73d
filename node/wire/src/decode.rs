//! Protobuf -> domain for consensus messages, behind the signature check: every nested
//! envelope (requests in a batch, prepares in a certificate, view changes in a new-view) is
//! verified, a whole list at a time with batch verification, before its payload is decoded.
//! Every field a peer sent is checked; nothing is unwrapped.

use std::collections::BTreeMap;
use std::sync::Arc;

use scbe_core::consensus::{
    Checkpoint, CheckpointCert, CommitCert, Digest, Directory, Envelope, EpochLink, Heartbeat,
    Kind, Message, NewView, PrePrepare, PreparedCert, Relay, ReplicaId, Request, Seq, Signed,
    Snapshot, SnapshotPart, StateRequest, StateResponse, Suspect, ValidatorSet, View, ViewChange,
    Vote,
};
use scbe_core::crypto::{self, PublicKey, Signature};
use scbe_proto::v1 as pb;

use crate::verified_cache::VerifiedCache;
use crate::wire_error::WireError;

pub(crate) fn kind_from_proto(raw: i32) -> Result<Kind, WireError> {
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

/// Decoding context: who may sign, and optionally what was verified before.
pub(crate) struct Cx<'a> {
    pub(crate) dir: &'a Directory,
    pub(crate) cache: Option<&'a VerifiedCache>,
}

pub(crate) fn decode<M: prost::Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, WireError> {
    M::decode(bytes).map_err(|e| WireError::Decode {
        what,
        reason: e.to_string(),
    })
}

pub(crate) fn digest(
    what: &'static str,
    field: &'static str,
    b: &[u8],
) -> Result<Digest, WireError> {
    Digest::from_slice(b).ok_or(WireError::BadField {
        what,
        field,
        reason: "must be 32 bytes",
    })
}

pub(crate) fn envelope_from_proto(p: pb::Envelope) -> Result<Envelope, WireError> {
    Ok(Envelope {
        kind: kind_from_proto(p.kind)?,
        signer: PublicKey::from_slice(&p.signer)?,
        signature: Signature::from_slice(&p.signature)?,
        payload: p.payload.to_vec(),
    })
}

/// Resolves signers and batch-verifies a list of nested envelopes of one expected kind, then
/// decodes each payload.
pub(crate) fn open_many<T>(
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
    // (envelope, its signer's key) of those whose signature is still to check.
    let mut unchecked = Vec::with_capacity(envs.len());
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
            .resolve(&e.signer, e.kind)
            .ok_or(WireError::UnknownSigner(e.signer))?;
        principals.push(principal);
        let digest = cx.cache.map(|_| e.digest());
        if digest.is_some_and(|d| cx.cache.is_some_and(|c| c.contains(&d))) {
            continue;
        }
        fresh.extend(digest);
        unchecked.push((e, verifier));
    }
    let items: Vec<crypto::SignedItem<'_>> =
        unchecked.iter().map(|(e, v)| e.signed_item(v)).collect();
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

pub(crate) fn open_one<T>(
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

pub(crate) fn decode_request(_: &Cx<'_>, b: &[u8]) -> Result<Request, WireError> {
    let p: pb::Request = decode("request", b)?;
    Ok(Request {
        nonce: p.nonce,
        operation: p.operation.to_vec(),
    })
}

pub(crate) fn decode_pre_prepare(cx: &Cx<'_>, b: &[u8]) -> Result<PrePrepare, WireError> {
    const W: &str = "pre_prepare";
    let p: pb::PrePrepare = decode(W, b)?;
    Ok(PrePrepare {
        view: View(p.view),
        seq: Seq(p.seq),
        digest: digest(W, "digest", &p.digest)?,
        batch: open_many(cx, W, Kind::Request, p.batch, decode_request)?,
    })
}

pub(crate) fn decode_vote(_: &Cx<'_>, b: &[u8]) -> Result<Vote, WireError> {
    let p: pb::Vote = decode("vote", b)?;
    Ok(Vote {
        view: View(p.view),
        seq: Seq(p.seq),
        digest: digest("vote", "digest", &p.digest)?,
    })
}

/// An optional digest: empty bytes mean absent.
pub(crate) fn opt_digest(
    what: &'static str,
    field: &'static str,
    b: &[u8],
) -> Result<Option<Digest>, WireError> {
    if b.is_empty() {
        return Ok(None);
    }
    digest(what, field, b).map(Some)
}

pub(crate) fn decode_checkpoint(_: &Cx<'_>, b: &[u8]) -> Result<Checkpoint, WireError> {
    let p: pb::Checkpoint = decode("checkpoint", b)?;
    Ok(Checkpoint {
        seq: Seq(p.seq),
        state_digest: digest("checkpoint", "state_digest", &p.state_digest)?,
        next_set: opt_digest("checkpoint", "next_set", &p.next_set)?,
    })
}

pub(crate) fn checkpoint_cert_from_proto(
    cx: &Cx<'_>,
    p: pb::CheckpointCertificate,
) -> Result<CheckpointCert, WireError> {
    const W: &str = "checkpoint_certificate";
    Ok(CheckpointCert {
        seq: Seq(p.seq),
        state_digest: digest(W, "state_digest", &p.state_digest)?,
        next_set: opt_digest(W, "next_set", &p.next_set)?,
        proof: open_many(cx, W, Kind::Checkpoint, p.checkpoints, decode_checkpoint)?,
    })
}

/// Members a validator set from a peer or the store may name (far beyond any set consensus
/// runs: the message cap refuses those long before).
const MAX_SET_MEMBERS: usize = 4096;
/// Links one state response may carry (the sender's own cap is lower, see `limits`).
const MAX_LINKS: usize = 64;

pub(crate) fn validator_set_from_proto(
    what: &'static str,
    p: Option<pb::ValidatorSet>,
) -> Result<ValidatorSet, WireError> {
    let p = p.ok_or(WireError::BadField {
        what,
        field: "set",
        reason: "missing",
    })?;
    if p.members.len() > MAX_SET_MEMBERS {
        return Err(WireError::BadField {
            what,
            field: "members",
            reason: "more members than any validator set has",
        });
    }
    let members = p
        .members
        .into_iter()
        .map(|m| Ok((ReplicaId(m.id), PublicKey::from_slice(&m.public_key)?)))
        .collect::<Result<_, WireError>>()?;
    Ok(ValidatorSet {
        epoch: p.epoch,
        start: Seq(p.start),
        members,
    })
}

/// A link of the validator-set chain: its boundary certificate is opened with the keys of the
/// set the link says signed it (the replica checks that set is the one it trusts).
pub(crate) fn epoch_link_from_proto(
    cache: Option<&VerifiedCache>,
    p: pb::EpochLink,
) -> Result<EpochLink, WireError> {
    const W: &str = "epoch_link";
    let previous = validator_set_from_proto(W, p.previous)?;
    let set = validator_set_from_proto(W, p.set)?;
    let signers = Directory::of_set(&previous, Vec::new()).map_err(|_| WireError::BadField {
        what: W,
        field: "previous",
        reason: "not a valid validator set",
    })?;
    let boundary = p.boundary.ok_or(WireError::BadField {
        what: W,
        field: "boundary",
        reason: "missing",
    })?;
    let signers_cx = Cx {
        dir: &signers,
        cache,
    };
    Ok(EpochLink {
        previous,
        boundary: checkpoint_cert_from_proto(&signers_cx, boundary)?,
        set,
    })
}

pub(crate) fn prepared_from_proto(
    cx: &Cx<'_>,
    p: pb::PreparedCertificate,
) -> Result<PreparedCert, WireError> {
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

pub(crate) fn commit_cert_from_proto(
    cx: &Cx<'_>,
    p: pb::CommitCertificate,
) -> Result<CommitCert, WireError> {
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

pub(crate) fn decode_view_change(cx: &Cx<'_>, b: &[u8]) -> Result<ViewChange, WireError> {
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

pub(crate) fn decode_new_view(cx: &Cx<'_>, b: &[u8]) -> Result<NewView, WireError> {
    const W: &str = "new_view";
    let p: pb::NewView = decode(W, b)?;
    Ok(NewView {
        view: View(p.view),
        view_changes: open_many(cx, W, Kind::ViewChange, p.view_changes, decode_view_change)?,
        pre_prepares: open_many(cx, W, Kind::PrePrepare, p.pre_prepares, decode_pre_prepare)?,
    })
}

pub(crate) fn snapshot_from_proto(p: pb::Snapshot) -> Result<Snapshot, WireError> {
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
        let window = scbe_core::consensus::nonce::NonceWindow {
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

pub(crate) fn decode_state_response(cx: &Cx<'_>, b: &[u8]) -> Result<StateResponse, WireError> {
    const W: &str = "state_response";
    let p: pb::StateResponse = decode(W, b)?;
    if p.epochs.len() > MAX_LINKS {
        return Err(WireError::BadField {
            what: W,
            field: "epochs",
            reason: "more epoch links than a response carries",
        });
    }
    let epochs: Vec<EpochLink> = p
        .epochs
        .into_iter()
        .map(|l| epoch_link_from_proto(cx.cache, l))
        .collect::<Result<_, _>>()?;
    // What later sets signed (the snapshot's certificate, decided batches) resolves with the
    // keys the links name; the replica checks each against the set the chain proves.
    let later;
    let cx = if epochs.is_empty() {
        cx
    } else {
        let dir = cx
            .dir
            .resolving(epochs.iter().flat_map(|l| [&l.previous, &l.set]))
            .map_err(|_| WireError::BadField {
                what: W,
                field: "epochs",
                reason: "a link names a key that is not a valid point",
            })?;
        later = (dir, cx.cache);
        &Cx {
            dir: &later.0,
            cache: later.1,
        }
    };
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
        epochs,
    })
}

pub(crate) fn decode_message(cx: &Cx<'_>, kind: Kind, b: &[u8]) -> Result<Message, WireError> {
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
                epoch: p.epoch,
                needs_snapshot: p.needs_snapshot,
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
            Message::Suspect(Suspect {
                view: View(p.view),
                early: p.early,
            })
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
