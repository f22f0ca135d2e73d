//! The task that owns the core: one loop turn at a time, it runs every waiting input through the
//! [`ValidatorStep`] (replica, ledger and fleet watcher), makes the turn's records durable in one
//! commit and only then lets the turn's messages leave, answers clients, and publishes what
//! others read: the executor's view of the fleet, the notifier's view, and the read model
//! (`crate::reads`, published from `runtime/read_publishing.rs`) that every query is answered
//! from. `node.rs` wires it to the network, storage and
//! the clock.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use scbe_core::consensus::{Action, Envelope, Input, Kind, Message, Record, Status};
use scbe_core::crypto::PublicKey;
use scbe_core::governance::ledger::operation_digest;
use scbe_core::governance::release::hex;
use scbe_core::governance::{Ledger, Operation};
use scbe_core::validator_step::{ClientReply, FleetView, Submission, SubmitRefusal, ValidatorStep};

use crate::heartbeat_pacer::HeartbeatPacer;
use crate::inbound::{FleetInput, Inbound};
use crate::metrics::Metrics;
use crate::node::{NodeError, MAX_TURN};
use crate::notify::NotifyView;
use crate::reads::Published;
use crate::snapshot_encoder::SnapshotEncoder;
use crate::snapshot_warmer::{Hold, SnapshotWarmer};
use crate::storage::{EncodedSnapshot, RecordStore};
use crate::timeouts::Timeouts;
use crate::timer_queue::TimerQueue;
use scbe_wire::supervisor::Supervisor;

mod read_publishing;

/// A storage commit this long is logged (a quarter of the default silence allowed).
const SLOW_COMMIT: Duration = Duration::from_millis(50);

/// How long decisions may stay committed without an fsync (`RecordStore::commit_turn` skips it
/// for a turn of decisions alone) before the loop syncs them on its own: what a kill can take
/// from this replica's disk, and what its peers give back. Under load the next prepared
/// certificate's commit, a few milliseconds later, makes them durable first; this bounds the
/// window when none comes.
pub(crate) const UNSYNCED_FOR: Duration = Duration::from_millis(10);

/// A client waiting for its request: when it arrived, which request (operation digest), and
/// where the reply goes.
type Waiter = (
    Instant,
    String,
    oneshot::Sender<Result<ClientReply, SubmitRefusal>>,
);

/// The core's owner and everything it needs within one turn.
pub(crate) struct Runtime {
    pub(crate) id: u32,
    /// Replica, ledger and watcher: every decision this validator takes.
    pub(crate) step: ValidatorStep,
    pub(crate) store: RecordStore,
    /// Encodes large snapshots off this loop (`crate::snapshot_encoder`).
    pub(crate) encoder: SnapshotEncoder,
    /// Encodes the snapshot a peer's state request reads off this loop first
    /// (`crate::snapshot_warmer`).
    pub(crate) warmer: SnapshotWarmer,
    pub(crate) peers: BTreeMap<u32, mpsc::Sender<Arc<Envelope>>>,
    /// Keeps this validator's heartbeats going while it leads and is inside a long turn.
    pub(crate) pacer: Arc<HeartbeatPacer>,
    /// Clients waiting per (signer, nonce): more than one when a request is submitted again
    /// (a retry, another stream) before it is decided; each gets its answer.
    pub(crate) waiters: BTreeMap<(PublicKey, u64), Vec<Waiter>>,
    /// The core's timers, polled by this task between turns.
    pub(crate) timers: TimerQueue,
    pub(crate) timeouts: Timeouts,
    pub(crate) metrics: Arc<Metrics>,
    /// What readers see, published after every turn (`crate::reads`).
    pub(crate) reads: Published,
    /// The active step and whether this validator leads, for the executor.
    pub(crate) fleet_view: watch::Sender<FleetView>,
    /// Whether this validator leads and how far the ledger says each sink was served, for the
    /// notifier.
    pub(crate) notify_view: watch::Sender<NotifyView>,
    /// The fleet as the ledger has it, for the executor and the health streams.
    pub(crate) roster: watch::Sender<crate::fleet::roster::Roster>,
    /// The ledger's fleet generation the roster was last compared at.
    pub(crate) fleet_generation: u64,
    /// (status, suspected view) after the last turn: changes are logged at debug level, the
    /// timeline of a failover.
    pub(crate) consensus_seen: (scbe_core::consensus::Status, Option<u64>),
    pub(crate) started: Instant,
    /// The network edge's directory and TLS pins, moved on when the replica enters an epoch.
    pub(crate) edge: Arc<crate::edge_directory::EdgeDirectory>,
    /// Makes links to validators the quorum added (`crate::peer_dialer`).
    pub(crate) dialer: crate::peer_dialer::PeerDialer,
    /// Links made in a turn, spawned under the supervisor once it ends.
    pub(crate) new_links: Vec<(String, crate::peer_dialer::PeerLink)>,
}

