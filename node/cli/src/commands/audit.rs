//! `scbe audit export` (every decided batch's commit certificate and the stable checkpoints the
//! validators signed, from one validator), `scbe audit verify` (the log replayed offline
//! from the cluster's genesis: what it proves the ledger holds) and `scbe audit prove` (one
//! release, proposal or rollout at a stable checkpoint, checked from the genesis alone).

use scbe_wire::tls::Dial;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use scbe_core::consensus::{DecidedReplay, ReplayError, ReplicaId, ValidatorSet};
use scbe_core::governance::ledger::state_proof::ProvenMap;
use scbe_core::governance::Ledger;
use scbe_proto::v1 as pb;
use scbe_wire::audit_log::{replay_audit_log, AuditLogError};
use scbe_wire::state_proof_check;

use super::{out, runtime, Unusable};
use crate::render::rollout_line;

pub fn audit_export(node: &Dial, file: &Path, from: u64) -> Result<ExitCode, Unusable> {
    use prost::Message as _;
    let rt = runtime()?;
    let log = rt.block_on(async {
        let refused =
            |s: tonic::Status| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message()));
        let mut c = pb::audit_client::AuditClient::new(node.connect().await?)
            .max_decoding_message_size(scbe_wire::MAX_ENVELOPE_BYTES);
        let mut stream = c
            .export(pb::AuditRequest { from_seq: from })
            .await
            .map_err(refused)?
            .into_inner();
        let mut log = pb::AuditLog::default();
        while let Some(item) = stream.message().await.map_err(refused)? {
            match item.entry {
                Some(pb::audit_entry::Entry::Decided(c)) => log.decided.push(c),
                Some(pb::audit_entry::Entry::Checkpoint(c)) => log.checkpoints.push(c),
                None => {}
            }
        }
        Ok::<_, Unusable>(log)
    })?;
    std::fs::write(file, log.encode_to_vec())
        .with_context(|| format!("cannot write {}", file.display()))
        .map_err(Unusable)?;
    out(&format!(
        "exported {} commit certificates and {} signed checkpoints to {}",
        log.decided.len(),
        log.checkpoints.len(),
        file.display()
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn audit_verify(file: &Path, genesis: &Path) -> Result<ExitCode, Unusable> {
    use prost::Message as _;
    let genesis = scbe_wire::genesis::Genesis::load(genesis).map_err(|e| Unusable(e.into()))?;
    let cfg = genesis
        .replica_config(ReplicaId(0))
        .map_err(|e| Unusable(e.into()))?;
    let (n, quorum) = (cfg.n(), cfg.quorum());
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Unusable)?;
    let log = pb::AuditLog::decode(bytes.as_slice()).map_err(|e| {
        Unusable(anyhow::anyhow!(
            "{} is not an audit log: {e}",
            file.display()
        ))
    })?;
    let mut replay = DecidedReplay::new(cfg, Ledger::new(genesis.ledger_config().clone()));
    match replay_audit_log(&mut replay, log) {
        Err(e) => {
            let hint = match e {
                AuditLogError::Replay(ReplayError::OutOfOrder { .. }) => {
                    " (a validator that caught up by state transfer lacks the batches before \
                     its snapshot: export from one that executed them)"
                }
                _ => "",
            };
            out(&format!("INVALID at seq {}: {e}{hint}", e.seq()));
            Ok(ExitCode::from(1))
        }
        Ok(checkpoints) => {
            let last = replay.last().0;
            let digest = replay.digest_now();
            let summary = scbe_wire::status_summary::StatusSummary::of(
                replay.app(),
                &Default::default(),
                &Default::default(),
                0,
            );
            out(&format!(
                "verified seqs 1..={last}: every batch decided by a quorum of {quorum} of the {n} \
                 validators of genesis {} (cluster {}), replayed from the genesis; {checkpoints} \
                 signed checkpoints match the replayed state",
                genesis.digest_hex(),
                genesis.cluster()
            ));
            let later: Vec<String> = replay
                .epochs()
                .skip(1)
                .map(|d| {
                    format!(
                        "epoch {} after seq {} ({} validators)",
                        d.epoch(),
                        d.start(),
                        d.n()
                    )
                })
                .collect();
            if !later.is_empty() {
                // Each epoch's certificates were checked against its own set (f and the
                // quorum follow n), as the ledger's validator proposals changed it.
                out(&format!(
                    "validator sets: the genesis set, then {}",
                    later.join(", then ")
                ));
            }
            out(&format!(
                "final state digest (seq {last}): {}",
                scbe_wire::key_file::encode_hex(digest.as_bytes())
            ));
            let stages: Vec<String> = summary
                .current
                .iter()
                .map(|(stage, v)| format!("{} {v}", stage.name()))
                .collect();
            out(&format!("stages:    {}", stages.join("  ·  ")));
            out(&format!(
                "releases:  {} registered; proposals: {}; events: {}",
                summary.releases_total,
                replay.app().state().proposals.len(),
                summary.events
            ));
            for r in summary.rollouts.iter().rev() {
                out(&format!("rollout   {}", rollout_line(r)));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `scbe audit prove`: asks `node` for the entry `key` of `map` with its proof and checks the
/// proof from the genesis alone. Exit 0 proven (the entry printed), 1 when the answer does
/// not prove it (INVALID, and why: the validator that answered is not to be trusted), 2 when
/// the validator refuses (no such entry, no checkpoint yet) or cannot be reached.
pub fn audit_prove(
    node: &Dial,
    genesis: &Path,
    map: ProvenMap,
    key: &str,
    json: bool,
) -> Result<ExitCode, Unusable> {
    let g = scbe_wire::genesis::Genesis::load(genesis).map_err(|e| Unusable(e.into()))?;
    let root = ValidatorSet::genesis(g.directory().validators());
    let rt = runtime()?;
    let reply = rt.block_on(async {
        let mut c = pb::audit_client::AuditClient::new(node.connect().await?);
        c.prove(state_proof_check::request(map, key))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message())))
    })?;
    let proven = match state_proof_check::check_proof(&root, map, key, reply) {
        Ok(p) => p,
        Err(e) => {
            out(&format!(
                "INVALID: the answer does not prove {} {key}: {e}",
                map.name()
            ));
            return Ok(ExitCode::from(1));
        }
    };
    let entry: serde_json::Value = proven.proof.value().map_err(|e| Unusable(e.into()))?;
    let signers: Vec<String> = proven.signers.iter().map(|id| id.0.to_string()).collect();
    if json {
        let doc = serde_json::json!({
            "map": map.name(),
            "key": key,
            "seq": proven.seq.0,
            "epoch": proven.epoch,
            "validators": proven.n,
            "signers": proven.signers.iter().map(|id| id.0).collect::<Vec<_>>(),
            "entry": entry,
        });
        out(&serde_json::to_string_pretty(&doc).map_err(|e| Unusable(e.into()))?);
        return Ok(ExitCode::SUCCESS);
    }
    out(&format!(
        "proven: {} {key} as it stood at seq {}, whose checkpoint validators {} signed \
         (epoch {}, {} validators), checked from genesis {} (cluster {})",
        map.name(),
        proven.seq.0,
        signers.join(", "),
        proven.epoch,
        proven.n,
        g.digest_hex(),
        g.cluster()
    ));
    out(&serde_json::to_string_pretty(&entry).map_err(|e| Unusable(e.into()))?);
    Ok(ExitCode::SUCCESS)
}
