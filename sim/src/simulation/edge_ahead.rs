//! The simulator's model of the runtime's chain fetcher (`chain_fetcher.rs`) and of the sets
//! its edge learns ahead (`EdgeDirectory::learn_ahead`): a node whose edge refuses a peer
//! envelope for an unknown signer asks the peers it can reach for their chain of validator
//! sets (at most once per [`ASK_INTERVAL_MS`]), checks each from the genesis, and from then on
//! also resolves the keys of the sets beyond its own, until its replica enters the last of
//! them. What it learns is lost on a crash, as the runtime's.

use scbe_core::consensus::{Directory, EpochLink, Message, Signed, ValidatorSet};
use scbe_wire::{open, WireError};

use super::Simulation;

/// How often a node may ask for the chain, in virtual ms.
const ASK_INTERVAL_MS: u64 = 1_000;

#[derive(Default)]
pub(crate) struct EdgeAhead {
    /// Sets a checked chain proved beyond the replica's, oldest first.
    sets: Vec<ValidatorSet>,
    /// The resolver, with the epoch of the replica's directory it was built from.
    resolver: Option<(u64, Directory)>,
    next_ask_ms: u64,
}

impl Simulation {
    /// Opens a peer envelope at node `to`'s edge: with its replica's directory, resolving also
    /// the keys of the sets learnt ahead. A signer none of them lists makes it ask for the
    /// chain.
    pub(super) fn open_at_edge(
        &mut self,
        to: usize,
        bytes: &[u8],
    ) -> Option<Result<Signed<Message>, WireError>> {
        let node = &mut self.nodes[to];
        let own = &node.step.as_ref()?.replica().config().directory;
        let edge = &mut node.edge;
        edge.sets.retain(|s| s.epoch > own.epoch());
        let opened = if edge.sets.is_empty() {
            open(bytes, own)
        } else {
            if edge.resolver.as_ref().map(|(e, _)| *e) != Some(own.epoch()) {
                edge.resolver = own
                    .resolving(edge.sets.iter())
                    .ok()
                    .map(|d| (own.epoch(), d));
            }
            match &edge.resolver {
                Some((_, d)) => open(bytes, d),
                None => open(bytes, own),
            }
        };
        if matches!(opened, Err(WireError::UnknownSigner(_))) {
            self.ask_for_chain(to);
        }
        Some(opened)
    }

    /// Node `node` asks every peer it can reach for its chain and keeps the sets beyond its
    /// own that the longest one checked from the genesis proves.
    fn ask_for_chain(&mut self, node: usize) {
        if self.now < self.nodes[node].edge.next_ask_ms {
            return;
        }
        self.nodes[node].edge.next_ask_ms = self.now + ASK_INTERVAL_MS;
        let Some(own) = self.nodes[node]
            .step
            .as_ref()
            .map(|s| s.replica().config().directory.epoch())
        else {
            return;
        };
        let genesis = ValidatorSet::genesis(
            &self
                .genesis_keys
                .iter()
                .map(|k| k.public())
                .collect::<Vec<_>>(),
        );
        let mut longest: Vec<EpochLink> = Vec::new();
        for peer in (0..self.sc.nodes()).filter(|p| *p != node && self.net.connected(node, *p)) {
            let Some(step) = self.nodes[peer].step.as_ref() else {
                continue;
            };
            let chain = step.epoch_chain();
            if chain.links.len() > longest.len()
                && EpochLink::advance(&genesis, &chain.links).is_ok()
            {
                longest = chain.links.clone();
            }
        }
        let sets: Vec<ValidatorSet> = longest
            .into_iter()
            .map(|l| l.set)
            .filter(|s| s.epoch > own)
            .collect();
        let edge = &mut self.nodes[node].edge;
        if sets.last().map(|s| s.epoch) > edge.sets.last().map(|s| s.epoch) {
            edge.sets = sets;
            edge.resolver = None;
            self.stats.chains_learnt += 1;
            self.trace(&[b"learn-ahead", &(node as u64).to_be_bytes()]);
        }
    }
}
