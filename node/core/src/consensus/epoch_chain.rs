//! The validator set in force with the links that prove it from the genesis: whom the leader
//! asks to endorse an order, and what the order carries so that agents (which run no
//! consensus) can check the set from the one they trust.

use super::epoch_link::EpochLink;
use super::validator_set::ValidatorSet;

#[derive(Clone, Debug, Default)]
pub struct EpochChain {
    /// The set in force.
    pub set: ValidatorSet,
    /// The links from the genesis to `set`, oldest first (empty in the genesis epoch).
    pub links: Vec<EpochLink>,
}

/// Two chains are the same when they lead to the same set by as many links (links are
/// certified: two honest replicas never hold different links to one epoch).
impl PartialEq for EpochChain {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set && self.links.len() == other.links.len()
    }
}
