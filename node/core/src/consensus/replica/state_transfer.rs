//! State transfer (catch-up): a replica that learns it is behind asks its peers for decided
//! batches; a commit certificate is proof enough, whatever view the requester is in. Far behind,
//! it first installs a peer's stable checkpoint snapshot, checked against the checkpoint
//! certificate. A snapshot larger than one message travels in chunks of `max_transfer_bytes`,
//! assembled here and installed only once whole and matching the certificate, so a ledger of any
//! size can be transferred and no response exceeds the message cap.
//!
//! Across epochs: a request names the newest validator-set epoch the requester can check, and
//! the response carries the chain's links after it ([`EpochLink`], capped per response). The
//! requester checks each link from the set it trusts before it checks anything a later set
//! signed, and keeps the links (to prove them to others in turn). A peer whose stable
//! checkpoint is signed by a set beyond the links one response carries sends the links alone;
//! the requester asks again from the last one.

use std::sync::Arc;

use crate::crypto::PublicKey;

use super::super::action::{Action, Record};
use super::super::certificate::{check_checkpoint_cert, check_commit_cert};
use super::super::config::ReplicaConfig;
use super::super::epoch_link::EpochLink;
use super::super::limits;
use super::super::message::{
    CheckpointCert, CommitCert, Kind, Signed, Snapshot, SnapshotPart, StateRequest, StateResponse,
};
use super::super::state_machine::StateMachine;
use super::super::types::{ReplicaId, Seq};
use super::{state_digest, Replica, RequestId};

/// Largest snapshot a replica assembles from chunks (a peer claiming more is ignored).
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

impl<A: StateMachine> Replica<A> {
    /// Asks every peer for decided batches after `last_executed`, once per position (and for
    /// the rest of a snapshot being assembled).
    pub(super) fn request_state(&mut self) {
        let after = self.state_wanted_after();
        if self.state_requested == Some(after) {
            return;
        }
        self.state_requested = Some(after);
        let req = StateRequest {
            after,
            snapshot_offset: self.assembled_len(),
            epoch: self.chain_tip_epoch(),
            needs_snapshot: self.diverged_at.is_some(),
        };
        let signed = self.seal_state_request(req);
        self.broadcast(&signed);
    }

    /// Where this replica's good state ends: its last executed batch, or, once a quorum's
    /// checkpoint disagreed with its own state, its stable checkpoint below the divergence.
    /// Asking from there, peers send their stable snapshot even when this replica has executed
    /// as far as they have (asking from what it executed, a diverged replica that kept pace got
    /// nothing back and stayed diverged for good).
    fn state_wanted_after(&self) -> Seq {
        if self.diverged_at.is_some() {
            self.stable.seq
        } else {
            self.last_executed
        }
    }

    fn assembled_len(&self) -> u64 {
        self.assembling
            .as_ref()
            .map_or(0, |(_, _, bytes)| bytes.len() as u64)
    }

    fn seal_state_request(&self, req: StateRequest) -> Signed<StateRequest> {
        self.seal(req, Kind::StateRequest, |c, v| c.encode_state_request(v))
    }

    fn send_state_request(&mut self, to: ReplicaId, snapshot_offset: u64) {
        let req = StateRequest {
            after: self.state_wanted_after(),
            snapshot_offset,
            epoch: self.chain_tip_epoch(),
            needs_snapshot: self.diverged_at.is_some(),
        };
        let signed = self.seal_state_request(req);
        self.out.push(Action::Send {
            to,
            envelope: Arc::clone(signed.envelope()),
        });
    }

