//! Deploy and rollback orders, and the quorum of validator signatures that authorises one.
//!
//! Agents obey the quorum, not the leader (DESIGN §5): every validator derives the current order
//! of a rollout from its own ledger ([`crate::governance::Ledger::current_order`]) and signs only
//! an order byte-identical to its own derivation. An agent runs a hook only for an order that
//! carries valid signatures of `q` distinct validators from its configured set, so a compromised
//! leader can delay a rollout but cannot deploy anything the quorum did not approve.
//!
//! Orders carry the ledger sequence number they were issued at; an agent refuses orders older
//! than the newest it obeyed, so a replayed deploy order cannot undo a later rollback.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::crypto::{Keypair, PublicKey, Signature, Verifier};

use super::evidence::OrderAction;

/// Domain-separation name of a validator's endorsement of an order.
pub const ORDER_KIND: &str = "rollout_order";
/// Largest encoded order (a production batch of thousands of agent ids fits easily).
pub const MAX_ORDER_BYTES: usize = 1024 * 1024;

/// One unit of the release the agent should serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderUnit {
    pub provider: String,
    pub id: String,
    pub uri: String,
}

/// What the quorum asks a set of agents to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub rollout: u64,
    pub action: OrderAction,
    /// Batch number (1-based) for a deploy step; 0 for the rollback step.
    pub batch: u32,
    /// Ledger sequence number at which this step became current.
    pub issued_seq: u64,
    pub version: String,
    /// Release digest (empty for versions known good at genesis, which have no release).
    pub release_digest: String,
    pub units: Vec<OrderUnit>,
    /// Agents this order is for, in id order.
    pub agents: Vec<String>,
}

impl Order {
    /// The canonical bytes every validator signs (same code, same struct order, same bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, OrderError> {
        if bytes.len() > MAX_ORDER_BYTES {
            return Err(OrderError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| OrderError::Malformed(e.to_string()))
    }

    pub fn is_for(&self, agent: &str) -> bool {
        self.agents
            .binary_search_by(|a| a.as_str().cmp(agent))
            .is_ok()
    }
}

/// A validator's signature over an order's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endorsement {
    pub signer: PublicKey,
    pub signature: Signature,
}

impl Endorsement {
    pub fn sign(order_bytes: &[u8], key: &Keypair) -> Self {
        Endorsement {
            signer: key.public(),
            signature: key.sign(ORDER_KIND, order_bytes),
        }
    }
}

/// An order with the endorsements collected for it.
#[derive(Clone, Debug)]
pub struct SignedOrder {
    pub order: Vec<u8>,
    pub endorsements: Vec<Endorsement>,
    /// The chain of validator-set changes from the genesis to the set that endorsed the order
    /// (empty in the genesis epoch): the agent checks it from the newest set it trusts before
    /// it counts the endorsements.
    pub epochs: Vec<crate::consensus::EpochLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order of {0} bytes exceeds the {MAX_ORDER_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("order carries {valid} valid signatures of distinct validators; {needed} are needed")]
    NotEnoughEndorsements { valid: usize, needed: usize },
    #[error("order carries {carried} endorsements; the validator set has only {validators}")]
    TooManyEndorsements { carried: usize, validators: usize },
    #[error("order does not parse: {0}")]
    Malformed(String),
    #[error("the order's chain of validator sets does not follow the set this agent trusts: {0}")]
    Chain(crate::consensus::LinkError),
}

impl SignedOrder {
    /// Checks the endorsements against the validator set before parsing anything: signatures
    /// by keys outside the set, duplicates and bad signatures do not count. Each validator's key
    /// is tried at most once (a second endorsement naming it is skipped whether or not the first
    /// verified), and a list longer than the validator set is refused before any check, so a
    /// stranger's order costs at most one signature check per validator.
    pub fn verify(&self, validators: &[Verifier], quorum: usize) -> Result<Order, OrderError> {
        if self.order.len() > MAX_ORDER_BYTES {
            return Err(OrderError::TooLarge(self.order.len()));
        }
        if self.endorsements.len() > validators.len() {
            return Err(OrderError::TooManyEndorsements {
                carried: self.endorsements.len(),
                validators: validators.len(),
            });
        }
        let mut tried = BTreeSet::new();
        let mut counted = 0usize;
        for e in &self.endorsements {
            if !tried.insert(e.signer) {
                continue;
            }
            let Some(v) = validators.iter().find(|v| *v.public() == e.signer) else {
                continue;
            };
            if v.verify(ORDER_KIND, &self.order, &e.signature).is_ok() {
                counted += 1;
            }
            if counted >= quorum {
                break;
            }
        }
        if counted < quorum {
            return Err(OrderError::NotEnoughEndorsements {
                valid: counted,
                needed: quorum,
            });
        }
        Order::parse(&self.order)
    }
}

