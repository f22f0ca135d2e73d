//! What registering a release costs the ledger, and the release digest check's share of it
//! (`scbe-sim bench-digest --register-releases N`).
//!
//! Method. `N` of the bench's releases (as `scbe-sim bench --workload register` sends) are
//! made once. Per round:
//! - *register*: a fresh ledger applies the `N` registrations' operation bytes, made before
//!   the clock starts (`apply_operation`: the operation's JSON parsed, the release checked
//!   against the gates, its digest checked, its body kept, events written), as a validator
//!   executes them, without the checkpoint's settling;
//! - *digest*: each release's content digest (`FusedRelease::content_digest`, its canonical
//!   JSON written by `CanonicalContent`);
//! - *digest through a `Value`*: the same digests made the way they were before
//!   `CanonicalContent` (the release converted to a `serde_json::Value`, printed sorted), in the
//!   same run. Every digest of both routes is compared; a difference fails the bench;
//! - *parse*: each registration's operation bytes read (`Operation::from_bytes`, in one pass);
//! - *parse, tagged*: the same bytes through serde's derived deserializer for the operation
//!   enum (the route before the one-pass read), compared likewise.
//!
//! *Register, before* is register + (digest through a `Value` − digest) + (parse, tagged −
//! parse): the same registration with both steps as they were (an estimate from the parts,
//! not a run of the older code). Figures are per release, medians of the rounds.

use std::time::{Duration, Instant};

use scbe_core::governance::release::{canonical_digest, FusedRelease};
use scbe_core::governance::Operation;

use crate::bench_digest::{apply_registration, bench_ledger, median};

#[derive(Debug, Clone, Copy)]
pub struct RegisterSample {
    pub releases: usize,
    pub register: Duration,
    pub digest: Duration,
    pub digest_through_value: Duration,
    pub parse: Duration,
    pub parse_tagged: Duration,
}

impl RegisterSample {
    /// See the module documentation.
    pub fn register_before(&self) -> Duration {
        (self.register + self.digest_through_value + self.parse_tagged)
            .saturating_sub(self.digest + self.parse)
    }
}

/// The digest as it was made before `CanonicalContent`.
fn digest_through_value(release: &FusedRelease) -> String {
    let mut v = serde_json::to_value(release).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(m) = &mut v {
        m.remove("digest");
        m.remove("generated_at");
    }
    canonical_digest(&v)
}

pub fn measure_register(releases: usize, rounds: usize) -> Result<RegisterSample, String> {
    let made: Vec<FusedRelease> = (0..releases as u64)
        .map(|i| crate::releases::bench_release(&format!("r{i:07}"), i))
        .collect();
    for r in &made {
        let (direct, through) = (r.content_digest(), digest_through_value(r));
        if direct != through {
            return Err(format!(
                "release {}: digest {direct} against {through} through a Value",
                r.version
            ));
        }
    }
    let ops: Vec<Vec<u8>> = made
        .iter()
        .map(|r| Operation::RegisterRelease { release: r.clone() }.to_bytes())
        .collect();
    for bytes in &ops {
        let tagged = serde_json::from_slice::<Operation>(bytes).map_err(|e| e.to_string())?;
        if Operation::from_bytes(bytes).as_ref() != Ok(&tagged) {
            return Err("an operation reads otherwise in one pass".into());
        }
    }
    // Each step's time per release, one sample per round; its result is kept from the
    // optimiser.
    let timed = |samples: &mut Vec<Duration>, step: &mut dyn FnMut() -> usize| {
        let t = Instant::now();
        std::hint::black_box(step());
        samples.push(t.elapsed() / releases.max(1) as u32);
    };
    let (mut register, mut digest, mut through) = (Vec::new(), Vec::new(), Vec::new());
    let (mut parse, mut parse_tagged) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut ledger = bench_ledger();
        timed(&mut register, &mut || {
            for (i, op) in ops.iter().enumerate() {
                apply_registration(&mut ledger, i as u64, op);
            }
            ops.len()
        });
        drop(ledger);
        timed(&mut digest, &mut || {
            made.iter().map(|r| r.content_digest().len()).sum()
        });
        timed(&mut through, &mut || {
            made.iter().map(|r| digest_through_value(r).len()).sum()
        });
        timed(&mut parse, &mut || {
            ops.iter()
                .filter(|b| Operation::from_bytes(b).is_ok())
                .count()
        });
        timed(&mut parse_tagged, &mut || {
            ops.iter()
                .filter(|b| serde_json::from_slice::<Operation>(b).is_ok())
                .count()
        });
    }
    Ok(RegisterSample {
        releases,
        register: median(register),
        digest: median(digest),
        digest_through_value: median(through),
        parse: median(parse),
        parse_tagged: median(parse_tagged),
    })
}

pub fn print_register(releases: &[usize], rounds: usize) -> Result<(), String> {
    if releases.is_empty() {
        return Ok(());
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!("| releases | apply a registration, per release (before: estimated) | digest check, after / before | operation read, after / before | apply, after / before |");
    println!("|---|---|---|---|---|");
    for &n in releases {
        let s = measure_register(n, rounds)?;
        let before = s.register_before();
        println!(
            "| {} | {:.1} µs ({:.1} µs) | {:.1} / {:.1} µs | {:.1} / {:.1} µs | {:.2} |",
            s.releases,
            us(s.register),
            us(before),
            us(s.digest),
            us(s.digest_through_value),
            us(s.parse),
            us(s.parse_tagged),
            us(s.register) / us(before).max(1e-9),
        );
    }
    Ok(())
}
