//! One checker per invariant. Each sees what honest replicas deliver and send, and reports
//! violations with enough detail to debug from the seed.

pub mod agent_keys;
pub mod agreement;
pub mod certificates;
pub mod double_sign;
pub mod epochs;
pub mod fleet_authority;
pub mod integrity;
pub mod liveness;
pub mod membership;
pub mod own_nonces;
pub mod rollback;
pub mod rollout_evidence;
pub mod settings;
pub mod state_proofs;
pub mod validity;

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub at_ms: u64,
    pub detail: String,
}
