//! What the ledger remembers of its past, bounded: the newest events and the newest outcomes of
//! each signer, each kept in a [`Window`] that is hash-chained over everything ever pushed.
//!
//! Why a chain: the state digest must cover the journal, but re-serialising it at every
//! checkpoint is what made checkpoints slow as the ledger grew. A window keeps `base` (the chain
//! over the items it evicted) and its items; the chain's tip is `base` folded over the items, so
//! a push costs one hash and the digest reads the tip. A snapshot carries `base` and the items;
//! restoring folds them again, so a snapshot whose items were altered yields another digest and
//! is refused like any bad snapshot.
//!
//! What falls out of the windows is not lost: the node writes every event and outcome to its
//! store as it is produced (`Ledger::take_new`), and the audit trail keeps every decided
//! request. Memory: at most [`EVENTS_KEPT`] events and [`OUTCOMES_KEPT_PER_SIGNER`] outcomes per
//! signer (signers are the configured validators and requesters), a few hundred bytes each.

use std::collections::{BTreeMap, VecDeque};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::governance::event::Event;
use crate::governance::release::hex;

use super::state::Outcome;

/// Events kept in memory (and in snapshots).
pub const EVENTS_KEPT: usize = 1024;
/// Outcomes kept in memory per signer: as wide as the consensus nonce window, so any request a
/// client may still resubmit is answered from memory.
pub const OUTCOMES_KEPT_PER_SIGNER: usize = crate::consensus::nonce::NONCE_WINDOW as usize;

/// The newest `CAP` items of a sequence, with a hash chain over the whole sequence.
#[derive(Clone, Debug)]
pub struct Window<T, const CAP: usize> {
    /// Chain over every item evicted so far.
    base: [u8; 32],
    /// Position of `items[0]` in the whole sequence.
    first: u64,
    items: VecDeque<T>,
    /// Each kept item's JSON, beside it (derived from `items`): a snapshot writes these bytes
    /// verbatim instead of encoding about 9,000 items at every checkpoint, and eviction hashes
    /// them instead of encoding the item again.
    json: VecDeque<Box<RawValue>>,
    /// Chain over every item ever pushed (derived from the fields above).
    tip: [u8; 32],
}

impl<T, const CAP: usize> Default for Window<T, CAP> {
    fn default() -> Self {
        Self {
            base: [0; 32],
            first: 0,
            items: VecDeque::new(),
            json: VecDeque::new(),
            tip: [0; 32],
        }
    }
}

impl<T: PartialEq, const CAP: usize> PartialEq for Window<T, CAP> {
    /// The JSON is derived from the items, so it is not compared.
    fn eq(&self, other: &Self) -> bool {
        (self.base, self.first, self.tip) == (other.base, other.first, other.tip)
            && self.items == other.items
    }
}

/// An item's leaf in the chain: sha256 of its JSON.
fn leaf(json: &[u8]) -> [u8; 32] {
    Sha256::digest(json).into()
}

/// The chain's step: `prev` extended by one item's leaf.
fn fold(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"journal");
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

fn encode<T: Serialize>(item: &T) -> Vec<u8> {
    serde_json::to_vec(item).unwrap_or_default()
}

/// JSON that serde_json itself produced, kept to be written again verbatim. (It is always valid
/// UTF-8 JSON; `null` stands in if that ever failed, which would show as a digest mismatch
/// against every other replica, not as a crash.)
fn raw(json: Vec<u8>) -> Box<RawValue> {
    String::from_utf8(json)
        .ok()
        .and_then(|s| RawValue::from_string(s).ok())
        .unwrap_or_else(|| RawValue::NULL.to_owned())
}

impl<T: Serialize, const CAP: usize> Window<T, CAP> {
    /// Appends `item` and returns the JSON its leaf hashes (the node stores those very bytes).
    pub fn push(&mut self, item: T) -> Vec<u8> {
        let json = encode(&item);
        self.push_encoded(item, json.clone());
        json
    }

    /// Appends `item`, whose JSON the caller already holds. `json` must be `item`'s encoding:
    /// the chain (and so the state digest) covers it.
    fn push_encoded(&mut self, item: T, json: Vec<u8>) {
        self.tip = fold(&self.tip, &leaf(&json));
        self.items.push_back(item);
        self.json.push_back(raw(json));
        if self.items.len() > CAP {
            self.items.pop_front();
            if let Some(old) = self.json.pop_front() {
                self.base = fold(&self.base, &leaf(old.get().as_bytes()));
                self.first = self.first.saturating_add(1);
            }
        }
    }

