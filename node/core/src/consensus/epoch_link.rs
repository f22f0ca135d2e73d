//! The chain of validator sets from the genesis, one link per epoch change. A link is the old
//! set, the quorum certificate of its checkpoints at the boundary (each naming the new set's
//! digest), and the new set: whoever trusts the old set can check the step alone, as TUF
//! rotates root keys. A replica that is behind by one or more epochs walks the links from the
//! set it knows before it checks anything a later set signed (a snapshot's certificate, decided
//! batches), and a replica keeps every link it made or checked so it can prove later sets to
//! replicas still behind.

use super::certificate::{check_checkpoint_cert, CertError};
use super::config::{ConfigError, ReplicaConfig};
use super::message::CheckpointCert;
use super::types::Digest;
use super::validator_set::ValidatorSet;

/// One epoch change: `previous` certified, at `boundary`, that `set` orders after it.
#[derive(Clone, Debug)]
pub struct EpochLink {
    /// The set that signed `boundary` (what the checker must already trust).
    pub previous: ValidatorSet,
    /// `previous`'s quorum of checkpoints at the batch that changed the set, each naming
    /// `set`'s digest.
    pub boundary: CheckpointCert,
    /// The set in force after the boundary.
    pub set: ValidatorSet,
}

/// Why a link does not extend a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link starts from another set than epoch {tip}'s, the newest this replica trusts")]
    NotFromTip { tip: u64 },
    #[error("the link's boundary at {seq} is not after epoch {tip}'s start")]
    BoundaryBeforeTip { seq: super::Seq, tip: u64 },
    #[error("the link's boundary certificate: {0}")]
    Boundary(CertError),
    #[error("the boundary certificate does not name the link's set")]
    SetNotCertified,
    #[error("the link's set starts at {start}, not at its boundary {seq}")]
    WrongStart { start: super::Seq, seq: super::Seq },
    #[error("the link's set is epoch {got}, not after epoch {tip}")]
    EpochNotAfter { got: u64, tip: u64 },
    #[error("consensus cannot run the link's set: {0}")]
    Unusable(ConfigError),
}

impl EpochLink {
    /// The epoch this link leads to.
    pub fn epoch(&self) -> u64 {
        self.set.epoch
    }

    /// Checks that this link extends a chain whose newest set is `tip`'s and returns the
    /// configuration of the link's set (what checks the next link, or what the later set
    /// signed).
    pub fn follow(&self, tip: &ReplicaConfig, genesis: Digest) -> Result<ReplicaConfig, LinkError> {
        let tip_epoch = tip.directory.epoch();
        if self.previous.digest() != tip.directory.set().digest() {
            return Err(LinkError::NotFromTip { tip: tip_epoch });
        }
        // Before the certificate check: the genesis checkpoint (seq 0) needs no proof, and
        // a boundary there would certify any set.
        if self.boundary.seq <= tip.directory.start() {
            return Err(LinkError::BoundaryBeforeTip {
                seq: self.boundary.seq,
                tip: tip_epoch,
            });
        }
        check_checkpoint_cert(tip, &self.boundary, genesis).map_err(LinkError::Boundary)?;
        if self.boundary.next_set != Some(self.set.digest()) {
            return Err(LinkError::SetNotCertified);
        }
        if self.set.start != self.boundary.seq {
            return Err(LinkError::WrongStart {
                start: self.set.start,
                seq: self.boundary.seq,
            });
        }
        if self.set.epoch <= tip_epoch {
            return Err(LinkError::EpochNotAfter {
                got: self.set.epoch,
                tip: tip_epoch,
            });
        }
        tip.for_next_set(&self.set).map_err(LinkError::Unusable)
    }
}
