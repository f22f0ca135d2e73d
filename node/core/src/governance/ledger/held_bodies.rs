//! Moving release bodies from the ledger's memory to its body store
//! ([`crate::governance::body_store`]).
//!
//! A body is registered held (the batch that registered it, or the next, may read it at once),
//! and goes out through [`super::Fresh::bodies`]: the runtime writes it in the turn's commit.
//! At each checkpoint the ledger asks the store about the bodies it still holds and keeps only
//! the digest of those the store has ([`crate::governance::ReleaseBody::stored`]); a body whose
//! write has not landed yet is asked about again at the next. A restored or transferred state
//! arrives with every body held: those the store already has (a restart) become stored at
//! once, the others go out as new ones.
//!
//! None of this is replicated or digested: a held and a stored body serialise, compare and
//! decode the same, so where a body is changes no decision.

use std::sync::Arc;

use compact_str::CompactString;

use super::entry_map::EntryMap;
use super::state::ReleaseEntry;
use super::Ledger;
use crate::governance::body_store::{BodyKey, BodyStore, SharedBodyStore};
use crate::governance::release_body::ReleaseBody;

pub(super) struct HeldBodies {
    store: SharedBodyStore,
    /// Versions whose bodies are held until the store has them, with the bodies' keys.
    held: Vec<(CompactString, BodyKey)>,
}

impl Ledger {
    /// Keeps release bodies in `store` rather than in memory (see the module doc). Turns on
    /// [`Ledger::keep_fresh`]: the runtime must write [`super::Fresh::bodies`] to `store`.
    pub fn store_bodies_in(&mut self, store: Arc<dyn BodyStore>) {
        self.keep_fresh();
        // One handle, shared by every stored body and by the snapshots read back.
        let store = SharedBodyStore::new(store);
        self.body_source = Some(store.clone());
        self.bodies = Some(HeldBodies {
            store,
            held: Vec::new(),
        });
        self.offload_installed_bodies();
    }

    /// Reads the bodies that snapshots persisted with [`Ledger::store_bodies_in`] name, from
    /// `store`, while keeping new ones in memory: a validator whose operator turned the store
    /// off restores what it persisted with it on. Bodies restored that way stay stored.
    pub fn read_stored_bodies_from(&mut self, store: Arc<dyn BodyStore>) {
        self.body_source = Some(SharedBodyStore::new(store));
    }

    /// How many release bodies the ledger holds in memory, waiting for its store (0 without
    /// one).
    pub fn bodies_held(&self) -> usize {
        self.bodies.as_ref().map_or(0, |b| b.held.len())
    }

    /// A body just registered under `version` at `seq`: out to the store, held until it is
    /// there.
    pub(super) fn hold_body(&mut self, version: &str, seq: u64, body: &ReleaseBody) {
        if self.bodies.is_none() {
            return;
        }
        // A held body's JSON is in memory: this does not fail.
        let Ok(json) = body.json() else {
            return;
        };
        let key = BodyKey {
            seq,
            digest: body.digest(),
        };
        let json = json.into_owned();
        self.send_out(version.into(), key, json);
    }

    /// Hands `json` to the runtime for the store ([`super::Fresh::bodies`]) and holds it until
    /// the store has it.
    fn send_out(&mut self, version: CompactString, key: BodyKey, json: String) {
        if let Some(bodies) = self.bodies.as_mut() {
            bodies.held.push((version, key));
        }
        self.with_fresh(|f| f.bodies.push((key, json)));
    }

    /// Makes stored each of `candidates` (held bodies) the store now has, asked in one read;
    /// returns the others. An error (a store that cannot answer) leaves them all held: holding
    /// a body longer is always correct.
    fn store_those_stored(
        &mut self,
        candidates: Vec<(CompactString, BodyKey)>,
    ) -> Vec<(CompactString, BodyKey)> {
        let Some(store) = self.bodies.as_ref().map(|b| b.store.clone()) else {
            return candidates;
        };
        let keys: Vec<BodyKey> = candidates.iter().map(|(_, k)| *k).collect();
        let stored = store
            .contains_each(&keys)
            .unwrap_or_else(|_| vec![false; keys.len()]);
        let mut still_held = Vec::new();
        for ((version, key), stored) in candidates.into_iter().zip(stored) {
            if stored {
                swap_to_stored(&mut self.state.releases, &version, key, &store);
            } else {
                still_held.push((version, key));
            }
        }
        still_held
    }

    /// At a checkpoint: every held body the store now has becomes stored.
    pub(super) fn offload_held_bodies(&mut self) {
        let Some(bodies) = self.bodies.as_mut() else {
            return;
        };
        let held = std::mem::take(&mut bodies.held);
        if held.is_empty() {
            return;
        }
        let still_held = self.store_those_stored(held);
        if let Some(bodies) = self.bodies.as_mut() {
            bodies.held = still_held;
        }
    }

    /// After the whole state was replaced: each held body is stored if the store has it, and
    /// otherwise sent out and held.
    pub(super) fn offload_installed_bodies(&mut self) {
        let Some(bodies) = self.bodies.as_mut() else {
            return;
        };
        bodies.held.clear();
        let held: Vec<(CompactString, BodyKey)> = self
            .state
            .releases
            .iter()
            .filter(|(_, e)| e.release.is_held())
            .map(|(v, e)| {
                let key = BodyKey {
                    seq: e.registered_seq,
                    digest: e.release.digest(),
                };
                (v.clone(), key)
            })
            .collect();
        for (version, key) in self.store_those_stored(held) {
            let json = self
                .state
                .releases
                .get(&version)
                .and_then(|e| e.release.json().ok().map(|j| j.into_owned()));
            if let Some(json) = json {
                self.send_out(version, key, json);
            }
        }
    }
}

/// Replaces `version`'s held body with the stored one at `key`, keeping the entry's cached
/// digest (its JSON does not change). `key` is the one [`Ledger::hold_body`] made for this
/// entry's body (the held list is remade whenever the state is replaced, and a version's body
/// never changes), so the body is not hashed again.
fn swap_to_stored(
    releases: &mut EntryMap<CompactString, ReleaseEntry>,
    version: &str,
    key: BodyKey,
    store: &SharedBodyStore,
) {
    releases.replace_same_json(version, |entry| {
        (entry.release.is_held() && entry.registered_seq == key.seq).then(|| ReleaseEntry {
            release: ReleaseBody::stored(key, store.clone()),
            stage: entry.stage,
            registered_seq: entry.registered_seq,
        })
    });
}
