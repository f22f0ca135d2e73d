//! What can be wrong with bytes from outside, as one typed error, and the size cap the door
//! applies before anything is decoded.

use scbe_core::crypto::{CryptoError, PublicKey};

/// Largest envelope accepted from a peer or client, before anything is decoded.
pub const MAX_ENVELOPE_BYTES: usize = scbe_core::consensus::limits::MAX_MESSAGE_BYTES;

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
    #[error(
        "signer {0} is not a validator of this cluster (nor, for a request, a usable public key)"
    )]
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
