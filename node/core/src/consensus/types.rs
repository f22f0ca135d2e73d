//! Newtypes for the numbers PBFT juggles, so a view can never be passed where a sequence number is
//! expected. All are `u64`/`u32` on the wire and on disk.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A view number. Its high 32 bits are the epoch (the validator set it belongs to, see
/// `replica/epoch.rs`), so every message that names a view names its epoch too and a vote
/// signed under one set can never count under the next; the low 32 bits count views within
/// the epoch, and the primary of view `v` is the `(v mod n)`-th validator of its set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct View(pub u64);

/// Bits of a [`View`] below its epoch.
const EPOCH_SHIFT: u32 = 32;

/// A sequence number assigned by the primary to a batch.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

/// A validator's id: its index in the genesis validator set (`0..n`), or the id the ledger gave
/// it when it was added; it keeps it for life, through key rotations and other validators'
/// removal.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct ReplicaId(pub u32);

impl View {
    pub fn next(self) -> View {
        View(self.0.saturating_add(1))
    }

    /// The first view of `epoch`: where every replica of the epoch starts.
    pub fn first_of_epoch(epoch: u64) -> View {
        View(epoch << EPOCH_SHIFT)
    }

    /// The epoch this view belongs to.
    pub fn epoch(self) -> u64 {
        self.0 >> EPOCH_SHIFT
    }

    /// The view's number within its epoch (what picks the primary).
    pub fn in_epoch(self) -> u64 {
        self.0 & ((1 << EPOCH_SHIFT) - 1)
    }
}

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch() {
            0 => write!(f, "v{}", self.0),
            e => write!(f, "e{e}v{}", self.in_epoch()),
        }
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// A sha256 digest.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Digest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// sha256 over the concatenation of `parts`, each prefixed with its length so that part
    /// boundaries cannot be shifted to forge a collision.
    pub fn of_parts(parts: &[&[u8]]) -> Digest {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        Digest(h.finalize().into())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view names its epoch: the first view of an epoch is above every view of the ones
    /// before it, and the count within the epoch starts from 0.
    #[test]
    fn views_carry_their_epoch_above_their_count() {
        let first = View::first_of_epoch(3);
        assert_eq!((first.epoch(), first.in_epoch()), (3, 0));
        let later = View(first.0 + 7);
        assert_eq!((later.epoch(), later.in_epoch()), (3, 7));
        assert!(View::first_of_epoch(2).0 + (u32::MAX as u64) < first.0);
        assert!(View(u32::MAX as u64) < View::first_of_epoch(1));
        assert_eq!(View(5).epoch(), 0);
    }

    #[test]
    fn digest_parts_are_length_prefixed() {
        assert_ne!(
            Digest::of_parts(&[b"ab", b"c"]),
            Digest::of_parts(&[b"a", b"bc"])
        );
        assert_eq!(
            Digest::of_parts(&[b"ab", b"c"]),
            Digest::of_parts(&[b"ab", b"c"])
        );
    }

    /// What logs, metrics labels and refusals print: operators read these, and a refusal
    /// naming the wrong view or seq sends them the wrong way. cargo-mutants (consensus shard 4)
    /// found each `fmt` answering nothing with every core test passing.
    #[test]
    fn views_seqs_replicas_and_digests_print_short_and_tagged() {
        assert_eq!(View(3).to_string(), "v3");
        assert_eq!(View::first_of_epoch(2).next().to_string(), "e2v1");
        assert_eq!(Seq(42).to_string(), "#42");
        assert_eq!(ReplicaId(2).to_string(), "r2");
        let mut bytes = [0u8; 32];
        bytes[..7].copy_from_slice(&[0xab, 0x01, 0x02, 0x03, 0x04, 0x05, 0xff]);
        assert_eq!(
            Digest(bytes).to_string(),
            "ab0102030405",
            "the first six bytes"
        );
        assert_eq!(format!("{:?}", Digest(bytes)), "ab0102030405");
    }
}
