//! Why the record store refuses to open, load or write: each names the file and what to do.

use std::path::PathBuf;

use scbe_core::crypto::PublicKey;
use scbe_wire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the database {path}: {detail} (the node refuses to start rather than risk signing twice; restore the file from a backup or move it away to rejoin from peers)")]
    Open { path: PathBuf, detail: String },
    #[error(
        "database {path} was written by validator key {found}, but this node's key is {expected}, which no validator-set rotation this store has executed gives to the same validator (if a rotation the store has not reached yet names it, start with the old key until the node has caught up, then restart with the new one)"
    )]
    WrongNode {
        path: PathBuf,
        expected: PublicKey,
        found: String,
    },
    #[error("database {path} was written under genesis {stored}, but this node runs genesis {expected}: point node.genesis at the genesis this data belongs to, or move the data directory away to join this cluster from its peers")]
    WrongGenesis {
        path: PathBuf,
        stored: String,
        expected: String,
    },
    #[error("database {path} has format {found:?}, expected {expected:?}")]
    Format {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("record {index} in {path} is unreadable: {source} (the node refuses to start)")]
    Record {
        path: PathBuf,
        index: u64,
        source: WireError,
    },
    #[error("storage operation on {path} failed: {detail}")]
    Io { path: PathBuf, detail: String },
}
