//! What the runtime, `scbe status`, the dashboard and the simulator read of a replica: its
//! position (view, epoch, executed, stable checkpoint), its epoch chain, what it suspects,
//! its clients' nonces and the inputs it dropped. Reading never changes the replica, except
//! [`Replica::state_digest_now`], which may finish hashing the application state.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::suspicion::Suspicion;
use super::Replica;
use crate::consensus::codec::Codec;
use crate::consensus::message::CheckpointCert;
use crate::consensus::nonce::NonceError;
use crate::consensus::state_machine::StateMachine;
use crate::consensus::types::{Digest, ReplicaId, Seq, View};
use crate::consensus::{state_digest, EpochChain, EpochLink, ReplicaConfig, Snapshot, Status};
use crate::crypto::PublicKey;

impl<A: StateMachine> Replica<A> {
    pub fn id(&self) -> ReplicaId {
        self.cfg.id
    }
    pub fn config(&self) -> &ReplicaConfig {
        &self.cfg
    }
    pub fn view(&self) -> View {
        self.view
    }
    /// The epoch of the validator set in force (0: the genesis set).
    pub fn epoch(&self) -> u64 {
        self.cfg.directory.epoch()
    }
    /// Whether this replica's key is out of the validator set in force (removed, rotated to a
    /// key this process does not hold, or rotated to this one in an epoch it has not reached
    /// yet): it votes on nothing, and catches up by state transfer in case a later epoch puts
    /// its key in force.
    pub fn observing(&self) -> bool {
        !self.cfg.directory.in_force(self.cfg.id, &self.key.public())
    }
    pub fn status(&self) -> Status {
        self.status
    }
    pub fn last_executed(&self) -> Seq {
        self.last_executed
    }
    pub fn stable_checkpoint(&self) -> &CheckpointCert {
        &self.stable
    }
    /// The replicated state at the stable checkpoint (the application's and the nonce table),
    /// when the replica holds a snapshot there (what state transfer serves, and what proves parts of it). A replica counts a
    /// checkpoint stable only on its own matching digest, or once it installed the quorum's
    /// snapshot there, so this is the certified state; whoever reads a part of it checks it
    /// against the certificate all the same.
    pub fn stable_snapshot(&self) -> Option<&Snapshot> {
        self.snapshots.get(&self.stable.seq).map(|(_, s)| s)
    }
    /// The snapshot state transfer serves a replica behind: the stable checkpoint's, or the
    /// one before an epoch boundary still short of its proof. A runtime encodes it off its loop
    /// before handing the core a request that would read its bytes.
    pub fn serving_snapshot(&self) -> Option<&Snapshot> {
        self.snapshots
            .get(&self.serving_stable().seq)
            .map(|(_, s)| s)
    }
    /// The set in force and the links that prove it from the genesis (for orders to agents).
    pub fn epoch_chain(&self) -> EpochChain {
        let epoch = self.epoch();
        EpochChain {
            set: self.cfg.directory.set(),
            links: self
                .epoch_links
                .range(..=epoch)
                .map(|(_, l)| l.clone())
                .collect(),
        }
    }
    /// The links of the validator-set chain this replica holds, by the epoch each leads to.
    pub fn epoch_links(&self) -> &BTreeMap<u64, EpochLink> {
        &self.epoch_links
    }
    /// Whether this replica holds the proof of the validator set in force: the genesis, or
    /// the link whose boundary checkpoint a quorum of the old set signed. Until then a
    /// validator the change re-keyed keeps running on its old key (replicas still behind the
    /// boundary can open nothing its new key signs, and it may be the only one to serve them),
    /// and its store refuses the new key.
    pub fn epoch_proven(&self) -> bool {
        let epoch = self.epoch();
        epoch == 0 || self.epoch_links.contains_key(&epoch)
    }
    pub fn genesis_digest(&self) -> Digest {
        self.genesis
    }
    /// The view whose primary this replica suspects without having left it (`suspicion.rs`).
    pub fn suspecting(&self) -> Option<View> {
        self.suspicion.map(Suspicion::view)
    }
    /// Why this replica suspects its primary, for operators: `"silent"` (not heard from for the
    /// silence tolerated) or `"stalled"` (requests waited a request timeout with nothing
    /// executed).
    pub fn suspicion_cause(&self) -> Option<&'static str> {
        self.suspicion.map(|s| match s {
            Suspicion::Silent(_) => "silent",
            Suspicion::Stalled(_) => "stalled",
        })
    }
    /// Heartbeat intervals of silence this backup tolerates from its primary now.
    pub fn silence_tolerated(&self) -> u32 {
        self.silence_allowed()
    }
    pub fn is_primary(&self) -> bool {
        self.cfg.primary(self.view) == self.cfg.id
    }
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }
    /// The highest nonce executed for `signer` (0 if none).
    pub fn last_nonce(&self, signer: &PublicKey) -> u64 {
        self.nonces.get(signer).map_or(0, |w| w.highest)
    }
    /// The highest nonce executed for every signer that has one.
    pub fn last_nonces(&self) -> impl Iterator<Item = (&PublicKey, u64)> {
        self.nonces.iter().map(|(k, w)| (k, w.highest))
    }
    /// Whether a request of `signer` with `nonce` could still execute.
    pub fn check_nonce(&self, signer: &PublicKey, nonce: u64) -> Result<(), NonceError> {
        self.nonces
            .get(signer)
            .copied()
            .unwrap_or_default()
            .check(nonce)
    }

    pub(super) fn nonce_fresh(&self, signer: &PublicKey, nonce: u64) -> bool {
        self.check_nonce(signer, nonce).is_ok()
    }
    /// The replicated application, as the runtime built it (the ledger in a validator).
    pub fn app(&self) -> &A {
        &self.app
    }
    /// The state digest after the last executed batch, as a checkpoint there would sign it
    /// (what `scbe audit verify` reaches by replaying a complete log). Brings the app's caches
    /// up to date; changes no state.
    pub fn state_digest_now(&mut self) -> Digest {
        self.app.before_checkpoint();
        state_digest(self.last_executed, self.app.digest(), &self.nonces)
    }
    /// The codec this replica signs with (the runtime's wire encoding).
    pub fn codec(&self) -> &Arc<dyn Codec> {
        &self.codec
    }
    /// The checkpoint at which a quorum's state digest differed from this replica's own, while
    /// it has not caught up past it: the replica's state diverged (a bug, damaged storage, or a
    /// configuration that differs from its peers').
    pub fn diverged_at(&self) -> Option<Seq> {
        self.diverged_at
    }
    /// Dropped inputs by reason (for metrics and the simulator's report).
    pub fn dropped(&self) -> &BTreeMap<&'static str, u64> {
        &self.dropped
    }
}
