//! Replays a decided log from the genesis, offline: what `scbe audit verify` runs to prove what
//! a cluster's ledger holds, not only that some batches were decided. Each commit certificate is
//! checked against the validator set, must follow the previous one with no gap, and its batch
//! executes exactly as a replica executes it ([`super::execution`]), so the state digest at every
//! checkpoint is the one the validators signed; each signed checkpoint the log carries is
//! compared with it. Where the ledger changed the validator set, the replay moves to the next
//! epoch's set as a replica does, and checks each certificate against the set of its epoch.

use std::collections::BTreeMap;

use crate::crypto::PublicKey;

use super::certificate::{check_checkpoint_cert, check_commit_cert, CertError};
use super::config::ReplicaConfig;
use super::execution::{apply_fresh, CheckpointClock};
use super::limits;
use super::message::{CheckpointCert, CommitCert};
use super::nonce::NonceWindow;
use super::replica::state_digest;
use super::state_machine::StateMachine;
use super::types::{Digest, Seq};

/// Why a log does not prove a history; each names the first seq that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("seq {found} where seq {expected} was due: the log is missing seq {expected}{}",
        if found.0 < expected.0 { " (or has a batch twice or out of order)" } else { "" })]
    OutOfOrder { expected: Seq, found: Seq },
    #[error("the commit certificate for seq {seq} is not valid for this validator set: {source}")]
    Certificate { seq: Seq, source: CertError },
    #[error(
        "the checkpoint certificate for seq {seq} is not valid for this validator set: {source}"
    )]
    CheckpointCertificate { seq: Seq, source: CertError },
    #[error("the validators signed a checkpoint at seq {seq}, where replaying the log takes none")]
    NotACheckpoint { seq: Seq },
    #[error(
        "the validators signed state digest {signed} at seq {seq}; replaying the log reaches {replayed}"
    )]
    DigestDiffers {
        seq: Seq,
        signed: Digest,
        replayed: Digest,
    },
}

impl ReplayError {
    /// The first seq the log gets wrong.
    pub fn seq(&self) -> Seq {
        match self {
            ReplayError::OutOfOrder { expected, .. } => *expected,
            ReplayError::Certificate { seq, .. }
            | ReplayError::CheckpointCertificate { seq, .. }
            | ReplayError::NotACheckpoint { seq }
            | ReplayError::DigestDiffers { seq, .. } => *seq,
        }
    }
}

/// What a signed checkpoint proved about the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointCheck {
    /// Its digest is the replayed state's at its seq.
    Matches,
    /// It lies beyond the last batch replayed so far (a checkpoint a log may carry when new
    /// batches were decided while it was exported); nothing to compare yet.
    Beyond,
}

/// A replica's execution without the protocol: the application, the executed nonces and the
/// checkpoint clock, fed decided batches in order.
pub struct DecidedReplay<A> {
    /// The configuration of each epoch reached so far, oldest first: the last one is in force.
    epochs: Vec<ReplicaConfig>,
    /// A validator set the ledger holds that consensus could not run (see the replica's).
    refused_epoch: Option<u64>,
    app: A,
    nonces: BTreeMap<PublicKey, NonceWindow>,
    clock: CheckpointClock,
    last: Seq,
    /// State digest at each checkpoint the replay took.
    checkpoints: BTreeMap<Seq, Digest>,
}

impl<A: StateMachine> DecidedReplay<A> {
    /// A replay starting from `app` in its genesis state, under the consensus sizes of `cfg`
    /// (the validator set and checkpoint rule of the genesis).
    pub fn new(cfg: ReplicaConfig, app: A) -> Self {
        let mut replay = DecidedReplay {
            epochs: vec![cfg],
            refused_epoch: None,
            app,
            nonces: BTreeMap::new(),
            clock: CheckpointClock::default(),
            last: Seq(0),
            checkpoints: BTreeMap::new(),
        };
        let genesis = replay.digest_now();
        replay.checkpoints.insert(Seq(0), genesis);
        replay
    }

