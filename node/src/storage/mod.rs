//! Durable storage (redb): the records the consensus core persists (vote guard, prepared
//! certificates, decided log with commit certificates, snapshots, stable checkpoints, view
//! changes), the audit trail and the ledger's history. Each turn of the runtime loop is made
//! durable by one append to a small log (`record_log.rs`) and committed to redb lazily.

pub mod record_log;
pub mod record_store;
pub mod store_write;

pub use record_store::{RecordStore, StorageError};

#[cfg(test)]
mod tests;
