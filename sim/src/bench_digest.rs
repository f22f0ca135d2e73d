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
//!
//! Restore (`--restore-releases`): a real ledger registers that many releases (as `scbe-sim bench
//! --workload register` does), its snapshot is taken, and a fresh ledger installs it the way a
//! restart or a state transfer does: `restore_if` (decode once, settle, digest, keep) against
//! the path before it (decode for the digest, decode again to restore, then settle every entry
//! at the next checkpoint). Medians of `rounds`.
//!
//! Proofs (`--prove-releases`): the same ledger's checkpoint proves one release
//! (`CheckpointProver`, what `Audit.Prove` runs): the first proof after a checkpoint (it builds
//! the releases' tree), a later one, the proof's JSON, and a client's check of it
//! (`StateProof::state_digest`), beside what checking one release took without proofs: the
//! whole snapshot, fetched and decoded to its digest (`snapshot_digest`). Medians of `rounds`.

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

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
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

/// One restore measurement: the snapshot's size and both paths' medians.
#[derive(Debug, Clone, Copy)]
pub struct RestoreSample {
    pub releases: usize,
    pub snapshot_bytes: usize,
    /// `restore_if`: decode once, settle, digest, keep.
    pub once: Duration,
    /// `snapshot_digest`, then `restore`, then the next checkpoint's settle.
    pub twice: Duration,
}

/// A ledger with `releases` registered releases, its snapshot and its digest.
fn registered_ledger(
    releases: usize,
) -> (
    scbe_core::governance::Ledger,
    Vec<u8>,
    scbe_core::consensus::Digest,
) {
    use scbe_core::consensus::StateMachine as _;
    let mut ledger = register_releases(releases);
    ledger.before_checkpoint();
    let snapshot = ledger.snapshot().bytes().to_vec();
    let digest = ledger.digest();
    (ledger, snapshot, digest)
}

/// A ledger with `releases` registered releases (the bench's ~1.1 KB ones), not yet settled.
fn register_releases(releases: usize) -> scbe_core::governance::Ledger {
    let mut ledger = bench_ledger();
    for i in 0..releases as u64 {
        register_one(&mut ledger, i);
    }
    ledger
}

/// A ledger of the bench's four validators and one requester.
pub(crate) fn bench_ledger() -> scbe_core::governance::Ledger {
    use scbe_core::crypto::Keypair;
    use scbe_core::governance::{Ledger, LedgerConfig};
    let validators: Vec<_> = (0..4)
        .map(|i| Keypair::from_label(&format!("bench/validator/{i}")).public())
        .collect();
    let cfg: LedgerConfig = crate::fleet::ledger_config(
        validators,
        &[],
        crate::fleet::MIN_SAMPLES,
        StateDigest::Tree,
        [(
            "bench".to_string(),
            Keypair::from_label("bench/requester").public(),
        )]
        .into(),
    );
    Ledger::new(cfg)
}

/// Registers the bench's release `i` at seq `i + 1`.
pub(crate) fn register_one(ledger: &mut scbe_core::governance::Ledger, i: u64) {
    use scbe_core::governance::Operation;
    let op = Operation::RegisterRelease {
        release: crate::releases::bench_release(&format!("r{i:07}"), i),
    };
    apply_registration(ledger, i, &op.to_bytes());
}

/// Applies the bench's registration `i` (its operation's bytes) at seq `i + 1`, signed by the
/// bench's requester.
pub(crate) fn apply_registration(ledger: &mut scbe_core::governance::Ledger, i: u64, op: &[u8]) {
    use scbe_core::crypto::Keypair;
    use scbe_core::governance::ledger::Signer;
    // Derived once: a derivation (a scalar multiplication) costs about what a registration
    // does, and the register bench times this function.
    static REQUESTER: std::sync::OnceLock<scbe_core::crypto::PublicKey> =
        std::sync::OnceLock::new();
    let requester = *REQUESTER.get_or_init(|| Keypair::from_label("bench/requester").public());
    let o = ledger.apply_operation(i + 1, Signer::Requester(requester), &requester, i + 1, op);
    assert!(o.accepted, "{:?}", o.reasons);
}

/// Registrations written to the store between two checkpoints (`--bodies-stored`).
const STORED_EVERY: u64 = 1024;