    /// Checks `cert` and executes its batch. It must be the next seq; returns the state digest
    /// when a checkpoint follows it.
    pub fn feed(&mut self, cert: &CommitCert) -> Result<Option<Digest>, ReplayError> {
        let seq = cert.seq();
        let expected = self.last.next();
        if seq != expected {
            return Err(ReplayError::OutOfOrder {
                expected,
                found: seq,
            });
        }
        check_commit_cert(self.cfg(), cert)
            .map_err(|source| ReplayError::Certificate { seq, source })?;
        let batch = &cert.pre_prepare.value().batch;
        apply_fresh(&mut self.app, &mut self.nonces, seq, batch, |_, _| {});
        self.last = seq;
        let epoch = self.app.validator_epoch();
        let new_epoch = epoch != self.cfg().directory.epoch() && Some(epoch) != self.refused_epoch;
        let cfg = self
            .epochs
            .last()
            .expect("the genesis epoch is never removed");
        if !self
            .clock
            .executed(cfg, seq, limits::batch_bytes(batch), new_epoch)
        {
            return Ok(None);
        }
        let digest = self.digest_now();
        self.checkpoints.insert(seq, digest);
        if new_epoch {
            if let Some(set) = self.app.validator_set() {
                // As the replica: a set consensus cannot run leaves the old one in force.
                match self.cfg().for_next_set(&set) {
                    Ok(next) => self.epochs.push(next),
                    Err(_) => self.refused_epoch = Some(set.epoch),
                }
            }
        }
        Ok(Some(digest))
    }

    /// The configuration in force (the last epoch's).
    fn cfg(&self) -> &ReplicaConfig {
        self.epochs
            .last()
            .expect("the genesis epoch is never removed")
    }

    /// The configuration of the epoch that ordered `seq`: the last one that starts before it.
    fn cfg_at(&self, seq: Seq) -> &ReplicaConfig {
        self.epochs
            .iter()
            .rev()
            .find(|c| c.directory.start() < seq)
            .unwrap_or(&self.epochs[0])
    }

    /// The directory of the epoch that orders `seq`, as far as the replay has gone: how the
    /// signers of a certificate at `seq` are resolved (a later epoch's keys are known only once
    /// the batch that put them in force was replayed).
    pub fn directory_at(&self, seq: Seq) -> &super::config::Directory {
        &self.cfg_at(seq).directory
    }

    /// Every epoch the replay went through, oldest first: its number, the seq it starts after
    /// and its validators' keys.
    pub fn epochs(&self) -> impl Iterator<Item = &super::config::Directory> {
        self.epochs.iter().map(|c| &c.directory)
    }

    /// Checks a signed checkpoint against the validator set and, when the replay has reached its
    /// seq, against the digest the replay took there.
    pub fn check_signed(&self, cert: &CheckpointCert) -> Result<CheckpointCheck, ReplayError> {
        let seq = cert.seq;
        check_checkpoint_cert(self.cfg_at(seq), cert, self.checkpoints[&Seq(0)])
            .map_err(|source| ReplayError::CheckpointCertificate { seq, source })?;
        if seq > self.last {
            return Ok(CheckpointCheck::Beyond);
        }
        match self.checkpoints.get(&seq) {
            None => Err(ReplayError::NotACheckpoint { seq }),
            Some(d) if *d != cert.state_digest => Err(ReplayError::DigestDiffers {
                seq,
                signed: cert.state_digest,
                replayed: *d,
            }),
            Some(_) => Ok(CheckpointCheck::Matches),
        }
    }

    /// The last seq replayed.
    pub fn last(&self) -> Seq {
        self.last
    }

    /// The state digest after the last seq replayed, as a checkpoint there would sign it.
    pub fn digest_now(&mut self) -> Digest {
        self.app.before_checkpoint();
        state_digest(self.last, self.app.digest(), &self.nonces)
    }

    /// The application as the replay left it (what the log proves it holds).
    pub fn app(&self) -> &A {
        &self.app
    }
}
