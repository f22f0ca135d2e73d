//! `scbe audit export` (every decided batch's commit certificate, from a validator) and `scbe
//! audit verify` (each certificate checked offline against the validator set of the cluster's
//! genesis).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::{runtime, Unusable};

pub fn audit_export(node: &str, out: &Path, from: u64) -> Result<ExitCode, Unusable> {
    use prost::Message as _;
    let rt = runtime()?;
    let log = rt.block_on(async {
        let mut c = scbe_proto::v1::audit_client::AuditClient::connect(node.to_string())
            .await
            .map_err(|e| Unusable(anyhow::anyhow!("cannot reach validator at {node}: {e}")))?
            .max_decoding_message_size(scbe_wire::MAX_ENVELOPE_BYTES);
        let mut stream = c
            .export(scbe_proto::v1::AuditRequest { from_seq: from })
            .await
            .map_err(|s| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message())))?
            .into_inner();
        let mut log = scbe_proto::v1::AuditLog {
            decided: Vec::new(),
        };
        while let Some(cert) = stream
            .message()
            .await
            .map_err(|s| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message())))?
        {
            log.decided.push(cert);
        }
        Ok::<_, Unusable>(log)
    })?;
    let n = log.decided.len();
    std::fs::write(out, log.encode_to_vec())
        .with_context(|| format!("cannot write {}", out.display()))
        .map_err(Unusable)?;
    println!("exported {n} commit certificates to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn audit_verify(file: &Path, genesis: &Path) -> Result<ExitCode, Unusable> {
    use prost::Message as _;
    use scbe_core::consensus::{certificate::check_commit_cert, ReplicaConfig, ReplicaId};
    let genesis = scbe_wire::genesis::Genesis::load(genesis).map_err(|e| Unusable(e.into()))?;
    let dir = genesis.directory().clone();
    let rcfg = ReplicaConfig::new(ReplicaId(0), dir.clone()).map_err(|e| Unusable(e.into()))?;
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Unusable)?;
    let log = scbe_proto::v1::AuditLog::decode(bytes.as_slice()).map_err(|e| {
        Unusable(anyhow::anyhow!(
            "{} is not an audit log: {e}",
            file.display()
        ))
    })?;
    let mut last = 0u64;
    let total = log.decided.len();
    for (i, p) in log.decided.into_iter().enumerate() {
        let cert = match scbe_wire::open_commit_cert(p, &dir) {
            Ok(c) => c,
            Err(e) => {
                println!("INVALID certificate #{i}: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        let seq = cert.seq().0;
        if let Err(e) = check_commit_cert(&rcfg, &cert) {
            println!("INVALID certificate for seq {seq}: {e}");
            return Ok(ExitCode::from(1));
        }
        if seq <= last {
            println!("INVALID: seq {seq} follows seq {last}; the log must be in increasing order");
            return Ok(ExitCode::from(1));
        }
        if last != 0 && seq != last + 1 {
            println!(
                "note: seqs {}..{} are missing from this log",
                last + 1,
                seq - 1
            );
        }
        last = seq;
    }
    println!(
        "verified {total} commit certificates (last seq {last}) against {} validators, quorum {}, \
         of genesis {} (cluster {})",
        rcfg.n(),
        rcfg.quorum(),
        genesis.digest_hex(),
        genesis.cluster()
    );
    Ok(ExitCode::SUCCESS)
}