/// As [`register_releases`], with the ledger's bodies in a record store under `dir`, written
/// (with the rest of each turn's history) every [`STORED_EVERY`] registrations and followed by
/// a checkpoint, as a validator's runtime does. Returns the store too: it must outlive the
/// measurement.
pub(crate) fn register_releases_stored(
    releases: usize,
    dir: &std::path::Path,
) -> Result<
    (
        scbe_core::governance::Ledger,
        scbe_validator::storage::RecordStore,
    ),
    String,
> {
    use scbe_core::consensus::StateMachine as _;
    use scbe_validator::storage::{RecordStore, StoredBodies};
    let owner = scbe_core::crypto::Keypair::from_label("bench/store");
    let mut store = RecordStore::open(
        &dir.join("records.redb"),
        &owner.public(),
        &scbe_core::consensus::Digest::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut ledger = bench_ledger();
    ledger.store_bodies_in(std::sync::Arc::new(StoredBodies::new(store.reader())));
    for i in 0..releases as u64 {
        register_one(&mut ledger, i);
        if (i + 1) % STORED_EVERY == 0 || i + 1 == releases as u64 {
            store
                .commit_turn(&[], &[], &ledger.take_new())
                .map_err(|e| e.to_string())?;
            ledger.before_checkpoint();
        }
    }
    Ok((ledger, store))
}

/// What registered releases cost the ledger in memory.
#[derive(Debug, Clone, Copy)]
pub struct MemorySample {
    pub releases: usize,
    /// This process's resident memory grown by registering them and settling (a checkpoint's
    /// work: each entry's JSON and digest kept, the digest tree built).
    pub rss_growth: u64,
    /// Of which the entries' JSON (`LedgerState::json_bytes_hint`): what the releases'
    /// bodies hold (`ReleaseBody`), a few bytes per entry more.
    pub json: u64,
}

/// Resident memory of this process (Linux), 0 where unknown.
fn own_rss() -> u64 {
    crate::bench_cluster::rss_bytes(std::process::id())
}

/// Registers `releases` releases in a fresh ledger, settles it, and reads what this process's
/// resident memory grew by. Run it first: memory freed by earlier measurements would be reused
/// and hide part of the growth. `bodies_stored`: the ledger keeps its bodies in a record store
/// in a temporary directory ([`register_releases_stored`]).
pub fn measure_memory(releases: usize, bodies_stored: bool) -> Result<MemorySample, String> {
    use scbe_core::consensus::StateMachine as _;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let before = own_rss();
    let (mut ledger, store) = if bodies_stored {
        let (ledger, store) = register_releases_stored(releases, dir.path())?;
        (ledger, Some(store))
    } else {
        (register_releases(releases), None)
    };
    ledger.before_checkpoint();
    let rss_growth = own_rss().saturating_sub(before);
    let json = if bodies_stored {
        0
    } else {
        ledger.state().json_bytes_hint() as u64
    };
    std::hint::black_box(&ledger);
    drop(store);
    Ok(MemorySample {
        releases,
        rss_growth,
        json,
    })
}

pub fn print_memory(releases: &[usize], bodies_stored: bool) -> Result<(), String> {
    if releases.is_empty() {
        return Ok(());
    }
    println!();
    if bodies_stored {
        println!("Release bodies in a record store (the ledger holds their keys):");
    }
    println!("| releases | resident memory grown | per release | of which the entries' JSON per release | the rest per release (map nodes, digests, stages) |");
    println!("|---|---|---|---|---|");
    for &n in releases {
        let s = measure_memory(n, bodies_stored)?;
        let per = |b: u64| b as f64 / n.max(1) as f64;
        println!(
            "| {} | {:.1} MB | {:.0} B | {:.0} B | {:.0} B |",
            s.releases,
            s.rss_growth as f64 / 1e6,
            per(s.rss_growth),
            per(s.json),
            per(s.rss_growth).max(per(s.json)) - per(s.json),
        );
    }
    Ok(())
}

/// Measures restoring a snapshot of `releases` registered releases both ways.
pub fn measure_restore(releases: usize, rounds: usize) -> RestoreSample {
    use scbe_core::consensus::StateMachine as _;
    use scbe_core::governance::Ledger;
    let (ledger, snapshot, want) = registered_ledger(releases);
    let cfg = ledger.config().clone();
    let (mut once, mut twice) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut fresh = Ledger::new(cfg.clone());
        let t = Instant::now();
        let ok = fresh
            .restore_if(&snapshot, &mut |d| d == want)
            .expect("decodes");
        fresh.before_checkpoint();
        once.push(t.elapsed());
        assert!(ok && fresh.digest() == want, "restored at the digest");

        let mut fresh = Ledger::new(cfg.clone());
        let t = Instant::now();
        let d = fresh.snapshot_digest(&snapshot).expect("decodes");
        assert_eq!(d, want);
        fresh.restore(&snapshot).expect("restores");
        fresh.before_checkpoint();
        twice.push(t.elapsed());
    }
    RestoreSample {
        releases,
        snapshot_bytes: snapshot.len(),
        once: median(once),
        twice: median(twice),
    }
}

