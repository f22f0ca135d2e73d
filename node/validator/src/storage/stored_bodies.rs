//! The ledger's release bodies in the record store's file (`bodies` table), read on demand: the
//! validator's [`BodyStore`].
//!
//! The ledger keeps a body's digest once this store has it (`governance::body_store`), so the
//! page cache of redb (bounded, `record_store::CACHE_BYTES`) is the only cache of bodies. A
//! body the store confirmed and then cannot give back means the file lost data: the validator
//! stops (exit code 74) rather than decide without it, which would make its state differ from
//! its peers'. Restarted on a repaired or fresh data directory, it catches up from them.

use std::sync::{Arc, Mutex};

use redb::ReadableDatabase;
use serde_json::value::RawValue;

use scbe_core::governance::body_store::{BodyKey, BodyStore, BodyUnavailable};

use super::record_store::BODIES;
use super::store_reader::StoreReader;
use crate::storage::value_codec::unpack;

/// What a process exits with when its store lost a release body (sysexits' EX_IOERR).
pub const LOST_BODY_EXIT_CODE: i32 = 74;

type BodiesTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Reads through one kept view of the table before it is opened afresh.
const READS_PER_VIEW: u32 = 4096;

pub struct StoredBodies {
    reader: StoreReader,
    /// A read view of the table kept across reads, and how many it served: opening one (a read
    /// transaction) per body was most of what reading a body cost, and a snapshot's encoding
    /// reads every body. A body is never changed or removed, so an older view can only miss
    /// one written since it opened: a miss is asked again of a fresh view. The ledger's
    /// question at each checkpoint (`contains_each`) opens a fresh one, so a kept view is never
    /// much older than a checkpoint (an old read transaction keeps the pages freed since from
    /// being reused).
    view: Mutex<Option<(Arc<BodiesTable>, u32)>>,
    /// Stop the process when a confirmed body cannot be read (off only in tests, which see the
    /// error instead).
    stop_on_loss: bool,
}

impl StoredBodies {
    pub fn new(reader: StoreReader) -> Self {
        Self {
            reader,
            view: Mutex::new(None),
            stop_on_loss: true,
        }
    }

    /// A store that reports a lost body as an error instead of stopping the process.
    #[cfg(test)]
    pub fn reporting(reader: StoreReader) -> Self {
        Self {
            reader,
            view: Mutex::new(None),
            stop_on_loss: false,
        }
    }

    /// The bodies table as the last commit left it (`None`: never written), kept for later
    /// reads.
    fn fresh_view(&self) -> Result<Option<Arc<BodiesTable>>, String> {
        let txn = self.reader.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(BODIES) {
            Ok(t) => Arc::new(t),
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if let Ok(mut kept) = self.view.lock() {
            *kept = Some((Arc::clone(&table), 0));
        }
        Ok(Some(table))
    }

    /// The kept view, unless it served its reads (then a fresh one).
    fn kept_view(&self) -> Result<Option<Arc<BodiesTable>>, String> {
        if let Ok(mut kept) = self.view.lock() {
            if let Some((table, reads)) = kept.as_mut() {
                if *reads < READS_PER_VIEW {
                    *reads += 1;
                    return Ok(Some(Arc::clone(table)));
                }
            }
        }
        self.fresh_view()
    }

    /// How many bodies the file holds.
    pub fn len(&self) -> Result<u64, String> {
        use redb::ReadableTableMetadata as _;
        match self.fresh_view()? {
            Some(table) => table.len().map_err(|e| e.to_string()),
            None => Ok(0),
        }
    }

    pub fn is_empty(&self) -> Result<bool, String> {
        Ok(self.len()? == 0)
    }

    /// The stored bytes under `key`, unpacked; `Ok(None)` if there are none.
    fn lookup(&self, key: &BodyKey) -> Result<Option<Vec<u8>>, String> {
        if let Some(table) = self.kept_view()? {
            if let Some(found) = Self::lookup_in(&table, key)? {
                return Ok(Some(found));
            }
        }
        // Perhaps written since the kept view opened.
        match self.fresh_view()? {
            Some(table) => Self::lookup_in(&table, key),
            None => Ok(None),
        }
    }

    fn lookup_in(table: &BodiesTable, key: &BodyKey) -> Result<Option<Vec<u8>>, String> {
        let Some(stored) = table
            .get(key.to_bytes().as_slice())
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        unpack(stored.value())
            .map(|b| Some(b.into_owned()))
            .map_err(|e| e.to_string())
    }

    fn lost(&self, key: &BodyKey, detail: String) -> BodyUnavailable {
        let e = BodyUnavailable {
            key: *key,
            detail: format!("{detail} (in {})", self.reader.path.display()),
        };
        if self.stop_on_loss {
            tracing::error!(
                error = %e,
                "the store lost a release body it held: stopping, since deciding without it would set this validator apart from its peers; restore the data directory, or start on an empty one to catch up from the peers"
            );
            std::process::exit(LOST_BODY_EXIT_CODE);
        }
        e
    }
}

impl BodyStore for StoredBodies {
    fn contains(&self, key: &BodyKey) -> Result<bool, BodyUnavailable> {
        Ok(self.contains_each(std::slice::from_ref(key))? == [true])
    }

