//! Rollouts. Pure: plans derived from the fleet (`plan`), agent-signed evidence (`evidence`),
//! health judgement (`health`), quorum-signed orders (`order`) and the decisions a validator
//! takes while it watches a rollout (`watcher`). Runtime: the leader's executor and every
//! validator's health monitor (`executor`), which carry those decisions out over gRPC.

pub mod evidence;
pub mod executor;
pub mod health;
pub mod monitor;
pub mod order;
pub mod plan;
pub mod watcher;

pub use plan::{plan_batches, FleetAgent};
