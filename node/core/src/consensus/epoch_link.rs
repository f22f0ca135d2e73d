//! The chain of validator sets from the genesis, one link per epoch change. A link is the old
//! set, the quorum certificate of its checkpoints at the boundary (each naming the new set's
//! digest), and the new set: whoever trusts the old set can check the step alone, as TUF
//! rotates root keys. A replica that is behind by one or more epochs walks the links from the
//! set it knows before it checks anything a later set signed (a snapshot's certificate, decided
//! batches), and a replica keeps every link it made or checked so it can prove later sets to
//! replicas still behind.

use super::certificate::{check_checkpoint_cert_by, CertError};
use super::config::{ConfigError, ReplicaConfig};
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
        check_checkpoint_cert_by(trusted, &self.boundary, "epoch link boundary")
            .map_err(LinkError::Boundary)?;
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

    /// The set that signed checkpoints at `seq` (the newest whose epoch starts before it: a
    /// boundary checkpoint is the old set's), reached from `trusted` by `links`, each checked
    /// in turn. What a client that trusts the genesis checks a checkpoint certificate with.
    pub fn set_signing(
        trusted: &ValidatorSet,
        links: &[EpochLink],
        seq: super::Seq,
    ) -> Result<ValidatorSet, LinkError> {
        let mut tip = trusted.clone();
        for link in links.iter().filter(|l| l.epoch() > trusted.epoch) {
            if link.set.start >= seq {
                break;
            }
            link.certifies(&tip)?;
            tip = link.set.clone();
        }
        Ok(tip)
    }
}

/// A real link for tests: four genesis validators (`keys`), validator 3 re-keyed to `rotated`
/// at seq 5, the boundary certified by validators 0, 1 and 2.
#[cfg(test)]
pub(crate) mod fixture {
    use super::super::debug_codec::DebugCodec;
    use super::super::{Checkpoint, Digest, Seq};
    use super::*;
    use crate::crypto::Keypair;

    pub(crate) struct Fixture {
        pub keys: Vec<Keypair>,
        pub rotated: Keypair,
        pub genesis: ValidatorSet,
        pub link: EpochLink,
    }

    /// A boundary checkpoint at `seq` naming `next`, signed by `signers` as validators `ids`.
    pub(crate) fn boundary(
        seq: Seq,
        next: &ValidatorSet,
        signers: &[(&Keypair, u32)],
    ) -> CheckpointCert {
        let cp = Checkpoint {
            seq,
            state_digest: Digest([7; 32]),
            next_set: Some(next.digest()),
        };
        CheckpointCert::signed_by(cp, &DebugCodec, signers)
    }

