//! In-memory stand-in for the node's durable storage: the records a replica persisted, which
//! survive a simulated crash. Compacts below each stable checkpoint like the real store will.

use scbe_node::consensus::Record;

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    records: Vec<Record>,
}

impl MemoryStore {
    pub fn append(&mut self, record: Record) {
        if let Record::Stable(cert) = &record {
            let s = cert.seq;
            // Keep the snapshot at the new stable checkpoint, the latest view records, and
            // everything above the checkpoint.
            self.records.retain(|r| match r {
                Record::Snapshot(snap) => snap.seq >= s,
                Record::Stable(_) => false,
                other => other.seq().is_none_or(|q| q > s),
            });
        }
        if matches!(record, Record::ViewChange(_) | Record::EnteredView { .. }) {
            self.records
                .retain(|r| !matches!(r, Record::ViewChange(_) | Record::EnteredView { .. }));
        }
        self.records.push(record);
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }
}
