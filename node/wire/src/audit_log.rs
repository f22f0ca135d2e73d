//! Replaying an audit log (what `scbe audit export` writes, or a validator's audit trail read
//! offline) through [`DecidedReplay`]: every certificate opened against the validator set,
//! fed in the log's order, then every signed checkpoint the log carries checked against the
//! replay. `scbe audit verify` and the tests that read a stopped cluster's stores share it.

use scbe_core::consensus::decided_replay::CheckpointCheck;
use scbe_core::consensus::{DecidedReplay, ReplayError, Seq, StateMachine};
use scbe_proto::v1 as pb;

use crate::wire_error::WireError;
use crate::{open_checkpoint_cert, open_commit_cert};

/// Why a log proves nothing; [`AuditLogError::seq`] is the first seq it gets wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error("the log holds no decided batch")]
    Empty,
    #[error("certificate #{position} in the log does not open: {source}")]
    Certificate {
        /// The seq the certificate should have been.
        due: u64,
        position: usize,
        source: WireError,
    },
    #[error("the signed checkpoint does not open: {source}")]
    Checkpoint { seq: u64, source: WireError },
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

impl AuditLogError {
    pub fn seq(&self) -> u64 {
        match self {
            AuditLogError::Empty => 1,
            AuditLogError::Certificate { due, .. } => *due,
            AuditLogError::Checkpoint { seq, .. } => *seq,
            AuditLogError::Replay(e) => e.seq().0,
        }
    }
}

/// Feeds every certificate of `log` to `replay` in the log's order, then checks every signed
/// checkpoint the log carries; returns how many matched the replayed state (those beyond the
/// last batch are not compared). Each certificate's signers are resolved with the validator
/// set the replay has in force at its seq: a key a rotation put in force is known once the
/// batch that did it was replayed, from the genesis alone.
pub fn replay_audit_log<A: StateMachine>(
    replay: &mut DecidedReplay<A>,
    log: pb::AuditLog,
) -> Result<usize, AuditLogError> {
    if log.decided.is_empty() {
        return Err(AuditLogError::Empty);
    }
    for (i, p) in log.decided.into_iter().enumerate() {
        let due = replay.last().next().0;
        let dir = replay.directory_at(Seq(due));
        let cert = open_commit_cert(p, dir).map_err(|source| AuditLogError::Certificate {
            due,
            position: i + 1,
            source,
        })?;
        replay.feed(&cert)?;
    }
    let mut matched = 0;
    for p in log.checkpoints {
        let seq = p.seq;
        let cert = open_checkpoint_cert(p, replay.directory_at(Seq(seq)))
            .map_err(|source| AuditLogError::Checkpoint { seq, source })?;
        if replay.check_signed(&cert)? == CheckpointCheck::Matches {
            matched += 1;
        }
    }
    Ok(matched)
}
