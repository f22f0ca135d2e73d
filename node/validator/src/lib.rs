//! SCBE Fleet's validator (`scbe-node`): the runtime around the pure validator step.
//!
//! One task owns the [`scbe_core::validator_step::ValidatorStep`] and the record store
//! ([`runtime`]); each turn it runs every waiting input through the step, makes the turn's
//! records durable in one commit and only then lets the turn's messages leave. Everything else
//! feeds it or carries its decisions out:
//!
//! - [`node`]: start-up and wiring (storage, services, peers, the fleet side, supervision).
//! - [`inbound`]: what the core task receives.
//! - [`services`]: the gRPC services (`Consensus`, `Governance`, `Audit`, `Orders`); they decode,
//!   verify and enqueue, never call the core; peer links and per-requester quotas.
//! - [`storage`]: the redb record store (vote guard, decided log, snapshots, ledger history).
//! - [`fleet`]: the leader's rollout executor and every validator's health monitor.
//! - every long-lived task runs under a `scbe_wire::supervisor::Supervisor`: one that ends
//!   stops the validator.
//! - [`timer_queue`], [`timeouts`], [`heartbeat_pacer`]: the core's timers as durations.
//! - [`links`]: what this validator knows of its peer links (up, down, refused for another
//!   genesis).
//! - [`metrics`], [`config`], [`daemon`] (process entry point), [`testnet`] (a new cluster's
//!   files, one folder per host).

pub mod chain_fetcher;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod edge_directory;
pub mod fleet;
pub mod heartbeat_pacer;
pub mod inbound;
pub mod links;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod peer_dialer;
pub mod reads;
mod runtime;
pub mod services;
pub mod snapshot_encoder;
pub mod snapshot_warmer;
pub mod storage;
pub mod testnet;
pub mod timeouts;
pub mod timer_queue;
