//! A registered release as the ledger keeps it: its compact JSON, not the decoded value.
//!
//! Why: the ledger holds every release ever registered, and after registration it reads one
//! only when a promotion of it is evaluated or rolled out (rare) or a reader asks for it. A
//! decoded [`FusedRelease`] (strings, a map of units, metrics) took about 2.1 KB of memory for
//! a release whose JSON is about 1 KB, and the ledger's entry map kept that JSON beside it
//! besides. Kept as the JSON alone, a release costs its bytes, and it serialises as exactly
//! what `serde_json` writes for the decoded release, so snapshots, digests and proofs are the
//! same bytes as before.
//!
//! This type is the one place that knows where a body is: held in memory (its JSON), or in
//! the ledger's [`BodyStore`] by digest once the store has it ([`ReleaseBody::stored`]). Both
//! serialise, compare and decode the same; a stored body is read (and checked against its
//! digest) where it is used. The one exception is a validator's own persisted snapshot, in
//! which a stored body is written as a reference to it and read back against the same store
//! (`super::body_references`).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::body_references;
use super::body_store::{body_digest, BodyDigest, BodyKey, BodyUnavailable, SharedBodyStore};
use super::release::{FusedRelease, ReleaseError};

/// A release's compact JSON, as `serde_json` writes a [`FusedRelease`]: held, or in a store.
#[derive(Clone)]
pub struct ReleaseBody {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Held(Box<RawValue>),
    /// Inline, not boxed: a ledger entry is already behind an `Arc`, and a box of its own cost
    /// a stored release a second allocation (56 B and the allocator's rounding, against 40 B
    /// more in the entry's; issue 27's memory per release).
    Stored(Stored),
}

#[derive(Clone)]
struct Stored {
    key: BodyKey,
    store: SharedBodyStore,
}

impl ReleaseBody {
    /// The body of `release`, held. A release that does not encode (not one decoded from
    /// JSON: a non-finite metric) is refused.
    pub fn new(release: &FusedRelease) -> Result<Self, ReleaseError> {
        let json = serde_json::value::to_raw_value(release)
            .map_err(|e| ReleaseError::Json(e.to_string()))?;
        Ok(Self {
            repr: Repr::Held(json),
        })
    }

    /// The body `store` holds under `key`, read when used. The caller has seen the store hold
    /// it ([`BodyStore::contains`]).
    pub fn stored(key: BodyKey, store: SharedBodyStore) -> Self {
        Self {
            repr: Repr::Stored(Stored { key, store }),
        }
    }

    /// The release, decoded (about 5 µs for a 1 KB release, plus a read if stored). Fails for
    /// a body made from a release whose metrics were not finite numbers (JSON writes them as
    /// `null`), and for a stored body its store cannot give back.
    pub fn release(&self) -> Result<FusedRelease, ReleaseError> {
        serde_json::from_str(&self.json()?).map_err(|e| ReleaseError::Json(e.to_string()))
    }

    /// The compact JSON, byte for byte as serialised and digested.
    pub fn json(&self) -> Result<Cow<'_, str>, ReleaseError> {
        match &self.repr {
            Repr::Held(json) => Ok(Cow::Borrowed(json.get())),
            Repr::Stored(s) => Ok(Cow::Owned(s.read()?.get().to_owned())),
        }
    }

    /// The SHA-256 of the JSON (hashed now for a held body).
    pub fn digest(&self) -> BodyDigest {
        match &self.repr {
            Repr::Held(json) => body_digest(json.get()),
            Repr::Stored(s) => s.key.digest,
        }
    }

    /// Whether the JSON is in memory (not yet in a store).
    pub fn is_held(&self) -> bool {
        matches!(self.repr, Repr::Held(_))
    }
}

impl Stored {
    /// The stored JSON, refused unless it is what the digest names: a store that returns other
    /// bytes is as broken as one that returns none.
    fn read(&self) -> Result<Box<RawValue>, BodyUnavailable> {
        let json = self.store.read(&self.key)?;
        if body_digest(json.get()) != self.key.digest {
            return Err(BodyUnavailable {
                key: self.key,
                detail: "the store returned bytes of another digest".into(),
            });
        }
        Ok(json)
    }
}

