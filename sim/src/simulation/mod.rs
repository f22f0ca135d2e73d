//! One deterministic simulation run: every validator is the runtime's own `ValidatorStep`
//! (replica, ledger, watcher), reached through the real wire edge (`scbe_wire::open`), under a
//! virtual clock, a faulty network, crashes with restart from persisted records (a restart
//! rebuilds the step, losing what a real restart loses), and Byzantine validators, checked by
//! one checker per invariant.
//!
//! Everything is derived from the seed and processed in a total order (time, then insertion),
//! so the same seed always produces the same trace; `Report::trace_hash` proves it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use scbe_core::consensus::{
    Action, Codec, Decision, Digest, Directory, Envelope, Input, Kind, Seq, Timer, TimerKind,
};
use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::{Ledger, LedgerConfig};
use scbe_core::governance::MemoryBodies;
use scbe_core::rollout::evidence::OrderAction;
use scbe_core::rollout::order::SignedOrder;
use scbe_core::rollout::watcher::WatchSettings;
use scbe_core::validator_step::ValidatorStep;
use scbe_wire::{encode_envelope, MAX_ENVELOPE_BYTES};
use sha2::{Digest as _, Sha256};

use crate::byzantine::Byzantine;
use crate::clients::Client;
use crate::fleet::{Evidence, NodeFleet, SimAgent};
use crate::invariants::agreement::Agreement;
use crate::invariants::certificates::Certificates;
use crate::invariants::double_sign::DoubleSign;
use crate::invariants::epochs::Epochs;
use crate::invariants::integrity::Integrity;
use crate::invariants::liveness::Progress;
use crate::invariants::own_nonces::OwnNonces;
use crate::invariants::state_proofs::StateProofs;
use crate::invariants::validity::Validity;
use crate::invariants::Violation;
use crate::network::Network;
use crate::release_script::ReleaseScript;
use crate::scenario::{Scenario, ValidatorShift};
use crate::store::MemoryStore;
use setup::rotated_key;

/// How often the status timer fires, in virtual ms.
const STATUS_INTERVAL_MS: u64 = 500;
/// How often the heartbeat timer fires, in virtual ms (the node's default).
const HEARTBEAT_INTERVAL_MS: u64 = 50;
/// Hard cap on processed events, so a livelock in the core ends the run with a report.
const MAX_EVENTS: u64 = 3_000_000;

#[derive(Debug)]
pub(crate) enum Event {
    Deliver {
        to: usize,
        bytes: Arc<Vec<u8>>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timer: Timer,
    },
    ClientSend {
        client: usize,
        nonce: u64,
        retry: bool,
    },
    Crash(usize),
    Restart(usize),
    /// The operator of a validator whose key was rotated restarts it with the new key.
    Rekey(usize),
    /// The replica leaves its view alone (see `Scenario::lone_view_changes`).
    LoneViewChange(usize),
    /// The flooding requester sends this many maximum-size requests (`Scenario::floods`).
    Flood(u32),
    PartitionStart(usize),
    PartitionHeal,
    Heal,
    /// Agents sample, validators decide, the primary delivers orders.
    FleetTick,
    /// An order reaches an agent.
    Order {
        agent: usize,
        order: Arc<SignedOrder>,
        action: OrderAction,
    },
    /// Verified agent evidence reaches a validator.
    Evidence {
        node: usize,
        evidence: Evidence,
    },
}

