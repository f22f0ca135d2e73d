//! A snapshot record made ready for the store off the core's loop.

use scbe_core::consensus::Record;
use scbe_wire::encode_record;

use crate::storage::value_codec::pack;

/// A snapshot record encoded and compressed ahead of its commit, off the core's loop (JSON of the
/// whole ledger and zstd: hundreds of milliseconds for a large state).
pub struct EncodedSnapshot {
    pub(super) seq: u64,
    pub(super) packed: Vec<u8>,
}

impl EncodedSnapshot {
    /// Encodes `snapshot` as `commit_turn` would store it (this is where a lazy snapshot's bytes
    /// are made).
    pub fn encode(snapshot: &scbe_core::consensus::Snapshot) -> Self {
        Self {
            seq: snapshot.seq.0,
            packed: pack(&encode_record(&Record::Snapshot(snapshot.clone()))),
        }
    }

    /// The checkpoint's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Its stored size (compressed).
    pub fn stored_bytes(&self) -> usize {
        self.packed.len()
    }
}