impl PartialEq for ReleaseBody {
    /// Same JSON: the same release (the encoding is canonical for a decoded release). A held
    /// and a stored body compare by digest, without reading the store.
    fn eq(&self, other: &Self) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Held(a), Repr::Held(b)) => a.get() == b.get(),
            _ => self.digest() == other.digest(),
        }
    }
}

impl std::fmt::Debug for ReleaseBody {
    /// A held body as its release; a stored one by digest (formatting reads no store).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.repr {
            Repr::Held(json) => match self.release() {
                Ok(r) => r.fmt(f),
                Err(_) => f.write_str(json.get()),
            },
            Repr::Stored(s) => write!(f, "ReleaseBody(stored {})", s.key),
        }
    }
}

impl Serialize for ReleaseBody {
    /// The JSON, read from the store if stored; a store that cannot give it back fails the
    /// serialisation (a snapshot or proof is then not made).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.repr {
            Repr::Held(json) => json.serialize(s),
            // Not checked against the digest here (a snapshot encodes every body): whatever
            // reads a snapshot or proof digests it again (a restore at its certificate's
            // digest, a peer's state transfer, a proof's root), so other bytes are refused
            // there. Decisions read through `release`, which checks.
            Repr::Stored(stored) if body_references::writing_references() => {
                s.serialize_str(&stored.key.reference())
            }
            Repr::Stored(stored) => stored
                .store
                .read(&stored.key)
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ReleaseBody {
    /// Decodes a release and keeps its compact JSON: whatever the input's spacing, the body
    /// holds what `serde_json` writes for the release, so it digests as the release does.
    /// A reference ([`BodyKey::reference`], in a validator's own persisted snapshot) is a
    /// body stored in the store [`body_references::resolve_references_in`] names, and an
    /// error without one.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> serde::de::Visitor<'de> for BodyVisitor {
    type Value = ReleaseBody;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a release, or a reference to a stored release body")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<ReleaseBody, M::Error> {
        let release = FusedRelease::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        ReleaseBody::new(&release).map_err(serde::de::Error::custom)
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ReleaseBody, E> {
        let key = BodyKey::from_reference(s)
            .ok_or_else(|| E::custom(format!("not a release body reference: {s:?}")))?;
        let store = body_references::resolving_in().ok_or_else(|| {
            E::custom(format!(
                "the release body {key} is a reference to a body store, and none was given \
                 (a snapshot a validator persisted for itself, read elsewhere)"
            ))
        })?;
        Ok(ReleaseBody::stored(key, store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::ledger_world::release;

    #[test]
    fn serialises_as_the_decoded_release_and_decodes_back() {
        let r = release("v1");
        let body = ReleaseBody::new(&r).expect("encodes");
        let json = serde_json::to_string(&r).expect("encodes");
        assert_eq!(body.json().expect("held"), json);
        assert_eq!(serde_json::to_string(&body).expect("encodes"), json);
        assert_eq!(body.release().expect("decodes"), r);
        assert_eq!(format!("{body:?}"), format!("{r:?}"));
    }

    #[test]
    fn a_decoded_body_holds_the_compact_json_whatever_the_input_spacing() {
        let r = release("v1");
        let pretty = serde_json::to_string_pretty(&r).expect("encodes");
        let body: ReleaseBody = serde_json::from_str(&pretty).expect("decodes");
        assert_eq!(body, ReleaseBody::new(&r).expect("encodes"));
        assert_eq!(
            body.json().expect("held"),
            serde_json::to_string(&r).expect("encodes")
        );
        // Not a release: refused as a release would be.
        assert!(serde_json::from_str::<ReleaseBody>(r#"{"version": "v1"}"#).is_err());
    }

    #[test]
    fn a_release_that_does_not_round_trip_is_reported_not_decoded_wrong() {
        let mut r = release("v1");
        r.units.values_mut().next().expect("a unit").metrics.quality = f64::NAN;
        // serde_json writes NaN as null, which does not decode as a number.
        let body = ReleaseBody::new(&r).expect("encodes");
        assert!(body.json().expect("held").contains("null"));
        assert!(matches!(body.release(), Err(ReleaseError::Json(_))));
    }
}