pub(crate) struct Node {
    pub(crate) key: Keypair,
    /// The validator's step (replica, ledger, watcher): the same type the runtime drives.
    /// `None` while crashed; a restart rebuilds it from the persisted records, so everything
    /// the runtime keeps only in memory (the watcher, its own nonces) is lost as in a crash.
    pub(crate) step: Option<ValidatorStep>,
    store: MemoryStore,
    incarnation: u64,
    armed: BTreeMap<TimerKind, Timer>,
    pub(crate) byzantine: Option<Byzantine>,
    /// The executor's delivery state and a liar's collected evidence: lost on a crash.
    pub(crate) fleet: NodeFleet,
    /// Lies about the fleet instead of running the watcher.
    pub(crate) fleet_liar: bool,
    /// Restarted and has not signed an own request since (the own-nonces checker wants its
    /// first nonce).
    pub(crate) fresh_restart: bool,
    /// The sets its edge learnt ahead of its replica (`edge_ahead.rs`): lost on a crash.
    pub(crate) edge: edge_ahead::EdgeAhead,
    /// Odd nodes keep their release bodies in a store, as a validator with
    /// `release_bodies_in_store` does (the others hold them): kept across crashes, like the
    /// records, and written from each turn's history (`delivery.rs`). A cluster that mixes
    /// both must agree on every digest.
    pub(crate) bodies: Option<Arc<MemoryBodies>>,
}

#[derive(PartialEq, Eq)]
pub(crate) enum Phase {
    Safety,
    Liveness,
}

pub struct Simulation {
    pub(crate) sc: Scenario,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now: u64,
    queue: BTreeMap<(u64, u64), Event>,
    next_event: u64,
    pub(crate) directory: Directory,
    codec: Arc<dyn Codec>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) clients: Vec<Client>,
    /// The Byzantine requester of `Scenario::floods` and its last nonce.
    pub(crate) flooder: Keypair,
    pub(crate) flooder_nonce: u64,
    pub(crate) net: Network,
    pub(crate) phase: Phase,
    pub(crate) agents: Vec<SimAgent>,
    pub(crate) ledger_cfg: LedgerConfig,
    /// The release requester (client 0).
    pub(crate) script: ReleaseScript,
    /// Rollouts whose end the checkers already looked at.
    pub(crate) checked: BTreeSet<(u64, u8)>,
    pub(crate) ticks: u64,
    /// Keys re-keyed agents signed with before (taken to have leaked), by agent id.
    pub(crate) leaked: Vec<(String, Keypair)>,
    /// Highest sequence number at which a client request was executed by an honest replica.
    target: Seq,
    agreement: Agreement,
    pub(crate) validity: Validity,
    integrity: Integrity,
    certificates: Certificates,
    /// The validator sets honest replicas went through (`invariants/epochs.rs`).
    pub(crate) epochs: Epochs,
    /// The rotated validator's operator has stopped it to restart it with its new key.
    rekeying: bool,
    /// The genesis validators' keys (what a stale executor endorses with).
    pub(crate) genesis_keys: Vec<Keypair>,
    double_sign: DoubleSign,
    pub(crate) own_nonces: OwnNonces,
    /// Proofs of the stable checkpoints' states (`invariants/state_proofs.rs`).
    pub(crate) state_proofs: StateProofs,
    violations: Vec<Violation>,
    trace: Sha256,
    pub(crate) stats: Stats,
}

impl Simulation {
    /// The watcher's settings every simulated validator runs with.
    pub(crate) fn watch_settings(&self) -> WatchSettings {
        crate::fleet::watch_settings()
    }

