//! ed25519 keys and domain-separated signatures.
//!
//! Every signature in SCBE Fleet covers `b"scbe/v1/" ++ kind ++ payload`, where `kind` is one of a
//! fixed set of names (see [`crate::consensus::Kind::name`]) and `payload` is the exact byte string
//! that travels on the wire. Signing the received bytes (rather than a re-encoding of the decoded
//! value) removes any ambiguity about what was signed. No kind name is a prefix of another, so the
//! concatenation is unambiguous; a test in `consensus::message` keeps it so.
//!
//! This module is pure: key generation takes the 32 secret bytes from the caller, so the
//! deterministic simulator can derive keys from its seed and the daemon from the OS RNG.

use std::fmt;

use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha512};

/// Domain-separation prefix of every signature.
pub const DOMAIN: &[u8] = b"scbe/v1/";

/// Errors from key parsing and signature checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("public key must be 32 bytes, got {0}")]
    PublicKeyLength(usize),
    #[error("public key is not a valid ed25519 point")]
    PublicKeyInvalid,
    #[error("signature must be 64 bytes, got {0}")]
    SignatureLength(usize),
    #[error("signature does not verify for signer {0}")]
    BadSignature(PublicKey),
    #[error("batch of {0} signatures does not verify")]
    BadBatch(usize),
}

/// An ed25519 public key (32 bytes). Ordered so it can key a `BTreeMap`. Serialised as 64 hex
/// characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PublicKey::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("a public key is 64 hex characters"))
    }
}

impl PublicKey {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::PublicKeyLength(bytes.len()))?;
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From 64 hex characters (how keys are written in files and operations).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    pub fn to_hex(&self) -> String {
        crate::governance::release::hex(&self.0)
    }

    /// Whether this is a usable ed25519 verifying key (a valid point, not a weak one).
    pub fn is_valid(&self) -> bool {
        self.to_dalek().is_ok()
    }

    fn to_dalek(self) -> Result<ed25519_dalek::VerifyingKey, CryptoError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::PublicKeyInvalid)?;
        if key.is_weak() {
            return Err(CryptoError::PublicKeyInvalid);
        }
        Ok(key)
    }
}

/// A public key decompressed once, for repeated verification. Decompressing a point costs about
/// a third of a verification, so directories keep these rather than raw bytes.
#[derive(Clone, Debug)]
pub struct Verifier {
    public: PublicKey,
    key: ed25519_dalek::VerifyingKey,
}

