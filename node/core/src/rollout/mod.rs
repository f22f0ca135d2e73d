//! Rollouts, pure: plans derived from the fleet (`plan`), agent-signed evidence (`evidence`),
//! health judgement (`health`), quorum-signed orders (`order`) and the decisions a validator
//! takes while it watches a rollout (`watcher`). The validator's executor and health monitor
//! (`scbe-validator`'s `fleet/`) carry those decisions out over gRPC.

pub mod baseline;
pub mod evidence;
pub mod health;
pub mod order;
pub mod plan;
pub mod watcher;

pub use plan::{plan_batches, FleetAgent};