    pub(crate) fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.next_event += 1;
        self.queue
            .insert((self.now + delay_ms, self.next_event), event);
    }

    pub(crate) fn violation(&mut self, invariant: &'static str, detail: String) {
        self.violations.push(Violation {
            invariant,
            at_ms: self.now,
            detail,
        });
    }

    pub(crate) fn trace(&mut self, parts: &[&[u8]]) {
        self.trace.update(self.now.to_be_bytes());
        for p in parts {
            self.trace.update((p.len() as u64).to_be_bytes());
            self.trace.update(p);
        }
    }

    pub(crate) fn is_honest(&self, node: usize) -> bool {
        self.nodes[node].byzantine.is_none()
    }

    /// Runs the scenario to the end and reports.
    pub fn run(mut self) -> Report {
        for i in 0..self.sc.n {
            let (step, actions) = ValidatorStep::start(
                self.config(i),
                self.nodes[i].key.clone(),
                self.codec.clone(),
                self.new_ledger(i),
                self.watch_settings(),
            )
            .expect("simulated config is valid");
            self.nodes[i].step = Some(step);
            self.apply(i, actions);
        }
        // An added validator's node starts with an empty store, as the runtime starts one whose
        // key the genesis does not list.
        for i in self.sc.n..self.sc.nodes() {
            self.restart(i);
            // Its first start, not a restart.
            self.stats.restarts = self.stats.restarts.saturating_sub(1);
        }
        for c in 0..self.clients.len() {
            let d = self.rng.random_range(0..200);
            self.schedule(
                d,
                Event::ClientSend {
                    client: c,
                    nonce: 1,
                    retry: false,
                },
            );
        }
        for (i, p) in self.sc.partitions.clone().iter().enumerate() {
            let now = self.now;
            self.now = p.at_ms;
            self.schedule(0, Event::PartitionStart(i));
            self.schedule(p.heal_after_ms, Event::PartitionHeal);
            self.now = now;
        }
        for c in self.sc.crashes.clone() {
            let now = self.now;
            self.now = c.at_ms;
            self.schedule(0, Event::Crash(c.node));
            self.schedule(c.restart_after_ms, Event::Restart(c.node));
            self.now = now;
        }
        for (at_ms, count) in self.sc.floods.clone() {
            let now = self.now;
            self.now = at_ms;
            self.schedule(0, Event::Flood(count));
            self.now = now;
        }
        for (node, at_ms) in self.sc.lone_view_changes.clone() {
            let now = self.now;
            self.now = at_ms;
            self.schedule(0, Event::LoneViewChange(node));
            self.now = now;
        }
        self.schedule(0, Event::FleetTick);
        let heal_at = self.sc.safety_ms;
        self.schedule(heal_at, Event::Heal);
        let deadline = heal_at + self.sc.liveness_deadline_ms;

        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > deadline || self.stats.events >= MAX_EVENTS {
                break;
            }
            self.now = at;
            self.stats.events += 1;
            self.step(event);
            if self.phase == Phase::Liveness && self.progress().reached() {
                break;
            }
        }
        let progress = self.progress();
        if std::env::var_os("SCBE_SIM_DEBUG_FLEET").is_some() {
            eprintln!("script: {:?}", self.script);
            if let Some(l) = self.advanced().and_then(|i| self.ledger(i)) {
                for e in l.journal().events.iter() {
                    eprintln!(
                        "  {} {:?} {} {} {}",
                        e.seq, e.tongue, e.kind, e.subject, e.detail
                    );
                }
            }
        }
        if let Some(v) = progress.violation() {
            self.violation("liveness", v);
        }
        self.stats.own_executed_after_restart = self.own_nonces.executed_after_restart;
        self.stats.state_proofs = self.state_proofs.proved;
        self.stats.end_ms = self.now;
        self.stats.replicas = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n.step.as_ref().map(ValidatorStep::replica) {
                Some(r) => format!(
                    "r{i}{} epoch={}{} links={:?} view={} primary={} {:?} executed={} stable={} pending={} dropped={:?}",
                    if n.byzantine.is_some() {
                        " (byzantine)"
                    } else {
                        ""
                    },
                    r.epoch(),
                    if r.observing() { " (observing)" } else { "" },
                    r.epoch_links()
                        .values()
                        .map(|l| (l.epoch(), l.set.start.0))
                        .collect::<Vec<_>>(),
                    r.view().0 & u64::from(u32::MAX),
                    r.config().primary(r.view()).0,
                    r.status(),
                    r.last_executed().0,
                    r.stable_checkpoint().seq.0,
                    r.pending_requests(),
                    r.dropped()
                ),
                None => format!("r{i} down"),
            })
            .collect();
        self.stats.max_view = self
            .nodes
            .iter()
            .filter_map(|n| n.step.as_ref().map(|s| s.replica().view().0))
            .max()
            .unwrap_or(0);
        Report {
            scenario: self.sc,
            violations: self.violations,
            trace_hash: self.trace.finalize().into(),
            stats: self.stats,
        }
    }

    fn progress(&self) -> Progress {
        let outstanding = self
            .clients
            .iter()
            .map(|c| c.liveness_left + c.safety_left + usize::from(c.outstanding.is_some()))
            .sum();
        // A validator removed by governance only follows; it need not keep up. Nor need one
        // the quorum has not added (yet): its peers drop what it sends.
        let removed = match self.sc.validator_change {
            Some(ValidatorShift::Remove { id }) if self.epochs.changes() > 0 => Some(id),
            Some(ValidatorShift::Add) if self.epochs.changes() == 0 => Some(self.sc.n),
            _ => None,
        };
        let honest = (0..self.sc.nodes())
            .filter(|i| self.is_honest(*i) && Some(*i) != removed)
            .map(|i| {
                let seq = self.nodes[i]
                    .step
                    .as_ref()
                    .map_or(Seq(0), ValidatorStep::last_executed);
                (i, seq)
            })
            .collect();
        let mut fleet_pending = Vec::new();
        if !self.script.done() {
            fleet_pending.push("the release requester's script has not finished".to_string());
        }
        if let Some(l) = self.advanced().and_then(|i| self.ledger(i)) {
            for r in l.state().rollouts.open_values() {
                fleet_pending.push(format!(
                    "rollout {} ({}) is still {:?}",
                    r.id, r.version, r.status
                ));
            }
        }
        Progress {
            outstanding_requests: outstanding,
            flood_outstanding: self.flood_requests_left(),
            target: self.target,
            honest,
            fleet_pending,
        }
    }

    /// Flood requests some honest replica that is up has not executed and still could. The
    /// flooder is a registered key: its requests are valid, and liveness requires every one
    /// decided, except those its own later requests pushed more than `NONCE_WINDOW` below the
    /// highest executed nonce (a documented limit on one key's requests in flight: two floods
    /// add up to more than 128).
    fn flood_requests_left(&self) -> usize {
        let key = self.flooder.public();
        (0..self.sc.nodes())
            .filter(|i| self.is_honest(*i))
            .filter_map(|i| self.nodes[i].step.as_ref())
            .map(|step| {
                (1..=self.flooder_nonce)
                    .filter(|nonce| step.replica().check_nonce(&key, *nonce).is_ok())
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, bytes } => {
                self.trace(&[b"deliver", &(to as u64).to_be_bytes(), &bytes]);
                self.deliver(to, bytes);
            }
            Event::Timer {
                node,
                incarnation,
                timer,
            } => {
                let n = &self.nodes[node];
                if n.incarnation != incarnation || n.armed.get(&timer.kind) != Some(&timer) {
                    return;
                }
                self.trace(&[b"timer", &(node as u64).to_be_bytes()]);
                self.nodes[node].armed.remove(&timer.kind);
                self.feed(node, Input::Timeout(timer));
            }
            Event::ClientSend {
                client,
                nonce,
                retry,
            } => self.client_send(client, nonce, retry),
            Event::Crash(node) => {
                self.trace(&[b"crash", &(node as u64).to_be_bytes()]);
                let n = &mut self.nodes[node];
                n.step = None;
                n.incarnation += 1;
                n.armed.clear();
                n.edge = Default::default();
            }
            Event::Restart(node) => self.restart(node),
            Event::Rekey(node) => self.rekey(node),
            Event::LoneViewChange(node) => {
                let view = self.nodes[node].step.as_ref().map(|s| s.replica().view());
                if let Some(view) = view {
                    self.trace(&[b"lone-view-change", &(node as u64).to_be_bytes()]);
                    self.feed(node, Input::ReplacePrimary { view });
                }
            }
            Event::Flood(count) => self.flood(count),
            Event::FleetTick => {
                self.fleet_tick();
                self.schedule(crate::fleet::TICK_MS, Event::FleetTick);
            }
            Event::Order {
                agent,
                order,
                action,
            } => self.on_order(agent, &order, action),
            Event::Evidence { node, evidence } => self.on_evidence(node, evidence),
            Event::PartitionStart(i) => {
                if self.phase == Phase::Safety {
                    self.trace(&[b"partition"]);
                    self.net.partition(self.sc.partitions[i].side.clone());
                }
            }
            Event::PartitionHeal => {
                self.trace(&[b"partition-heal"]);
                self.net.heal_partition();
            }
            Event::Heal => {
                self.trace(&[b"heal"]);
                self.phase = Phase::Liveness;
                self.net.heal_all();
                for node in 0..self.sc.nodes() {
                    self.restart(node);
                }
                for c in 0..self.clients.len() {
                    if self.clients[c].outstanding.is_none() {
                        let nonce = self.clients[c].nonce + 1;
                        self.schedule(
                            0,
                            Event::ClientSend {
                                client: c,
                                nonce,
                                retry: false,
                            },
                        );
                    }
                }
            }
        }
    }

    /// `Scenario::validator_change`'s rotation: once the rotated validator's replica observes
    /// (the change took effect and its key is no longer in force) and holds the change's proof
    /// (the old set's quorum signed the boundary: before that its store refuses the new key,
    /// as the validator's does), its operator stops it and restarts it with the new key
    /// `restart_after_ms` later.
    pub(crate) fn rotate_when_observing(&mut self) {
        let Some(ValidatorShift::Rotate {
            id,
            restart_after_ms,
        }) = self.sc.validator_change
        else {
            return;
        };
        let ready = self.nodes[id]
            .step
            .as_ref()
            .is_some_and(|s| s.replica().observing() && s.replica().epoch_proven());
        if self.rekeying || !ready {
            return;
        }
        self.rekeying = true;
        self.schedule(0, Event::Crash(id));
        self.schedule(restart_after_ms, Event::Rekey(id));
    }

    fn rekey(&mut self, node: usize) {
        self.trace(&[b"rekey", &(node as u64).to_be_bytes()]);
        let n = &mut self.nodes[node];
        n.step = None;
        n.incarnation += 1;
        n.armed.clear();
        n.edge = Default::default();
        n.key = rotated_key(self.sc.seed, node);
        self.own_nonces.rekeyed(node, n.key.public());
        self.stats.rekeyed = true;
        self.restart(node);
    }

    /// A new ledger for `node`: with its body store, if it has one.
    fn new_ledger(&self, node: usize) -> Ledger {
        let mut ledger = Ledger::new(self.ledger_cfg.clone());
        if let Some(bodies) = &self.nodes[node].bodies {
            ledger.store_bodies_in(bodies.clone());
        }
        ledger
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].step.is_some() {
            return;
        }
        self.trace(&[b"restart", &(node as u64).to_be_bytes()]);
        let n = &self.nodes[node];
        let restored = ValidatorStep::restore(
            self.config(node),
            n.key.clone(),
            self.codec.clone(),
            self.new_ledger(node),
            self.watch_settings(),
            n.store.records(),
        );
        self.nodes[node].fleet = NodeFleet::default();
        match restored {
            Ok((step, actions)) => {
                self.stats.restarts += 1;
                self.check_served_after_restart(node, &step);
                self.nodes[node].step = Some(step);
                self.nodes[node].fresh_restart = true;
                self.apply(node, actions);
            }
            Err(e) => self.violation("recovery", format!("replica {node} failed to restore: {e}")),
        }
    }
}

// Message delivery and the core's actions.
mod delivery;
mod edge_ahead;
mod report;
mod served_after_restart;
mod setup;
pub use report::{Report, Stats};

/// Runs one seed.
pub fn run_seed(seed: u64, overrides: &crate::scenario::Overrides) -> Report {
    Simulation::new(Scenario::derive(seed, overrides)).run()
}