    /// In one read transaction, without unpacking anything.
    fn contains_each(&self, keys: &[BodyKey]) -> Result<Vec<bool>, BodyUnavailable> {
        let failed = |detail: String| BodyUnavailable {
            key: keys.first().copied().unwrap_or(BodyKey {
                seq: 0,
                digest: [0; 32],
            }),
            detail,
        };
        let Some(table) = self.fresh_view().map_err(failed)? else {
            return Ok(vec![false; keys.len()]);
        };
        keys.iter()
            .map(|k| {
                table
                    .get(k.to_bytes().as_slice())
                    .map(|v| v.is_some())
                    .map_err(|e| failed(e.to_string()))
            })
            .collect()
    }

    fn read(&self, key: &BodyKey) -> Result<Box<RawValue>, BodyUnavailable> {
        let bytes = match self.lookup(key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(self.lost(key, "not in the store".into())),
            Err(e) => return Err(self.lost(key, e)),
        };
        String::from_utf8(bytes)
            .map_err(|e| e.to_string())
            .and_then(|s| RawValue::from_string(s).map_err(|e| e.to_string()))
            .map_err(|e| self.lost(key, format!("not a stored body: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use scbe_core::consensus::StateMachine as _;
    use scbe_core::crypto::Keypair;
    use scbe_core::governance::ledger_world::{release, World};

    use super::*;
    use crate::storage::RecordStore;

    use crate::storage::tests::GENESIS;

    /// A registered body goes to the file with the turn that registered it, leaves the
    /// ledger's memory at the next checkpoint, and reads back, also after the store reopens.
    #[test]
    fn a_registered_body_is_written_with_its_turn_and_read_back_from_the_file() {
        let owner = Keypair::from_label("t0");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("node.redb");
        let body_key = {
            let mut w = World::new();
            let mut store = RecordStore::open(&path, &owner.public(), &GENESIS).expect("opens");
            w.ledger
                .store_bodies_in(Arc::new(StoredBodies::reporting(store.reader())));
            w.register("r1");
            let entry = &w.ledger.state().releases["r1"];
            let key = BodyKey {
                seq: entry.registered_seq,
                digest: entry.release.digest(),
            };
            let bodies = StoredBodies::reporting(store.reader());
            assert_eq!(bodies.contains(&key), Ok(false), "not written yet");
            store
                .commit_turn(&[], &[], &w.ledger.take_new())
                .expect("commits");
            assert_eq!(bodies.contains(&key), Ok(true));
            w.ledger.before_checkpoint();
            let body = &w.ledger.state().releases["r1"].release;
            assert!(!body.is_held(), "the ledger keeps only its digest");
            assert_eq!(body.release().expect("reads"), release("r1"));
            key
            // The ledger's reader closes the file with it here.
        };
        let store = RecordStore::open(&path, &owner.public(), &GENESIS).expect("reopens");
        let bodies = StoredBodies::reporting(store.reader());
        let json = bodies.read(&body_key).expect("still there");
        assert_eq!(
            json.get(),
            serde_json::to_string(&release("r1")).expect("encodes")
        );
    }

    /// A read keeps its view of the table for the next ones; a body committed after that view
    /// opened is still found.
    #[test]
    fn a_body_written_after_the_kept_view_opened_is_found() {
        let owner = Keypair::from_label("t0");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("node.redb");
        let mut store = RecordStore::open(&path, &owner.public(), &GENESIS).expect("opens");
        let bodies = StoredBodies::reporting(store.reader());
        let body = |seq: u64, version: &str| {
            let json = serde_json::to_string(&release(version)).expect("encodes");
            let key = BodyKey {
                seq,
                digest: scbe_core::governance::body_store::body_digest(&json),
            };
            (key, json)
        };
        let (first, first_json) = body(1, "r1");
        let history = |bodies: Vec<(BodyKey, String)>| scbe_core::governance::ledger::Fresh {
            bodies,
            ..Default::default()
        };
        store
            .commit_turn(&[], &[], &history(vec![(first, first_json.clone())]))
            .expect("commits");
        assert_eq!(bodies.read(&first).expect("reads").get(), first_json);
        let (second, second_json) = body(2, "r2");
        store
            .commit_turn(&[], &[], &history(vec![(second, second_json.clone())]))
            .expect("commits");
        assert_eq!(bodies.read(&second).expect("reads").get(), second_json);
        assert_eq!(bodies.read(&first).expect("reads").get(), first_json);
        assert_eq!(bodies.contains_each(&[second, first]), Ok(vec![true, true]));
    }

    #[test]
    fn a_body_the_file_does_not_hold_is_reported_with_its_digest_and_file() {
        let owner = Keypair::from_label("t0");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("node.redb");
        let store = RecordStore::open(&path, &owner.public(), &GENESIS).expect("opens");
        let bodies = StoredBodies::reporting(store.reader());
        let missing = BodyKey {
            seq: 3,
            digest: [9; 32],
        };
        assert_eq!(
            bodies.contains(&missing),
            Ok(false),
            "no table yet: not held"
        );
        let err = bodies.read(&missing).expect_err("not there");
        assert_eq!(err.key, missing);
        assert!(err.detail.contains("not in the store"), "{err}");
        assert!(err.detail.contains("node.redb"), "names the file: {err}");
    }
}
