//! The chain of validator sets from the genesis, one link per epoch change. A link is the old
//! set, the quorum certificate of its checkpoints at the boundary (each naming the new set's
//! digest), and the new set: whoever trusts the old set can check the step alone, as TUF
//! rotates root keys. A replica that is behind by one or more epochs walks the links from the
//! set it knows before it checks anything a later set signed (a snapshot's certificate, decided
//! batches), and a replica keeps every link it made or checked so it can prove later sets to
//! replicas still behind.

use std::collections::BTreeSet;

use super::certificate::CertError;
use super::config::{quorum_for, ConfigError, ReplicaConfig};
use super::message::CheckpointCert;
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

    /// Checks that `trusted` certified this link's set: the link starts from `trusted`, and a
    /// quorum of `trusted`'s validators (by the keys it holds) signed checkpoints at the
    /// boundary that name the set. What an agent checks (it runs no consensus); a replica
    /// also derives the set's configuration ([`Self::follow`]).
    pub fn certifies(&self, trusted: &ValidatorSet) -> Result<(), LinkError> {
        let tip = trusted.epoch;
        if self.previous.digest() != trusted.digest() {
            return Err(LinkError::NotFromTip { tip });
        }
        // Before the votes: the genesis checkpoint (seq 0) needs no proof, and a boundary
        // there would certify any set.
        if self.boundary.seq <= trusted.start {
            return Err(LinkError::BoundaryBeforeTip {
                seq: self.boundary.seq,
                tip,
            });
        }
        let what = "epoch link boundary";
        let mut ids = BTreeSet::new();
        for vote in &self.boundary.proof {
            let id = vote
                .validator()
                .ok_or(LinkError::Boundary(CertError::NotValidator { what }))?;
            if trusted.key_of(id) != Some(vote.signer()) {
                return Err(LinkError::Boundary(CertError::NotInForce { what, id }));
            }
            let v = vote.value();
            if v.seq != self.boundary.seq
                || v.state_digest != self.boundary.state_digest
                || v.next_set != self.boundary.next_set
            {
                return Err(LinkError::Boundary(CertError::Mismatch { what }));
            }
            ids.insert(id);
        }
        let need = quorum_for(trusted.n().max(1));
        if ids.len() < need {
            return Err(LinkError::Boundary(CertError::NotEnoughVotes {
                what,
                got: ids.len(),
                need,
            }));
        }
        if self.boundary.next_set != Some(self.set.digest()) {
            return Err(LinkError::SetNotCertified);
        }
        if self.set.start != self.boundary.seq {
            return Err(LinkError::WrongStart {
                start: self.set.start,
                seq: self.boundary.seq,
            });
        }
        if self.set.epoch <= tip {
            return Err(LinkError::EpochNotAfter {
                got: self.set.epoch,
                tip,
            });
        }
        if self.set.n() < 4 {
            return Err(LinkError::Unusable(ConfigError::TooFewValidators(
                self.set.n(),
            )));
        }
        Ok(())
    }

    /// Checks that this link extends a chain whose newest set is `tip`'s and returns the
    /// configuration of the link's set (what checks the next link, or what the later set
    /// signed).
    pub fn follow(&self, tip: &ReplicaConfig) -> Result<ReplicaConfig, LinkError> {
        self.certifies(&tip.directory.set())?;
        tip.for_next_set(&self.set).map_err(LinkError::Unusable)
    }

    /// The newest set `links` lead to from `trusted`, each checked in turn (links at or before
    /// `trusted`'s epoch are skipped: the holder knows them already).
    pub fn advance(trusted: &ValidatorSet, links: &[EpochLink]) -> Result<ValidatorSet, LinkError> {
        let mut tip = trusted.clone();
        for link in links.iter().filter(|l| l.epoch() > trusted.epoch) {
            link.certifies(&tip)?;
            tip = link.set.clone();
        }
        Ok(tip)
    }
}