pub fn print_restore(releases: &[usize], rounds: usize) {
    if releases.is_empty() {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!(
        "| releases | snapshot | decoded once (after) | decoded twice (before) | before / after |"
    );
    println!("|---|---|---|---|---|");
    for &n in releases {
        let s = measure_restore(n, rounds);
        println!(
            "| {} | {:.1} MB | {:.0} ms | {:.0} ms | {:.2}x |",
            s.releases,
            s.snapshot_bytes as f64 / 1e6,
            ms(s.once),
            ms(s.twice),
            ms(s.twice) / ms(s.once).max(1e-9),
        );
    }
}

/// One proof measurement, and checking the whole snapshot instead.
#[derive(Debug, Clone, Copy)]
pub struct ProofSample {
    pub releases: usize,
    /// The first proof after a checkpoint: the releases' tree built, then the path.
    pub first: Duration,
    /// A later proof at the same checkpoint.
    pub later: Duration,
    pub proof_bytes: usize,
    /// A client's check: from the entry up to the state digest.
    pub check: Duration,
    pub snapshot_bytes: usize,
    /// Without proofs: the whole snapshot decoded and digested.
    pub whole: Duration,
}

/// Measures proving one release of a ledger of `releases`.
pub fn measure_proofs(releases: usize, rounds: usize) -> ProofSample {
    use scbe_core::consensus::StateMachine as _;
    use scbe_core::governance::ledger::checkpoint_prover::CheckpointProver;
    use scbe_core::governance::ledger::state_proof::ProvenMap;
    let (mut ledger, snapshot, want) = registered_ledger(releases);
    let (mut first, mut later, mut check, mut whole) = (vec![], vec![], vec![], vec![]);
    let mut proof_bytes = 0;
    for round in 0..rounds {
        let version = format!("r{:07}", (round * 7919) % releases.max(1));
        // A fresh checkpoint each round, as the validator's stable one moves.
        ledger.before_checkpoint();
        let prover = CheckpointProver::of(&ledger.snapshot()).expect("the ledger's prover");
        let t = Instant::now();
        let proof = prover.prove(ProvenMap::Releases, &version).expect("held");
        first.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(prover.prove(ProvenMap::Releases, "r0000000").expect("held"));
        later.push(t.elapsed());
        let json = serde_json::to_vec(&proof).expect("encodes");
        proof_bytes = json.len();
        let t = Instant::now();
        let got: scbe_core::governance::ledger::state_proof::StateProof =
            serde_json::from_slice(&json).expect("decodes");
        let digest = got.state_digest().expect("holds");
        check.push(t.elapsed());
        assert_eq!(digest, want, "the proof leads to the ledger's digest");
        let t = Instant::now();
        assert_eq!(ledger.snapshot_digest(&snapshot).expect("decodes"), want);
        whole.push(t.elapsed());
    }
    ProofSample {
        releases,
        first: median(first),
        later: median(later),
        proof_bytes,
        check: median(check),
        snapshot_bytes: snapshot.len(),
        whole: median(whole),
    }
}

pub fn print_proofs(releases: &[usize], rounds: usize) {
    if releases.is_empty() {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("| releases | first proof at a checkpoint | later proof | proof | check the proof | whole snapshot | decode + digest it | bytes, whole / proof | check, whole / proof |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in releases {
        let s = measure_proofs(n, rounds);
        println!(
            "| {} | {:.1} ms | {:.3} ms | {:.1} KB | {:.3} ms | {:.1} MB | {:.0} ms | {:.0}x | {:.0}x |",
            s.releases,
            ms(s.first),
            ms(s.later),
            s.proof_bytes as f64 / 1e3,
            ms(s.check),
            s.snapshot_bytes as f64 / 1e6,
            ms(s.whole),
            s.snapshot_bytes as f64 / s.proof_bytes.max(1) as f64,
            ms(s.whole) / ms(s.check).max(1e-9),
        );
    }
}
