//! SCBE Fleet validator library.
//!
//! Dependencies flow one way: `net` (and later `storage`, the runtime) → `rollout`, `governance`,
//! `consensus` → `crypto`. `consensus` and `governance` are pure and deterministic; a test in
//! `tests/tests/architecture.rs` keeps them so.

pub mod client;
pub mod config;
pub mod consensus;
pub mod crypto;
pub mod daemon;
pub mod fleet;
pub mod governance;
pub mod heartbeat_pacer;
pub mod local;
pub mod metrics;
pub mod net;
pub mod node;
pub mod rollout;
mod runtime;
pub mod status;
pub mod storage;
pub mod timeouts;
pub mod validator_step;
