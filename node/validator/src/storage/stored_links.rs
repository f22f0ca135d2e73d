//! The links of the validator-set chain among a store's records: read before anything else,
//! because they name the keys later epochs' records are signed with (and which key a rotation
//! gave this node's validator). Each link verifies alone, against the set it says signed it.

use redb::ReadableTable;
use scbe_core::consensus::EpochLink;
use scbe_wire::WireError;

use crate::storage::record_store::stored_value;
use crate::storage::value_codec::unpack;

#[derive(Debug, thiserror::Error)]
pub enum LinkReadError {
    #[error("{0}")]
    Store(#[from] redb::Error),
    #[error("record {index} is unreadable: {source}")]
    Record { index: u64, source: WireError },
}

impl From<redb::StorageError> for LinkReadError {
    fn from(e: redb::StorageError) -> Self {
        LinkReadError::Store(e.into())
    }
}

/// The links among the records at `keys` of `table` (other records are skipped), in order.
pub fn links_at(
    table: &impl ReadableTable<u64, &'static [u8]>,
    keys: impl Iterator<Item = u64>,
) -> Result<Vec<EpochLink>, LinkReadError> {
    let mut links = Vec::new();
    for k in keys {
        let Some(v) = table.get(k)? else {
            continue;
        };
        let link = unpack(v.value())
            .map_err(stored_value)
            .and_then(|bytes| scbe_wire::decode_stored_epoch_link(&bytes))
            .map_err(|source| LinkReadError::Record { index: k, source })?;
        links.extend(link);
    }
    Ok(links)
}
