//! Events: the ledger's audit trail. Every accepted or rejected request leaves at least one.

use serde::{Deserialize, Serialize};

use super::stage::Tongue;

/// The kind of the event a release's registration leaves (readers follow registrations by it).
pub const RELEASE_REGISTERED: &str = "release_registered";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Consensus sequence number of the batch that produced it (ledger time).
    pub seq: u64,
    pub tongue: Tongue,
    /// Short machine-readable name, e.g. `release_registered`.
    pub kind: String,
    /// What it is about: a version, `proposal:3`, `rollout:2`.
    pub subject: String,
    pub detail: String,
}
