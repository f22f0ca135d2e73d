//! Generated protobuf and gRPC code for package `scbe.v1`, and nothing else.
//!
//! Domain types never live here: `scbe-node`'s `net` module converts between these wire types and
//! the domain with fallible `TryFrom`, so a malformed message from a peer becomes a typed error.

#![allow(clippy::all, missing_docs)]

pub mod scbe {
    pub mod v1 {
        tonic::include_proto!("scbe.v1");
    }
}

pub use scbe::v1;
