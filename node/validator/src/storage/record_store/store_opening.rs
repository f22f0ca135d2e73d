//! Opening a record store: creating it atomically, checking whose it is and under which
//! genesis, taking it over for a rotated key, upgrading an older format, and reading its index.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use super::{
    owner_key, stored_links, RecordIndex, RecordStore, StorageError, StoreReader, CACHE_BYTES,
    DECIDED, FORMAT_1, FORMAT_VERSION, META, RECORDS,
};
use crate::storage::value_codec::{pack, unpack};
use scbe_core::consensus::Digest;
use scbe_core::crypto::PublicKey;
use scbe_wire::stored_record_key;

/// Rewrites every value of `def` as format 2 stores it (inside the opening transaction: a
/// store killed during the upgrade is still format 1, and upgraded on the next open).
fn upgrade_from_format_1(
    txn: &redb::WriteTransaction,
    def: TableDefinition<u64, &[u8]>,
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(def)?;
    let packed: Vec<(u64, Vec<u8>)> = table
        .iter()?
        .map(|e| e.map(|(k, v)| (k.value(), pack(v.value()))))
        .collect::<Result<_, _>>()?;
    for (k, v) in packed {
        table.insert(k, v.as_slice())?;
    }
    Ok(())
}

impl RecordStore {
    /// Opens (or creates) the store of validator `node` in the cluster of `genesis`. A store
    /// written by another key, or under another genesis, is refused: pairing old data with another
    /// cluster's configuration would replay history under rules it was not decided by.
    pub fn open(path: &Path, node: &PublicKey, genesis: &Digest) -> Result<Self, StorageError> {
        let open_err = |e: &dyn std::fmt::Display| StorageError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        if !path.exists() {
            Self::create_atomically(path, node).map_err(|e| open_err(&e))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .open(path)
            .map_err(|e| open_err(&e))?;
        let mut store = RecordStore {
            reader: StoreReader::new(path, db),
            next_index: 0,
            index: RecordIndex::new(),
            unsynced_since: None,
        };
        let txn = store.reader.db.begin_write().map_err(|e| open_err(&e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| open_err(&e))?;
            let format = meta
                .get("format")
                .map_err(|e| open_err(&e))?
                .map(|v| v.value().to_vec());
            match format {
                None => {
                    meta.insert("format", FORMAT_VERSION)
                        .map_err(|e| open_err(&e))?;
                    meta.insert("node", node.as_bytes().as_slice())
                        .map_err(|e| open_err(&e))?;
                }
                Some(f) if f == FORMAT_1 => {
                    Self::check_owner(&meta, path, node)?;
                    meta.insert("format", FORMAT_VERSION)
                        .map_err(|e| open_err(&e))?;
                    for def in [RECORDS, DECIDED] {
                        upgrade_from_format_1(&txn, def).map_err(|e| open_err(&e))?;
                    }
                }
                Some(f) if f != FORMAT_VERSION => {
                    return Err(StorageError::Format {
                        path: path.to_path_buf(),
                        found: String::from_utf8_lossy(&f).into_owned(),
                        expected: String::from_utf8_lossy(FORMAT_VERSION).into_owned(),
                    })
                }
                Some(_) => {
                    if let Err(wrong) = Self::check_owner(&meta, path, node) {
                        let owner = meta
                            .get("node")
                            .map_err(|e| open_err(&e))?
                            .and_then(|v| PublicKey::from_slice(v.value()).ok());
                        let records = txn.open_table(RECORDS).map_err(|e| open_err(&e))?;
                        let every = records
                            .iter()
                            .map_err(|e| open_err(&e))?
                            .filter_map(|e| e.ok().map(|(k, _)| k.value()))
                            .collect::<Vec<_>>();
                        let links = stored_links::links_at(&records, every.into_iter())
                            .map_err(|e| open_err(&e))?;
                        if !owner.is_some_and(|o| owner_key::rotated_to(&links, &o, node)) {
                            return Err(wrong);
                        }
                        // The validator's rotated key: its store from now on.
                        tracing::info!(path = %path.display(), key = %node, "store taken over by the key a rotation gave its validator");
                        meta.insert("node", node.as_bytes().as_slice())
                            .map_err(|e| open_err(&e))?;
                    }
                }
            }
            Self::bind_genesis(&mut meta, path, genesis)?;
            drop(meta);
            let records = txn.open_table(RECORDS).map_err(|e| open_err(&e))?;
            store.next_index = records
                .last()
                .map_err(|e| open_err(&e))?
                .map_or(0, |(k, _)| k.value() + 1);
            for entry in records.iter().map_err(|e| open_err(&e))? {
                let (k, v) = entry.map_err(|e| open_err(&e))?;
                // A record that does not decode is never dropped (as before the index); `load`
                // refuses it.
                if let Some(key) = unpack(v.value())
                    .ok()
                    .and_then(|bytes| stored_record_key(&bytes))
                {
                    store.index.insert(k.value(), key);
                }
            }
        }
        txn.commit().map_err(|e| open_err(&e))?;
        Ok(store)
    }

    /// Records the genesis a new store (or one written before stores recorded it) is written
    /// under; refuses a store of another genesis.
    fn bind_genesis(
        meta: &mut redb::Table<&str, &[u8]>,
        path: &Path,
        genesis: &Digest,
    ) -> Result<(), StorageError> {
        let open_err = |e: redb::Error| StorageError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let stored = meta
            .get("genesis")
            .map_err(|e| open_err(e.into()))?
            .map(|v| v.value().to_vec());
        match stored {
            None => {
                meta.insert("genesis", genesis.as_bytes().as_slice())
                    .map_err(|e| open_err(e.into()))?;
                Ok(())
            }
            Some(s) if s == genesis.as_bytes() => Ok(()),
            Some(s) => Err(StorageError::WrongGenesis {
                path: path.to_path_buf(),
                stored: scbe_wire::key_file::encode_hex(&s),
                expected: scbe_wire::key_file::encode_hex(genesis.as_bytes()),
            }),
        }
    }

    /// Refuses a store written by another validator's key.
    fn check_owner(
        meta: &redb::Table<&str, &[u8]>,
        path: &Path,
        node: &PublicKey,
    ) -> Result<(), StorageError> {
        let owner = meta
            .get("node")
            .map_err(|e| StorageError::Open {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        if owner != node.as_bytes() {
            return Err(StorageError::WrongNode {
                path: path.to_path_buf(),
                expected: *node,
                found: owner.iter().take(6).map(|b| format!("{b:02x}")).collect(),
            });
        }
        Ok(())
    }

    /// Creates an initialised store under a temporary name and renames it into place, then
    /// syncs the directory: a node killed at any instant leaves either no store (it is created
    /// again; a half-written temporary file is discarded) or a complete one, never a file whose
    /// header was not yet written, which redb can never open.
    fn create_atomically(path: &Path, node: &PublicKey) -> Result<(), Box<dyn std::error::Error>> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".creating");
        let tmp = PathBuf::from(tmp);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        {
            let db = Database::create(&tmp)?;
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                meta.insert("format", FORMAT_VERSION)?;
                meta.insert("node", node.as_bytes().as_slice())?;
            }
            txn.commit()?;
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}
