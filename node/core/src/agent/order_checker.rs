//! Which validator set an agent obeys, following it across epochs: the genesis set at first,
//! then each set an order's chain of epoch links proves from the newest one the agent trusts
//! (each link signed by a quorum of the set before it, as TUF rotates root keys). Endorsements
//! count only against the newest set: once an order proved a change, an order endorsed by the
//! retired keys alone is refused, however many of them signed.

use std::sync::{Arc, Mutex};

use crate::consensus::config::quorum_for;
use crate::consensus::{EpochLink, ValidatorSet};
use crate::crypto::Verifier;
use crate::rollout::order::{Order, OrderError, SignedOrder};

use super::agent_core::OrderRefusal;

/// A set the agent trusts, ready to check signatures.
struct Trusted {
    set: ValidatorSet,
    verifiers: Arc<[Verifier]>,
    quorum: usize,
}

impl Trusted {
    /// A set an order's chain proved: its quorum follows its size. `None` if a key is not a
    /// valid point (a quorum of the previous set signed it, so only a broken set gets here).
    fn learned(set: ValidatorSet) -> Option<Self> {
        let verifiers = set
            .members
            .iter()
            .map(|(_, k)| Verifier::new(*k).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Trusted {
            quorum: quorum_for(set.n().max(1)),
            verifiers: verifiers.into(),
            set,
        })
    }
}

/// The validator set an agent obeys and the quorum of it an order needs. Clones share it, so
/// a set one order proves is the one the next is checked against.
#[derive(Clone)]
pub struct OrderChecker {
    trusted: Arc<Mutex<Trusted>>,
}