    pub(super) fn on_state_request(&mut self, req: StateRequest, from: ReplicaId) {
        if req.after >= self.last_executed {
            return;
        }
        // The chain's links after the requester's epoch: without them it could not check (nor
        // even resolve the signers of) what later validator sets signed.
        let epochs = self.links_after(req.epoch);
        let provable = provable_with(&epochs, req.epoch);
        let serving = self.serving_stable().clone();
        let mut start = req.after;
        let mut snapshot = None;
        let mut bytes = 0;
        let mut snapshot_complete = true;
        let answer = self.answer_for(&req, provable);
        if answer == Answer::LinksFirst {
            snapshot_complete = false;
        } else if answer == Answer::Snapshot {
            if let Some((_, snap)) = self.snapshots.get(&serving.seq) {
                let total = snap.app_state.len();
                let offset = (req.snapshot_offset as usize).min(total);
                let end = total.min(offset + self.cfg.max_transfer_bytes);
                let part = Snapshot {
                    seq: snap.seq,
                    app_state: snap.app_state[offset..end].to_vec().into(),
                    nonces: snap.nonces.clone(),
                };
                bytes = end - offset;
                snapshot_complete = end == total;
                snapshot = Some((
                    serving.clone(),
                    part,
                    SnapshotPart {
                        offset: offset as u64,
                        total: total as u64,
                    },
                ));
                start = serving.seq;
            }
        }
        let mut decided = Vec::new();
        let mut s = start.next();
        // Decided batches follow only the snapshot's last chunk, within the same byte budget,
        // and stop where they reach an epoch the links sent do not prove.
        while snapshot_complete
            && s <= self.last_executed
            && decided.len() < self.cfg.max_transfer_batches
            && bytes < self.cfg.max_transfer_bytes
        {
            match self.decided_at(s) {
                Some(c) if c.pre_prepare.value().view.epoch() <= provable => {
                    bytes += limits::batch_bytes(&c.pre_prepare.value().batch);
                    decided.push(c);
                }
                _ => break,
            }
            s = s.next();
        }
        if snapshot.is_none() && decided.is_empty() && epochs.is_empty() {
            return;
        }
        let resp = StateResponse {
            snapshot,
            decided,
            epochs,
        };
        let signed = self.seal(resp, Kind::StateResponse, |c, v| c.encode_state_response(v));
        self.out.push(Action::Send {
            to: from,
            envelope: Arc::clone(signed.envelope()),
        });
    }

    /// Keeps, at a pruning stable checkpoint `s`, the commit certificates of the batches at and
    /// below it, newest first, as many (and as large) as one state response carries.
    ///
    /// Why: under load a backup is often a batch or two behind when its peers' checkpoint
    /// becomes stable (their commits are still on their way to it), and the primary's
    /// heartbeat tells it so; it asks for state. With the batches pruned, a peer could only
    /// send the whole stable snapshot, every release body included: each
    /// such answer held every peer's loop for 0.5-1.3 s, several times a minute (logged 60 s
    /// runs of `scbe-sim bench --workload register`, ~150,000 releases, issue 27).
    pub(super) fn keep_decided_tail(&mut self, s: Seq) {
        let pruned = self
            .slots
            .range(..=s)
            .filter_map(|(seq, slot)| slot.committed.clone().map(|c| (*seq, c)));
        self.decided_tail.extend(pruned);
        let mut bytes = 0;
        let mut kept = 0;
        let mut cut = None;
        for (seq, c) in self.decided_tail.iter().rev() {
            bytes += limits::batch_bytes(&c.pre_prepare.value().batch);
            kept += 1;
            if kept > self.cfg.max_transfer_batches || bytes > self.cfg.max_transfer_bytes {
                cut = Some(*seq);
                break;
            }
        }
        if let Some(cut) = cut {
            self.decided_tail = self.decided_tail.split_off(&cut.next());
        }
    }

    /// Whether the decided batches kept below the stable checkpoint take a requester in this
    /// epoch (and checking no further) from `req.after` to the checkpoint served, all of this
    /// epoch: then it is sent those (and what follows), not the snapshot. Never for a
    /// requester that diverged.
    fn tail_reaches(&self, req: &StateRequest, provable: u64) -> bool {
        let serving = self.serving_stable().seq;
        let epoch = self.epoch();
        // Across an epoch boundary the requester may need the boundary's snapshot (to void
        // slots of the old set, or to check what the new set signed): the snapshot route, as
        // before. Boundaries are rare; the common case is a backup a few batches behind.
        if req.needs_snapshot
            || req.after >= serving
            || self.before_boundary.is_some()
            || req.epoch != epoch
            || provable != epoch
        {
            return false;
        }
        let needed = serving.0 - req.after.0;
        let kept = self.decided_tail.range(req.after.next()..=serving);
        let mut count = 0;
        for (_, c) in kept {
            if c.pre_prepare.value().view.epoch() != epoch {
                return false;
            }
            count += 1;
        }
        count == needed
    }

    /// Whether a state request would be answered with the stable snapshot's bytes (what a
    /// runtime encodes off its loop before handing the request over).
    pub fn serves_snapshot(&self, req: &StateRequest) -> bool {
        let provable = provable_with(&self.links_after(req.epoch), req.epoch);
        self.answer_for(req, provable) == Answer::Snapshot
    }

