//! In-memory stand-in for the node's durable storage: the records a replica persisted, which
//! survive a simulated crash. Compacts below each stable checkpoint like the real store will.

use scbe_core::consensus::{AppState, Record, Seq};

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    records: Vec<Record>,
    /// Test hook (a planted storage bug): snapshots are kept without their nonce windows.
    unsafe_forget_nonces: bool,
}

impl MemoryStore {
    /// An empty store; `unsafe_forget_nonces` plants the storage bug the honesty test needs.
    pub fn new(unsafe_forget_nonces: bool) -> Self {
        MemoryStore {
            records: Vec::new(),
            unsafe_forget_nonces,
        }
    }

    pub fn append(&mut self, mut record: Record) {
        if let Record::Snapshot(snap) = &mut record {
            if self.unsafe_forget_nonces {
                snap.nonces.clear();
            }
            // Kept as the node's store keeps it: in the application's store form (a ledger
            // with a body store names its stored bodies), so a restart reads that form back.
            if snap.app_state.has_store_form() {
                snap.app_state = AppState::new(snap.app_state.bytes_for_store().into_owned());
            }
        }
        // An epoch boundary's stable checkpoint compacts nothing: until the old set's quorum has
        // signed it, a restarted replica serves the stable checkpoint before it and the decided
        // batches up to it (`Replica::restore`); the next regular one compacts.
        if let Some(cert) = regular_stable(&record) {
            let s = cert.seq;
            // Keep the newest snapshot at or below the new stable checkpoint and the decided
            // batches above it (the real store keeps every decided batch in its audit trail;
            // the core re-executes them from that snapshot on restart), the latest view
            // records and nonce reservation, and everything above the checkpoint.
            let base = self
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Snapshot(snap) if snap.seq <= s => Some(snap.seq),
                    _ => None,
                })
                .max();
            let from = base.unwrap_or(Seq(0));
            self.records.retain(|r| match r {
                Record::Snapshot(snap) => snap.seq >= base.unwrap_or(s),
                Record::Stable(_) => false,
                Record::Committed(c) => c.seq() > from,
                other => other.seq().is_none_or(|q| q > s),
            });
        }
        if matches!(record, Record::ViewChange(_) | Record::EnteredView { .. }) {
            self.records
                .retain(|r| !matches!(r, Record::ViewChange(_) | Record::EnteredView { .. }));
        }
        if matches!(record, Record::NonceReservation { .. }) {
            self.records
                .retain(|r| !matches!(r, Record::NonceReservation { .. }));
        }
        self.records.push(record);
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }
}

/// The stable checkpoint `record` persists, unless it is an epoch boundary's.
fn regular_stable(record: &Record) -> Option<&scbe_core::consensus::CheckpointCert> {
    match record {
        Record::Stable(cert) if cert.next_set.is_none() => Some(cert),
        _ => None,
    }
}
