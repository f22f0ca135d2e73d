//! `scbe audit export` (every decided batch's commit certificate and the stable checkpoints the
//! validators signed, from one validator) and `scbe audit verify` (the log replayed offline
//! from the cluster's genesis: what it proves the ledger holds).

use scbe_wire::tls::Dial;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use scbe_core::consensus::{DecidedReplay, ReplayError, ReplicaId};
use scbe_core::governance::Ledger;
use scbe_proto::v1 as pb;
use scbe_wire::audit_log::{replay_audit_log, AuditLogError};

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
