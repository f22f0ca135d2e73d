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
#[derive(Clone, Debug, PartialEq)]
pub struct Window<T, const CAP: usize> {
    /// Chain over every item evicted so far.
    base: [u8; 32],
    /// Position of `items[0]` in the whole sequence.
    first: u64,
    items: VecDeque<T>,
    /// Chain over every item ever pushed (derived from the fields above).
    tip: [u8; 32],
}

impl<T, const CAP: usize> Default for Window<T, CAP> {
    fn default() -> Self {
        Self {
            base: [0; 32],
            first: 0,
            items: VecDeque::new(),
            tip: [0; 32],
        }
    }
}

fn chain<T: Serialize>(prev: &[u8; 32], item: &T) -> [u8; 32] {
    let bytes = serde_json::to_vec(item).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(b"journal");
    h.update(prev);
    h.update(Sha256::digest(&bytes));
    h.finalize().into()
}

impl<T: Serialize, const CAP: usize> Window<T, CAP> {
    pub fn push(&mut self, item: T) {
        self.tip = chain(&self.tip, &item);
        self.items.push_back(item);
        if self.items.len() > CAP {
            if let Some(old) = self.items.pop_front() {
                self.base = chain(&self.base, &old);
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

impl<T: Serialize + Clone, const CAP: usize> Serialize for Window<T, CAP> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WindowRepr {
            base: hex(&self.base),
            first: self.first,
            items: self.items.iter().cloned().collect(),
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
        let raw = (0..r.base.len())
            .step_by(2)
            .map(|i| {
                r.base
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>();
        match raw {
            Some(b) if b.len() == 32 => base.copy_from_slice(&b),
            _ => return Err(D::Error::custom("journal base is not 32 hex bytes")),
        }
        let tip = r.items.iter().fold(base, |t, item| chain(&t, item));
        Ok(Self {
            base,
            first: r.first,
            items: r.items.into(),
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

/// Events and outcomes produced since the node last took them for its store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fresh {
    /// (position in the event sequence, event).
    pub events: Vec<(u64, Event)>,
    /// (signer hex, nonce, outcome).
    pub outcomes: Vec<(String, u64, Outcome)>,
}

impl Journal {
    pub fn push_event(&mut self, e: Event) {
        self.events.push(e);
    }

    pub fn push_outcome(&mut self, signer: String, nonce: u64, o: Outcome) {
        self.outcomes.entry(signer).or_default().push((nonce, o));
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
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!((a.first(), a.total()), (7, 10));
        assert_ne!(a.tip(), b.tip(), "the chain covers every item");
        let mut c = Small::default();
        for i in [1, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
            c.push(i);
        }
        assert_ne!(a.tip(), c.tip(), "evicted items count too");
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
}
