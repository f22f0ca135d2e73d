//! Byzantine validators. A Byzantine node runs the real core (so it looks alive and keeps up),
//! but everything it sends passes through [`Byzantine::outgoing`], which may drop, rewrite,
//! re-sign, forge or replay. It holds only its own key, like a real attacker.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use scbe_core::consensus::{
    batch_digest, Codec, Digest, Directory, Envelope, Kind, Message, PrePrepare, Principal,
    ReplicaId, Request, Signed, Vote,
};
use scbe_core::crypto::{Keypair, PublicKey};
use scbe_wire::{encode_envelope, open, ProtoCodec};

use crate::scenario::Misbehaviour;

const REPLAY_BUFFER: usize = 256;

pub struct Byzantine {
    me: usize,
    key: Keypair,
    behaviours: BTreeSet<Misbehaviour>,
    /// Keys it can name (not sign for): honest validators and clients.
    honest_validators: Vec<PublicKey>,
    clients: Vec<PublicKey>,
    /// Envelopes it has received, for replay.
    seen: Vec<Arc<Vec<u8>>>,
}

impl Byzantine {
    pub fn new(
        me: usize,
        key: Keypair,
        behaviours: BTreeSet<Misbehaviour>,
        directory: &Directory,
        clients: Vec<PublicKey>,
    ) -> Self {
        let honest_validators = directory
            .validators()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .map(|(_, k)| *k)
            .collect();
        Self {
            me,
            key,
            behaviours,
            honest_validators,
            clients,
            seen: Vec::new(),
        }
    }

    pub fn is_silent(&self) -> bool {
        self.behaviours.contains(&Misbehaviour::Silent)
    }

    /// Remembers an incoming envelope for later replay.
    pub fn observe(&mut self, rng: &mut ChaCha8Rng, bytes: &Arc<Vec<u8>>) {
        if !self.behaviours.contains(&Misbehaviour::Replay) {
            return;
        }
        if self.seen.len() < REPLAY_BUFFER {
            self.seen.push(Arc::clone(bytes));
        } else {
            let i = rng.random_range(0..REPLAY_BUFFER);
            self.seen[i] = Arc::clone(bytes);
        }
    }

    fn seal<T>(&self, value: T, kind: Kind, encode: impl FnOnce(&T) -> Vec<u8>) -> Signed<T> {
        let me = Principal::Validator(ReplicaId(self.me as u32));
        Signed::seal(value, kind, encode, &self.key, me)
    }

    /// What actually leaves a Byzantine node when its core sends `env` to `dests`.
    pub fn outgoing(
        &mut self,
        rng: &mut ChaCha8Rng,
        directory: &Directory,
        dests: &[usize],
        env: &Envelope,
    ) -> Vec<(usize, Vec<u8>)> {
        if self.is_silent() {
            return Vec::new();
        }
        let original = encode_envelope(env);
        let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
        let equivocate = self.behaviours.contains(&Misbehaviour::Equivocate);
        let forge = self.behaviours.contains(&Misbehaviour::Forge);
        match env.kind {
            Kind::PrePrepare if equivocate || forge => {
                let Ok(signed) = open(&original, directory) else {
                    return Vec::new();
                };
                let Message::PrePrepare(pp) = signed.value() else {
                    return Vec::new();
                };
                out.extend(
                    self.equivocate_pre_prepare(rng, dests, pp, &original, equivocate, forge),
                );
            }
            Kind::Prepare | Kind::Commit if equivocate => {
                let Ok(signed) = open(&original, directory) else {
                    return Vec::new();
                };
                let (Message::Prepare(v) | Message::Commit(v)) = signed.value() else {
                    return Vec::new();
                };
                for &d in dests {
                    if rng.random_bool(0.3) {
                        let mut bogus = *v;
                        bogus.digest = Digest(rng.random());
                        let s = self.seal(bogus, env.kind, |x| ProtoCodec.encode_vote(x));
                        out.push((d, encode_envelope(s.envelope())));
                    } else {
                        out.push((d, original.clone()));
                    }
                }
            }
            _ => out.extend(dests.iter().map(|&d| (d, original.clone()))),
        }
        if forge && rng.random_bool(0.3) {
            // Claim to be an honest validator without its key: the edge must reject this.
            if let Some(victim) = self.honest_validators.choose(rng) {
                let mut forged = env.clone();
                forged.signer = *victim;
                for &d in dests {
                    out.push((d, encode_envelope(&forged)));
                }
            }
        }
        if self.behaviours.contains(&Misbehaviour::Replay) && rng.random_bool(0.3) {
            if let (Some(old), Some(&d)) = (self.seen.choose(rng), dests.choose(rng)) {
                out.push((d, old.as_ref().clone()));
            }
        }
        out
    }

