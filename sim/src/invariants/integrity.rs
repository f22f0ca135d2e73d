//! Integrity: no request takes effect twice, at one replica (across restarts) or at two
//! sequence numbers anywhere.

use std::collections::{BTreeMap, BTreeSet};

use scbe_core::consensus::{Decision, Seq};
use scbe_core::crypto::PublicKey;

#[derive(Default)]
pub struct Integrity {
    per_node: BTreeMap<usize, BTreeSet<(PublicKey, u64)>>,
    global: BTreeMap<(PublicKey, u64), Seq>,
}

impl Integrity {
    pub fn on_deliver(&mut self, node: usize, d: &Decision) -> Vec<String> {
        let mut out = Vec::new();
        for r in &d.executed {
            let id = (*r.signer(), r.value().nonce);
            if !self.per_node.entry(node).or_default().insert(id) {
                out.push(format!(
                    "replica {node} executed request ({}, nonce {}) a second time at {}",
                    id.0, id.1, d.seq
                ));
            }
            match self.global.get(&id) {
                Some(seq) if *seq != d.seq => out.push(format!(
                    "request ({}, nonce {}) executed at {} and at {}",
                    id.0, id.1, seq, d.seq
                )),
                Some(_) => {}
                None => {
                    self.global.insert(id, d.seq);
                }
            }
        }
        out
    }
}