impl Verifier {
    /// Rejects bytes that are not a point, and small-order (weak) keys.
    pub fn new(public: PublicKey) -> Result<Self, CryptoError> {
        Ok(Self {
            key: public.to_dalek()?,
            public,
        })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Verifies a signature over `DOMAIN ++ kind ++ payload` (strict: rejects non-canonical
    /// signatures so none can be malleated into a second valid one).
    pub fn verify(
        &self,
        kind: &str,
        payload: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let _t = timing::Guard::start();
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(&signed_bytes(kind, payload), &sig)
            .map_err(|_| CryptoError::BadSignature(self.public))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for PublicKey {
    /// Short hex prefix: enough to tell keys apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|_| CryptoError::SignatureLength(bytes.len()))?;
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A signing key with its public half.
#[derive(Clone)]
pub struct Keypair {
    secret: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl Keypair {
    /// Builds a keypair from 32 secret bytes (from the OS RNG in the daemon, from the seed in the
    /// simulator).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let secret = ed25519_dalek::SigningKey::from_bytes(&secret);
        let public = PublicKey(secret.verifying_key().to_bytes());
        Self { secret, public }
    }

    /// Deterministic key for tests and the simulator: sha512(label)[..32].
    pub fn from_label(label: &str) -> Self {
        let hash = Sha512::digest(label.as_bytes());
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&hash[..32]);
        Self::from_secret(secret)
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// Signs `DOMAIN ++ kind ++ payload`.
    pub fn sign(&self, kind: &str, payload: &[u8]) -> Signature {
        let _t = timing::Guard::start();
        let msg = signed_bytes(kind, payload);
        Signature(self.secret.sign(&msg).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.public)
    }
}

/// The exact byte string a signature covers.
pub fn signed_bytes(kind: &str, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + kind.len() + payload.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(kind.as_bytes());
    msg.extend_from_slice(payload);
    msg
}

/// Verifies one signature over `DOMAIN ++ kind ++ payload`, decompressing the key first. Prefer
/// a cached [`Verifier`] on hot paths.
pub fn verify(
    signer: &PublicKey,
    kind: &str,
    payload: &[u8],
    signature: &Signature,
) -> Result<(), CryptoError> {
    Verifier::new(*signer)?.verify(kind, payload, signature)
}

/// One item of a batch verification.
pub struct SignedItem<'a> {
    pub signer: &'a Verifier,
    pub kind: &'a str,
    pub payload: &'a [u8],
    pub signature: &'a Signature,
}

/// Below this many signatures one-by-one verification is as fast as a batch.
const BATCH_THRESHOLD: usize = 4;

/// Verifies several signatures at once. A batch is roughly twice as fast per signature as single
/// checks once it holds a handful; on failure it falls back to single checks to name the culprit.
///
/// Batch verification may accept a signature that strict single verification rejects, but only
/// one its own key holder crafted on purpose: no worse than a Byzantine signer sending different
/// messages to different peers. Weak keys never get this far ([`Verifier::new`]).
pub fn verify_batch(items: &[SignedItem<'_>]) -> Result<(), CryptoError> {
    if items.len() < BATCH_THRESHOLD {
        // One by one already: the first bad signature is the answer, checked once.
        for it in items {
            it.signer.verify(it.kind, it.payload, it.signature)?;
        }
        return Ok(());
    }
    if batch_holds(items) {
        return Ok(());
    }
    for it in items {
        it.signer.verify(it.kind, it.payload, it.signature)?;
    }
    Err(CryptoError::BadBatch(items.len()))
}

/// Whether every signature of `items` is valid (batch semantics, see [`verify_batch`]), without
/// finding the culprit when one is not: for a caller that checks the items one by one itself.
pub fn batch_holds(items: &[SignedItem<'_>]) -> bool {
    if items.len() < BATCH_THRESHOLD {
        return items
            .iter()
            .all(|it| it.signer.verify(it.kind, it.payload, it.signature).is_ok());
    }
    {
        let _t = timing::Guard::start();
        let messages: Vec<Vec<u8>> = items
            .iter()
            .map(|it| signed_bytes(it.kind, it.payload))
            .collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let sigs: Vec<ed25519_dalek::Signature> = items
            .iter()
            .map(|it| ed25519_dalek::Signature::from_bytes(&it.signature.0))
            .collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> = items.iter().map(|it| it.signer.key).collect();
        ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok()
    }
}

/// Per-thread time spent signing and verifying, for `scbe-sim bench-core` (feature `timing`).
/// Without the feature the guard is empty and compiles away. The one clock the core may read,
/// allowed here only: it measures, and nothing decides on it.
#[cfg_attr(
    feature = "timing",
    allow(clippy::disallowed_methods, clippy::disallowed_types)
)]
pub mod timing {
    #[cfg(feature = "timing")]
    thread_local! {
        static NANOS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    /// Times the enclosing scope (nested guards count once).
    pub struct Guard {
        #[cfg(feature = "timing")]
        start: Option<std::time::Instant>,
    }

    impl Guard {
        #[inline]
        pub fn start() -> Self {
            #[cfg(feature = "timing")]
            {
                let outer = DEPTH.with(|d| {
                    d.set(d.get() + 1);
                    d.get() == 1
                });
                Guard {
                    start: outer.then(std::time::Instant::now),
                }
            }
            #[cfg(not(feature = "timing"))]
            Guard {}
        }
    }

    #[cfg(feature = "timing")]
    impl Drop for Guard {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get() - 1));
            if let Some(s) = self.start {
                let n = s.elapsed().as_nanos() as u64;
                NANOS.with(|c| c.set(c.get() + n));
            }
        }
    }

    /// Nanoseconds this thread spent in signing and verification since the last call; resets.
    #[cfg(feature = "timing")]
    pub fn take_nanos() -> u64 {
        NANOS.with(|c| c.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_roundtrip_and_domain_separation() {
        let k = Keypair::from_label("a");
        let sig = k.sign("prepare", b"payload");
        assert!(verify(&k.public(), "prepare", b"payload", &sig).is_ok());
        // Same bytes under another kind must not verify.
        assert!(verify(&k.public(), "commit", b"payload", &sig).is_err());
        assert!(verify(&k.public(), "prepare", b"payloaD", &sig).is_err());
        let other = Keypair::from_label("b");
        assert_eq!(
            verify(&other.public(), "prepare", b"payload", &sig),
            Err(CryptoError::BadSignature(other.public()))
        );
    }

    #[test]
    fn batch_verification_accepts_good_and_names_bad() {
        let keys: Vec<Keypair> = (0..8)
            .map(|i| Keypair::from_label(&i.to_string()))
            .collect();
        let payloads: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(Keypair::public).collect();
        let verifiers: Vec<Verifier> = pubs
            .iter()
            .map(|p| Verifier::new(*p).expect("valid"))
            .collect();
        let mut sigs: Vec<Signature> = keys
            .iter()
            .zip(&payloads)
            .map(|(k, p)| k.sign("commit", p))
            .collect();
        let items = |sigs: &[Signature]| -> Result<(), CryptoError> {
            let items: Vec<SignedItem<'_>> = (0..8)
                .map(|i| SignedItem {
                    signer: &verifiers[i],
                    kind: "commit",
                    payload: &payloads[i],
                    signature: &sigs[i],
                })
                .collect();
            verify_batch(&items)
        };
        assert!(items(&sigs).is_ok());
        sigs[5].0[0] ^= 1;
        assert_eq!(items(&sigs), Err(CryptoError::BadSignature(pubs[5])));
    }

    #[test]
    fn malformed_lengths_are_errors_not_panics() {
        assert_eq!(
            PublicKey::from_slice(&[0; 31]),
            Err(CryptoError::PublicKeyLength(31))
        );
        assert_eq!(
            Signature::from_slice(&[0; 65]),
            Err(CryptoError::SignatureLength(65))
        );
        // The identity point is a valid encoding but a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            Verifier::new(PublicKey(identity)).map(|_| ()),
            Err(CryptoError::PublicKeyInvalid)
        );
    }
}
