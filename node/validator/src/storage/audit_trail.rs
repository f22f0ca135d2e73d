//! Reading the audit trail for `Audit.Export`: decided batches with their commit certificates and
//! the stable checkpoints signed along the way, in chunks, each chunk's checkpoints those at or
//! below its last batch, so consecutive chunks never repeat one.

use std::collections::BTreeMap;

use super::record_store::{RecordStore, StorageError, CHECKPOINTS, DECIDED};
use super::store_reader::StoreReader;

/// Part of the audit trail from some seq on.
#[derive(Debug, Default)]
pub struct AuditChunk {
    /// (seq, encoded commit certificate), in sequence order.
    pub decided: Vec<(u64, Vec<u8>)>,
    /// Encoded stable checkpoint certificates by seq, from the chunk's first seq up to its last
    /// batch's.
    pub checkpoints: BTreeMap<u64, Vec<u8>>,
}

impl AuditChunk {
    pub fn is_empty(&self) -> bool {
        self.decided.is_empty()
    }
}

impl StoreReader {
    /// Decided batches from `from` on, and the stable checkpoints among them: at most `limit`
    /// batches, and no more once their certificates reach `max_bytes` (at least one), so a
    /// chunk of large batches stays small in memory.
    pub fn audit_from(
        &self,
        from: u64,
        (limit, max_bytes): (usize, usize),
    ) -> Result<AuditChunk, StorageError> {
        let decided = self.range_within(
            DECIDED,
            from..=u64::MAX,
            (limit, max_bytes),
            |seq, stored| {
                Ok(self.unpacked(seq, stored)?.map(|b| {
                    let n = b.len();
                    (b, n)
                }))
            },
        )?;
        let Some(&(last, _)) = decided.last() else {
            return Ok(AuditChunk::default());
        };
        let checkpoints = self
            .range_from(CHECKPOINTS, from..=last, usize::MAX, |seq, stored| {
                self.unpacked(seq, stored)
            })?
            .into_iter()
            .collect();
        Ok(AuditChunk {
            decided,
            checkpoints,
        })
    }
}

impl RecordStore {
    /// [`StoreReader::audit_from`] through this store's own reader.
    pub fn audit_from(
        &self,
        from: u64,
        budget: (usize, usize),
    ) -> Result<AuditChunk, StorageError> {
        self.reader().audit_from(from, budget)
    }
}
