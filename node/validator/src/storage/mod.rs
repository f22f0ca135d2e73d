//! Durable storage (redb): the records the consensus core persists (vote guard, prepared
//! certificates, decided log with commit certificates, snapshots, stable checkpoints, view
//! changes), written with one commit per turn of the runtime loop.

pub mod audit_trail;
pub mod encoded_snapshot;
pub mod owner_key;
pub mod record_store;
pub mod storage_error;
pub mod store_reader;
pub mod stored_bodies;
pub mod stored_links;
pub mod value_codec;

pub use audit_trail::AuditChunk;
pub use record_store::{EncodedSnapshot, RecordStore, StorageError};
pub use store_reader::StoreReader;
pub use stored_bodies::StoredBodies;

#[cfg(test)]
mod audit_trail_tests;
#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod tests;
