//! The one door peer and client bytes come in by. [`open`] enforces the order that keeps
//! untrusted input cheap to reject: size cap, decode the outer envelope only, resolve the signer
//! against the directory, verify the signature over the exact payload bytes, and only then
//! decode the payload (with nested envelopes verified the same way, see `decode.rs`).

use std::sync::Arc;

use scbe_core::consensus::{Digest, Directory, Envelope, Message, Signed};
use scbe_core::crypto;
use scbe_proto::v1 as pb;

use crate::decode::{decode, decode_message, envelope_from_proto, Cx};
use crate::verified_cache::VerifiedCache;
use crate::wire_error::{WireError, MAX_ENVELOPE_BYTES};

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
        .resolve(&env.signer, env.kind)
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
        principal: scbe_core::consensus::Principal,
        verifier: std::borrow::Cow<'d, crypto::Verifier>,
        digest: Digest,
        known: bool,
    }
    let opened: Vec<Result<Opened<'_>, WireError>> = envs
        .into_iter()
        .map(|p| {
            let env = envelope_from_proto(p)?;
            let (principal, verifier) = dir
                .resolve(&env.signer, env.kind)
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
        .map(|o| o.env.signed_item(&o.verifier))
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