impl OrderChecker {
    /// Starts from `learned` (the set an earlier order proved, kept in the agent's state) if
    /// there is one, else from the genesis `validators` with their `quorum`.
    pub fn new(validators: Vec<Verifier>, quorum: usize, learned: Option<&ValidatorSet>) -> Self {
        let genesis = Trusted {
            set: ValidatorSet::genesis(&validators.iter().map(|v| *v.public()).collect::<Vec<_>>()),
            verifiers: validators.into(),
            quorum,
        };
        let trusted = learned
            .filter(|s| s.epoch > 0)
            .and_then(|s| Trusted::learned(s.clone()))
            .unwrap_or(genesis);
        OrderChecker {
            trusted: Arc::new(Mutex::new(trusted)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Trusted> {
        // Only whole values are ever stored under the lock.
        self.trusted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order, if `quorum` distinct validators of the newest set endorsed it. A chain the
    /// order carries is checked first, from the set trusted now; the set it proves is trusted
    /// from then on (it stands on its own signatures, whatever the order's fate).
    pub fn verify(&self, signed: &SignedOrder) -> Result<Order, OrderRefusal> {
        self.learn(&signed.epochs)
            .map_err(OrderRefusal::Unauthorised)?;
        let (verifiers, quorum) = {
            let trusted = self.lock();
            (Arc::clone(&trusted.verifiers), trusted.quorum)
        };
        Ok(signed.verify(&verifiers, quorum)?)
    }

    /// Moves to the newest set `links` prove from the set trusted now (links at or before its
    /// epoch are skipped), and trusts it from then on. Nothing changes if a link fails.
    pub fn learn(&self, links: &[EpochLink]) -> Result<(), OrderError> {
        let mut trusted = self.lock();
        if !links.iter().any(|l| l.epoch() > trusted.set.epoch) {
            return Ok(());
        }
        let set = EpochLink::advance(&trusted.set, links).map_err(OrderError::Chain)?;
        *trusted = Trusted::learned(set).ok_or(OrderError::Malformed(
            "a validator set names a key that is not one".into(),
        ))?;
        Ok(())
    }

    /// The validator set trusted now.
    pub fn set(&self) -> ValidatorSet {
        self.lock().set.clone()
    }

    /// The set trusted now if an order proved it (past the genesis), for the agent's state.
    pub fn learned(&self) -> Option<ValidatorSet> {
        let set = self.set();
        (set.epoch > 0).then_some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::epoch_link::fixture::{fixture, Fixture};
    use crate::crypto::Keypair;
    use crate::rollout::evidence::OrderAction;
    use crate::rollout::order::Endorsement;

    fn checker(f: &Fixture, learned: Option<&ValidatorSet>) -> OrderChecker {
        let verifiers = f
            .keys
            .iter()
            .map(|k| Verifier::new(k.public()).expect("key"))
            .collect();
        OrderChecker::new(verifiers, 3, learned)
    }

    fn order(signers: &[&Keypair], epochs: Vec<EpochLink>) -> SignedOrder {
        let bytes = Order {
            rollout: 1,
            action: OrderAction::Deploy,
            version: "r1".into(),
            release_digest: String::new(),
            units: Vec::new(),
            agents: vec!["a1".into()],
            batch: 0,
            issued_seq: 9,
        }
        .to_bytes();
        SignedOrder {
            endorsements: signers
                .iter()
                .map(|k| Endorsement::sign(&bytes, k))
                .collect(),
            order: bytes,
            epochs,
        }
    }

    /// Before the rotation the old key counts; an order carrying the link moves the agent to
    /// the new set, where the new key counts and the old one no longer does, and a checker
    /// started from the set kept in the agent's state stays there without any link.
    #[test]
    fn an_order_proving_a_rotation_moves_the_agent_to_the_new_set_for_good() {
        let f = fixture();
        let k = &f.keys;
        let c = checker(&f, None);
        assert!(c.verify(&order(&[&k[0], &k[1], &k[3]], vec![])).is_ok());
        assert_eq!(c.learned(), None);
        assert!(
            c.verify(&order(&[&k[0], &k[1], &f.rotated], vec![]))
                .is_err(),
            "the new key is nobody's before the link"
        );

        c.verify(&order(&[&k[0], &k[1], &f.rotated], vec![f.link.clone()]))
            .expect("the link proves the new key");
        assert_eq!(c.set(), f.link.set);
        assert_eq!(
            c.verify(&order(&[&k[0], &k[1], &k[3]], vec![])).err(),
            Some(OrderRefusal::Unauthorised(
                OrderError::NotEnoughEndorsements {
                    valid: 2,
                    needed: 3
                }
            )),
            "the rotated-out key no longer counts"
        );

        let restarted = checker(&f, c.learned().as_ref());
        assert_eq!(restarted.set().epoch, 1);
        assert!(restarted
            .verify(&order(&[&k[0], &k[1], &k[3]], vec![]))
            .is_err());
        assert!(restarted
            .verify(&order(&[&k[0], &k[1], &f.rotated], vec![f.link.clone()]))
            .is_ok());
    }

    /// A link the trusted set did not certify (a set it does not name, too few of its votes)
    /// is refused, and the agent keeps trusting the set it had.
    #[test]
    fn a_link_the_trusted_set_did_not_certify_moves_nothing() {
        let f = fixture();
        let k = &f.keys;
        let c = checker(&f, None);
        let mut forged = f.link.clone();
        forged.set.members[2].1 = Keypair::from_label("intruder").public();
        assert!(matches!(
            c.verify(&order(&[&k[0], &k[1], &f.rotated], vec![forged])),
            Err(OrderRefusal::Unauthorised(OrderError::Chain(
                crate::consensus::LinkError::SetNotCertified
            )))
        ));
        let mut short = f.link.clone();
        short.boundary.proof.truncate(2);
        assert!(matches!(
            c.verify(&order(&[&k[0], &k[1], &f.rotated], vec![short])),
            Err(OrderRefusal::Unauthorised(OrderError::Chain(_)))
        ));
        assert_eq!(c.set(), f.genesis);
        assert_eq!(
            OrderRefusal::Unauthorised(OrderError::Chain(
                crate::consensus::LinkError::SetNotCertified
            ))
            .reason(),
            crate::rollout::evidence::Refusal::Malformed
        );
    }
}
