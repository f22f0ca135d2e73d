//! Epochs: the validator sets honest replicas move through, and what each set may sign.
//!
//! - Every link an honest replica holds is certified, checked here from the envelopes
//!   independently of the core's link code: a quorum of distinct validators of the previous
//!   set signed checkpoints at the boundary that name the new set, which starts there.
//! - It leads to the set the scenario's change makes of the previous one, and nowhere else.
//! - It is the same on every honest replica, and leads to the set they entered (agreement
//!   across epochs).
//!
//! The sets learned here are what the certificate and validity checks count signers against
//! (the set in force at a decision's seq), and what the order-epoch check holds an order an
//! agent obeyed to: endorsed by a quorum of the set in force when the order was issued, or of
//! a later one, never by an older set alone (a rotated-out key must not count once the change
//! took effect).

use std::collections::{BTreeMap, BTreeSet};

use scbe_core::consensus::config::quorum_for;
use scbe_core::consensus::{Directory, EpochLink, ReplicaId, Seq, ValidatorSet};
use scbe_core::crypto::PublicKey;
use scbe_core::rollout::order::{Order, SignedOrder};

/// The change the scenario proposes: validator `id` gets `key` (a new id: it is added), or
/// leaves (`None`).
pub type ExpectedChange = (u32, Option<PublicKey>);

pub struct Epochs {
    /// By epoch: the set, and the directory its signers resolve in.
    sets: Vec<(ValidatorSet, Directory)>,
    requesters: Vec<PublicKey>,
    expected: Option<ExpectedChange>,
    /// Links already looked at, per honest replica (they only ever grow).
    seen: BTreeMap<usize, usize>,
}

impl Epochs {
    /// From the genesis validators' keys (ids `0..n`) and the cluster's requesters.
    pub fn new(
        validators: &[PublicKey],
        requesters: Vec<PublicKey>,
        expected: Option<ExpectedChange>,
    ) -> Self {
        let set = ValidatorSet::genesis(validators);
        let dir = Directory::of_set(&set, requesters.clone()).expect("the genesis set is valid");
        Epochs {
            sets: vec![(set, dir)],
            requesters,
            expected,
            seen: BTreeMap::new(),
        }
    }

    /// How many epochs the cluster went through.
    pub fn changes(&self) -> usize {
        self.sets.len() - 1
    }

    /// The set in force at `seq` (a set starts after the boundary batch its link names).
    pub fn set_at(&self, seq: Seq) -> &ValidatorSet {
        &self.entry_at(seq).0
    }

    /// The directory of the set in force at `seq`, with the cluster's requesters.
    pub fn directory_at(&self, seq: Seq) -> &Directory {
        &self.entry_at(seq).1
    }

    fn entry_at(&self, seq: Seq) -> &(ValidatorSet, Directory) {
        self.sets
            .iter()
            .rev()
            .find(|(s, _)| s.start < seq || s.epoch == 0)
            .unwrap_or(&self.sets[0])
    }

    /// The set honest replica `node` is in (it moves there right after the boundary batch,
    /// before the old set's quorum has certified the boundary): a new epoch is checked against
    /// the scenario's change and learned; a known one must be the same set.
    pub fn on_epoch(&mut self, node: usize, set: &ValidatorSet) -> Option<String> {
        let e = set.epoch as usize;
        if let Some((known, _)) = self.sets.get(e) {
            return (known != set).then(|| {
                format!(
                    "replica {node} is in epoch {e} with another set than another honest replica"
                )
            });
        }
        if e != self.sets.len() {
            return Some(format!("replica {node} skipped to epoch {e}"));
        }
        self.learn(set)
            .err()
            .map(|why| format!("replica {node} entered epoch {e}: {why}"))
    }

    fn learn(&mut self, set: &ValidatorSet) -> Result<(), String> {
        let previous = &self.sets[self.sets.len() - 1].0;
        self.as_expected(previous, set)?;
        let dir = Directory::of_set(set, self.requesters.clone()).map_err(|e| e.to_string())?;
        self.sets.push((set.clone(), dir));
        Ok(())
    }