/// A validator's endorsement of `order`, given only if its own ledger derives exactly these
/// bytes for `rollout` now (a validator that is behind or ahead refuses, and the leader retries).
pub fn endorse(
    ledger: &crate::governance::Ledger,
    rollout: u64,
    order: &[u8],
    key: &Keypair,
) -> Result<Endorsement, EndorseRefusal> {
    match ledger.current_order(rollout) {
        None => Err(EndorseRefusal::NoOrder { rollout }),
        Some(mine) if mine.to_bytes() != order => Err(EndorseRefusal::Differs {
            rollout,
            issued_seq: mine.issued_seq,
        }),
        Some(_) => Ok(Endorsement::sign(order, key)),
    }
}

/// Why a validator does not endorse an order (it is behind or ahead of the leader, or the
/// leader is lying); the leader asks again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndorseRefusal {
    #[error("rollout {rollout} needs no order in this validator's ledger")]
    NoOrder { rollout: u64 },
    #[error("the order differs from this validator's derivation for rollout {rollout} (step issued at seq {issued_seq})")]
    Differs { rollout: u64, issued_seq: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            rollout: 2,
            action: OrderAction::Deploy,
            batch: 1,
            issued_seq: 17,
            version: "v1".into(),
            release_digest: "ab".into(),
            units: vec![],
            agents: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    fn validators() -> (Vec<Keypair>, Vec<Verifier>) {
        let keys: Vec<Keypair> = (0..4)
            .map(|i| Keypair::from_label(&format!("v{i}")))
            .collect();
        let verifiers = keys
            .iter()
            .map(|k| Verifier::new(k.public()).expect("valid key"))
            .collect();
        (keys, verifiers)
    }

    #[test]
    fn a_quorum_of_distinct_validators_authorises_an_order() {
        let (keys, set) = validators();
        let bytes = order().to_bytes();
        let mut signed = SignedOrder {
            order: bytes.clone(),
            endorsements: keys[..3]
                .iter()
                .map(|k| Endorsement::sign(&bytes, k))
                .collect(),
            epochs: Vec::new(),
        };
        assert_eq!(signed.verify(&set, 3), Ok(order()));
        // The leader alone, or the leader three times, is not a quorum.
        signed.endorsements = vec![Endorsement::sign(&bytes, &keys[0]); 3];
        assert_eq!(
            signed.verify(&set, 3),
            Err(OrderError::NotEnoughEndorsements {
                valid: 1,
                needed: 3
            })
        );
        // A stranger's signature does not count.
        signed.endorsements = vec![
            Endorsement::sign(&bytes, &keys[0]),
            Endorsement::sign(&bytes, &keys[1]),
            Endorsement::sign(&bytes, &Keypair::from_label("stranger")),
        ];
        assert!(signed.verify(&set, 3).is_err());
    }

    #[test]
    fn signatures_cover_the_exact_bytes() {
        let (keys, set) = validators();
        let bytes = order().to_bytes();
        let mut tampered = order();
        tampered.version = "evil".into();
        let signed = SignedOrder {
            order: tampered.to_bytes(),
            endorsements: keys.iter().map(|k| Endorsement::sign(&bytes, k)).collect(),
            epochs: Vec::new(),
        };
        assert!(matches!(
            signed.verify(&set, 3),
            Err(OrderError::NotEnoughEndorsements { valid: 0, .. })
        ));
    }

    #[test]
    fn junk_endorsements_cost_at_most_one_check_per_validator() {
        let (keys, set) = validators();
        let bytes = order().to_bytes();
        let forged = Endorsement {
            signer: keys[0].public(),
            signature: Keypair::from_label("stranger").sign(ORDER_KIND, &bytes),
        };
        // More endorsements than validators: refused before any signature is checked.
        let flood = SignedOrder {
            order: bytes.clone(),
            endorsements: vec![forged.clone(); 1024],
            epochs: Vec::new(),
        };
        assert_eq!(
            flood.verify(&set, 3),
            Err(OrderError::TooManyEndorsements {
                carried: 1024,
                validators: 4
            })
        );
        // A key is tried once: after a forged endorsement naming validator 0, its genuine one
        // is not checked, so validators 1 and 2 alone fall short of the quorum.
        let mut endorsements = vec![forged];
        endorsements.extend(keys[..3].iter().map(|k| Endorsement::sign(&bytes, k)));
        let signed = SignedOrder {
            order: bytes.clone(),
            endorsements,
            epochs: Vec::new(),
        };
        assert_eq!(
            signed.verify(&set, 3),
            Err(OrderError::NotEnoughEndorsements {
                valid: 2,
                needed: 3
            })
        );
        // Exactly as many endorsements as validators is allowed.
        let full = SignedOrder {
            order: bytes.clone(),
            endorsements: keys.iter().map(|k| Endorsement::sign(&bytes, k)).collect(),
            epochs: Vec::new(),
        };
        assert_eq!(full.verify(&set, 3), Ok(order()));
    }

    #[test]
    fn membership_uses_the_sorted_agent_list() {
        assert!(order().is_for("b"));
        assert!(!order().is_for("d"));
    }
}
