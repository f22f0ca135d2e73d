//! SCBE Fleet's agent (`scbe-agent`), one per fleet member: it obeys deploy and rollback orders
//! a quorum of validators signed, by running the operator's hooks, and signs health reports from
//! its health source. The decisions themselves (which orders to obey, what a hook's result means,
//! the signed acks and reports) are `scbe_core::agent`; this crate does the I/O around them.
//!
//! - [`config`]: `agent.toml`, validated at start-up with errors that name the key.
//! - [`service`]: the `FleetAgent` gRPC service and the sampling loop.
//! - [`hooks`]: deploy and rollback commands, with the order in their environment.
//! - [`source`]: health sources (HTTP, a command, the seeded synthetic model).
//! - [`state_file`]: what the agent runs, kept in a crash-safe file.
//! - [`daemon`]: the process entry point.

pub mod config;
pub mod daemon;
pub mod hooks;
pub mod metrics;
pub mod service;
pub mod source;
pub mod state_file;
