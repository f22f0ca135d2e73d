//! SCBE Fleet validator library.
//!
//! Dependencies flow one way: `net` (and later `storage`, the runtime) → `consensus` → `crypto`.
//! `consensus` is pure and deterministic; a test in `tests/architecture.rs` keeps it so.

pub mod consensus;
pub mod crypto;
pub mod net;
