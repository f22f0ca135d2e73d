//! What a validator that keeps its release bodies in its store pays to persist a snapshot and
//! to restart from one: the store form (`AppState::bytes_for_store`, naming the bodies) against
//! the whole form (every body's JSON, read back from the store), from the same ledger in the
//! same run (`scbe-sim bench-digest --persisted-releases N`).
//!
//! Persisting: the form encoded (JSON) and compressed as the store keeps it
//! (`EncodedSnapshot::encode`). Restarting: a
//! fresh ledger on the same store restores it to the checkpoint's digest and settles
//! (`restore_persisted_if`, reading each named body once to digest its entry), against
//! restoring the whole form (`restore_if`).

use std::time::{Duration, Instant};

use scbe_core::consensus::{AppState, Seq, Snapshot, StateMachine as _};
use scbe_core::governance::Ledger;
use scbe_validator::storage::{EncodedSnapshot, StoredBodies};

use crate::bench_digest::{median, register_releases_stored};

/// One size's figures, medians of the rounds.
#[derive(Debug, Clone, Copy)]
pub struct PersistedSample {
    pub releases: usize,
    /// Encoded and compressed, each form: time and stored bytes.
    pub store_form: (Duration, usize),
    pub whole_form: (Duration, usize),
    /// The JSON each form makes (what a validator holds while it persists one).
    pub json_bytes: (usize, usize),
    /// A restart from each form, to the digest.
    pub restore_store_form: Duration,
    pub restore_whole_form: Duration,
}

/// Measures a ledger of `releases` registered releases, its bodies in a record store in a
/// temporary directory.
pub fn measure_persisted(releases: usize, rounds: usize) -> Result<PersistedSample, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (mut ledger, store) = register_releases_stored(releases, dir.path())?;
    ledger.before_checkpoint();
    let want = ledger.digest();
    let mut enc = [Vec::new(), Vec::new()];
    let mut restored = [Vec::new(), Vec::new()];
    let mut sizes = [0; 2];
    let mut forms: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, store_form) in [true, false].into_iter().enumerate() {
            // A new snapshot each round: a whole form is kept once made.
            let lazy = ledger.snapshot();
            let t = Instant::now();
            let app_state = if store_form {
                lazy.clone()
            } else {
                // Without a store form: encoded whole, as a ledger without a store persists.
                AppState::new(lazy.bytes().to_vec())
            };
            let encoded = EncodedSnapshot::encode(&Snapshot {
                seq: Seq(releases as u64),
                app_state,
                nonces: Default::default(),
            });
            enc[i].push(t.elapsed());
            sizes[i] = encoded.stored_bytes();
            forms[i] = if store_form {
                lazy.bytes_for_store().into_owned()
            } else {
                lazy.bytes().to_vec()
            };
        }
        for (i, form) in forms.iter().enumerate() {
            let mut fresh = Ledger::new(ledger.config().clone());
            fresh.store_bodies_in(std::sync::Arc::new(StoredBodies::new(store.reader())));
            let t = Instant::now();
            let ok = if i == 0 {
                fresh.restore_persisted_if(form, &mut |d| d == want)
            } else {
                fresh.restore_if(form, &mut |d| d == want)
            }
            .map_err(|e| e.to_string())?;
            fresh.before_checkpoint();
            restored[i].push(t.elapsed());
            if !ok || fresh.digest() != want {
                return Err("a restored snapshot is not at the checkpoint's digest".into());
            }
        }
    }
    let [enc_store, enc_whole] = enc;
    let [restore_store, restore_whole] = restored;
    Ok(PersistedSample {
        releases,
        store_form: (median(enc_store), sizes[0]),
        whole_form: (median(enc_whole), sizes[1]),
        json_bytes: (forms[0].len(), forms[1].len()),
        restore_store_form: median(restore_store),
        restore_whole_form: median(restore_whole),
    })
}

pub fn print_persisted(releases: &[usize], rounds: usize) -> Result<(), String> {
    if releases.is_empty() {
        return Ok(());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("Persisted snapshots with the release bodies in a store: the store form (naming them) against the whole form (carrying them), medians of {rounds} rounds:");
    println!("| releases | JSON made | encoded + compressed | stored size | restart: restored to the digest |");
    println!("|---|---|---|---|---|");
    for &n in releases {
        let s = measure_persisted(n, rounds)?;
        println!(
            "| {} | {:.1} / {:.1} MB ({:.2}x) | {:.0} / {:.0} ms ({:.2}x) | {:.1} / {:.1} MB ({:.2}x) | {:.0} / {:.0} ms ({:.2}x) |",
            s.releases,
            s.json_bytes.0 as f64 / 1e6,
            s.json_bytes.1 as f64 / 1e6,
            s.json_bytes.0 as f64 / (s.json_bytes.1 as f64).max(1.0),
            ms(s.store_form.0),
            ms(s.whole_form.0),
            ms(s.store_form.0) / ms(s.whole_form.0).max(1e-9),
            s.store_form.1 as f64 / 1e6,
            s.whole_form.1 as f64 / 1e6,
            s.store_form.1 as f64 / (s.whole_form.1 as f64).max(1.0),
            ms(s.restore_store_form),
            ms(s.restore_whole_form),
            ms(s.restore_store_form) / ms(s.restore_whole_form).max(1e-9),
        );
    }
    Ok(())
}