    /// How a request from a requester that can check signatures up to epoch `provable` (with
    /// the links sent) is answered, beside the links.
    fn answer_for(&self, req: &StateRequest, provable: u64) -> Answer {
        let serving = self.serving_stable().seq;
        if req.after >= serving {
            return Answer::Batches;
        }
        // A requester that has not executed this epoch's boundary batch is in an older epoch;
        // without the link to this one (its boundary proof short of the old set's quorum), it
        // cannot check a checkpoint this set signed. It is sent the batches up to the boundary,
        // which its own set signed, as far as this replica still holds them: executing the
        // boundary itself takes it into this epoch (simulator seed 225 at n = 7 with a
        // validator removed: two old-set replicas one batch short of the boundary were sent
        // only the new set's snapshot, which they refused for good).
        let start_of_mine = self.cfg.directory.start();
        let mine_unproven = self.epoch() > provable
            && !self.epoch_links.contains_key(&self.epoch())
            && req.after < start_of_mine
            && serving > start_of_mine;
        if mine_unproven {
            return Answer::Batches;
        }
        // Whether the links sent reach the set that signed the stable checkpoint; if not, they
        // go alone and the requester asks again from the last one.
        let stable_provable = self
            .epoch_links
            .range(provable.saturating_add(1)..)
            .next()
            .is_none_or(|(_, l)| l.set.start >= serving);
        if !stable_provable {
            Answer::LinksFirst
        } else if self.tail_reaches(req, provable) {
            Answer::Batches
        } else {
            Answer::Snapshot
        }
    }

    /// The commit certificate of the batch decided at `s`, if this replica still holds it.
    fn decided_at(&self, s: Seq) -> Option<CommitCert> {
        self.slots
            .get(&s)
            .and_then(|slot| slot.committed.clone())
            .or_else(|| self.decided_tail.get(&s).cloned())
    }

    /// A state response from `from` signed with `signer`, which the set this replica is in
    /// does not list: `from` was re-keyed in an epoch this replica has not reached (every peer
    /// may have been, while it was down, and then their responses are all it can catch up
    /// from). The links it carries are checked first, from the chain this replica holds; the
    /// response is taken only if a later set on the chain lists `signer` as `from`'s key. What
    /// it carries is proven by its certificates, as any response's; the key only names the
    /// peer to ask next.
    pub(super) fn on_state_response_under_a_later_key(
        &mut self,
        resp: StateResponse,
        from: ReplicaId,
        signer: &PublicKey,
    ) {
        if let Err(reason) = self.learn_links(resp.epochs.clone()) {
            return self.drop_input(reason);
        }
        let mine = self.epoch();
        let proven = self
            .epoch_links
            .range(mine + 1..)
            .any(|(_, link)| link.set.members.contains(&(from, *signer)));
        if !proven {
            return self.drop_input("state response signed by a key no later set lists");
        }
        self.on_state_response(resp, from)
    }

    pub(super) fn on_state_response(&mut self, resp: StateResponse, from: ReplicaId) {
        // Links cut by count or bytes: the chain may go on beyond them.
        let more_links = !resp.epochs.is_empty();
        let tip = self.chain_tip_epoch();
        if let Err(reason) = self.learn_links(resp.epochs) {
            return self.drop_input(reason);
        }
        if resp.snapshot.is_none() && resp.decided.is_empty() {
            // Links alone: the peer's state is signed by a set beyond them. Ask again from
            // the newest one now proven (each round proves more, so this ends).
            if self.chain_tip_epoch() > tip {
                self.send_state_request(from, self.assembled_len());
            }
            return;
        }
        if let Some((cert, chunk, part)) = resp.snapshot {
            if more_links && self.check_chained_checkpoint(&cert).is_err() {
                // Signed by a set beyond the links one response carries: ask for the rest of
                // the chain (the request names the newest epoch now proven).
                return self.send_state_request(from, self.assembled_len());
            }
            // A diverged replica's state from the divergence on is wrong: it takes a quorum's
            // snapshot there or later even where it executed further.
            let replaces_diverged = self.diverged_at.is_some_and(|d| cert.seq >= d);
            if (cert.seq > self.last_executed || replaces_diverged) && cert.seq > self.stable.seq {
                match self.assemble(cert, chunk, part) {
                    Err(reason) => return self.drop_input(reason),
                    Ok(Some((cert, snap))) => {
                        if let Err(reason) = self.install_snapshot(cert, snap) {
                            return self.drop_input(reason);
                        }
                    }
                    Ok(None) => {
                        // More to come: ask the same peer for the next chunk.
                        let next = self.assembled_len();
                        return self.send_state_request(from, next);
                    }
                }
            }
        }
        // Cut by count or by bytes: the peer has more.
        let bytes: usize = resp
            .decided
            .iter()
            .map(|c| limits::batch_bytes(&c.pre_prepare.value().batch))
            .sum();
        let full = resp.decided.len() >= self.cfg.max_transfer_batches
            || bytes >= self.cfg.max_transfer_bytes;
        for cert in resp.decided {
            let seq = cert.seq();
            if seq <= self.last_executed {
                continue;
            }
            if seq != self.last_executed.next() {
                break;
            }
            if check_commit_cert(&self.cfg, &cert).is_err() {
                return self.drop_input("state transfer with an invalid commit certificate");
            }
            self.slots.entry(seq).or_default().committed = Some(cert.clone());
            self.persist(Record::Committed(cert));
            self.try_execute();
        }
        self.state_requested = None;
        if full {
            self.send_state_request(from, 0);
        }
    }

