//! What a request asks the ledger to do (the `operation` bytes of a consensus request, as JSON),
//! and the agent-signed evidence that rollout operations carry.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, Keypair, PublicKey, Signature};

use super::release::FusedRelease;
use super::stage::Stage;

/// Largest operation accepted; anything bigger is rejected before parsing.
pub const MAX_OPERATION_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Register a fused release; it enters staging.
    RegisterRelease { release: FusedRelease },
    /// Propose moving `version` one stage up, with a known-good version to fall back to.
    Promote {
        version: String,
        to: Stage,
        rollback_to: String,
    },
    /// Propose putting a known-good version back into production.
    Rollback {
        target_version: String,
        reason: String,
    },
    /// A validator's vote on a proposal.
    Vote {
        proposal: u64,
        approve: bool,
        reasons: Vec<String>,
    },
    /// A validator shows agent-signed reports proving a rollout batch degraded.
    AutoRollback {
        rollout: u64,
        evidence: Vec<HealthReport>,
    },
    /// The leader records a finished rollout batch with the agents' signed acks and reports.
    RolloutProgress {
        rollout: u64,
        batch: u32,
        acks: Vec<DeployAck>,
        reports: Vec<HealthReport>,
    },
}

impl Operation {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_OPERATION_BYTES {
            return Err(format!(
                "operation of {} bytes exceeds the {MAX_OPERATION_BYTES}-byte limit",
                bytes.len()
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("operation does not parse: {e}"))
    }
}

/// An agent's health over a monitoring window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthBody {
    pub agent: String,
    pub rollout: u64,
    pub version: String,
    pub coherence: f64,
    pub error_rate: f64,
    pub response_ms_p95: f64,
    pub safety: f64,
    pub samples: u32,
}

/// An agent's acknowledgement that it deployed `version` for `rollout`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub agent: String,
    pub rollout: u64,
    pub version: String,
}

/// A body signed by an agent: the signature covers `b"scbe/v1/" ++ kind ++ canonical JSON`, so a
/// Byzantine validator cannot invent agents' reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentSigned<T> {
    pub body: T,
    /// Hex ed25519 signature.
    pub signature: String,
}

pub type HealthReport = AgentSigned<HealthBody>;
pub type DeployAck = AgentSigned<AckBody>;

pub const HEALTH_KIND: &str = "health_report";
pub const ACK_KIND: &str = "deploy_ack";

fn canonical<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_value(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_default()
}

fn parse_hex_signature(s: &str) -> Option<Signature> {
    if s.len() != 128 {
        return None;
    }
    let mut out = [0u8; 64];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Signature(out))
}

impl<T: Serialize> AgentSigned<T> {
    pub fn sign(body: T, kind: &str, key: &Keypair) -> Self {
        let sig = key.sign(kind, &canonical(&body));
        AgentSigned {
            body,
            signature: super::release::hex(sig.as_bytes()),
        }
    }

    pub fn verify(&self, kind: &str, key: &PublicKey) -> bool {
        parse_hex_signature(&self.signature)
            .is_some_and(|sig| crypto::verify(key, kind, &canonical(&self.body), &sig).is_ok())
    }
}
