//! Who may sign what: the validators in force (by id, in the order that picks primaries), the
//! keys the previous epoch's validators signed with and no longer do, and the genesis
//! requesters. The network edge resolves every signer here before anything is decoded; the
//! replica and the certificate checks then ask whether a validator's key is the one in force
//! (`in_force`), since a retired key still resolves to its validator.

use std::collections::BTreeMap;

use crate::crypto::{PublicKey, Verifier};

use super::config::ConfigError;
use super::message::{Kind, Principal};
use super::types::{ReplicaId, Seq};
use super::validator_set::ValidatorSet;

/// Who may sign what: validators by id, and registered requesters.
#[derive(Clone, Debug)]
pub struct Directory {
    /// The epoch of this validator set (0: the genesis set).
    epoch: u64,
    /// The batch after which this set is in force (0 at genesis): the state there is the base
    /// every replica of the epoch shares (see `certificate::check_checkpoint_cert`).
    start: Seq,
    /// Ids of the validators in force, ascending; the primary of a view is picked among them
    /// in this order.
    ids: Vec<ReplicaId>,
    /// Their keys, in the same order.
    validators: Vec<PublicKey>,
    /// Who each key is, with the key decompressed once for verification.
    principals: BTreeMap<PublicKey, (Principal, Verifier)>,
}

impl Directory {
    /// The genesis directory: validators numbered `0..n` in the order given.
    pub fn new(
        validators: Vec<PublicKey>,
        requesters: Vec<PublicKey>,
    ) -> Result<Self, ConfigError> {
        Self::of_set(&ValidatorSet::genesis(&validators), requesters)
    }

