//! The PBFT replica (Castro & Liskov, OSDI '99) as a pure state machine.
//!
//! # Contract
//!
//! 1. The runtime calls [`Replica::handle`] with one [`Input`] at a time and performs the returned
//!    [`Action`]s in order. Every `Persist` must be durable before any later `Send`/`Broadcast`
//!    leaves the process; one fsync may cover all persists of one call. A runtime that handles
//!    many inputs per fsync brackets them with [`Replica::begin_turn`] / [`Replica::end_turn`]:
//!    client requests received in the turn are then relayed to peers together, in one `Relay`
//!    (see `replica/relay.rs`), instead of one envelope each.
//! 2. Peer messages arrive as `Signed<Message>`: the edge verified the signature and resolved the
//!    signer before decoding. The replica checks roles (only the primary pre-prepares), views,
//!    watermarks and certificates, and drops anything else with a counted reason; it never panics
//!    on peer input.
//! 3. Sizes (see [`super::limits`]): requests, batches and the bytes of batches held above the
//!    stable checkpoint are capped so that every message below fits under the message cap.
//!    Normal case (§4.2): the primary of view `v` batches pending requests into
//!    `PrePrepare(v, n, d, batch)` for `h < n <= h + L`. A backup accepts it if it is from the
//!    primary, in the window, consistent with its vote guard, and has no conflicting pre-prepare;
//!    it then signs under its vote guard's reservation (one persisted record per window of
//!    seqs, `replica/vote_guard.rs`) and broadcasts `Prepare(v, n, d)`. With the pre-prepare
//!    and `q - 1` matching prepares from distinct backups a replica is *prepared*: it persists the
//!    prepared certificate and broadcasts `Commit(v, n, d)`. With `q` matching commits the batch is
//!    *committed*; committed batches execute strictly in sequence order and are delivered with
//!    their commit certificate.
//! 4. Requests carry a per-signer nonce. A request whose nonce is not above the signer's last
//!    executed nonce is dropped at the door, and skipped at execution if a Byzantine primary
//!    slipped it into a batch, so no request takes effect twice.
//! 5. Checkpoints (§4.3): after executing a multiple of `K`, or once the batches executed since
//!    the last checkpoint reach `checkpoint_bytes` (deterministic: it depends only on the decided
//!    sequence), the replica snapshots its state and broadcasts `Checkpoint(n, state_digest)`.
//!    `q` matching checkpoints make it stable; the low
//!    watermark `h` moves to `n` and everything at or below is garbage-collected. Every status
//!    tick re-sends the replica's newest checkpoint at or above the stable one, so a lost
//!    checkpoint cannot leave the window full for good.
//! 6. View change (§4.4): a backup whose oldest pending request has not executed within the
//!    request timer (or whose primary stayed silent, see `replica/heartbeat.rs`) first only
//!    suspects the view and says so (`Suspect`); once `f` others suspect it too (see
//!    `replica/suspicion.rs`), it broadcasts `ViewChange(v + 1, stable checkpoint + proof,
//!    prepared certificates)`. It stops accepting normal-case messages. Once `q` view changes for `v + 1`
//!    are in, it arms the view-change timer; the new primary sends `NewView` with the view changes
//!    and re-issued pre-prepares (null batches for gaps), which backups recompute and check. The
//!    timeout doubles with every consecutive failed view and resets after progress. A replica that
//!    sees `f + 1` view changes for higher views joins the smallest of them (§4.5.2).
//! 7. Catch-up: a replica that learns it is behind (a stable checkpoint it has not reached, a
//!    request timer firing) asks peers for decided batches; a commit certificate with `q` valid
//!    signatures is proof enough, so one honest peer suffices. Far behind, it first installs the
//!    peer's stable checkpoint snapshot, checked against the checkpoint certificate.
//! 8. Restart: [`Replica::restore`] replays the persisted [`Record`]s. The vote guard makes sure
//!    the restarted replica never signs a pre-prepare or prepare conflicting with one it signed
//!    before (it signs nothing new where its earlier life held a reservation, and a primary
//!    that therefore cannot propose leaves its view), and a view change it sent is resent byte
//!    for byte.
//! 9. A validator's own requests (its votes, rollout evidence) are retransmitted on every
//!    status tick until they execute: it is its own client.
//!
//! Timers are data ([`Timer`]); the runtime maps them to durations. Nothing here reads a clock,
//! draws randomness, or iterates a hash map.