    /// Chain over everything ever pushed.
    pub fn tip(&self) -> [u8; 32] {
        self.tip
    }

    /// Items ever pushed.
    pub fn total(&self) -> u64 {
        self.first.saturating_add(self.items.len() as u64)
    }

    /// Position of the oldest item still kept.
    pub fn first(&self) -> u64 {
        self.first
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items from position `from` on (those still kept), with their positions.
    pub fn since(&self, from: u64) -> impl Iterator<Item = (u64, &T)> {
        let skip = from.saturating_sub(self.first) as usize;
        (self.first..).zip(self.items.iter()).skip(skip)
    }
}

#[derive(Serialize, Deserialize)]
struct WindowRepr<T> {
    base: String,
    first: u64,
    items: Vec<T>,
}

impl<T: Serialize, const CAP: usize> Serialize for Window<T, CAP> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WindowRepr::<&RawValue> {
            base: hex(&self.base),
            first: self.first,
            items: self.json.iter().map(|j| &**j).collect(),
        }
        .serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned, const CAP: usize> Deserialize<'de> for Window<T, CAP> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let r = WindowRepr::<T>::deserialize(d)?;
        if r.items.len() > CAP {
            return Err(D::Error::custom(format!(
                "journal window holds {} items, at most {CAP} are kept",
                r.items.len()
            )));
        }
        let mut base = [0u8; 32];
        let hex_bytes = (0..r.base.len())
            .step_by(2)
            .map(|i| {
                r.base
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>();
        match hex_bytes {
            Some(b) if b.len() == 32 => base.copy_from_slice(&b),
            _ => return Err(D::Error::custom("journal base is not 32 hex bytes")),
        }
        // Encoded again from the decoded items, whatever bytes a peer sent: the chain covers
        // the canonical encoding.
        let json: VecDeque<Box<RawValue>> = r.items.iter().map(|i| raw(encode(i))).collect();
        let tip = json
            .iter()
            .fold(base, |t, j| fold(&t, &leaf(j.get().as_bytes())));
        Ok(Self {
            base,
            first: r.first,
            items: r.items.into(),
            json,
            tip,
        })
    }
}

/// One signer's request outcomes, by nonce.
pub type Outcomes = Window<(u64, Outcome), OUTCOMES_KEPT_PER_SIGNER>;

/// The ledger's bounded memory of its past.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub events: Window<Event, EVENTS_KEPT>,
    /// By signer (hex public key).
    pub outcomes: BTreeMap<String, Outcomes>,
}

/// Events and outcomes produced since the node last took them for its store, as the JSON the
/// store keeps (encoded once, for the journal's chain; the store writes the same bytes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fresh {
    /// (position in the event sequence, the event's JSON).
    pub events: Vec<(u64, Vec<u8>)>,
    /// (signer hex, nonce, the outcome's JSON).
    pub outcomes: Vec<(String, u64, Vec<u8>)>,
    /// Whether a proposal was opened or changed (a vote, a decision, an expiry, the rollout it
    /// started): only then does the node's read index take the ledger's proposals again.
    pub proposals_touched: bool,
    /// Release bodies for the ledger's body store (`Ledger::store_bodies_in`), with their keys.
    pub bodies: Vec<(crate::governance::body_store::BodyKey, String)>,
}

/// The JSON of the `(nonce, outcome)` pair an outcome window chains, from the outcome's own
/// JSON: serde_json writes a tuple as `[a,b]` with nothing in between, so the outcome is
/// encoded once per request instead of twice (a test pins the equality).
fn pair_json(nonce: u64, outcome_json: &[u8]) -> Vec<u8> {
    let nonce = nonce.to_string();
    let mut out = Vec::with_capacity(outcome_json.len() + nonce.len() + 3);
    out.push(b'[');
    out.extend_from_slice(nonce.as_bytes());
    out.push(b',');
    out.extend_from_slice(outcome_json);
    out.push(b']');
    out
}

impl Journal {
    /// Appends an event; returns its JSON (what the store keeps).
    pub fn push_event(&mut self, e: Event) -> Vec<u8> {
        self.events.push(e)
    }

    /// Appends a signer's outcome; returns the outcome's JSON (what the store keeps).
    pub fn push_outcome(&mut self, signer: String, nonce: u64, o: Outcome) -> Vec<u8> {
        let json = encode(&o);
        self.outcomes
            .entry(signer)
            .or_default()
            .push_encoded((nonce, o), pair_json(nonce, &json));
        json
    }

