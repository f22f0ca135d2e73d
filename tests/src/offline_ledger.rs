//! The ledger a validator's data directory proves, read offline after the cluster stopped: its
//! audit trail replayed from the genesis ([`DecidedReplay`]), every signed checkpoint compared
//! on the way. A test that checks what a run claims against this reads the ledger apart from
//! anything the run itself wrote or answered.

use std::path::Path;

use scbe_core::consensus::{DecidedReplay, ReplicaId};
use scbe_core::governance::Ledger;
use scbe_validator::storage::RecordStore;
use scbe_wire::genesis::Genesis;

/// Replays validator `node`'s audit trail in the local cluster directory `dir` (the layout
/// `scbe-sim up` and `scbe-sim demo` write). An error names what did not replay (a validator
/// that caught up by state transfer has a gap in its trail).
pub fn replay_validator_store(dir: &Path, node: u32) -> Result<DecidedReplay<Ledger>, String> {
    let genesis = Genesis::load(&dir.join(scbe_sim::local::GENESIS)).map_err(|e| e.to_string())?;
    let key = scbe_wire::key_file::read_key_file(&dir.join(format!("keys/node{node}.key")))
        .map_err(|e| e.to_string())?;
    let store = RecordStore::open(
        &dir.join(format!("data/node{node}/records.redb")),
        &key.public(),
        &genesis.digest(),
    )
    .map_err(|e| e.to_string())?;
    let cfg = genesis
        .replica_config(ReplicaId(0))
        .map_err(|e| e.to_string())?;
    // The trail as `scbe audit export` would write it, then the same replay `verify` runs.
    let mut log = scbe_proto::v1::AuditLog::default();
    let mut from = 1;
    loop {
        let chunk = store
            .audit_from(from, (512, usize::MAX))
            .map_err(|e| e.to_string())?;
        let Some(&(last, _)) = chunk.decided.last() else {
            break;
        };
        from = last + 1;
        for (seq, bytes) in &chunk.decided {
            log.decided.push(
                prost::Message::decode(bytes.as_slice()).map_err(|e| format!("seq {seq}: {e}"))?,
            );
        }
        for (seq, bytes) in &chunk.checkpoints {
            log.checkpoints.push(
                prost::Message::decode(bytes.as_slice())
                    .map_err(|e| format!("checkpoint {seq}: {e}"))?,
            );
        }
    }
    let mut replay = DecidedReplay::new(cfg, Ledger::new(genesis.ledger_config().clone()));
    scbe_wire::audit_log::replay_audit_log(&mut replay, log)
        .map_err(|e| format!("seq {}: {e}", e.seq()))?;
    Ok(replay)
}