mod checkpoint;
mod epoch;
mod heartbeat;
mod inspect;
mod normal_case;
mod relay;
mod requests;
mod restore;
mod silence_gauge;
mod slot;
mod state_digest;
mod state_transfer;
/// The largest snapshot a replica assembles from a peer's chunks (the scenario tests read it).
pub use state_transfer::MAX_SNAPSHOT_BYTES;
mod suspicion;
/// How long a suspicion stays counted, in heartbeat intervals (the scenario tests read it).
pub use suspicion::{SUSPICION_TICKS, WARNING_TICKS};
mod view_change;
mod vote_guard;

pub use state_digest::{nonce_parts, state_digest, state_digest_of, NoncePart};

use slot::Slot;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::crypto::{Keypair, PublicKey};

use super::action::{Action, Input, Record, Timer, TimerKind};
use super::codec::Codec;
use super::config::{ConfigError, ReplicaConfig};
use super::execution::CheckpointClock;
use super::message::{
    retype, Checkpoint, CheckpointCert, CommitCert, Kind, Message, NewView, PrePrepare, Principal,
    Request, Signed, Snapshot, ViewChange, Vote,
};
use super::nonce::NonceWindow;
use super::state_machine::{SnapshotError, StateMachine};
use super::types::{Digest, ReplicaId, Seq, View};

/// Normal-case messages further ahead than this many views are dropped, not buffered.
const MAX_VIEWS_AHEAD: u64 = 16;
/// Own pending requests resent per status tick.
const MAX_OWN_RETRANSMIT: usize = 64;

/// A request's identity: who signed it and its nonce.
type RequestId = (PublicKey, u64);

/// Whether the replica is working in its view or trying to leave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Normal,
    /// Sent a view change for the current `view` and waits for its new-view.
    ViewChanging,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("snapshot at {0} does not match its stable checkpoint digest")]
    SnapshotMismatch(Seq),
    #[error("the decided batch at {0} is missing: cannot re-execute up to the stable checkpoint")]
    MissingDecided(Seq),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// The PBFT replica. See the module documentation for the contract.
pub struct Replica<A: StateMachine> {
    /// The configuration of the epoch in force (its validator set, see `replica/epoch.rs`).
    cfg: ReplicaConfig,
    /// The previous epoch's, while this replica still counts its checkpoints at the boundary.
    previous: Option<Box<ReplicaConfig>>,
    /// An epoch whose validator set the application holds but consensus cannot run (fewer
    /// than 4, a message over the cap): the old set stays in force (`replica/epoch.rs`).
    refused_epoch: Option<u64>,
    /// The validator-set chain this replica made or checked, by the epoch each link leads to:
    /// what it proves later sets with to replicas behind (`replica/state_transfer.rs`).
    epoch_links: BTreeMap<u64, super::EpochLink>,
    key: Keypair,
    codec: Arc<dyn Codec>,
    app: A,
    genesis: Digest,

    view: View,
    status: Status,
    /// Consecutive views without progress; timers last `base << backoff`.
    backoff: u32,
    /// The backoff before the current view started: a new view's timers keep this doubling
    /// until it executes something, and if it fails the doubling resumes from here (PBFT's
    /// liveness needs timeouts that grow until a view can finish; churn must not leave them
    /// long afterwards, so the first execution resets both).
    backoff_before_view: u32,

    slots: BTreeMap<Seq, Slot>,
    last_executed: Seq,
    /// Next sequence number this replica assigns when primary.
    next_seq: Seq,
    /// Requests in batches this primary has proposed in the current view.
    proposed: BTreeSet<RequestId>,
    /// Arrival number from which `pending` may hold requests not proposed in this view: every
    /// pending request below it is in `proposed`. Only spares the primary a scan over the
    /// proposed prefix of its queue (thousands of requests under load) at every proposal.
    propose_from: u64,
    /// What this replica signed a pre-prepare or prepare for, per (view, seq), and where an
    /// earlier life may have (`replica/vote_guard.rs`).
    guard: vote_guard::VoteGuard,

