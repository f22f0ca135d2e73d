//! The network edge: protobuf <-> domain conversion (with typed errors), peer links and the
//! tonic services. Nothing outside this module touches `scbe_proto` types except the runtime's
//! service wiring.

pub mod audit_service;
pub mod consensus_service;
pub mod fleet_client;
pub mod fleet_wire;
pub mod governance_client;
pub mod governance_service;
pub mod orders_service;
pub mod peer;
pub mod quota;
pub mod wire;

pub use wire::{
    decode_record, encode_envelope, encode_record, envelope_to_proto, open, open_proto, ProtoCodec,
    WireError, MAX_ENVELOPE_BYTES,
};