impl Runtime {
    /// The core task: a turn for every batch of waiting inputs (timers that fired included),
    /// until a supervised task ends (then the validator stops with it) or the queue closes.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Inbound>,
        tasks: &mut Supervisor,
    ) -> Result<(), NodeError> {
        self.link_members();
        loop {
            for (name, link) in self.new_links.drain(..) {
                tasks.spawn(name, link.1);
            }
            let unsynced_since = self.store.unsynced_since();
            let sync_at = tokio::time::Instant::from_std(
                unsynced_since.unwrap_or_else(Instant::now) + UNSYNCED_FOR,
            );
            let first = tokio::select! {
                ended = tasks.first_ended() => return Err(ended.into()),
                () = tokio::time::sleep_until(sync_at), if unsynced_since.is_some() => {
                    self.sync_store()?;
                    continue;
                }
                Some(t) = self.timers.next(), if !self.timers.is_empty() => Inbound::Timer(t),
                x = rx.recv() => x.ok_or(NodeError::QueueClosed)?,
                () = self.reads.summary_wanted.notified() => {
                    self.refresh_summary();
                    continue;
                }
                Some(encoded) = self.encoder.finished(), if self.encoder.is_busy() => {
                    self.commit_snapshot(&encoded)?;
                    continue;
                }
                held = self.warmer.finished(), if self.warmer.is_busy() => {
                    if !held.is_empty() {
                        self.turn(held.into_iter().map(Inbound::Warmed).collect())?;
                    }
                    continue;
                }
            };
            let mut turn = vec![first];
            while turn.len() < MAX_TURN {
                match rx.try_recv() {
                    Ok(x) => turn.push(x),
                    Err(_) => break,
                }
            }
            self.turn(turn)?;
            if rx.is_empty() {
                self.settle_reads();
            }
        }
    }

    /// One loop turn: every input through the core (client requests answered from the ledger
    /// when already decided, queries answered from state), the watcher asked what to submit,
    /// then everything the core produced performed (`perform`).
    pub(crate) fn turn(&mut self, turn: Vec<Inbound>) -> Result<(), NodeError> {
        // A heartbeat of a view this validator no longer leads must not be kept going through
        // this turn (the view may have changed in the last one).
        self.forget_heartbeat_unless_leading();
        self.pacer.turn_started(Instant::now());
        let done = self.run_turn(turn);
        self.pacer.turn_ended();
        done
    }

    fn run_turn(&mut self, turn: Vec<Inbound>) -> Result<(), NodeError> {
        let mut actions = Vec::new();
        let mut decide = false;
        // Client requests of the whole turn are relayed to peers together, at its end.
        self.step.begin_turn();
        for input in turn {
            match input {
                Inbound::Peer(m) => {
                    let m = match self.warmer.hold(m, self.step.replica()) {
                        Hold::Handle(m) => m,
                        Hold::Held => continue,
                        Hold::Dropped => {
                            self.metrics.dropped("state requests held while encoding");
                            continue;
                        }
                    };
                    if let Message::PrePrepare(pp) = m.value() {
                        self.timeouts.pre_prepared(pp.seq, Instant::now());
                    }
                    actions.extend(self.step.handle(Input::Message(m)));
                }
                Inbound::Warmed(m) => actions.extend(self.step.handle(Input::Message(m))),
                Inbound::Timer(t) => actions.extend(self.step.handle(Input::Timeout(t))),
                Inbound::Client { request, reply } => {
                    let waiter = (
                        (*request.signer(), request.value().nonce),
                        operation_digest(&request.value().operation),
                    );
                    let store = &self.store;
                    let submitted = self.step.submit(request, |signer, nonce| {
                        tokio::task::block_in_place(|| {
                            store.outcome(&hex(signer.as_bytes()), nonce).ok().flatten()
                        })
                    });
                    match submitted {
                        Ok(Submission::Ordered(a)) => {
                            actions.extend(a);
                            let (key, digest) = waiter;
                            self.waiters.entry(key).or_default().push((
                                Instant::now(),
                                digest,
                                reply,
                            ));
                        }
                        Ok(Submission::Decided(r)) => {
                            let _ = reply.send(Ok(r));
                        }
                        Err(refused) => {
                            let _ = reply.send(Err(refused));
                        }
                    }
                }
                Inbound::Fleet(FleetInput::Report(signed, body)) => {
                    let now = self.now_ms();
                    self.step.report(signed, body, now);
                    decide = true;
                }
                Inbound::Fleet(FleetInput::Ack(signed, body)) => {
                    self.step.ack(signed, body);
                    decide = true;
                }
                Inbound::FleetTick => decide = true,
                Inbound::Notified { sink, through } => {
                    // Only forward of the ledger's record: a leader that was replaced and came
                    // back may report a point another leader already passed.
                    if through > self.ledger().notified_through(&sink) {
                        let op = Operation::Notified { sink, through };
                        tracing::debug!(node = self.id, op = op.name(), "submitting");
                        actions.extend(self.step.submit_operation(&op));
                    }
                }
                Inbound::Endorse {
                    rollout,
                    order,
                    reply,
                } => {
                    let _ = reply.send(self.step.endorse(rollout, &order));
                }
            }
        }
        actions.extend(self.fleet_turn(decide));
        actions.extend(self.step.end_turn());
        self.perform(actions)?;
        Ok(())
    }

    fn ledger(&self) -> &Ledger {
        self.step.ledger()
    }

    fn send(&self, to: u32, env: &Arc<Envelope>) {
        if let Some(p) = self.peers.get(&to) {
            if p.try_send(Arc::clone(env)).is_err() {
                self.metrics.dropped("peer queue full");
            }
        }
    }

    /// Makes the decisions committed without an fsync durable, none having come with a later
    /// commit within [`UNSYNCED_FOR`].
    fn sync_store(&mut self) -> Result<(), NodeError> {
        let start = Instant::now();
        tokio::task::block_in_place(|| self.store.sync())?;
        self.count_commit(start.elapsed());
        Ok(())
    }

    /// Counts a durable write's time in the storage metrics.
    fn count_commit(&self, took: Duration) {
        self.metrics
            .sync_micros_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.metrics.syncs.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot encoded off the loop, made durable (see `crate::snapshot_encoder`).
    fn commit_snapshot(&mut self, encoded: &EncodedSnapshot) -> Result<(), NodeError> {
        let start = Instant::now();
        let written = tokio::task::block_in_place(|| self.store.commit_snapshot(encoded))?;
        let took = start.elapsed();
        // The write itself still holds the loop (redb has one writer): seen like a slow commit.
        if took >= SLOW_COMMIT {
            tracing::warn!(
                node = self.id,
                ms = took.as_millis() as u64,
                seq = encoded.seq(),
                bytes = encoded.stored_bytes(),
                "slow storage commit of a snapshot encoded off the loop"
            );
        } else {
            tracing::debug!(
                node = self.id,
                seq = encoded.seq(),
                bytes = encoded.stored_bytes(),
                written,
                ms = took.as_millis() as u64,
                "snapshot encoded off the loop persisted"
            );
        }
        Ok(())
    }

    /// Persists the turn's records in one commit, then performs everything else in order.
    /// Large snapshots are handed to the encoder instead, and land later.
    pub(crate) fn perform(&mut self, actions: Vec<Action>) -> Result<(), NodeError> {
        let encoder = &mut self.encoder;
        let records: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Persist(Record::Snapshot(s)) => {
                    encoder.offer(s.clone()).map(Record::Snapshot)
                }
                Action::Persist(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let decided: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Deliver(d) => Some(d.certificate.clone()),
                _ => None,
            })
            .collect();
        let history = self.ledger().take_new();
        // Published before any client is answered: a client that saw its request decided
        // reads the state after it.
        self.publish_reads(&actions, &history);
        // Answered before this replica's own commit: a batch that committed here was prepared,
        // durably, by a quorum before any of them sent its commit, so the decision and its
        // (deterministic) outcome stand even if this process dies before its write lands. The
        // client is spared one fsync; nothing a peer receives depends on it.
        let now = Instant::now();
        for a in &actions {
            if let Action::Deliver(d) = a {
                self.answer_waiters(d);
                self.timeouts.executed(d.seq, now);
            }
        }
        let has_history = !history.events.is_empty()
            || !history.outcomes.is_empty()
            || !history.bodies.is_empty();
        if !records.is_empty() || !decided.is_empty() || has_history {
            // The view may have changed in this turn: not through the commit.
            self.forget_heartbeat_unless_leading();
            let start = std::time::Instant::now();
            tokio::task::block_in_place(|| self.store.commit_turn(&records, &decided, &history))?;
            let took = start.elapsed();
            if took >= SLOW_COMMIT {
                // The loop (heartbeats included) waited this long: worth seeing next to a view
                // change.
                tracing::warn!(
                    node = self.id,
                    ms = took.as_millis() as u64,
                    records = records.len(),
                    decided = decided.len(),
                    "slow storage commit"
                );
            }
            self.count_commit(took);
        }
        for a in actions {
            match a {
                Action::Persist(_) => {}
                Action::Send { to, envelope } => self.send(to.0, &envelope),
                Action::Broadcast(envelope) => {
                    if envelope.kind == Kind::Heartbeat {
                        self.pacer.signed(Arc::clone(&envelope));
                    }
                    for to in self.peers.keys().copied().collect::<Vec<_>>() {
                        self.send(to, &envelope);
                    }
                }
                Action::Deliver(d) => {
                    self.metrics.decisions.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        node = self.id,
                        seq = d.seq.0,
                        requests = d.executed.len(),
                        "decided"
                    );
                }
                Action::Restored { seq, .. } => {
                    tracing::info!(
                        node = self.id,
                        seq = seq.0,
                        "caught up from a peer's checkpoint snapshot"
                    );
                }
                Action::SetTimer(t) => {
                    let d = self.timeouts.duration(&t);
                    self.timers.set(t, d);
                }
                Action::CancelTimer(kind) => self.timers.cancel(kind),
            }
        }
        self.follow_epoch();
        let view = self.step.replica().view().0;
        if self.metrics.view.swap(view, Ordering::Relaxed) != view {
            self.metrics.view_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(node = self.id, view, "entered view");
        }
        let seen = (
            self.step.replica().status(),
            self.step.replica().suspecting().map(|v| v.0),
        );
        let before = std::mem::replace(&mut self.consensus_seen, seen);
        if before != seen {
            tracing::debug!(node = self.id, view, status = ?seen.0, suspecting = ?seen.1, "consensus status");
            let replica = self.step.replica();
            if let (Some(v), true) = (seen.1, before.1 != seen.1) {
                // Why a view changes is the first thing an operator asks after one.
                tracing::info!(
                    node = self.id,
                    view = v,
                    cause = replica.suspicion_cause().unwrap_or("?"),
                    silence_tolerated_intervals = replica.silence_tolerated(),
                    request_timeout_ms = self
                        .timeouts
                        .base(scbe_core::consensus::TimerKind::Request)
                        .as_millis() as u64,
                    "suspecting the primary"
                );
            }
        }
        // Clients that gave up no longer need a reply.
        self.waiters.retain(|_, ws| {
            ws.retain(|(_, _, w)| !w.is_closed());
            !ws.is_empty()
        });
        if let Ok(mut m) = self.metrics.core_dropped.lock() {
            m.clone_from(self.step.replica().dropped());
        }
        let count = self.ledger().journal().events.total();
        let r = self.step.replica();
        let notify = NotifyView {
            leading: r.is_primary() && r.status() == Status::Normal,
            events: count,
            notified: self.ledger().state().notified.clone(),
        };
        self.notify_view
            .send_if_modified(|v| std::mem::replace(v, notify.clone()) != notify);
        Ok(())
    }

    /// A heartbeat of a view this validator no longer leads (in normal operation) must not be
    /// re-sent for it: backups still in that view would take it for their primary's.
    fn forget_heartbeat_unless_leading(&self) {
        let r = self.step.replica();
        if !(r.is_primary() && r.status() == Status::Normal) {
            self.pacer.forget();
        }
    }

    /// Replies to every client waiting for a request of this decided batch: its outcome, or,
    /// if the nonce went to another request, a refusal saying so.
    fn answer_waiters(&mut self, d: &scbe_core::consensus::Decision) {
        for r in &d.certificate.pre_prepare.value().batch {
            let key = (*r.signer(), r.value().nonce);
            for (since, digest, w) in self.waiters.remove(&key).unwrap_or_default() {
                self.metrics.observe_latency(since.elapsed());
                let _ = w.send(self.step.reply(d, &key.0, key.1, &digest));
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// After the turn's inputs: what the step submits for the fleet (its actions join this
    /// turn's commit), and the executor's view when it moved.
    fn fleet_turn(&mut self, decide: bool) -> Vec<Action> {
        let now = self.now_ms();
        let turn = self.step.fleet_turn(now, decide);
        if let Some(view) = turn.view {
            self.fleet_view.send_if_modified(|v| {
                let changed = *v != view;
                *v = view;
                changed
            });
            self.metrics
                .set_consensus_rate(scbe_wire::status_summary::consensus_rate(self.ledger()));
        }
        // Compared only when the ledger says the fleet may have changed: a turn is not O(fleet).
        let ledger = self.step.ledger();
        if ledger.fleet_generation() != self.fleet_generation {
            self.fleet_generation = ledger.fleet_generation();
            let agents = &ledger.state().agents;
            self.roster.send_if_modified(|r| {
                let changed = !crate::fleet::roster::same_fleet(r, agents);
                if changed {
                    *r = crate::fleet::roster::roster_of(agents);
                }
                changed
            });
        }
        for (op, nonce) in &turn.submitted {
            tracing::info!(node = self.id, op, nonce, "submitting");
        }
        if let Some(view) = turn.replaced_view {
            tracing::warn!(
                node = self.id,
                view,
                "the ledger replaces this view's primary"
            );
        }
        turn.actions
    }

    /// Moves the network edge to the validator set of the epoch the replica is in, if it
    /// entered another one in this turn (a rotated key is accepted from here on, without a
    /// restart).
    fn follow_epoch(&mut self) {
        let dir = &self.step.replica().config().directory;
        if dir.epoch() == self.edge.current().epoch() {
            return;
        }
        tracing::info!(
            node = self.id,
            epoch = dir.epoch(),
            from = %dir.start(),
            validators = dir.n(),
            observing = self.step.replica().observing(),
            "entered a new validator-set epoch"
        );
        self.edge.follow(dir);
        self.link_members();
    }

    /// Makes a link to every member of the set in force this node has none to: the validators
    /// the quorum added (after the epoch that added them, or at start when the store had
    /// reached it). Spawned when the turn ends (`run`).
    fn link_members(&mut self) {
        let members: Vec<u32> = (self.step.replica().config().directory.ids().iter())
            .map(|r| r.0)
            .collect();
        let ledger = self.step.ledger();
        let made = self.dialer.link_new(&members, &self.peers, |p| {
            ledger.validator_address(p).map(str::to_string)
        });
        for (peer, name, link) in made {
            tracing::info!(node = self.id, peer, "{name}: a validator the quorum added");
            self.pacer.add_peer(link.0.clone());
            self.peers.insert(peer, link.0.clone());
            self.new_links.push((name, link));
        }
    }
}
