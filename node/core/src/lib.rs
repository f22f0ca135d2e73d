//! SCBE Fleet's pure core: everything a validator or an agent decides, with no I/O, no clock, no
//! randomness and no hash-ordered iteration, so every replica computes the same thing and the
//! simulator can run it under a virtual clock. The crate cannot depend on tokio, tonic, prost,
//! redb, hyper or rand (its `Cargo.toml`), and `clippy.toml` beside it bans the clock, the
//! random hasher, the file system and the network in every line, tests included.
//!
//! Where to start reading: [`consensus::replica`] (the PBFT contract), then
//! [`validator_step`] (one validator's decisions: replica, ledger and fleet watcher together),
//! then [`governance::ledger`] (what the validators replicate).
//!
//! - [`crypto`]: ed25519 keys and domain-separated signatures.
//! - [`consensus`]: the PBFT replica as a state machine (`Input` in, `Action`s out).
//! - [`governance`]: manifests, fusion, gates, releases, proposals, votes and the ledger.
//! - [`rollout`]: rollout plans, agent-signed evidence, health judgement, quorum-signed
//!   orders, and the watcher every validator runs during a rollout.
//! - [`agent`]: the fleet agent's decisions.
//! - [`validator_step`]: the decision logic the validator runtime and the simulator share.

pub mod agent;
pub mod consensus;
pub mod crypto;
pub mod governance;
pub mod invalid_setting;
pub mod rollout;
pub mod validator_step;

pub use invalid_setting::InvalidSetting;
