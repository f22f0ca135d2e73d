//! Reading the store off the core task: a [`StoreReader`] shares the record store's database
//! (redb allows readers beside the one writer; each sees the last committed turn) and reads the
//! tables that are only ever appended to: the decided log with its commit certificates, stable
//! checkpoints, events. `Audit.Export` reads through one on blocking threads, so an export of a
//! long history neither waits in nor delays the core's queue.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};

use super::record_store::{stored_value, StorageError};
use crate::storage::value_codec::unpack;

#[derive(Clone)]
pub struct StoreReader {
    pub(super) path: PathBuf,
    pub(super) db: Arc<Database>,
}

impl StoreReader {
    pub(super) fn new(path: &Path, db: Database) -> Self {
        Self {
            path: path.to_path_buf(),
            db: Arc::new(db),
        }
    }

    pub(super) fn io(&self, e: impl std::fmt::Display) -> StorageError {
        StorageError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// A stored value of the audit trail, unpacked.
    pub(super) fn unpacked(
        &self,
        seq: u64,
        stored: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        match unpack(stored) {
            Ok(bytes) => Ok(Some(bytes.into_owned())),
            Err(e) => Err(StorageError::Record {
                path: self.path.clone(),
                index: seq,
                source: stored_value(e),
            }),
        }
    }

    /// Entries of a never-compacted table from key `from` on (none if the table was never
    /// written), each read in place by `read` (`None` skips it): at most `limit` of them, and
    /// no more once those read reach `max_bytes` (always at least one), as `read` sizes them.
    pub(super) fn range_within<T>(
        &self,
        def: TableDefinition<u64, &[u8]>,
        range: std::ops::RangeInclusive<u64>,
        (limit, max_bytes): (usize, usize),
        read: impl Fn(u64, &[u8]) -> Result<Option<(T, usize)>, StorageError>,
    ) -> Result<Vec<(u64, T)>, StorageError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = match txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in table.range(range).map_err(|e| self.io(e))? {
            if out.len() >= limit || (bytes >= max_bytes && !out.is_empty()) {
                break;
            }
            let (k, v) = entry.map_err(|e| self.io(e))?;
            if let Some((t, size)) = read(k.value(), v.value())? {
                bytes = bytes.saturating_add(size);
                out.push((k.value(), t));
            }
        }
        Ok(out)
    }

    /// Stored ledger events from position `from` on, at most `limit`.
    pub fn events_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, scbe_core::governance::event::Event)>, StorageError> {
        self.range_from(
            super::record_store::EVENTS,
            from..=u64::MAX,
            limit,
            |_, v| Ok(serde_json::from_slice(v).ok()),
        )
    }

    /// [`Self::range_within`] by count alone.
    pub(super) fn range_from<T>(
        &self,
        def: TableDefinition<u64, &[u8]>,
        range: std::ops::RangeInclusive<u64>,
        limit: usize,
        read: impl Fn(u64, &[u8]) -> Result<Option<T>, StorageError>,
    ) -> Result<Vec<(u64, T)>, StorageError> {
        self.range_within(def, range, (limit, usize::MAX), |k, v| {
            Ok(read(k, v)?.map(|t| (t, 0)))
        })
    }
}