    pub fn outcome(&self, signer: &str, nonce: u64) -> Option<&Outcome> {
        self.outcomes
            .get(signer)?
            .iter()
            .rev()
            .find(|(n, _)| *n == nonce)
            .map(|(_, o)| o)
    }

    /// Digest input: the chains' tips and lengths, never the items themselves.
    pub fn digest_parts(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.outcomes.len() * 112);
        out.extend_from_slice(&self.events.tip());
        out.extend_from_slice(&self.events.total().to_be_bytes());
        for (signer, w) in &self.outcomes {
            out.extend_from_slice(signer.as_bytes());
            out.extend_from_slice(&w.tip());
            out.extend_from_slice(&w.total().to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Small = Window<u64, 3>;

    #[test]
    fn a_window_keeps_the_newest_and_chains_everything() {
        let mut a = Small::default();
        let mut b = Small::default();
        for i in 0..10 {
            a.push(i);
        }
        for i in [0, 1, 2, 3, 4, 5, 6, 7, 9, 9] {
            b.push(i);
        }
        assert!(Small::default().is_empty() && !a.is_empty());
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!((a.first(), a.total()), (7, 10));
        assert_ne!(a.tip(), b.tip(), "the chain covers every item");
        let mut c = Small::default();
        for i in [1, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
            c.push(i);
        }
        assert_ne!(a.tip(), c.tip(), "evicted items count too");
        // Equality is the items and the chain (a snapshot's restored journal must equal the
        // original, and a different history must not).
        let mut a2 = Small::default();
        for i in 0..10 {
            a2.push(i);
        }
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_ne!(a, c, "same newest items, another chain");
    }

    #[test]
    fn restore_recomputes_the_tip_so_altered_items_change_the_digest() {
        let mut a = Small::default();
        for i in 0..5 {
            a.push(i);
        }
        let json = serde_json::to_string(&a).expect("encodes");
        let back: Small = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, a);
        assert_eq!(back.tip(), a.tip());
        let tampered: Small =
            serde_json::from_str(&json.replace("[2,3,4]", "[2,3,5]")).expect("decodes");
        assert_ne!(tampered.tip(), a.tip());
        assert!(serde_json::from_str::<Small>(&json.replace("[2,3,4]", "[1,2,3,4]")).is_err());
        assert!(
            serde_json::from_str::<Small>(&json.replace("\"base\":\"", "\"base\":\"zz")).is_err()
        );
    }

    #[test]
    fn an_outcome_pair_is_encoded_as_serde_json_encodes_the_tuple() {
        let o = Outcome {
            request: "ab\"c".into(),
            seq: 7,
            accepted: false,
            reasons: vec!["no: \u{e9}".into()],
            proposal: Some(3),
            rollout: None,
        };
        for nonce in [0, 1, 77, u64::MAX] {
            assert_eq!(
                pair_json(nonce, &encode(&o)),
                encode(&(nonce, o.clone())),
                "nonce {nonce}"
            );
        }
        // And the window chains exactly what a plain push of the pair would.
        let (mut a, mut b) = (Journal::default(), Outcomes::default());
        a.push_outcome("aa".into(), 5, o.clone());
        b.push((5, o));
        assert_eq!(a.outcomes["aa"].tip(), b.tip());
    }

    #[test]
    fn since_reads_from_a_position_among_the_kept() {
        let mut a = Small::default();
        for i in 10..15 {
            a.push(i);
        }
        let got: Vec<(u64, u64)> = a.since(0).map(|(p, v)| (p, *v)).collect();
        assert_eq!(got, vec![(2, 12), (3, 13), (4, 14)]);
        let got: Vec<u64> = a.since(4).map(|(p, _)| p).collect();
        assert_eq!(got, vec![4]);
        assert_eq!(a.since(9).count(), 0);
    }

    #[test]
    fn a_snapshot_window_with_a_short_base_is_refused_not_a_panic() {
        let mut w = Small::default();
        for i in 0..5 {
            w.push(i);
        }
        let json = serde_json::to_string(&w).expect("encodes");
        let back: Small = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, w);
        // A peer's snapshot is untrusted: 31 bytes of base, or odd hex, are errors.
        let base = hex(&w.base);
        for bad in [&base[..62], &base[..63]] {
            let tampered = json.replacen(&base, bad, 1);
            assert_ne!(tampered, json);
            let e = serde_json::from_str::<Small>(&tampered).expect_err("refused");
            assert!(e.to_string().contains("32 hex bytes"), "{e}");
        }
    }
}