    stable: CheckpointCert,
    /// While the stable checkpoint is an epoch boundary whose proof is short of the old set's
    /// quorum: the stable checkpoint before it, which state transfer serves instead (with the
    /// decided batches up to the boundary, kept until the proof completes).
    before_boundary: Option<CheckpointCert>,
    /// Own state at checkpoints at or above the stable one: (state digest, snapshot).
    snapshots: BTreeMap<Seq, (Digest, Snapshot)>,
    /// The commit certificates of the batches just at and below the last pruning stable
    /// checkpoint, as many as one state response carries (`state_transfer.rs`): a replica a
    /// few batches behind that checkpoint catches up from them instead of from the whole
    /// snapshot.
    decided_tail: BTreeMap<Seq, CommitCert>,
    checkpoint_votes: BTreeMap<Seq, BTreeMap<ReplicaId, Signed<Checkpoint>>>,
    /// Latest checkpoint seen from each replica beyond our window: f + 1 of them mean we are behind.
    ahead: BTreeMap<ReplicaId, Seq>,
    /// Executed nonces per signer (the highest and a window below it).
    nonces: BTreeMap<PublicKey, NonceWindow>,
    /// Where the next checkpoint falls (restarted at every checkpoint, so a replica restored
    /// from one agrees with the others).
    checkpoint_clock: CheckpointClock,
    /// Bytes of batches executed since the last snapshot this replica persisted (restarts
    /// re-execute them): a large snapshot is persisted again once they reach its size.
    bytes_since_persisted: usize,
    /// Checkpoints at or below this seq persist their snapshot whatever its size: they replace
    /// ones this replica took on a diverged state (see `install_snapshot`), which a restart
    /// would otherwise start from.
    persist_snapshots_through: Seq,

    /// Requests waiting to execute, in arrival order.
    pending: BTreeMap<u64, Signed<Request>>,
    pending_ids: BTreeMap<RequestId, u64>,
    arrivals: u64,
    /// Client requests received in the open turn, relayed together when it ends.
    relay_held: Vec<Signed<Request>>,
    turn_open: bool,

    /// Latest view change from each replica (bounded: one per replica).
    view_changes: BTreeMap<ReplicaId, Signed<ViewChange>>,
    my_view_change: Option<Signed<ViewChange>>,
    /// The new-view that started the current view (forwarded to replicas still changing view).
    new_view: Option<Signed<NewView>>,

    /// Normal-case messages for a view we have not entered yet, in arrival order, replayed when
    /// we enter it (a new primary's first pre-prepare often overtakes its new-view).
    future: BTreeMap<u64, Signed<Message>>,
    future_per_peer: BTreeMap<ReplicaId, usize>,
    future_arrivals: u64,
    /// Timers currently armed, exactly as set; a firing that does not match is stale.
    armed: BTreeMap<TimerKind, Timer>,
    timer_ids: u64,
    /// Heartbeat intervals the primary of the current view has been silent (backups, normal
    /// operation); reset by its heartbeat or any of its messages for this view.
    primary_silent: u32,
    /// The silences its primaries kept before being heard again, which set how much silence
    /// this backup tolerates (`replica/silence_gauge.rs`).
    silence_gauge: silence_gauge::SilenceGauge,
    /// This replica's suspicion of its view's primary (see `replica/suspicion.rs`).
    suspicion: Option<suspicion::Suspicion>,
    /// Latest suspicion (or warning) from each peer.
    suspects: BTreeMap<ReplicaId, suspicion::PeerSuspect>,
    /// This replica's own latest `Suspect`, suspicion or warning: (view, `ticks` when it was
    /// sent). It outlives them for as long as peers count it (`suspicion.rs`, following those
    /// who left).
    suspect_sent: Option<(View, u64)>,
    /// When this replica last answered each peer's suspicion of a view it has left with its
    /// new-view (`ticks`), so a stranded peer that re-sends every interval is not sent a whole
    /// new-view every interval (`suspicion.rs`).
    /// Keyed by the view of the new-view offered: a newer one is offered at once.
    new_view_offered: BTreeMap<ReplicaId, (View, u64)>,
    /// Heartbeat intervals since start: the clock suspicions age by.
    ticks: u64,
    /// State transfer already requested for this `last_executed` (one probe per position).
    state_requested: Option<Seq>,
    /// A peer's stable snapshot being received in chunks: its certificate, its sequence
    /// number and nonces, and the application bytes received so far.
    assembling: Option<(CheckpointCert, Snapshot, Vec<u8>)>,

