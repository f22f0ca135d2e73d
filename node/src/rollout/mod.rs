//! Rollouts: plans derived deterministically from the fleet (pure), and later the leader's
//! executor that talks to agents.

pub mod plan;

pub use plan::{plan_batches, FleetAgent};