    /// The directory of `set`, with `requesters`.
    pub fn of_set(set: &ValidatorSet, requesters: Vec<PublicKey>) -> Result<Self, ConfigError> {
        let mut members = set.members.clone();
        members.sort_by_key(|(id, _)| *id);
        let mut principals = BTreeMap::new();
        let all = members
            .iter()
            .map(|(id, key)| (*key, Principal::Validator(*id)))
            .chain(requesters.iter().map(|r| (*r, Principal::Requester)));
        for (key, principal) in all {
            let verifier = Verifier::new(key).map_err(|_| ConfigError::InvalidKey(key))?;
            if principals.insert(key, (principal, verifier)).is_some() {
                return Err(ConfigError::DuplicateKey(key));
            }
        }
        if let Some(w) = members.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ConfigError::DuplicateId(w[0].0 .0));
        }
        Ok(Self {
            epoch: set.epoch,
            start: set.start,
            ids: members.iter().map(|(id, _)| *id).collect(),
            validators: members.iter().map(|(_, key)| *key).collect(),
            principals,
        })
    }

    /// The directory of the next epoch's `set`: the same requesters, and this directory's
    /// validator keys that `set` no longer holds kept as *retired* (they resolve to their
    /// validator, so their checkpoint at the new epoch's start still counts for the previous
    /// set, but are never in force).
    pub fn next(&self, set: &ValidatorSet) -> Result<Self, ConfigError> {
        let requesters = self
            .principals
            .iter()
            .filter(|(_, (p, _))| *p == Principal::Requester)
            .map(|(k, _)| *k)
            .collect();
        let mut next = Self::of_set(set, requesters)?;
        for (id, key) in self.ids.iter().zip(&self.validators) {
            if let Some((_, verifier)) = self.principals.get(key) {
                next.principals
                    .entry(*key)
                    .or_insert((Principal::Validator(*id), verifier.clone()));
            }
        }
        Ok(next)
    }

    /// This directory with the members of `sets` resolving to their validator where their
    /// key is not known here (never in force): how the network edge opens what later
    /// validator sets signed in a state response that carries the chain's links. The replica
    /// then checks every signer against the set the chain proves (`in_force`), so a key a link
    /// names wrongly only gets its message refused.
    pub fn resolving<'a>(
        &self,
        sets: impl IntoIterator<Item = &'a ValidatorSet>,
    ) -> Result<Self, ConfigError> {
        let mut out = self.clone();
        for set in sets {
            for (id, key) in &set.members {
                if out.principals.contains_key(key) {
                    continue;
                }
                let verifier = Verifier::new(*key).map_err(|_| ConfigError::InvalidKey(*key))?;
                out.principals
                    .insert(*key, (Principal::Validator(*id), verifier));
            }
        }
        Ok(out)
    }

    pub fn n(&self) -> usize {
        self.validators.len()
    }

    /// The epoch of the set in force.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sequence number of the batch after which the set in force orders.
    pub fn start(&self) -> Seq {
        self.start
    }

    /// The set in force, as the application would name it.
    pub fn set(&self) -> ValidatorSet {
        ValidatorSet {
            epoch: self.epoch,
            start: self.start,
            members: self
                .ids
                .iter()
                .copied()
                .zip(self.validators.iter().copied())
                .collect(),
        }
    }

    /// The keys of the validators in force, by id.
    pub fn validators(&self) -> &[PublicKey] {
        &self.validators
    }

    /// Every validator key this directory resolves, with its validator: the keys in force and
    /// the previous epoch's retired ones (what TLS accepts from validators: a validator
    /// restarted with its rotated key, or one still behind on its old key asking for state).
    pub fn validator_keys(&self) -> impl Iterator<Item = (ReplicaId, PublicKey)> + '_ {
        self.principals.iter().filter_map(|(key, (p, _))| match p {
            Principal::Validator(id) => Some((*id, *key)),
            Principal::Requester => None,
        })
    }

    /// The ids of the validators in force, ascending.
    pub fn ids(&self) -> &[ReplicaId] {
        &self.ids
    }

    /// The `i`-th validator in force (`i` taken modulo n): how views pick their primary.
    pub fn member_at(&self, i: u64) -> ReplicaId {
        self.ids[(i % self.ids.len() as u64) as usize]
    }

    /// The key validator `id` signs with now; `None` if it is not in force.
    pub fn validator_key(&self, id: ReplicaId) -> Option<&PublicKey> {
        let at = self.ids.binary_search(&id).ok()?;
        self.validators.get(at)
    }

    /// Whether `key` is validator `id`'s key in force (not a retired one, not another's).
    pub fn in_force(&self, id: ReplicaId, key: &PublicKey) -> bool {
        self.validator_key(id) == Some(key)
    }

    /// Resolves a signer; `None` means the key is unknown and the message must be dropped.
    pub fn principal(&self, key: &PublicKey) -> Option<Principal> {
        self.principals.get(key).map(|(p, _)| *p)
    }

    /// The signer's role and its decompressed key; `None` for unknown keys.
    pub fn lookup(&self, key: &PublicKey) -> Option<(Principal, &Verifier)> {
        self.principals.get(key).map(|(p, v)| (*p, v))
    }

    /// The signer of an envelope of `kind`, as the network edge resolves it: a validator or a
    /// genesis requester by this directory; for a request, any other valid key as a requester,
    /// because requesters change by the ledger's proposals and the ledger decides whether a
    /// key is one in force (`governance::ledger::requesters`). `None`: drop the envelope.
    pub fn resolve(
        &self,
        key: &PublicKey,
        kind: Kind,
    ) -> Option<(Principal, std::borrow::Cow<'_, Verifier>)> {
        use std::borrow::Cow;
        if let Some((p, v)) = self.lookup(key) {
            return Some((p, Cow::Borrowed(v)));
        }
        if kind != Kind::Request {
            return None;
        }
        let verifier = Verifier::new(*key).ok()?;
        Some((Principal::Requester, Cow::Owned(verifier)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefix: &str, n: usize) -> Vec<PublicKey> {
        (0..n)
            .map(|i| crate::crypto::Keypair::from_label(&format!("{prefix}{i}")).public())
            .collect()
    }

    /// Validators are known by their index, requesters by their role, anyone else not at all;
    /// a key listed twice or not a valid point is refused. cargo-mutants (consensus shard 0)
    /// found `principal` answering `None` and `validators` answering an empty list with every
    /// core test passing (the simulator's invariants are their only other callers).
    #[test]
    fn the_directory_names_each_signer_by_role_and_refuses_duplicates() {
        let validators = keys("v", 4);
        let requesters = keys("r", 2);
        let dir =
            Directory::new(validators.clone(), requesters.clone()).expect("distinct valid keys");
        assert_eq!(dir.validators(), validators.as_slice());
        assert_eq!(dir.n(), 4);
        for (i, v) in validators.iter().enumerate() {
            let role = Some(Principal::Validator(ReplicaId(i as u32)));
            assert_eq!(dir.principal(v), role);
            assert_eq!(dir.lookup(v).map(|(p, _)| p), role);
            assert_eq!(dir.validator_key(ReplicaId(i as u32)), Some(v));
        }
        for r in &requesters {
            assert_eq!(dir.principal(r), Some(Principal::Requester));
        }
        let stranger = keys("x", 1)[0];
        assert_eq!(dir.principal(&stranger), None);
        assert!(dir.lookup(&stranger).is_none());
        assert_eq!(dir.validator_key(ReplicaId(4)), None);

        let twice = Directory::new(validators.clone(), vec![validators[2]]);
        assert_eq!(twice.err(), Some(ConfigError::DuplicateKey(validators[2])));
        // A key the verifier refuses (no point of the curve, or one of small order).
        let not_a_point = (0..=255u8)
            .map(|b| PublicKey([b; 32]))
            .find(|k| crate::crypto::Verifier::new(*k).is_err())
            .expect("some repeated byte is not a usable key");
        let bad = Directory::new(validators, vec![not_a_point]);
        assert_eq!(bad.err(), Some(ConfigError::InvalidKey(not_a_point)));
    }

    /// The next epoch's directory: a removed validator's key and a rotated validator's old key
    /// still resolve to their validator but are not in force; the rotated validator's new key
    /// is; ids keep their holes and primaries are picked among the ids in force; requesters
    /// stay.
    #[test]
    fn the_next_epoch_retires_removed_and_rotated_keys() {
        let v = keys("v", 6);
        let requester = keys("r", 1)[0];
        let dir = Directory::new(v[..5].to_vec(), vec![requester]).expect("distinct keys");
        // Validator 1 removed, validator 3 rotated to v[5].
        let set = ValidatorSet {
            epoch: 1,
            start: Seq(7),
            members: vec![
                (ReplicaId(4), v[4]),
                (ReplicaId(0), v[0]),
                (ReplicaId(2), v[2]),
                (ReplicaId(3), v[5]),
            ],
        };
        let next = dir.next(&set).expect("a valid set");
        assert_eq!(next.n(), 4);
        assert_eq!((next.epoch(), next.start()), (1, Seq(7)));
        assert_eq!(next.set().digest(), {
            let mut sorted = set.clone();
            sorted.members.sort();
            sorted.digest()
        });
        assert_eq!(
            next.ids(),
            &[ReplicaId(0), ReplicaId(2), ReplicaId(3), ReplicaId(4)]
        );
        assert_eq!(next.validators(), &[v[0], v[2], v[5], v[4]]);
        assert_eq!(
            (0..5).map(|i| next.member_at(i)).collect::<Vec<_>>(),
            vec![
                ReplicaId(0),
                ReplicaId(2),
                ReplicaId(3),
                ReplicaId(4),
                ReplicaId(0)
            ]
        );
        assert!(next.in_force(ReplicaId(3), &v[5]));
        assert!(!next.in_force(ReplicaId(3), &v[3]), "rotated out");
        assert!(!next.in_force(ReplicaId(1), &v[1]), "removed");
        assert!(!next.in_force(ReplicaId(2), &v[5]), "another's key");
        assert_eq!(
            next.principal(&v[3]),
            Some(Principal::Validator(ReplicaId(3)))
        );
        assert_eq!(
            next.principal(&v[1]),
            Some(Principal::Validator(ReplicaId(1)))
        );
        assert_eq!(next.principal(&requester), Some(Principal::Requester));
        assert_eq!(next.validator_key(ReplicaId(1)), None);
        // What TLS accepts from validators: the keys in force and the retired ones, each with
        // its validator, and no requester (cargo-mutants at 8c1a26e: an empty list went unseen
        // by the core's tests).
        let mut accepted: Vec<(ReplicaId, PublicKey)> = next.validator_keys().collect();
        accepted.sort();
        let mut expected = vec![
            (ReplicaId(0), v[0]),
            (ReplicaId(1), v[1]),
            (ReplicaId(2), v[2]),
            (ReplicaId(3), v[3]),
            (ReplicaId(3), v[5]),
            (ReplicaId(4), v[4]),
        ];
        expected.sort();
        assert_eq!(accepted, expected);
        // One epoch later the retired keys are forgotten.
        let later = next
            .next(&ValidatorSet {
                epoch: 2,
                ..set.clone()
            })
            .expect("the same set again");
        assert_eq!(later.principal(&v[1]), None);
        assert_eq!(later.principal(&v[3]), None);
        assert_eq!(later.principal(&requester), Some(Principal::Requester));
        // Two validators with one id are refused.
        let twice = ValidatorSet {
            members: vec![(ReplicaId(0), v[0]), (ReplicaId(0), v[1])],
            ..set
        };
        assert_eq!(dir.next(&twice).err(), Some(ConfigError::DuplicateId(0)));
    }
}