    dropped: BTreeMap<&'static str, u64>,
    /// A quorum's checkpoint at this seq disagreed with this replica's own state; cleared once
    /// it is past it again (by its own checkpoints or a peer's snapshot).
    diverged_at: Option<Seq>,
    out: Vec<Action>,
}

/// The epoch a message was cast in (through its view), for the messages that name a view.
fn message_epoch(m: &Message) -> Option<u64> {
    let view = match m {
        Message::PrePrepare(pp) => pp.view,
        Message::Prepare(v) | Message::Commit(v) => v.view,
        Message::ViewChange(vc) => vc.new_view,
        Message::NewView(nv) => nv.view,
        Message::Heartbeat(hb) => hb.view,
        Message::Suspect(s) => s.view,
        Message::Request(_)
        | Message::Checkpoint(_)
        | Message::StateRequest(_)
        | Message::StateResponse(_)
        | Message::Relay(_) => return None,
    };
    Some(view.epoch())
}

impl<A: StateMachine> Replica<A> {
    /// A fresh replica at genesis.
    pub fn new(
        cfg: ReplicaConfig,
        key: Keypair,
        codec: Arc<dyn Codec>,
        app: A,
    ) -> Result<Self, ConfigError> {
        if cfg.directory.validator_key(cfg.id) != Some(&key.public()) {
            return Err(ConfigError::KeyMismatch(cfg.id.0));
        }
        Self::build(cfg, key, codec, app)
    }

    /// A replica at genesis whose key is checked later (a restart may reach an epoch where
    /// the key is another than the genesis one).
    fn build(
        cfg: ReplicaConfig,
        key: Keypair,
        codec: Arc<dyn Codec>,
        app: A,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let genesis = state_digest(Seq(0), app.digest(), &BTreeMap::new());
        Ok(Self {
            stable: CheckpointCert {
                seq: Seq(0),
                state_digest: genesis,
                next_set: None,
                proof: Vec::new(),
            },
            before_boundary: None,
            cfg,
            previous: None,
            refused_epoch: None,
            epoch_links: BTreeMap::new(),
            key,
            codec,
            app,
            genesis,
            view: View(0),
            status: Status::Normal,
            backoff: 0,
            backoff_before_view: 0,
            slots: BTreeMap::new(),
            last_executed: Seq(0),
            next_seq: Seq(1),
            proposed: BTreeSet::new(),
            propose_from: 0,
            guard: vote_guard::VoteGuard::default(),
            snapshots: BTreeMap::new(),
            decided_tail: BTreeMap::new(),
            checkpoint_votes: BTreeMap::new(),
            ahead: BTreeMap::new(),
            nonces: BTreeMap::new(),
            checkpoint_clock: CheckpointClock::default(),
            bytes_since_persisted: 0,
            persist_snapshots_through: Seq(0),
            pending: BTreeMap::new(),
            pending_ids: BTreeMap::new(),
            arrivals: 0,
            relay_held: Vec::new(),
            turn_open: false,
            view_changes: BTreeMap::new(),
            my_view_change: None,
            new_view: None,
            future: BTreeMap::new(),
            future_per_peer: BTreeMap::new(),
            future_arrivals: 0,
            armed: BTreeMap::new(),
            timer_ids: 0,
            primary_silent: 0,
            silence_gauge: silence_gauge::SilenceGauge::default(),
            suspicion: None,
            suspects: BTreeMap::new(),
            suspect_sent: None,
            new_view_offered: BTreeMap::new(),
            ticks: 0,
            state_requested: None,
            assembling: None,
            dropped: BTreeMap::new(),
            diverged_at: None,
            out: Vec::new(),
        })
    }

