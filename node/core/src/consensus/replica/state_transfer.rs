//! State transfer (catch-up): a replica that learns it is behind asks its peers for decided
//! batches; a commit certificate is proof enough, whatever view the requester is in. Far behind,
//! it first installs a peer's stable checkpoint snapshot, checked against the checkpoint
//! certificate. A snapshot larger than one message travels in chunks of `max_transfer_bytes`,
//! assembled here and installed only once whole and matching the certificate, so a ledger of any
//! size can be transferred and no response exceeds the message cap.

use std::sync::Arc;

use super::super::action::{Action, Record};
use super::super::certificate::{check_checkpoint_cert, check_commit_cert};
use super::super::limits;
use super::super::message::{
    CheckpointCert, Kind, Signed, Snapshot, SnapshotPart, StateRequest, StateResponse,
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
        let mut start = req.after;
        let mut snapshot = None;
        let mut bytes = 0;
        let mut snapshot_complete = true;
        if req.after < self.stable.seq {
            if let Some((_, snap)) = self.snapshots.get(&self.stable.seq) {
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
                    self.stable.clone(),
                    part,
                    SnapshotPart {
                        offset: offset as u64,
                        total: total as u64,
                    },
                ));
                start = self.stable.seq;
            }
        }
        let mut decided = Vec::new();
        let mut s = start.next();
        // Decided batches follow only the snapshot's last chunk, within the same byte budget.
        while snapshot_complete
            && s <= self.last_executed
            && decided.len() < self.cfg.max_transfer_batches
            && bytes < self.cfg.max_transfer_bytes
        {
            match self.slots.get(&s).and_then(|slot| slot.committed.clone()) {
                Some(c) => {
                    bytes += limits::batch_bytes(&c.pre_prepare.value().batch);
                    decided.push(c);
                }
                None => break,
            }
            s = s.next();
        }
        if snapshot.is_none() && decided.is_empty() {
            return;
        }
        let resp = StateResponse { snapshot, decided };
        let signed = self.seal(resp, Kind::StateResponse, |c, v| c.encode_state_response(v));
        self.out.push(Action::Send {
            to: from,
            envelope: Arc::clone(signed.envelope()),
        });
    }

    pub(super) fn on_state_response(&mut self, resp: StateResponse, from: ReplicaId) {
        if let Some((cert, chunk, part)) = resp.snapshot {
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
                if newer && check_checkpoint_cert(&self.cfg, &cert, self.genesis).is_ok() {
                    self.assembling = None;
                    return Ok(None);
                }
                return Err("state transfer chunk of a snapshot not being assembled");
            }
            // Checked before holding any bytes for it.
            check_checkpoint_cert(&self.cfg, &cert, self.genesis)
                .map_err(|_| "state transfer with an invalid checkpoint certificate")?;
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

    /// Installs a peer's checkpoint snapshot after checking it against the certificate.
    fn install_snapshot(
        &mut self,
        cert: CheckpointCert,
        snap: Snapshot,
    ) -> Result<(), &'static str> {
        check_checkpoint_cert(&self.cfg, &cert, self.genesis)
            .map_err(|_| "state transfer with an invalid checkpoint certificate")?;
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
