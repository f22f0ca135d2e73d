//! The digest a checkpoint certifies: the sequence number, the application's digest and the
//! nonce table (each signer's key and window, in key order), so a replica restored from a
//! checkpoint also refuses the requests that executed before it.

use std::collections::BTreeMap;

use super::super::nonce::NonceWindow;
use super::super::types::{Digest, Seq};
use crate::crypto::PublicKey;

/// Digest of the replicated state at `seq`: the application digest and the nonce table.
pub fn state_digest(seq: Seq, app: Digest, nonces: &BTreeMap<PublicKey, NonceWindow>) -> Digest {
    state_digest_of(seq, app, &nonce_parts(nonces))
}

/// A signer's key and nonce window, as [`state_digest`] hashes them.
pub type NoncePart = ([u8; 32], [u8; 24]);

/// The nonce table as [`state_digest`] hashes it: each signer's key and window, in key order
/// (what a proof of part of the state carries to lead from the application digest to the
/// checkpoint's).
pub fn nonce_parts(nonces: &BTreeMap<PublicKey, NonceWindow>) -> Vec<NoncePart> {
    nonces
        .iter()
        .map(|(k, w)| (*k.as_bytes(), w.to_bytes()))
        .collect()
}

/// [`state_digest`] from the nonce table's [`nonce_parts`].
pub fn state_digest_of(seq: Seq, app: Digest, nonces: &[NoncePart]) -> Digest {
    let seq_bytes = seq.0.to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![b"state", &seq_bytes, app.as_bytes()];
    for (k, w) in nonces {
        parts.push(k);
        parts.push(w);
    }
    Digest::of_parts(&parts)
}
