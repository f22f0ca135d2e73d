//! What a release requester sees: the ledger summary and proposal decisions as readable text
//! ([`render`]), and rollouts as live progress bars ([`progress`]). Shared by `scbe` (this
//! crate's binary) and `scbe-sim demo`; the gRPC client itself is `scbe_wire::governance_client`.

pub mod progress;
pub mod render;
