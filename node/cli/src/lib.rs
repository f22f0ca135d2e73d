//! The release requester's CLI (`scbe`): its subcommands ([`commands`]), the ledger summary and
//! proposal decisions as readable text ([`render`]) and rollouts as live progress bars
//! ([`progress`]); the last two are shared with `scbe-sim demo`. The gRPC client itself is
//! `scbe_wire::governance_client`.

pub mod commands;
pub mod progress;
pub mod render;
