//! The record store: an append-ordered log of the core's `Record`s in one redb file.
//!
//! Rules the runtime relies on:
//! - [`RecordStore::append`] makes every record of one loop turn durable in a single transaction
//!   (one fsync) and returns only after the commit: the runtime sends nothing the core produced
//!   after those records until it returns (DESIGN §3, "Durability"). A turn whose records are
//!   decided batches alone (with their ledger history) guards no message: it commits without
//!   an fsync, and the next durable commit carries it, or [`RecordStore::sync`], which the
//!   runtime calls soon after when no durable commit came (a crash loses only decisions, which
//!   peers give back).
//! - A stable checkpoint compacts the log exactly like the core expects on restore: records at or
//!   below the checkpoint go, except its snapshot; only the latest view-change / entered-view
//!   record is kept.
//! - A large snapshot may arrive later, encoded off the core's loop
//!   ([`RecordStore::commit_snapshot`]): nothing waits for it, because the audit trail keeps every
//!   decided batch, so a restart before it lands replays from an older snapshot.
//! - [`RecordStore::open`] refuses a file that is corrupt, truncated, from another format
//!   version or written by another validator key, and [`RecordStore::load`] re-verifies every
//!   signature: a node that cannot trust its vote guard must not start, or it might double-sign.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

mod store_opening;

pub use crate::storage::encoded_snapshot::EncodedSnapshot;
pub use crate::storage::storage_error::StorageError;
use crate::storage::store_reader::StoreReader;
use crate::storage::value_codec::{pack, unpack};
use crate::storage::{owner_key, stored_links};
use scbe_core::consensus::{CheckpointCert, Directory, Record};
use scbe_core::governance::event::Event;
use scbe_core::governance::ledger::{Fresh, Outcome};
use scbe_wire::{decode_commit_cert, record_key, StoredKind};
use scbe_wire::{decode_record, encode_record, WireError};

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The audit trail: every decided batch's commit certificate by sequence number. Never compacted.
pub(super) const DECIDED: TableDefinition<u64, &[u8]> = TableDefinition::new("decided");
/// The audit trail's stable checkpoints: every checkpoint certificate this validator saw become
/// stable, by sequence number (what `scbe audit verify` compares a replay with). Never
/// compacted; a few hundred bytes per checkpoint.
pub(super) const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");
/// The ledger's history beyond what it keeps in memory (`governance::ledger::journal`): every
/// event by position, every request outcome by `signer-hex:nonce`, as JSON. Never compacted;
/// written in the same transaction as the batches that produced them.
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const OUTCOMES: TableDefinition<&str, &[u8]> = TableDefinition::new("outcomes");
/// Release bodies by their `BodyKey` (registration seq, then SHA-256 of the JSON; see
/// `stored_bodies.rs`), packed; written
/// in the turn that registered them (or installed a state holding them), never compacted:
/// the ledger keeps only their digests.
pub(super) const BODIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bodies");
/// Format 2 stores the values of `records` and `decided` through `value_codec` (compressed when
/// large); format 1 stored them as they are and is upgraded in place on open.
const FORMAT_VERSION: &[u8] = b"scbe-records-2";
const FORMAT_1: &[u8] = b"scbe-records-1";
/// redb's page cache. Its default (1 GiB) is a ceiling, not a reservation, but every page of a
/// file that only grows (the audit trail, the release bodies) stays cached up to it: the
/// validator's memory grew with history. 16 MiB holds the B-trees' interior pages (an
/// estimate from page counts: ~10 MB after a million registrations) and the right-hand paths
/// that appends touch; a turn that writes more than half of it (redb 4 holds its write buffer
/// at or below half the cache) has the excess written to the file before the commit, which
/// syncs it all the same.
/// It was 64 MiB: at 90 s of registrations that held the largest validator 60-70 MB higher
/// for no measured gain in throughput (issue 27, BENCHMARKS.md, sixteenth part).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A stored value `value_codec` cannot read, as the decoding error it is.
pub(super) fn stored_value(e: crate::storage::value_codec::ValueError) -> WireError {
    WireError::Decode {
        what: "stored value",
        reason: e.to_string(),
    }
}

/// What each record of the `records` table is about, by its index there.
type RecordIndex = std::collections::BTreeMap<u64, (StoredKind, Option<u64>)>;

/// The sequence numbers of the snapshots in `index`.
fn snapshot_seqs(index: &RecordIndex) -> impl Iterator<Item = u64> + '_ {
    index
        .values()
        .filter(|(kind, _)| *kind == StoredKind::Snapshot)
        .filter_map(|(_, seq)| *seq)
}

