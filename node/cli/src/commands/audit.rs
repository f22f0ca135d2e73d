//! `scbe audit export` (every decided batch's commit certificate and the stable checkpoints the
//! validators signed, from one validator) and `scbe audit verify` (the log replayed offline
//! from the cluster's genesis: what it proves the ledger holds).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use scbe_core::consensus::{DecidedReplay, ReplayError, ReplicaId};
use scbe_core::governance::Ledger;
use scbe_proto::v1 as pb;

use super::{out, runtime, Unusable};
use crate::render::rollout_line;

pub fn audit_export(node: &str, file: &Path, from: u64) -> Result<ExitCode, Unusable> {
    use prost::Message as _;
    let rt = runtime()?;
    let log = rt.block_on(async {
        let unreachable = |e: tonic::transport::Error| {
            Unusable(anyhow::anyhow!("cannot reach validator at {node}: {e}"))
        };
        let refused =
            |s: tonic::Status| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message()));
        let mut c = pb::audit_client::AuditClient::connect(node.to_string())
            .await
            .map_err(unreachable)?
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

/// Why a log proves nothing: printed as `INVALID at seq N: ...`, exit 1.
struct Invalid {
    seq: u64,
    why: String,
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
    match replay_log(&mut replay, log, genesis.directory()) {
        Err(Invalid { seq, why }) => {
            out(&format!("INVALID at seq {seq}: {why}"));
            Ok(ExitCode::from(1))
        }
        Ok(Proved { checkpoints }) => {
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

struct Proved {
    checkpoints: usize,
}

/// Feeds every certificate of `log` to `replay` in the log's order, then checks every signed
/// checkpoint the log carries against it.
fn replay_log(
    replay: &mut DecidedReplay<Ledger>,
    log: pb::AuditLog,
    dir: &scbe_core::consensus::Directory,
) -> Result<Proved, Invalid> {
    use scbe_core::consensus::decided_replay::CheckpointCheck;
    if log.decided.is_empty() {
        return Err(Invalid {
            seq: 1,
            why: "the log holds no decided batch".into(),
        });
    }
    for (i, p) in log.decided.into_iter().enumerate() {
        // Where the certificate should be, to name it if it cannot even be opened.
        let due = replay.last().next().0;
        let cert = scbe_wire::open_commit_cert(p, dir).map_err(|e| Invalid {
            seq: due,
            why: format!("certificate #{} in the log does not open: {e}", i + 1),
        })?;
        replay.feed(&cert).map_err(|e| Invalid {
            seq: e.seq().0,
            why: match e {
                ReplayError::OutOfOrder { .. } => format!(
                    "{e} (a validator that caught up by state transfer lacks the batches \
                     before its snapshot: export from one that executed them)"
                ),
                _ => e.to_string(),
            },
        })?;
    }
    let mut checked = 0;
    for p in log.checkpoints {
        let seq = p.seq;
        let cert = scbe_wire::open_checkpoint_cert(p, dir).map_err(|e| Invalid {
            seq,
            why: format!("the signed checkpoint does not open: {e}"),
        })?;
        match replay.check_signed(&cert) {
            Ok(CheckpointCheck::Matches) => checked += 1,
            Ok(CheckpointCheck::Beyond) => {}
            Err(e) => {
                return Err(Invalid {
                    seq: e.seq().0,
                    why: e.to_string(),
                })
            }
        }
    }
    Ok(Proved {
        checkpoints: checked,
    })
}
