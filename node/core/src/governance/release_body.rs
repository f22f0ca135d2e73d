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
//! This type is the one place that knows where a body is: the step towards bodies held by the
//! store and read on demand changes what it holds, not its callers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::release::{FusedRelease, ReleaseError};

/// A release's compact JSON, as `serde_json` writes a [`FusedRelease`].
#[derive(Clone)]
pub struct ReleaseBody {
    json: Box<RawValue>,
}

impl ReleaseBody {
    /// The body of `release`. A release that does not encode (not one decoded from JSON: a
    /// non-finite metric) is refused.
    pub fn new(release: &FusedRelease) -> Result<Self, ReleaseError> {
        let json = serde_json::value::to_raw_value(release)
            .map_err(|e| ReleaseError::Json(e.to_string()))?;
        Ok(Self { json })
    }

    /// The release, decoded (about 5 µs for a 1 KB release). Fails only for a body made from
    /// a release whose metrics were not finite numbers: JSON writes them as `null`.
    pub fn release(&self) -> Result<FusedRelease, ReleaseError> {
        serde_json::from_str(self.json.get()).map_err(|e| ReleaseError::Json(e.to_string()))
    }

    /// The compact JSON, byte for byte as serialised and digested.
    pub fn json(&self) -> &str {
        self.json.get()
    }
}

impl PartialEq for ReleaseBody {
    /// Same JSON: the same release (the encoding is canonical for a decoded release).
    fn eq(&self, other: &Self) -> bool {
        self.json.get() == other.json.get()
    }
}

impl std::fmt::Debug for ReleaseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.release() {
            Ok(r) => r.fmt(f),
            Err(_) => f.write_str(self.json.get()),
        }
    }
}

impl Serialize for ReleaseBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReleaseBody {
    /// Decodes a release and keeps its compact JSON: whatever the input's spacing, the body
    /// holds what `serde_json` writes for the release, so it digests as the release does.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let release = FusedRelease::deserialize(d)?;
        Self::new(&release).map_err(serde::de::Error::custom)
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
        assert_eq!(body.json(), json);
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
        assert_eq!(body.json(), serde_json::to_string(&r).expect("encodes"));
        // Not a release: refused as a release would be.
        assert!(serde_json::from_str::<ReleaseBody>(r#"{"version": "v1"}"#).is_err());
    }

    #[test]
    fn a_release_that_does_not_round_trip_is_reported_not_decoded_wrong() {
        let mut r = release("v1");
        r.units.values_mut().next().expect("a unit").metrics.quality = f64::NAN;
        // serde_json writes NaN as null, which does not decode as a number.
        let body = ReleaseBody::new(&r).expect("encodes");
        assert!(body.json().contains("null"));
        assert!(matches!(body.release(), Err(ReleaseError::Json(_))));
    }
}
