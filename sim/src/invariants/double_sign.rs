//! No honest double-sign: across crashes and restarts an honest replica never signs two
//! different pre-prepares, prepares or commits for the same (view, seq), two checkpoints with
//! different digests for the same seq, or two different view changes for the same view.

use std::collections::BTreeMap;

use prost::Message as _;
use scbe_core::consensus::{Digest, Envelope, Kind};
use scbe_proto::v1 as pb;

#[derive(Default)]
pub struct DoubleSign {
    signed: BTreeMap<(usize, Kind, u64, u64), Digest>,
}

impl DoubleSign {
    /// Called for every envelope an honest replica sends (its own signatures only).
    pub fn on_sent(&mut self, node: usize, env: &Envelope) -> Option<String> {
        let key_and_digest = match env.kind {
            Kind::PrePrepare => pb::PrePrepare::decode(env.payload.as_slice())
                .ok()
                .map(|p| ((p.view, p.seq), Digest::from_slice(&p.digest))),
            Kind::Prepare | Kind::Commit => pb::Vote::decode(env.payload.as_slice())
                .ok()
                .map(|p| ((p.view, p.seq), Digest::from_slice(&p.digest))),
            Kind::Checkpoint => pb::Checkpoint::decode(env.payload.as_slice())
                .ok()
                .map(|p| ((0, p.seq), Digest::from_slice(&p.state_digest))),
            Kind::ViewChange => pb::ViewChange::decode(env.payload.as_slice())
                .ok()
                .map(|p| ((p.new_view, 0), Some(Digest::of_parts(&[&env.payload])))),
            _ => return None,
        };
        let Some(((a, b), Some(digest))) = key_and_digest else {
            return Some(format!(
                "replica {node} sent a malformed {}",
                env.kind.name()
            ));
        };
        let key = (node, env.kind, a, b);
        match self.signed.get(&key) {
            Some(old) if *old != digest => Some(format!(
                "replica {node} signed two different {} for ({a}, {b}): {old} and {digest}",
                env.kind.name()
            )),
            Some(_) => None,
            None => {
                self.signed.insert(key, digest);
                None
            }
        }
    }
}