    /// Arms the replica's periodic timers; call once after [`Replica::new`] (restore does it
    /// itself).
    pub fn start(&mut self) -> Vec<Action> {
        self.set_timer(TimerKind::Status);
        self.set_timer(TimerKind::Heartbeat);
        std::mem::take(&mut self.out)
    }

    // ----- entry point -----------------------------------------------------------------------

    /// Handles one input; returns what the runtime must do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        if self.observing() {
            self.handle_observing(input);
            return std::mem::take(&mut self.out);
        }
        match input {
            Input::ClientRequest(r) => self.on_request(r, true),
            Input::Message(m) => self.on_message(m),
            Input::Timeout(t) => self.on_timeout(t),
            Input::ReplacePrimary { view } => {
                if view == self.view && self.status == Status::Normal {
                    self.start_view_change(view.next());
                } else {
                    self.drop_input("replace-primary for a view already left");
                }
            }
        }
        if !self.turn_open {
            self.flush_relays();
        }
        std::mem::take(&mut self.out)
    }

    fn drop_input(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
    }

    fn on_message(&mut self, m: Signed<Message>) {
        if let Message::Request(r) = m.value() {
            let r = retype(&m, r.clone());
            return self.on_request(r, false);
        }
        let Some(from) = m.validator() else {
            return self.drop_input("protocol message from a non-validator");
        };
        if from == self.cfg.id {
            return self.drop_input("own message echoed back");
        }
        if !self.cfg.directory.in_force(from, m.signer()) {
            // A retired key (its validator removed or re-keyed) counts only for the old set's
            // checkpoint at the boundary; it may still ask for state, to learn it was retired.
            return match m.value() {
                Message::Checkpoint(c) => self.on_boundary_checkpoint(retype(&m, *c), from),
                Message::StateRequest(r) => self.on_state_request(*r, from),
                // A key of a set this replica has not reached: how it catches up when the
                // peers were re-keyed while it was down.
                Message::StateResponse(r) => {
                    self.on_state_response_under_a_later_key(r.clone(), from, m.signer())
                }
                _ => self.drop_input("message signed by a key not in force"),
            };
        }
        if let Some(epoch) = message_epoch(m.value()) {
            if epoch < self.epoch() {
                return self.drop_input("message from an earlier epoch");
            }
            if epoch > self.epoch() {
                // Peers moved on to a validator set this replica has not reached: the status
                // tick's state request catches it up across the boundary.
                return self.drop_input("message from a later epoch");
            }
        }
        let view = match m.value() {
            Message::PrePrepare(pp) => Some(pp.view),
            Message::Prepare(v) | Message::Commit(v) => Some(v.view),
            _ => None,
        };
        let leads_my_view = match m.value() {
            Message::Heartbeat(hb) => Some(hb.view),
            _ => view,
        } == Some(self.view);
        if leads_my_view && from == self.cfg.primary(self.view) {
            self.primary_heard();
        }
        if let Some(view) = view {
            let ahead =
                view > self.view || (view == self.view && self.status == Status::ViewChanging);
            if ahead {
                return self.buffer_future(m, from, view);
            }
        }
        match m.value() {
            Message::Request(_) => {}
            Message::PrePrepare(pp) => self.on_pre_prepare(retype(&m, pp.clone()), from),
            Message::Prepare(v) => self.on_vote(Kind::Prepare, retype(&m, *v), from),
            Message::Commit(v) => self.on_vote(Kind::Commit, retype(&m, *v), from),
            Message::Checkpoint(c)
                if self.previous.is_some() && c.seq == self.cfg.directory.start() =>
            {
                self.on_boundary_checkpoint(retype(&m, *c), from)
            }
            Message::Checkpoint(c) => self.on_checkpoint(retype(&m, *c), from),
            Message::ViewChange(vc) => self.on_view_change(retype(&m, vc.clone()), from),
            Message::NewView(nv) => self.on_new_view(retype(&m, nv.clone()), from),
            Message::StateRequest(r) => self.on_state_request(*r, from),
            Message::StateResponse(r) => self.on_state_response(r.clone(), from),
            Message::Heartbeat(hb) => self.on_heartbeat(*hb, from),
            Message::Relay(r) => self.on_relay(r, from),
            Message::Suspect(s) => self.on_suspect(*s, from),
        }
    }

    fn buffer_future(&mut self, m: Signed<Message>, from: ReplicaId, view: View) {
        if view.0 > self.view.0.saturating_add(MAX_VIEWS_AHEAD) {
            return self.drop_input("message for a view too far ahead");
        }
        let count = self.future_per_peer.entry(from).or_default();
        if *count >= self.cfg.max_future_per_peer {
            return self.drop_input("future-view buffer full");
        }
        *count += 1;
        self.future_arrivals += 1;
        self.future.insert(self.future_arrivals, m);
    }

    /// On entering a view: replay what was buffered for it, keep what is for later views.
    fn replay_future(&mut self) {
        let buffered = std::mem::take(&mut self.future);
        self.future_per_peer.clear();
        for (_, m) in buffered {
            self.on_message(m);
        }
    }

    // ----- sealing and small helpers ---------------------------------------------------------

    fn me(&self) -> Principal {
        Principal::Validator(self.cfg.id)
    }

    /// Signs `value` as this replica, encoded by the runtime's codec.
    fn seal<T>(&self, value: T, kind: Kind, encode: fn(&dyn Codec, &T) -> Vec<u8>) -> Signed<T> {
        let codec = self.codec.as_ref();
        Signed::seal(value, kind, |v| encode(codec, v), &self.key, self.me())
    }

    fn seal_vote(&self, kind: Kind, vote: Vote) -> Signed<Vote> {
        self.seal(vote, kind, |c, v| c.encode_vote(v))
    }

    fn seal_pre_prepare(&self, pp: PrePrepare) -> Signed<PrePrepare> {
        self.seal(pp, Kind::PrePrepare, |c, v| c.encode_pre_prepare(v))
    }

    /// Bytes of batches held above the stable checkpoint (what a view change would carry),
    /// leaving out slot `except`.
    fn held_bytes(&self, except: Option<Seq>) -> usize {
        self.slots
            .range(self.stable.seq.next()..)
            .filter(|(seq, _)| Some(**seq) != except)
            .map(|(_, slot)| slot.held_bytes())
            .sum()
    }

    fn in_window(&self, seq: Seq) -> bool {
        seq > self.stable.seq && seq.0 <= self.stable.seq.0 + self.cfg.window
    }

    fn persist(&mut self, record: Record) {
        self.out.push(Action::Persist(record));
    }

    fn broadcast<T>(&mut self, signed: &Signed<T>) {
        self.out
            .push(Action::Broadcast(Arc::clone(signed.envelope())));
    }

    fn set_timer(&mut self, kind: TimerKind) {
        // A view installed after failed ones keeps their doubling until something executes
        // in it (PBFT §4.5.2: the timer covers the new view's first execution, not only its
        // installation). With base timers there, a view whose first decision takes longer than
        // the base is abandoned at the base timeout, and so is every view after it.
        let backoff = if matches!(kind, TimerKind::Status | TimerKind::Heartbeat) {
            0
        } else {
            self.failed_views()
        };
        self.timer_ids += 1;
        let t = Timer {
            kind,
            view: self.view,
            backoff,
            id: self.timer_ids,
        };
        self.armed.insert(kind, t);
        self.out.push(Action::SetTimer(t));
    }

    fn cancel_timer(&mut self, kind: TimerKind) {
        if self.armed.remove(&kind).is_some() {
            self.out.push(Action::CancelTimer(kind));
        }
    }

    /// The request timer runs while requests wait, on backups and on any replica changing view
    /// (where it paces state probes and view-change retransmission).
    fn arm_request_timer(&mut self, restart: bool) {
        let wants =
            !self.pending.is_empty() && (self.status == Status::ViewChanging || !self.is_primary());
        if !wants {
            self.cancel_timer(TimerKind::Request);
        } else if restart || !self.armed.contains_key(&TimerKind::Request) {
            self.set_timer(TimerKind::Request);
        }
    }
}