    pub(crate) fn fixture() -> Fixture {
        let keys: Vec<Keypair> = (0..4)
            .map(|i| Keypair::from_label(&format!("link{i}")))
            .collect();
        let rotated = Keypair::from_label("link3 rotated");
        let genesis = ValidatorSet::genesis(&keys.iter().map(|k| k.public()).collect::<Vec<_>>());
        let mut set = genesis.clone();
        set.epoch = 1;
        set.start = Seq(5);
        set.members[3].1 = rotated.public();
        let link = EpochLink {
            previous: genesis.clone(),
            boundary: boundary(Seq(5), &set, &[(&keys[0], 0), (&keys[1], 1), (&keys[2], 2)]),
            set,
        };
        Fixture {
            keys,
            rotated,
            genesis,
            link,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{boundary, fixture};
    use super::*;
    use crate::consensus::{ReplicaId, Seq};

    /// Each rule of `certifies` refuses a link that breaks it alone (and the real link passes):
    /// a vote by a key the trusted set does not hold for its validator, a set that does not
    /// start at its boundary, an epoch that does not move on, a set consensus cannot run, a
    /// boundary at or before the trusted set's start. cargo-mutants would otherwise find each
    /// check removable.
    #[test]
    fn certifies_refuses_a_link_that_breaks_any_one_rule() {
        let f = fixture();
        f.link.certifies(&f.genesis).expect("the real link");
        let k = &f.keys;

        let mut by_rotated = f.link.clone();
        by_rotated.boundary = boundary(
            Seq(5),
            &f.link.set,
            &[(&k[0], 0), (&k[1], 1), (&f.rotated, 3)],
        );
        assert_eq!(
            by_rotated.certifies(&f.genesis),
            Err(LinkError::Boundary(CertError::NotInForce {
                what: "epoch link boundary",
                id: ReplicaId(3)
            })),
            "the new key does not vouch for itself"
        );

        let mut late = f.link.clone();
        late.set.start = Seq(6);
        late.boundary = boundary(Seq(5), &late.set, &[(&k[0], 0), (&k[1], 1), (&k[2], 2)]);
        assert_eq!(
            late.certifies(&f.genesis),
            Err(LinkError::WrongStart {
                start: Seq(6),
                seq: Seq(5)
            })
        );

        let mut same_epoch = f.link.clone();
        same_epoch.set.epoch = 0;
        same_epoch.boundary = boundary(
            Seq(5),
            &same_epoch.set,
            &[(&k[0], 0), (&k[1], 1), (&k[2], 2)],
        );
        assert_eq!(
            same_epoch.certifies(&f.genesis),
            Err(LinkError::EpochNotAfter { got: 0, tip: 0 })
        );

        let mut three = f.link.clone();
        three.set.members.pop();
        three.boundary = boundary(Seq(5), &three.set, &[(&k[0], 0), (&k[1], 1), (&k[2], 2)]);
        assert_eq!(
            three.certifies(&f.genesis),
            Err(LinkError::Unusable(ConfigError::TooFewValidators(3)))
        );

        let mut at_genesis = f.link.clone();
        at_genesis.set.start = Seq(0);
        at_genesis.boundary = boundary(Seq(0), &at_genesis.set, &[]);
        assert_eq!(
            at_genesis.certifies(&f.genesis),
            Err(LinkError::BoundaryBeforeTip {
                seq: Seq(0),
                tip: 0
            })
        );

        // Every vote must be for the boundary itself: one for another seq with the same state
        // and next set does not count (cargo-mutants at 8c1a26e: the seq and digest
        // comparisons' `||` as `&&` went unseen).
        let mut other_seq = f.link.clone();
        other_seq.boundary.proof[0] = boundary(Seq(6), &f.link.set, &[(&k[0], 0)]).proof[0].clone();
        assert_eq!(
            other_seq.certifies(&f.genesis),
            Err(LinkError::Boundary(CertError::Mismatch {
                what: "epoch link boundary"
            }))
        );

        // And a chain is walked link by link: the link after it starts from its set.
        let mut next_set = f.link.set.clone();
        next_set.epoch = 2;
        next_set.start = Seq(9);
        next_set.members[2].1 = crate::crypto::Keypair::from_label("link2 rotated").public();
        let second = EpochLink {
            previous: f.link.set.clone(),
            boundary: boundary(
                Seq(9),
                &next_set,
                &[(&k[0], 0), (&k[1], 1), (&f.rotated, 3)],
            ),
            set: next_set.clone(),
        };
        assert_eq!(
            EpochLink::advance(&f.genesis, &[f.link.clone(), second.clone()]),
            Ok(next_set.clone())
        );
        // A holder of epoch 1 skips the link it knows (cargo-mutants at 8c1a26e: the skip's
        // `>` as `>=` went unseen).
        assert_eq!(
            EpochLink::advance(&f.link.set, &[f.link.clone(), second.clone()]),
            Ok(next_set)
        );
        assert_eq!(
            EpochLink::advance(&f.genesis, &[second]),
            Err(LinkError::NotFromTip { tip: 0 })
        );
    }

    /// A checkpoint at the boundary is the old set's to sign, one after it the new set's; a
    /// link past the checkpoint is not needed and not checked, one before it must hold.
    #[test]
    fn the_set_signing_a_checkpoint_is_the_newest_that_started_before_it() {
        let f = fixture();
        let links = [f.link.clone()];
        let at = |seq: u64| EpochLink::set_signing(&f.genesis, &links, Seq(seq));
        assert_eq!(at(5), Ok(f.genesis.clone()), "the boundary: the old set");
        assert_eq!(at(6), Ok(f.link.set.clone()), "after it: the new set");
        assert_eq!(
            EpochLink::set_signing(&f.genesis, &[], Seq(99)),
            Ok(f.genesis.clone())
        );
        let mut bent = f.link.clone();
        bent.boundary.proof.truncate(2);
        let bent = [bent];
        assert_eq!(
            EpochLink::set_signing(&f.genesis, &bent, Seq(6)),
            Err(LinkError::Boundary(CertError::NotEnoughVotes {
                what: "epoch link boundary",
                got: 2,
                need: 3
            }))
        );
        assert_eq!(
            EpochLink::set_signing(&f.genesis, &bent, Seq(5)),
            Ok(f.genesis.clone()),
            "a link after the checkpoint is not needed to check it"
        );
        // A holder already past the link starts from its own set.
        assert_eq!(
            EpochLink::set_signing(&f.link.set, &bent, Seq(9)),
            Ok(f.link.set.clone())
        );
    }

    /// Checked against a set alone: a quorum of its members by the keys it holds, every vote
    /// matching the certificate.
    #[test]
    fn a_checkpoint_certificate_is_checked_against_a_set_alone() {
        let f = fixture();
        let what = "checkpoint";
        let cert = &f.link.boundary;
        assert_eq!(check_checkpoint_cert_by(&f.genesis, cert, what), Ok(()));
        let mut short = cert.clone();
        short.proof.truncate(2);
        assert_eq!(
            check_checkpoint_cert_by(&f.genesis, &short, what),
            Err(CertError::NotEnoughVotes {
                what,
                got: 2,
                need: 3
            })
        );
        let mut twice = cert.clone();
        twice.proof[2] = twice.proof[0].clone();
        assert_eq!(
            check_checkpoint_cert_by(&f.genesis, &twice, what),
            Err(CertError::NotEnoughVotes {
                what,
                got: 2,
                need: 3
            }),
            "one validator counts once"
        );
        let mut other = cert.clone();
        other.state_digest = crate::consensus::Digest([8; 32]);
        assert_eq!(
            check_checkpoint_cert_by(&f.genesis, &other, what),
            Err(CertError::Mismatch { what })
        );
        let mut rekeyed = f.genesis.clone();
        rekeyed.members[1].1 = f.rotated.public();
        assert_eq!(
            check_checkpoint_cert_by(&rekeyed, cert, what),
            Err(CertError::NotInForce {
                what,
                id: ReplicaId(1)
            })
        );
    }
}
