//! Own nonces: an honest validator never signs two requests with one nonce, across crashes and
//! restarts. A validator's step forgets, when it restarts, which nonces it signed in its earlier
//! life; its first own request skips a window past the highest one executed so that requests
//! still in flight from before the crash cannot collide with new ones. The checker sees every
//! nonce a validator's step signs (the cause) and every decided batch (the effect: a request of
//! the validator that does not take effect because its nonce went to a different request of
//! the same validator, a vote or a rollout report silently lost).
//!
//! The checker also counts the validator's requests executed after each of its restarts, so a
//! scenario can show that a restarted validator is heard again (not only that nothing collided).

use std::collections::{BTreeMap, BTreeSet};

use scbe_core::consensus::{Decision, Digest};
use scbe_core::crypto::PublicKey;

#[derive(Default)]
pub struct OwnNonces {
    /// Honest validators: key -> node.
    honest: BTreeMap<PublicKey, usize>,
    /// Envelope digest of the request that took each (validator, nonce).
    taken: BTreeMap<(PublicKey, u64), Digest>,
    /// Per node: the first nonce it signed after its latest restart.
    restart_floor: BTreeMap<usize, u64>,
    /// Per node: every nonce its step signed, in every life.
    signed: BTreeMap<usize, BTreeSet<u64>>,
    /// Requests executed that a validator signed after a restart.
    pub executed_after_restart: u64,
}

impl OwnNonces {
    pub fn new(honest: BTreeMap<PublicKey, usize>) -> Self {
        OwnNonces {
            honest,
            ..Self::default()
        }
    }

    /// Node `node` restarts with a new key (a rotation): its nonces count afresh under it.
    pub fn rekeyed(&mut self, node: usize, key: PublicKey) {
        self.honest.insert(key, node);
        self.signed.remove(&node);
        self.restart_floor.remove(&node);
    }

    /// Node `node` restarted and signed its first own request with `nonce`.
    pub fn on_first_after_restart(&mut self, node: usize, nonce: u64) {
        self.restart_floor.insert(node, nonce);
    }

    /// Honest node `node`'s step signed a request with `nonce`.
    pub fn on_signed(&mut self, node: usize, nonce: u64) -> Option<String> {
        (!self.signed.entry(node).or_default().insert(nonce))
            .then(|| format!("validator {node} signed a second request with nonce {nonce}"))
    }

    /// A batch an honest replica delivered.
    pub fn on_deliver(&mut self, d: &Decision) -> Vec<String> {
        let mut out = Vec::new();
        for r in &d.executed {
            let signer = *r.signer();
            let Some(node) = self.honest.get(&signer) else {
                continue;
            };
            let nonce = r.value().nonce;
            let digest = r.envelope().digest();
            let first = self.taken.insert((signer, nonce), digest).is_none();
            if first && self.restart_floor.get(node).is_some_and(|f| nonce >= *f) {
                self.executed_after_restart += 1;
            }
        }
        for r in &d.certificate.pre_prepare.value().batch {
            let signer = *r.signer();
            let Some(node) = self.honest.get(&signer) else {
                continue;
            };
            let nonce = r.value().nonce;
            let digest = r.envelope().digest();
            match self.taken.get(&(signer, nonce)) {
                // Executed, or a copy of the one executed (a retransmission).
                Some(d) if *d == digest => {}
                Some(_) => out.push(format!(
                    "validator {node} signed two different requests with nonce {nonce}: the one decided at {} did not take effect",
                    d.seq
                )),
                // Skipped for another reason (too old): not a collision.
                None => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::{
        CommitCert, Kind, PrePrepare, Principal, ReplicaId, Request, Seq, Signed, View,
    };
    use scbe_core::crypto::Keypair;

    fn request(key: &Keypair, nonce: u64, op: &[u8]) -> Signed<Request> {
        Signed::seal(
            Request {
                nonce,
                operation: op.to_vec(),
            },
            Kind::Request,
            |r| {
                let mut b = r.nonce.to_be_bytes().to_vec();
                b.extend_from_slice(&r.operation);
                b
            },
            key,
            Principal::Validator(ReplicaId(0)),
        )
    }

    fn decision(seq: u64, batch: Vec<Signed<Request>>, executed: Vec<Signed<Request>>) -> Decision {
        let key = Keypair::from_label("primary");
        let pp = Signed::seal(
            PrePrepare {
                view: View(0),
                seq: Seq(seq),
                digest: scbe_core::consensus::batch_digest(&batch),
                batch,
            },
            Kind::PrePrepare,
            |_| vec![seq as u8],
            &key,
            Principal::Validator(ReplicaId(0)),
        );
        Decision {
            seq: Seq(seq),
            certificate: CommitCert {
                pre_prepare: pp,
                commits: vec![],
            },
            executed,
        }
    }

    #[test]
    fn a_nonce_reused_for_another_request_is_a_violation_and_a_retransmission_is_not() {
        let v = Keypair::from_label("v0");
        let mut c = OwnNonces::new(BTreeMap::from([(v.public(), 0)]));
        let vote = request(&v, 7, b"vote");
        assert!(c
            .on_deliver(&decision(1, vec![vote.clone()], vec![vote.clone()]))
            .is_empty());
        // The same request again (a retransmission) is skipped at execution: fine.
        assert!(c
            .on_deliver(&decision(2, vec![vote.clone()], vec![]))
            .is_empty());
        // A different request with the same nonce: a restart that forgot what it signed.
        let other = request(&v, 7, b"progress");
        let found = c.on_deliver(&decision(3, vec![other], vec![]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("nonce 7"), "{found:?}");
    }

    #[test]
    fn signing_a_nonce_twice_is_a_violation() {
        let mut c = OwnNonces::default();
        assert_eq!(c.on_signed(1, 5), None);
        assert_eq!(
            c.on_signed(2, 5),
            None,
            "another validator's nonces are its own"
        );
        assert!(c.on_signed(1, 5).is_some_and(|v| v.contains("nonce 5")));
    }

    #[test]
    fn requests_after_a_restart_are_counted() {
        let v = Keypair::from_label("v0");
        let mut c = OwnNonces::new(BTreeMap::from([(v.public(), 0)]));
        let before = request(&v, 3, b"a");
        let _ = c.on_deliver(&decision(1, vec![before.clone()], vec![before]));
        c.on_first_after_restart(0, 131);
        let after = request(&v, 131, b"b");
        let _ = c.on_deliver(&decision(2, vec![after.clone()], vec![after]));
        assert_eq!(c.executed_after_restart, 1);
    }
}
