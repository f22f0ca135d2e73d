//! What an agent runs: its current version, the one before, and the newest order it obeyed.
//! The agent daemon keeps it in a crash-safe file (`scbe-agent`'s `state_file.rs`); the
//! decision core ([`super::AgentCore`]) reads and changes it.

use serde::{Deserialize, Serialize};

use crate::rollout::order::OrderUnit;

/// One version as the agent knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    pub version: String,
    /// Empty for versions known good at genesis (no release file).
    pub release_digest: String,
    pub units: Vec<OrderUnit>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    pub current: Installed,
    pub previous: Option<Installed>,
    /// Rollout of the newest order obeyed (0 before the first).
    pub rollout: u64,
    /// Ledger sequence number of the newest order obeyed; older orders are refused.
    pub last_order_seq: u64,
    /// The newest validator set an obeyed order proved by its chain of epoch links (absent:
    /// the genesis set). Orders count endorsements against it, and a chain must start from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validators: Option<crate::consensus::ValidatorSet>,
}

impl AgentState {
    pub fn initial(version: &str) -> Self {
        Self::running(Installed {
            version: version.into(),
            ..Installed::default()
        })
    }

    /// Before its first order: running `current` (a known-good version, with the units the
    /// genesis lists for it).
    pub fn running(current: Installed) -> Self {
        AgentState {
            current,
            previous: None,
            rollout: 0,
            last_order_seq: 0,
            validators: None,
        }
    }
}
