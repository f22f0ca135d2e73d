//! The validator's gRPC services and peer links. Handlers decode, verify and enqueue on the core
//! task's queue; they never call into the core. Protobuf types stay here (and in `scbe-wire`):
//! the runtime answers with domain values, which the services convert.

pub mod audit_service;
pub mod consensus_service;
pub mod governance_service;
pub mod grpc_server;
pub mod orders_service;
pub mod peer;
#[cfg(test)]
mod peer_tests;
pub mod quota;
