//! SCBE Fleet simulator: the whole mission on one machine (`scbe-sim demo`), a local quorum and
//! fleet (`scbe-sim up`), deterministic simulation of the real consensus core, ledger and fleet
//! logic under faults (`scbe-sim check`), and benchmarks.

pub mod app;
pub mod bench_cluster;
pub mod bench_core;
pub mod bench_digest;
pub mod bench_fleet;
pub mod bench_history;
pub mod bench_large_fleet;
pub mod bench_orders;
pub mod bench_persisted;
pub mod bench_reads;
pub mod bench_register;
pub mod bench_trials;
pub mod byzantine;
pub mod check;
pub mod clients;
pub mod delay_relay;
pub mod demo;
pub mod fleet;
pub mod fleet_driver;
pub mod invariants;
pub mod local;
pub mod local_clients;
pub mod local_options;
pub mod network;
pub mod release_script;
pub mod releases;
pub mod scenario;
pub mod simulation;
pub mod store;
