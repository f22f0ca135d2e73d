//! What a request asks the ledger to do: the `operation` bytes of a consensus request, as JSON.
//! Rollout operations carry agent-signed evidence (see [`crate::rollout::evidence`]).

use serde::{Deserialize, Serialize};

use crate::rollout::evidence::{DeployAck, HealthReport};

use super::release::FusedRelease;
use super::stage::Stage;

/// Largest operation accepted; anything bigger is rejected before parsing.
/// Requests are admitted up to a little more (see `consensus::config::DEFAULT_MAX_REQUEST_BYTES`),
/// so any operation within this limit can be submitted on a default cluster.
pub const MAX_OPERATION_BYTES: usize = 256 * 1024;

/// The largest operation a request of at most `max_request_bytes` can carry: the ledger's own
/// cap, or less where the consensus message cap leaves less per request (from n = 10 at the
/// default window).
pub fn max_operation_bytes(max_request_bytes: usize) -> usize {
    use crate::consensus::limits::{REQUEST_FRAMING_BYTES, REQUEST_PAYLOAD_OVERHEAD_BYTES};
    max_request_bytes
        .saturating_sub(REQUEST_FRAMING_BYTES + REQUEST_PAYLOAD_OVERHEAD_BYTES)
        .min(MAX_OPERATION_BYTES)
}

/// How [`Operation::to_bytes`] begins a registration.
const REGISTRATION_PREFIX: &[u8] = br#"{"op":"register_release","release":"#;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// Register a fused release; it enters staging.
    RegisterRelease { release: FusedRelease },
    /// Propose moving `version` one stage up, with a known-good version to fall back to.
    Promote {
        version: String,
        to: Stage,
        rollback_to: String,
        /// Batch (1-based) that waits for `Approve` before it is deployed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pause_before: Option<u32>,
        /// The rollout's shape: cumulative percent of the fleet after each step (the last is
        /// the stage's share); empty: the default doubling batches.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps: Vec<u32>,
    },
    /// Propose putting a known-good version back on the whole fleet.
    Rollback {
        target_version: String,
        reason: String,
    },
    /// Propose aborting a promotion in progress: at approval it rolls back what it touched.
    Abort { rollout: u64, reason: String },
    /// Propose letting a rollout paused before a batch (`pause_before`) go on.
    Approve { rollout: u64 },
    /// Propose a change to the fleet's membership (admit, remove or update an agent).
    ProposeAgent { change: super::ledger::AgentChange },
    /// Propose new quality gates or health thresholds.
    ProposeSettings {
        change: super::ledger::SettingsChange,
    },
    /// Propose admitting or removing a requester.
    ProposeRequester {
        change: super::ledger::RequesterChange,
    },
    /// Propose removing a validator or rotating its key.
    ProposeValidator {
        change: super::ledger::ValidatorChange,
    },
    /// A validator's vote on a proposal.
    Vote {
        proposal: u64,
        approve: bool,
        reasons: Vec<String>,
    },
    /// A validator shows agent-signed proof that a rollout degraded: health reports over a
    /// threshold, or acks of failed deploys. The evidence is the vote.
    AutoRollback {
        rollout: u64,
        #[serde(default)]
        reports: Vec<HealthReport>,
        #[serde(default)]
        acks: Vec<DeployAck>,
    },
    /// Some agents of the current batch deployed and (for promotions) are healthy, with their
    /// signed acks and reports. A large batch is recorded in several chunks; it completes when
    /// every agent of it is recorded.
    RolloutProgress {
        rollout: u64,
        batch: u32,
        acks: Vec<DeployAck>,
        #[serde(default)]
        reports: Vec<HealthReport>,
        /// During a compared canary step: the latest reports of baseline agents (same
        /// specialty, still on the running version), for the comparison when the step ends.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        baseline: Vec<HealthReport>,
    },
    /// A validator saw no healthy data from these agents by the current step's deadline. Claims
    /// of `f + 1` distinct validators (so at least one honest) roll the rollout back.
    NoData {
        rollout: u64,
        issued_seq: u64,
        agents: Vec<String>,
    },
    /// Agents of a rolling-back rollout acknowledged the rollback (signed acks; chunks allowed).
    RollbackDone { rollout: u64, acks: Vec<DeployAck> },
    /// A validator sees the agents of the current step alive (their reports arrive) but none
    /// acknowledging its order under the primary of `view`. At `f + 1` distinct claims for the
    /// same step and view, every honest replica leaves `view` (a view change elects a primary
    /// that executes). A dead primary is caught earlier: the claim times out at the backups.
    Stalled {
        rollout: u64,
        issued_seq: u64,
        view: u64,
    },
    /// The leader delivered every notification of sink `sink` (a `[[notify]]` of the genesis)
    /// for the events before `through`, so a leader after a failover resends from there.
    Notified { sink: String, through: u64 },
}

/// Why a request's bytes are not an operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    #[error("operation of {len} bytes exceeds the {MAX_OPERATION_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("operation does not parse: {0}")]
    Malformed(String),
}

impl Operation {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OperationError> {
        if bytes.len() > MAX_OPERATION_BYTES {
            return Err(OperationError::TooLarge { len: bytes.len() });
        }
        if let Some(op) = Self::registration_as_written(bytes) {
            return Ok(op);
        }
        Self::parse_tagged(bytes)
    }

