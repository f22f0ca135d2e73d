//! The agent side of the fleet (`scbe-agent`): configuration, the durable record of what the
//! agent runs, the decisions it takes on orders and samples (`core`, pure), deploy and rollback
//! hooks, health sources (HTTP, command, synthetic) and the gRPC daemon.

pub mod config;
pub mod core;
pub mod hooks;
pub mod service;
pub mod source;
pub mod state;
pub mod synthetic;
