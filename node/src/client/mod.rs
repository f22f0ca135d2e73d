//! What a release requester sees: the ledger summary and proposal decisions as readable text,
//! and rollouts as live progress bars. Shared by `scbe` and `scbe-sim demo`; the gRPC client
//! itself is `net::governance_client`.

pub mod progress;
pub mod render;