    /// Any operation, through the derived (internally tagged) deserializer. serde reads such an
    /// enum into a generic tree first (to find the tag wherever it is), then each variant from
    /// that tree: for a registration, every string of the release is allocated twice.
    fn parse_tagged(bytes: &[u8]) -> Result<Self, OperationError> {
        serde_json::from_slice(bytes).map_err(|e| OperationError::Malformed(e.to_string()))
    }

    /// A registration laid out as [`Self::to_bytes`] writes one (the tag first, the release
    /// last), its release read in one pass; `None` for anything else, which then takes
    /// [`Self::parse_tagged`].
    ///
    /// Why: the profile of registrations put parsing the operation at ~6% of a validator's CPU
    /// (BENCHMARKS.md, issue 27), half of it the generic tree. Accepting here is the same
    /// decision as the tagged route: what is between the prefix and the final `}` parses as a
    /// release alone (trailing whitespace at most), so the bytes are exactly an object with
    /// the tag and one `release` field, which that route reads to the same release (the same
    /// deserializer over the same bytes); whatever fails here is left to it, errors included.
    fn registration_as_written(bytes: &[u8]) -> Option<Self> {
        let release = bytes
            .strip_prefix(REGISTRATION_PREFIX)?
            .strip_suffix(b"}")?;
        serde_json::from_slice(release)
            .ok()
            .map(|release| Operation::RegisterRelease { release })
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::RegisterRelease { .. } => "register_release",
            Operation::Promote { .. } => "promote",
            Operation::Rollback { .. } => "rollback",
            Operation::Abort { .. } => "abort",
            Operation::Approve { .. } => "approve",
            Operation::ProposeAgent { .. } => "propose_agent",
            Operation::ProposeSettings { .. } => "propose_settings",
            Operation::ProposeRequester { .. } => "propose_requester",
            Operation::ProposeValidator { .. } => "propose_validator",
            Operation::Vote { .. } => "vote",
            Operation::AutoRollback { .. } => "auto_rollback",
            Operation::RolloutProgress { .. } => "rollout_progress",
            Operation::NoData { .. } => "no_data",
            Operation::RollbackDone { .. } => "rollback_done",
            Operation::Stalled { .. } => "stalled",
            Operation::Notified { .. } => "notified",
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::governance::ledger_world::release;

    #[test]
    fn a_registration_as_written_is_read_in_one_pass_to_the_same_operation() {
        let op = Operation::RegisterRelease {
            release: release("r1"),
        };
        let bytes = op.to_bytes();
        assert!(
            bytes.starts_with(REGISTRATION_PREFIX),
            "the layout the prefix names"
        );
        assert_eq!(Operation::registration_as_written(&bytes), Some(op.clone()));
        assert_eq!(Operation::from_bytes(&bytes), Ok(op.clone()));
        assert_eq!(Operation::parse_tagged(&bytes), Ok(op));
    }

    /// Registrations laid out otherwise, and ones the tagged route refuses, are left to it:
    /// the same operation or the same error.
    #[test]
    fn anything_else_is_decided_by_the_tagged_route() {
        let json = |op: &Operation| String::from_utf8(op.to_bytes()).expect("utf-8");
        let registration = json(&Operation::RegisterRelease {
            release: release("r1"),
        });
        let body = &registration[REGISTRATION_PREFIX.len()..registration.len() - 1];
        let cases = [
            // Another order, spacing: the same registration.
            format!(r#"{{"release":{body},"op":"register_release"}}"#),
            format!(r#"{{ "op": "register_release", "release": {body} }}"#),
            // Refused: an unknown field, a second release, trailing bytes, a bad release.
            format!(r#"{{"op":"register_release","release":{body},"x":1}}"#),
            format!(r#"{{"op":"register_release","release":{body},"release":{body}}}"#),
            format!("{registration} x"),
            format!(r#"{{"op":"register_release","release":{body}}}}}"#),
            r#"{"op":"register_release","release":{}}"#.to_string(),
            r#"{"op":"register_release","release":"#.to_string(),
            // Another operation.
            json(&Operation::Abort {
                rollout: 1,
                reason: "r".into(),
            }),
        ];
        for case in cases {
            let bytes = case.as_bytes();
            assert_eq!(
                Operation::from_bytes(bytes),
                Operation::parse_tagged(bytes),
                "{case}"
            );
        }
        assert!(Operation::from_bytes(br#"{"release":{},"op":"register_release"}"#).is_err());
    }

    proptest! {
        /// Whatever follows the prefix: accepted in one pass only where the tagged route reads
        /// the same registration, and otherwise decided by it.
        #[test]
        fn the_one_pass_read_agrees_with_the_tagged_route(
            cut in 0usize..2_000,
            insert in "[ ,}{\"a-z0-9:]{0,4}",
        ) {
            let registration = Operation::RegisterRelease { release: release("r1") }.to_bytes();
            let at = REGISTRATION_PREFIX.len() + cut % (registration.len() - REGISTRATION_PREFIX.len() + 1);
            let mut bytes = registration[..at].to_vec();
            bytes.extend_from_slice(insert.as_bytes());
            bytes.extend_from_slice(&registration[at..]);
            if let Some(op) = Operation::registration_as_written(&bytes) {
                prop_assert_eq!(Operation::parse_tagged(&bytes), Ok(op));
            }
            prop_assert_eq!(Operation::from_bytes(&bytes), Operation::parse_tagged(&bytes));
        }
    }
}
