//! The release requester's CLI (`scbe`): its subcommands ([`commands`]), the cluster's validators
//! and their agreement ([`cluster_view`]), the ledger summary and
//! proposal decisions as readable text ([`render`]) and rollouts as live progress bars
//! ([`progress`]); the last two are shared with `scbe-sim demo`. The gRPC client itself is
//! `scbe_wire::governance_client`.

pub mod cluster_view;
pub mod commands;
pub mod progress;
pub mod render;
