//! Generated protobuf and gRPC code for package `scbe.v1`, and nothing else.
//!
//! Domain types never live here: `scbe-wire` converts between these wire types and
//! the domain with fallible `TryFrom`, so a malformed message from a peer becomes a typed error.

#![allow(clippy::all, missing_docs)]

pub mod scbe {
    pub mod v1 {
        tonic::include_proto!("scbe.v1");
    }
}

pub use scbe::v1;

/// Encoded `FileDescriptorSet` of every scbe.v1 file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/scbe_descriptor.bin"));
