//! SCBE Fleet simulator: deterministic simulation of the real consensus core (`scbe-sim check`),
//! and the core benchmark (`scbe-sim bench-core`).

pub mod app;
pub mod bench_cluster;
pub mod bench_core;
pub mod byzantine;
pub mod check;
pub mod fleet;
pub mod fleet_driver;
pub mod invariants;
pub mod network;
pub mod scenario;
pub mod simulation;
pub mod store;