    /// Splits the recipients in two and tells each group a different batch for the same slot,
    /// backing the second with its own commit; optionally poisons a batch with a forged request.
    fn equivocate_pre_prepare(
        &self,
        rng: &mut ChaCha8Rng,
        dests: &[usize],
        pp: &PrePrepare,
        original: &[u8],
        equivocate: bool,
        forge: bool,
    ) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        let mut group: Vec<usize> = dests.to_vec();
        group.shuffle(rng);
        let split = if equivocate {
            group.len().div_ceil(2)
        } else {
            0
        };
        let (b_group, a_group) = group.split_at(split);
        let a_bytes = if forge && rng.random_bool(0.3) {
            self.with_forged_request(rng, pp)
        } else {
            original.to_vec()
        };
        out.extend(a_group.iter().map(|&d| (d, a_bytes.clone())));
        if !b_group.is_empty() {
            let mut batch = pp.batch.clone();
            if batch.pop().is_none() {
                return out;
            }
            let alt = PrePrepare {
                view: pp.view,
                seq: pp.seq,
                digest: batch_digest(&batch),
                batch,
            };
            let commit = Vote {
                view: alt.view,
                seq: alt.seq,
                digest: alt.digest,
            };
            let alt = self.seal(alt, Kind::PrePrepare, |x| ProtoCodec.encode_pre_prepare(x));
            let commit = self.seal(commit, Kind::Commit, |x| ProtoCodec.encode_vote(x));
            for &d in b_group {
                out.push((d, encode_envelope(alt.envelope())));
                out.push((d, encode_envelope(commit.envelope())));
            }
        }
        out
    }

    /// The same pre-prepare with an extra request: one that claims a client's key but is
    /// signed by us (the signature check refuses it), or one validly signed by a key of our own
    /// that no requester proposal ever named (the ledger's `may_order` refuses it: ordered,
    /// such padding would grow every replica's state by a nonce window per key).
    fn with_forged_request(&self, rng: &mut ChaCha8Rng, pp: &PrePrepare) -> Vec<u8> {
        let Some(client) = self.clients.choose(rng) else {
            return Vec::new();
        };
        let req = Request {
            nonce: rng.random_range(1..1_000),
            operation: b"forged".to_vec(),
        };
        let payload = ProtoCodec.encode_request(&req);
        let env = if rng.random_bool(0.5) {
            let mut env = Envelope::seal(Kind::Request, payload, &self.key);
            env.signer = *client;
            env
        } else {
            let stranger = Keypair::from_label(&format!("stranger/{}", rng.random::<u64>()));
            Envelope::seal(Kind::Request, payload, &stranger)
        };
        let forged = Signed::from_verified(req, Arc::new(env), Principal::Requester);
        let mut batch = pp.batch.clone();
        batch.push(forged);
        let poisoned = PrePrepare {
            view: pp.view,
            seq: pp.seq,
            digest: batch_digest(&batch),
            batch,
        };
        let s = self.seal(poisoned, Kind::PrePrepare, |x| {
            ProtoCodec.encode_pre_prepare(x)
        });
        encode_envelope(s.envelope())
    }
}
