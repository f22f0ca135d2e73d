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

#[cfg(test)]
mod tests {
    use super::super::epoch_link::fixture::fixture;
    use super::*;

    /// The executor is woken when its view changes, compared by this: the same set reached by as
    /// many links is the same chain; another set, or the same set by another number of links, is
    /// not (cargo-mutants at 8c1a26e: `eq` answering a constant, or either comparison bent, went
    /// unseen by the core's tests).
    #[test]
    fn chains_are_equal_exactly_when_their_set_and_link_count_are() {
        let f = fixture();
        let at = |set: &ValidatorSet, links: usize| EpochChain {
            set: set.clone(),
            links: vec![f.link.clone(); links],
        };
        assert_eq!(at(&f.link.set, 1), at(&f.link.set, 1));
        assert_ne!(at(&f.link.set, 1), at(&f.genesis, 1), "another set");
        assert_ne!(at(&f.link.set, 1), at(&f.link.set, 2), "another link count");
        assert_ne!(at(&f.link.set, 1), at(&f.genesis, 0), "both differ");
    }
}
