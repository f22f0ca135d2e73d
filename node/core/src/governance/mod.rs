//! The release domain, pure and deterministic: provider manifests, federated fusion, quality
//! gates with failure reports, fused releases, and the governance ledger that orders promotions,
//! votes and rollbacks. No clock, RNG, I/O or hash-ordered map (the crate cannot reach them).

pub mod admission;
pub mod body_references;
pub mod body_store;
pub mod canonical_content;
pub mod event;
pub mod fusion;
pub mod gates;
pub mod ledger;
pub mod manifest;
pub mod operation;
pub mod release;
pub mod release_body;
pub mod stage;

pub use body_store::{BodyStore, BodyUnavailable, MemoryBodies};
pub use fusion::{fuse, FusionReport};
pub use gates::Gates;
pub use ledger::{Ledger, LedgerConfig};
pub use manifest::{check_provider_set, parse_manifest, Manifest, ManifestError, Provider};
pub use operation::Operation;
pub use release::FusedRelease;
pub use release_body::ReleaseBody;
pub use stage::{Stage, Tongue};

#[cfg(test)]
mod ledger_body_store_tests;
#[cfg(test)]
mod ledger_canary_tests;
#[cfg(test)]
mod ledger_membership_tests;
#[cfg(test)]
mod ledger_notify_tests;
#[cfg(test)]
mod ledger_pause_tests;
#[cfg(test)]
mod ledger_persisted_snapshot_tests;
#[cfg(test)]
mod ledger_proof_tests;
#[cfg(test)]
mod ledger_proposal_tests;
#[cfg(test)]
mod ledger_requester_tests;
#[cfg(test)]
mod ledger_rollback_tests;
#[cfg(test)]
mod ledger_rollout_tests;
#[cfg(test)]
mod ledger_settings_tests;
#[cfg(test)]
mod ledger_snapshot_tests;
#[cfg(test)]
mod ledger_tests;
#[cfg(test)]
mod ledger_validator_tests;
/// A ledger world for tests (here and, with the `testkit` feature, in the crates above).
#[cfg(any(test, feature = "testkit"))]
pub mod ledger_world;
#[cfg(test)]
mod retention_tests;