    /// Adds a snapshot chunk; returns the whole snapshot once every byte is in. Chunks of
    /// another checkpoint restart the assembly; out-of-order chunks are dropped (the requester
    /// asks again from what it holds).
    fn assemble(
        &mut self,
        cert: CheckpointCert,
        chunk: Snapshot,
        part: SnapshotPart,
    ) -> Result<Option<(CheckpointCert, Snapshot)>, &'static str> {
        if part.total > MAX_SNAPSHOT_BYTES {
            return Err("state transfer snapshot larger than this replica assembles");
        }
        if chunk.seq != cert.seq {
            return Err("state transfer snapshot for another sequence number");
        }
        let same = self
            .assembling
            .as_ref()
            .is_some_and(|(c, _, _)| c.seq == cert.seq && c.state_digest == cert.state_digest);
        if !same {
            if part.offset != 0 {
                // A chunk of a newer checkpoint than the one half assembled: the peers moved
                // their stable checkpoint on and serve only their newest snapshot, so the old
                // one can never be finished. Drop it (once the newer certificate checks out) and
                // ask from the start of theirs: the caller asks this peer from offset 0.
                let newer = self
                    .assembling
                    .as_ref()
                    .is_some_and(|(c, _, _)| cert.seq > c.seq);
                if newer && self.check_chained_checkpoint(&cert).is_ok() {
                    self.assembling = None;
                    return Ok(None);
                }
                return Err("state transfer chunk of a snapshot not being assembled");
            }
            // Checked before holding any bytes for it.
            self.check_chained_checkpoint(&cert)?;
            self.assembling = Some((
                cert,
                Snapshot {
                    seq: chunk.seq,
                    app_state: Vec::new().into(),
                    nonces: chunk.nonces.clone(),
                },
                Vec::new(),
            ));
        }
        let Some((_, _, bytes)) = self.assembling.as_mut() else {
            return Err("state transfer assembly lost");
        };
        if part.offset != bytes.len() as u64 {
            return Err("state transfer chunk out of order");
        }
        bytes.extend_from_slice(&chunk.app_state);
        if (bytes.len() as u64) < part.total {
            return Ok(None);
        }
        Ok(self.assembling.take().map(|(cert, mut snap, bytes)| {
            snap.app_state = bytes.into();
            (cert, snap)
        }))
    }

    /// Checks a state-transfer checkpoint certificate against the set in force at its sequence
    /// number, as the chain this replica knows proves it.
    fn check_chained_checkpoint(&self, cert: &CheckpointCert) -> Result<(), &'static str> {
        let cfg = self
            .cfg_at(cert.seq)
            .ok_or("state transfer checkpoint under a set consensus cannot run")?;
        check_checkpoint_cert(&cfg, cert, self.genesis)
            .map_err(|_| "state transfer with an invalid checkpoint certificate")
    }

    /// The newest epoch whose set this replica can check signatures of: its own, or the last
    /// link of the chain it holds beyond it.
    pub(super) fn chain_tip_epoch(&self) -> u64 {
        let mine = self.cfg.directory.epoch();
        // Without the link to its own epoch (its boundary certificate still short of the old
        // quorum), it asks from the epoch before: peers send that link.
        let known = if mine == 0 || self.epoch_links.contains_key(&mine) {
            mine
        } else {
            mine - 1
        };
        self.epoch_links
            .keys()
            .next_back()
            .map_or(known, |e| (*e).max(known))
    }

    /// The configuration of the set that signs checkpoints at `seq`, following the chain's
    /// links from the epoch in force (a boundary's checkpoint is the old set's). Past the last
    /// link it is the last link's set: a certificate of a set this replica has no link to yet
    /// fails its check there. `None` only if the chain names a set consensus cannot run.
    fn cfg_at(&self, seq: Seq) -> Option<ReplicaConfig> {
        let mut cfg = self.cfg.clone();
        for link in self
            .epoch_links
            .range(cfg.directory.epoch() + 1..)
            .map(|(_, l)| l)
        {
            if link.set.start >= seq {
                break;
            }
            // Checked when it was kept; only the configuration is derived again.
            cfg = cfg.for_next_set(&link.set).ok()?;
        }
        Some(cfg)
    }

    /// The links after `epoch`, oldest first, as many as one response carries (always the
    /// first, however large).
    fn links_after(&self, epoch: u64) -> Vec<EpochLink> {
        let mut bytes = 0;
        let mut out = Vec::new();
        for link in self
            .epoch_links
            .range(epoch.saturating_add(1)..)
            .map(|(_, l)| l)
        {
            if out.len() >= limits::MAX_EPOCH_LINKS
                || (!out.is_empty() && bytes + limits::link_bytes(link) > limits::EPOCH_LINKS_BYTES)
            {
                break;
            }
            bytes += limits::link_bytes(link);
            out.push(link.clone());
        }
        out
    }

    /// Checks each link against the chain so far, keeps (and persists) the new ones.
    fn learn_links(&mut self, links: Vec<EpochLink>) -> Result<(), &'static str> {
        for link in links {
            if self.epoch_links.contains_key(&link.epoch()) {
                continue;
            }
            let base = if link.epoch() == self.epoch() {
                // The link to its own epoch, which its boundary certificate has not completed:
                // checked from the set before, which it trusted.
                self.previous.as_deref().cloned()
            } else if link.epoch() > self.chain_tip_epoch() {
                self.cfg_at(Seq(u64::MAX))
            } else {
                continue;
            };
            let base = base.ok_or("state transfer epoch link beyond the chain")?;
            link.follow(&base)
                .map_err(|_| "state transfer epoch link that does not follow the chain")?;
            self.epoch_links.insert(link.epoch(), link.clone());
            self.persist(Record::EpochLink(link));
        }
        Ok(())
    }

    /// Installs a peer's checkpoint snapshot after checking it against the certificate.
    fn install_snapshot(
        &mut self,
        cert: CheckpointCert,
        snap: Snapshot,
    ) -> Result<(), &'static str> {
        self.check_chained_checkpoint(&cert)?;
        if snap.seq != cert.seq {
            return Err("state transfer snapshot for another sequence number");
        }
        let digest = cert.state_digest;
        // Decoded once; installed only if it matches the certificate.
        let matches = self
            .app
            .restore_if(&snap.app_state, &mut |app| {
                state_digest(snap.seq, app, &snap.nonces) == digest
            })
            .map_err(|_| "state transfer snapshot does not decode")?;
        if !matches {
            return Err("state transfer snapshot does not match its certificate");
        }
        self.nonces = snap.nonces.clone();
        if self.last_executed > snap.seq {
            // It replaces a diverged state: the batches above it are executed again from the
            // commit certificates this replica holds, and the checkpoints they reach persist
            // their snapshots again over the diverged ones.
            self.persist_snapshots_through = self.last_executed;
        }
        self.last_executed = snap.seq;
        self.checkpoint_clock.restart();
        let stale: Vec<(RequestId, u64)> = self
            .pending_ids
            .iter()
            .filter(|((k, n), _)| !self.nonce_fresh(k, *n))
            .map(|(id, a)| (*id, *a))
            .collect();
        for (id, arrival) in stale {
            self.pending_ids.remove(&id);
            self.pending.remove(&arrival);
            self.proposed.remove(&id);
        }
        self.snapshots.insert(snap.seq, (digest, snap.clone()));
        // Always persisted: this replica has no decided batches below it to re-execute.
        self.persist(Record::Snapshot(snap));
        self.bytes_since_persisted = 0;
        self.out.push(Action::Restored {
            seq: cert.seq,
            state_digest: digest,
        });
        let seq = cert.seq;
        self.make_stable(cert);
        self.enter_epoch(seq);
        self.backoff = 0;
        self.backoff_before_view = 0;
        self.arm_request_timer(true);
        self.try_execute();
        Ok(())
    }
}

/// How a state request is answered, beside the chain's links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Decided batches from after the requester's last executed one.
    Batches,
    /// The links alone: the requester asks again once it can check the stable checkpoint.
    LinksFirst,
    /// A chunk of the stable snapshot (then, once it is whole, the batches above it).
    Snapshot,
}

/// The newest epoch a requester that checks up to `epoch` can check once it holds `links`.
fn provable_with(links: &[EpochLink], epoch: u64) -> u64 {
    links.last().map_or(epoch, |l| l.epoch())
}