    /// The links honest replica `node` holds: new ones are checked (certified by the set
    /// before, leading to the set replicas entered) and learned.
    pub fn on_links(&mut self, node: usize, links: &BTreeMap<u64, EpochLink>) -> Vec<String> {
        let seen = self.seen.entry(node).or_default();
        if links.len() <= *seen {
            return Vec::new();
        }
        *seen = links.len();
        let mut out = Vec::new();
        for (epoch, link) in links {
            let e = *epoch as usize;
            if e == 0 || e > self.sets.len() {
                out.push(format!(
                    "replica {node} holds a link to epoch {epoch} without the one before"
                ));
                break;
            }
            if let Err(why) = certified(link, &self.sets[e - 1].0) {
                out.push(format!("replica {node}'s link to epoch {epoch}: {why}"));
                break;
            }
            let learned = match self.sets.get(e) {
                Some((known, _)) if *known == link.set => Ok(()),
                Some(_) => Err("it leads to another set than honest replicas entered".to_string()),
                None => self.learn(&link.set),
            };
            if let Err(why) = learned {
                out.push(format!("replica {node}'s link to epoch {epoch}: {why}"));
                break;
            }
        }
        out
    }

    /// The set must be the previous one with the scenario's one change applied.
    fn as_expected(&self, previous: &ValidatorSet, set: &ValidatorSet) -> Result<(), String> {
        let Some((id, key)) = self.expected else {
            return Err("the scenario changed no validator".into());
        };
        if previous.epoch != 0 {
            return Err("the scenario changed the validator set once".into());
        }
        let mut members = previous.members.clone();
        match key {
            Some(k) => match members.iter_mut().find(|(i, _)| *i == ReplicaId(id)) {
                Some(m) => m.1 = k,
                None => members.push((ReplicaId(id), k)),
            },
            None => members.retain(|(i, _)| *i != ReplicaId(id)),
        }
        if set.members != members {
            return Err(format!(
                "its set {:?} is not the genesis set changed as proposed ({:?})",
                set.members, self.expected
            ));
        }
        Ok(())
    }

    /// An order an agent obeyed must be endorsed by a quorum of the set in force at its
    /// issuing seq, or of a later set: once a change took effect, the set before it alone
    /// (a rotated-out key with the others) no longer orders anyone.
    pub fn check_order(&self, agent: &str, signed: &SignedOrder, order: &Order) -> Option<String> {
        let issued = self.set_at(Seq(order.issued_seq)).epoch as usize;
        let signers: BTreeSet<&PublicKey> = signed.endorsements.iter().map(|e| &e.signer).collect();
        let endorsed_by = |set: &ValidatorSet| {
            let n = set
                .members
                .iter()
                .filter(|(_, k)| signers.contains(k))
                .count();
            n >= quorum_for(set.n())
        };
        if self.sets[issued..].iter().any(|(s, _)| endorsed_by(s)) {
            return None;
        }
        Some(format!(
            "{agent} obeyed rollout {}'s order issued at seq {} (epoch {issued}), endorsed by no quorum of epoch {issued}'s set or a later one",
            order.rollout, order.issued_seq
        ))
    }
}

/// `link` is certified by `previous`, checked from the signed checkpoints themselves.
fn certified(link: &EpochLink, previous: &ValidatorSet) -> Result<(), String> {
    if link.previous != *previous {
        return Err("it starts from another set than the epoch before".into());
    }
    let b = &link.boundary;
    if b.next_set != Some(link.set.digest()) {
        return Err("the boundary checkpoints do not name its set".into());
    }
    if link.set.start != b.seq || link.set.epoch != previous.epoch + 1 {
        return Err(format!(
            "its set (epoch {}, from {}) does not start at the boundary {}",
            link.set.epoch, link.set.start, b.seq
        ));
    }
    let members: BTreeSet<&PublicKey> = previous.members.iter().map(|(_, k)| k).collect();
    let mut signers = BTreeSet::new();
    for cp in &b.proof {
        if cp.envelope().verify().is_err() {
            return Err("a boundary checkpoint's signature does not verify".into());
        }
        if !members.contains(cp.signer()) {
            return Err(format!(
                "a boundary checkpoint is signed by {}, not a validator of the previous set",
                cp.signer()
            ));
        }
        let v = cp.value();
        if (v.seq, v.state_digest, v.next_set) != (b.seq, b.state_digest, b.next_set) {
            return Err("a boundary checkpoint does not match the certificate".into());
        }
        signers.insert(*cp.signer());
    }
    if signers.len() < quorum_for(previous.n()) {
        return Err(format!(
            "{} distinct boundary signers, the previous set's quorum is {}",
            signers.len(),
            quorum_for(previous.n())
        ));
    }
    Ok(())
}
