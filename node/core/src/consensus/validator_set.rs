//! The validator set of an epoch: who orders requests from its first sequence number on. The
//! genesis holds the first (epoch 0); the application (the ledger, by proposals the validators
//! vote on) holds each later one, and the replica moves to it right after the batch that
//! changed it (`replica/epoch.rs`). Its digest names it in logs and in what operators compare.

use crate::crypto::PublicKey;

use super::types::{Digest, ReplicaId, Seq};

/// The validators in force from `start` on (exclusive: the batch at `start` is the last one the
/// previous set ordered).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValidatorSet {
    /// Counts the set's changes since the genesis (0 for the genesis set).
    pub epoch: u64,
    /// The sequence number of the batch that made this set the one in force (0 at genesis).
    pub start: Seq,
    /// Ids and keys, ids ascending.
    pub members: Vec<(ReplicaId, PublicKey)>,
}

impl ValidatorSet {
    /// The genesis set: ids `0..n` in the order given.
    pub fn genesis(keys: &[PublicKey]) -> Self {
        ValidatorSet {
            epoch: 0,
            start: Seq(0),
            members: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (ReplicaId(i as u32), *k))
                .collect(),
        }
    }

    pub fn n(&self) -> usize {
        self.members.len()
    }

    /// The key validator `id` signs with in this set.
    pub fn key_of(&self, id: ReplicaId) -> Option<&PublicKey> {
        self.members.iter().find(|(i, _)| *i == id).map(|(_, k)| k)
    }

    /// Names the set: its epoch, start and every member, in order.
    pub fn digest(&self) -> Digest {
        let head = [
            self.epoch.to_be_bytes(),
            self.start.0.to_be_bytes(),
            (self.members.len() as u64).to_be_bytes(),
        ];
        let ids: Vec<[u8; 4]> = self
            .members
            .iter()
            .map(|(i, _)| i.0.to_be_bytes())
            .collect();
        let mut parts: Vec<&[u8]> = vec![b"validator-set", &head[0], &head[1], &head[2]];
        for ((_, key), id) in self.members.iter().zip(&ids) {
            parts.push(id);
            parts.push(key.as_bytes());
        }
        Digest::of_parts(&parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    fn keys(n: usize) -> Vec<PublicKey> {
        (0..n)
            .map(|i| Keypair::from_label(&format!("vs{i}")).public())
            .collect()
    }

    /// The genesis set numbers its validators in order; a set's digest changes with its epoch,
    /// its start, any id and any key, so two sets that differ never share a name.
    #[test]
    fn a_sets_digest_names_its_epoch_start_ids_and_keys() {
        let k = keys(5);
        let g = ValidatorSet::genesis(&k[..4]);
        assert_eq!(g.n(), 4);
        assert_eq!(g.key_of(ReplicaId(3)), Some(&k[3]));
        assert_eq!(g.key_of(ReplicaId(4)), None);
        let base = g.digest();
        assert_eq!(base, g.clone().digest());
        let mut changed = Vec::new();
        let mut e = g.clone();
        e.epoch = 1;
        changed.push(e);
        let mut s = g.clone();
        s.start = Seq(9);
        changed.push(s);
        let mut id = g.clone();
        id.members[3].0 = ReplicaId(4);
        changed.push(id);
        let mut key = g.clone();
        key.members[3].1 = k[4];
        changed.push(key);
        let mut fewer = g.clone();
        fewer.members.pop();
        changed.push(fewer);
        for c in &changed {
            assert_ne!(c.digest(), base, "{c:?}");
        }
    }
}
