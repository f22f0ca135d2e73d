//! The network edge: protobuf <-> domain conversion (with typed errors) and, later, the tonic
//! services. Nothing outside this module touches `scbe_proto` types.

pub mod wire;

pub use wire::{
    decode_record, encode_envelope, encode_record, open, ProtoCodec, WireError, MAX_ENVELOPE_BYTES,
};
