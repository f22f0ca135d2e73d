//! `scbe-sim bench-digest`: what a checkpoint's state digest costs as the ledger's history
//! grows, with the digest tree (`governance::ledger::digest_tree`) against hashing every
//! entry's digest in a row (the definition before it), in the same run.
//!
//! Method. A map of `size` entries of about a kilobyte (like registered releases) is built and
//! settled. Then, per round, `changes` new entries are inserted (what a checkpoint interval of
//! registrations does) and three times are taken:
//! - *checkpoint, after*: `settle` + `digest`, the checkpoint's work on the map today (encoding
//!   the new entries, updating the tree, reading the root);
//! - *tree*: the tree's share of it, measured on a second tree kept beside the map that is given
//!   the same new digests and refreshed;
//! - *walk*: the digest with [`StateDigest::Walk`] (one pass hashing every entry's digest in key
//!   order), the digest before the tree.
//!
//! *Checkpoint, before* is then checkpoint − tree + walk: the same encoding, the old digest.
//! Medians of `rounds`.

use std::time::{Duration, Instant};

use scbe_core::governance::ledger::digest_tree::DigestTree;
use scbe_core::governance::ledger::entry_map::EntryMap;
use scbe_core::governance::ledger::StateDigest;

/// One size's medians.
#[derive(Debug, Clone, Copy)]
pub struct DigestSample {
    pub size: usize,
    pub changes: usize,
    /// settle + digest: the checkpoint's work on the map with the tree.
    pub checkpoint: Duration,
    /// The tree's share of it: inserting the changed digests and refreshing.
    pub tree: Duration,
    /// The walk digest (every entry digest hashed in key order; the digest before the tree).
    pub walk: Duration,
}

impl DigestSample {
    /// The checkpoint's work with the walk in place of the tree.
    pub fn checkpoint_before(&self) -> Duration {
        self.checkpoint.saturating_sub(self.tree) + self.walk
    }
}

fn entry(i: u64) -> String {
    // ~1 KB, distinct per entry.
    format!("{i:016x}").repeat(64)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Measures one size.
pub fn measure(size: usize, changes: usize, rounds: usize) -> DigestSample {
    let mut map: EntryMap<u64, String> = EntryMap::default();
    for i in 0..size as u64 {
        map.insert(i, entry(i));
    }
    map.settle();
    let mut beside = DigestTree::of(map.entry_digests());
    let mut next = size as u64;
    let (mut checkpoint, mut tree, mut walk) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let first_new = next;
        for _ in 0..changes {
            map.insert(next, entry(next));
            next += 1;
        }
        let t = Instant::now();
        map.settle();
        let root = map.digest(StateDigest::Tree);
        checkpoint.push(t.elapsed());
        // The new entries are the last keys.
        let new: Vec<[u8; 32]> = map
            .entry_digests()
            .skip(map.len() - (next - first_new) as usize)
            .collect();
        let t = Instant::now();
        for d in new {
            beside.insert(d);
        }
        beside.refresh();
        tree.push(t.elapsed());
        assert_eq!(
            beside.root(),
            root,
            "the tree beside the map holds the same digests"
        );
        let t = Instant::now();
        std::hint::black_box(map.digest(StateDigest::Walk));
        walk.push(t.elapsed());
    }
    DigestSample {
        size,
        changes,
        checkpoint: median(checkpoint),
        tree: median(tree),
        walk: median(walk),
    }
}

pub fn run_and_print(sizes: &[usize], changes: usize, rounds: usize) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| entries | changed | checkpoint, tree (after) | checkpoint, walk (before) | before / after | tree's share | walk |");
    println!("|---|---|---|---|---|---|---|");
    for &size in sizes {
        let s = measure(size, changes, rounds);
        println!(
            "| {} | {} | {:.2} ms | {:.2} ms | {:.1}x | {:.2} ms | {:.2} ms |",
            s.size,
            s.changes,
            ms(s.checkpoint),
            ms(s.checkpoint_before()),
            ms(s.checkpoint_before()) / ms(s.checkpoint).max(1e-9),
            ms(s.tree),
            ms(s.walk),
        );
    }
}