pub struct RecordStore {
    /// The database and its path; clones of it read concurrently with this store's writes.
    reader: StoreReader,
    next_index: u64,
    /// Kind and sequence number of every record in the table, read once at open and kept
    /// with every write: compaction picks what to drop from here instead of reading every
    /// record back (a snapshot holds the ledger's whole state; reading and decoding them all at
    /// every stable checkpoint was a third of a validator's time under registrations).
    index: RecordIndex,
    /// When the first commit since the last durable one skipped its fsync (decisions alone, see
    /// `commit_turn`): [`RecordStore::sync`] then has something to make durable, and the
    /// runtime syncs by this plus its bound.
    unsynced_since: Option<std::time::Instant>,
}

impl RecordStore {
    /// A handle that reads this store from any thread while it is written (redb's readers see
    /// the last committed transaction).
    pub fn reader(&self) -> StoreReader {
        self.reader.clone()
    }

    fn io(&self, e: impl std::fmt::Display) -> StorageError {
        StorageError::Io {
            path: self.reader.path.clone(),
            detail: e.to_string(),
        }
    }

    /// Makes `records` durable in one transaction, in order, compacting at stable checkpoints.
    pub fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.commit_turn(records, &[], &Fresh::default())
    }

    /// One loop turn's durable writes in one transaction: the core's records, the commit
    /// certificates of the batches it decided (the audit trail) and the ledger events and
    /// outcomes they produced.
    pub fn commit_turn(
        &mut self,
        records: &[Record],
        decided: &[scbe_core::consensus::CommitCert],
        history: &Fresh,
    ) -> Result<(), StorageError> {
        if records.is_empty()
            && decided.is_empty()
            && history.events.is_empty()
            && history.outcomes.is_empty()
            && history.bodies.is_empty()
        {
            return Ok(());
        }
        let mut txn = self.reader.db.begin_write().map_err(|e| self.io(e))?;
        let durable = guards_a_message(records);
        if !durable {
            // Only decisions and their history: nothing a peer receives waits for them (the
            // decided batch was prepared durably by a quorum before any commit was sent), so
            // this commit skips its fsync and the next durable one carries it. A crash loses at
            // most the decisions since then, which the replica fetches again from its peers.
            // Why: the fsync held the loop, and the next request's pre-prepare with it.
            txn.set_durability(redb::Durability::None)
                .map_err(|e| self.io(e))?;
        }
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.io(e))?;
            for (position, json) in &history.events {
                events
                    .insert(*position, json.as_slice())
                    .map_err(|e| self.io(e))?;
            }
            let mut outcomes = txn.open_table(OUTCOMES).map_err(|e| self.io(e))?;
            for (signer, nonce, json) in &history.outcomes {
                outcomes
                    .insert(format!("{signer}:{nonce}").as_str(), json.as_slice())
                    .map_err(|e| self.io(e))?;
            }
            let mut bodies = txn.open_table(BODIES).map_err(|e| self.io(e))?;
            for (key, json) in &history.bodies {
                bodies
                    .insert(key.to_bytes().as_slice(), pack(json.as_bytes()).as_slice())
                    .map_err(|e| self.io(e))?;
            }
        }
        {
            let mut audit = txn.open_table(DECIDED).map_err(|e| self.io(e))?;
            for c in decided {
                let bytes = pack(&scbe_wire::encode_commit_cert(c));
                audit
                    .insert(c.seq().0, bytes.as_slice())
                    .map_err(|e| self.io(e))?;
            }
            let mut checkpoints = txn.open_table(CHECKPOINTS).map_err(|e| self.io(e))?;
            for r in records {
                if let Record::Stable(cert) = r {
                    let bytes = pack(&scbe_wire::encode_checkpoint_cert(cert));
                    checkpoints
                        .insert(cert.seq.0, bytes.as_slice())
                        .map_err(|e| self.io(e))?;
                }
            }
        }
        // A batch decided in this turn is in the audit trail already: its `Committed` record is
        // not written a second time (`load` reads it back from there). One committed but not yet
        // executed (a gap below it) has no audit entry and is kept as a record.
        let audited: std::collections::BTreeMap<u64, scbe_core::consensus::Digest> = decided
            .iter()
            .map(|c| (c.seq().0, c.pre_prepare.value().digest))
            .collect();
        // The index as this transaction leaves the table, made the store's only once it
        // commits, so a failed commit leaves the index matching the file. (It holds the records
        // above the stable checkpoint, a few hundred: copying it per turn costs microseconds.)
        let mut index = self.index.clone();
        let mut next_index = self.next_index;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.io(e))?;
            for r in records {
                if let Record::Committed(c) = r {
                    if audited.get(&c.seq().0) == Some(&c.pre_prepare.value().digest) {
                        continue;
                    }
                }
                // An epoch boundary's stable checkpoint compacts nothing: until the old set's
                // quorum has signed it, a restarted replica serves the stable checkpoint before
                // it and the decided batches up to it (`Replica::restore`, `load`); the next
                // regular one compacts.
                if let Record::Stable(cert) = r {
                    if cert.next_set.is_none() {
                        self.compact(&mut table, &mut index, cert.seq.0)?;
                    }
                }
                if matches!(r, Record::ViewChange(_) | Record::EnteredView { .. }) {
                    self.drop_matching(&mut table, &mut index, |kind, _| {
                        matches!(kind, StoredKind::ViewChange | StoredKind::EnteredView)
                    })?;
                }
                if matches!(r, Record::NonceReservation { .. }) {
                    self.drop_matching(&mut table, &mut index, |kind, _| {
                        kind == StoredKind::NonceReservation
                    })?;
                }
                let bytes = pack(&encode_record(r));
                table
                    .insert(next_index, bytes.as_slice())
                    .map_err(|e| self.io(e))?;
                index.insert(next_index, record_key(r));
                next_index += 1;
            }
        }
        txn.commit().map_err(|e| self.io(e))?;
        self.unsynced_since = if durable {
            None
        } else {
            self.unsynced_since
                .or_else(|| Some(std::time::Instant::now()))
        };
        self.next_index = next_index;
        self.index = index;
        Ok(())
    }

    /// Since when a commit without its fsync is the newest (none: everything is durable):
    /// what a kill now would lose (decisions, which peers give back).
    pub fn unsynced_since(&self) -> Option<std::time::Instant> {
        self.unsynced_since
    }

    /// Makes every commit so far durable: an empty transaction committed with its fsync (redb
    /// makes the non-durable commits before it durable with it). Nothing to do when none is
    /// pending.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.unsynced_since.is_none() {
            return Ok(());
        }
        let txn = self.reader.db.begin_write().map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))?;
        self.unsynced_since = None;
        Ok(())
    }

    /// Makes a snapshot encoded off the loop durable in a transaction of its own. One no newer
    /// than a snapshot already stored is skipped: compaction keeps the newest snapshot at or
    /// below the stable checkpoint, so an older one would never be used. Returns whether it was
    /// written.
    pub fn commit_snapshot(&mut self, snapshot: &EncodedSnapshot) -> Result<bool, StorageError> {
        if snapshot_seqs(&self.index).any(|s| s >= snapshot.seq) {
            return Ok(false);
        }
        let txn = self.reader.db.begin_write().map_err(|e| self.io(e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.io(e))?;
            table
                .insert(self.next_index, snapshot.packed.as_slice())
                .map_err(|e| self.io(e))?;
        }
        txn.commit().map_err(|e| self.io(e))?;
        self.unsynced_since = None;
        self.index
            .insert(self.next_index, (StoredKind::Snapshot, Some(snapshot.seq)));
        self.next_index += 1;
        Ok(true)
    }

    /// Removes records whose (kind, seq) matches `pred`, from the table and from `index` (the
    /// index of the table as this transaction leaves it).
    fn drop_matching(
        &self,
        table: &mut redb::Table<u64, &[u8]>,
        index: &mut RecordIndex,
        pred: impl Fn(StoredKind, Option<u64>) -> bool,
    ) -> Result<(), StorageError> {
        let doomed: Vec<u64> = index
            .iter()
            .filter(|(_, (kind, seq))| pred(*kind, *seq))
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            table.remove(k).map_err(|e| self.io(e))?;
            index.remove(&k);
        }
        Ok(())
    }

    /// At a stable checkpoint: keep the newest snapshot at or below it (the core persists a
    /// large one only every so often and re-executes the audit trail from it on restart) and
    /// everything above it.
    fn compact(
        &self,
        table: &mut redb::Table<u64, &[u8]>,
        index: &mut RecordIndex,
        stable: u64,
    ) -> Result<(), StorageError> {
        let base = snapshot_seqs(index)
            .filter(|s| *s <= stable)
            .max()
            .unwrap_or(stable);
        self.drop_matching(table, index, |kind, seq| match kind {
            StoredKind::Snapshot => seq.is_some_and(|s| s < base),
            StoredKind::Stable => true,
            // Links of the validator-set chain are kept for good: they prove later sets.
            StoredKind::ViewChange
            | StoredKind::EnteredView
            | StoredKind::NonceReservation
            | StoredKind::EpochLink => false,
            _ => seq.is_some_and(|s| s <= stable),
        })
    }

    /// Every record in the order it was appended, then the decided batches above the newest
    /// snapshot at or below the stable checkpoint (above genesis if there is none) from the
    /// audit trail; signatures re-verified against `dir`.
    pub fn load(&self, dir: &Directory) -> Result<Vec<Record>, StorageError> {
        let txn = self.reader.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.io(e))?;
        // Records of later epochs are signed by keys the genesis does not know: the store's
        // links (readable alone) name them. Every signer is still checked against its epoch's
        // set by the core on restore.
        let at = self
            .index
            .iter()
            .filter(|(_, (kind, _))| *kind == StoredKind::EpochLink)
            .map(|(k, _)| *k);
        let links = stored_links::links_at(&table, at).map_err(|e| match e {
            stored_links::LinkReadError::Store(e) => self.io(e),
            stored_links::LinkReadError::Record { index, source } => StorageError::Record {
                path: self.reader.path.clone(),
                index,
                source,
            },
        })?;
        let resolving;
        let dir = if links.is_empty() {
            dir
        } else {
            resolving = dir
                .resolving(links.iter().flat_map(|l| [&l.previous, &l.set]))
                .map_err(|e| self.io(e))?;
            &resolving
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.io(e))? {
            let (k, v) = entry.map_err(|e| self.io(e))?;
            let r = unpack(v.value())
                .map_err(stored_value)
                .and_then(|bytes| decode_record(&bytes, dir))
                .map_err(|source| StorageError::Record {
                    path: self.reader.path.clone(),
                    index: k.value(),
                    source,
                })?;
            out.push(r);
        }
        drop(table);
        drop(txn);
        // Decided batches from the audit trail (see `commit_turn`): above the stable checkpoint,
        // and below it too down to the snapshot the core will start from.
        // The core starts from the newest stable checkpoint, or, when that is an epoch boundary,
        // may resume the one before it (see `Replica::restore`): the batches up to the boundary
        // are loaded too.
        let mut stables: Vec<&CheckpointCert> = out
            .iter()
            .filter_map(|r| match r {
                Record::Stable(c) => Some(c),
                _ => None,
            })
            .collect();
        stables.sort_by_key(|c| c.seq);
        let stable = match stables.as_slice() {
            [.., before, last] if last.next_set.is_some() && before.seq < last.seq => before.seq.0,
            [.., last] => last.seq.0,
            [] => 0,
        };
        let base = out
            .iter()
            .filter_map(|r| match r {
                Record::Snapshot(s) if s.seq.0 <= stable => Some(s.seq.0),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        for (seq, bytes) in self.decided_from(base + 1, usize::MAX)? {
            let cert = decode_commit_cert(&bytes, dir).map_err(|source| StorageError::Record {
                path: self.reader.path.clone(),
                index: seq,
                source,
            })?;
            out.push(Record::Committed(cert));
        }
        Ok(out)
    }

    /// Encoded commit certificates from `from` on, in sequence order (at most `limit`).
    pub fn decided_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.reader
            .range_from(DECIDED, from..=u64::MAX, limit, |seq, stored| {
                self.reader.unpacked(seq, stored)
            })
    }

    /// Stored ledger events from position `from` on (at most `limit`). A node that caught up
    /// from a snapshot has a gap where it executed nothing itself.
    pub fn events_from(&self, from: u64, limit: usize) -> Result<Vec<(u64, Event)>, StorageError> {
        self.reader.events_from(from, limit)
    }

    /// A stored request outcome (signer as hex).
    pub fn outcome(&self, signer: &str, nonce: u64) -> Result<Option<Outcome>, StorageError> {
        let txn = self.reader.db.begin_read().map_err(|e| self.io(e))?;
        let table = match txn.open_table(OUTCOMES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let got = table
            .get(format!("{signer}:{nonce}").as_str())
            .map_err(|e| self.io(e))?;
        Ok(got.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    pub fn len(&self) -> Result<u64, StorageError> {
        let txn = self.reader.db.begin_read().map_err(|e| self.io(e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.io(e))?;
        table.len().map_err(|e| self.io(e))
    }

    pub fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }
}

/// Whether a turn's records must be durable before its messages leave: any record but a decided
/// batch's certificate (the vote guard's, prepared certificates, view changes, checkpoints,
/// snapshots, nonce reservations, epoch links).
fn guards_a_message(records: &[Record]) -> bool {
    records.iter().any(|r| !matches!(r, Record::Committed(_)))
}
