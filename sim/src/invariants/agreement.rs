//! Agreement: no two honest replicas decide different batches at the same sequence number, and
//! no two honest replicas report different state digests for the same checkpoint.

use std::collections::BTreeMap;

use scbe_core::consensus::{Digest, Seq};

#[derive(Default)]
pub struct Agreement {
    batches: BTreeMap<Seq, (Digest, usize)>,
    states: BTreeMap<Seq, (Digest, usize)>,
}

fn record(
    map: &mut BTreeMap<Seq, (Digest, usize)>,
    what: &str,
    node: usize,
    seq: Seq,
    digest: Digest,
) -> Option<String> {
    match map.get(&seq) {
        Some((d, first)) if *d != digest => Some(format!(
            "{what} at {seq}: replica {first} has {d}, replica {node} has {digest}"
        )),
        Some(_) => None,
        None => {
            map.insert(seq, (digest, node));
            None
        }
    }
}

impl Agreement {
    pub fn on_decided(&mut self, node: usize, seq: Seq, batch: Digest) -> Option<String> {
        record(&mut self.batches, "decided batch", node, seq, batch)
    }

    pub fn on_state(&mut self, node: usize, seq: Seq, state: Digest) -> Option<String> {
        record(&mut self.states, "checkpoint state", node, seq, state)
    }
}
