//! A fused release: one unit per provider, the gates it was checked against, a version, and the
//! sha256 of its canonical JSON. The digest covers the content (fused model id, version,
//! providers, gates, units) but not `generated_at`, so fusing the same manifests with the same
//! version twice yields the same digest. The canonical JSON is written by
//! [`CanonicalContent`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::canonical_content::CanonicalContent;
use super::gates::Gates;
use super::manifest::{Metrics, Provider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub id: String,
    pub role: String,
    pub uri: String,
    pub metrics: Metrics,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusedRelease {
    pub fused_model_id: String,
    pub version: String,
    pub generated_at: String,
    pub providers: Vec<Provider>,
    pub gates: Gates,
    pub units: BTreeMap<Provider, Unit>,
    /// Hex sha256 of the canonical JSON of everything above except `generated_at`.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("release is not valid JSON of the release schema: {0}")]
    Json(String),
    #[error("release digest {claimed} does not match its content ({actual})")]
    Digest { claimed: String, actual: String },
    #[error("release version must not be empty")]
    EmptyVersion,
    #[error("release has no unit for provider {0}")]
    MissingUnit(Provider),
    #[error(transparent)]
    Unavailable(#[from] super::body_store::BodyUnavailable),
}

/// Lower-case hex (the one encoder of keys, digests and signatures in the ledger and the store).
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// sha256 of the canonical JSON (object keys sorted, no whitespace) of `value`.
pub fn canonical_digest(value: &serde_json::Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order`), so `to_string` is canonical.
    hex(&Sha256::digest(value.to_string().as_bytes()))
}

impl FusedRelease {
    /// Builds a release and computes its id, default version and digest.
    pub fn new(
        units: BTreeMap<Provider, Unit>,
        gates: Gates,
        version: Option<String>,
        generated_at: String,
    ) -> Self {
        let content = serde_json::json!({ "gates": gates, "units": units });
        let content_id = canonical_digest(&content);
        let mut r = FusedRelease {
            fused_model_id: format!("scbe-fused-{}", &content_id[..12]),
            version: version.unwrap_or_else(|| format!("r-{}", &content_id[..12])),
            generated_at,
            providers: units.keys().copied().collect(),
            gates,
            units,
            digest: String::new(),
        };
        r.digest = r.content_digest();
        r
    }

    /// The digest this release's content should have.
    pub fn content_digest(&self) -> String {
        hex(&Sha256::digest(CanonicalContent::of(self).to_json()))
    }

    /// Parses and checks a release file (digest, version, one unit per provider).
    pub fn parse(text: &str) -> Result<Self, ReleaseError> {
        let r: FusedRelease =
            serde_json::from_str(text).map_err(|e| ReleaseError::Json(e.to_string()))?;
        r.verify()?;
        Ok(r)
    }

    pub fn verify(&self) -> Result<(), ReleaseError> {
        if self.version.trim().is_empty() {
            return Err(ReleaseError::EmptyVersion);
        }
        for p in Provider::ALL {
            if !self.units.contains_key(&p) {
                return Err(ReleaseError::MissingUnit(p));
            }
        }
        let actual = self.content_digest();
        if actual != self.digest {
            return Err(ReleaseError::Digest {
                claimed: self.digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Pretty JSON for files.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
