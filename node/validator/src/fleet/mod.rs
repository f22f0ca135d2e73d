//! The validator's side of the fleet: the leader's executor, which carries out the current
//! order of the active rollout, and every validator's health monitor, which streams agents'
//! signed reports and acks to the core task, following the fleet's roster as the ledger
//! changes it. What they carry out is decided in the core
//! (`scbe_core::rollout::watcher`, through the validator step).

pub mod channel_cache;
pub mod executor;
pub mod monitor;
pub mod roster;
