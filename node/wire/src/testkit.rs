//! A tiny in-memory cluster of real replicas for tests (feature `testkit`): it delivers
//! envelopes in FIFO order through the real wire edge (encode, then [`crate::open`]), records
//! every action and persisted record, and lets a test cut links, drop message kinds, fire timers
//! and restart replicas by hand. The consensus scenario tests (`tests/consensus/`) and the
//! validator's storage tests use it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use scbe_core::consensus::*;
use scbe_core::crypto::Keypair;

use crate::{encode_envelope, open, ProtoCodec};

mod chain_app;
pub use chain_app::ChainApp;

pub struct Cluster {
    pub keys: Vec<Keypair>,
    client: Keypair,
    pub dir: Directory,
    pub replicas: Vec<Option<Replica<ChainApp>>>,
    pub stores: Vec<Vec<Record>>,
    pub delivered: Vec<Vec<Decision>>,
    timers: Vec<BTreeMap<TimerKind, Timer>>,
    /// Every action each replica produced, in order.
    pub log: Vec<Vec<Action>>,
    /// Envelopes in flight: (from, to, bytes), delivered in order.
    pub queue: VecDeque<(usize, usize, Vec<u8>)>,
    /// Links (from, to) that drop everything.
    pub cut: BTreeSet<(usize, usize)>,
    /// Message kinds dropped on every link.
    pub drop_kinds: BTreeSet<Kind>,
    checkpoint_interval: u64,
    tweak: fn(&mut ReplicaConfig),
    /// Per replica, the directory its edge also resolves with: the sets a chain it fetched
    /// proves beyond its own (`learn_ahead`, as the node's `EdgeDirectory::learn_ahead`).
    pub ahead: BTreeMap<usize, Directory>,
    /// Envelopes taken off the queue since it was last found empty (see [`Self::STORM`]).
    taken: usize,
}

impl Cluster {
    /// How many envelopes may be taken off the queue without it running empty. Replicas that
    /// keep answering each other forever are a bug to fail on at once, not a test to hang (the
    /// suite's longest drain takes 2,727).
    pub const STORM: usize = 10_000;

    pub fn new(n: usize, checkpoint_interval: u64) -> Self {
        Self::new_with(n, checkpoint_interval, |_| {})
    }

    /// A cluster whose replica configurations `tweak` changes.
    pub fn new_with(n: usize, checkpoint_interval: u64, tweak: fn(&mut ReplicaConfig)) -> Self {
        let keys: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_label(&format!("t{i}")))
            .collect();
        let client = Keypair::from_label("client");
        let dir = Directory::new(
            keys.iter().map(Keypair::public).collect(),
            vec![client.public()],
        )
        .expect("directory");
        let mut c = Cluster {
            keys,
            client,
            dir,
            replicas: Vec::new(),
            stores: vec![Vec::new(); n],
            delivered: vec![Vec::new(); n],
            timers: vec![BTreeMap::new(); n],
            log: vec![Vec::new(); n],
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            drop_kinds: BTreeSet::new(),
            checkpoint_interval,
            tweak,
            ahead: BTreeMap::new(),
            taken: 0,
        };
        for i in 0..n {
            let mut r = Replica::new(
                c.config(i),
                c.keys[i].clone(),
                Arc::new(ProtoCodec),
                ChainApp::default(),
            )
            .expect("replica");
            let actions = r.start();
            c.replicas.push(Some(r));
            c.apply(i, actions);
        }
        c
    }

    pub fn config(&self, i: usize) -> ReplicaConfig {
        let mut cfg = ReplicaConfig::new(ReplicaId(i as u32), self.dir.clone()).expect("config");
        cfg.checkpoint_interval = self.checkpoint_interval;
        cfg.window = self.checkpoint_interval * 2;
        cfg.max_inflight_batches = 1;
        (self.tweak)(&mut cfg);
        cfg
    }

    /// Replaces replica `i`, before it has handled anything, with one running `app`.
    pub fn replace_app(&mut self, i: usize, app: ChainApp) {
        let mut r = Replica::new(
            self.config(i),
            self.keys[i].clone(),
            Arc::new(ProtoCodec),
            app,
        )
        .expect("replica");
        self.timers[i].clear();
        let actions = r.start();
        self.replicas[i] = Some(r);
        self.apply(i, actions);
    }

    pub fn replica(&self, i: usize) -> &Replica<ChainApp> {
        self.replicas[i].as_ref().expect("replica is up")
    }

    pub fn request(&self, nonce: u64) -> Signed<Request> {
        self.request_sized(nonce, 1)
    }

    /// A request whose operation is `len` bytes.
    pub fn request_sized(&self, nonce: u64, len: usize) -> Signed<Request> {
        self.request_with(nonce, vec![nonce as u8; len])
    }

    pub fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for a in &actions {
            match a {
                Action::Persist(r) => self.stores[i].push(r.clone()),
                Action::Send { to, envelope } => self.send(i, to.0 as usize, envelope),
                Action::Broadcast(envelope) => {
                    for j in 0..self.replicas.len() {
                        if j != i {
                            self.send(i, j, envelope);
                        }
                    }
                }
                Action::Deliver(d) => self.delivered[i].push(d.clone()),
                Action::Restored { .. } => {}
                Action::SetTimer(t) => {
                    self.timers[i].insert(t.kind, *t);
                }
                Action::CancelTimer(k) => {
                    self.timers[i].remove(k);
                }
            }
        }
        self.log[i].extend(actions);
    }

    pub fn send(&mut self, from: usize, to: usize, env: &Envelope) {
        if !self.cut.contains(&(from, to)) && !self.drop_kinds.contains(&env.kind) {
            self.queue.push_back((from, to, encode_envelope(env)));
        }
    }

    pub fn input(&mut self, i: usize, input: Input) {
        if let Some(r) = self.replicas[i].as_mut() {
            let actions = r.handle(input);
            self.apply(i, actions);
        }
    }

    /// Requests `nonces` submitted at replica `at` one at a time, each decided (the queue run
    /// empty) before the next.
    pub fn decide_each(&mut self, at: usize, nonces: std::ops::RangeInclusive<u64>) {
        for nonce in nonces {
            self.input(at, Input::ClientRequest(self.request(nonce)));
            self.run();
        }
    }

    /// The oldest queued envelope (from, to, bytes), taken off the queue; `None` when it is
    /// empty. Panics past [`Self::STORM`] taken without the queue running empty.
    pub fn next_queued(&mut self) -> Option<(usize, usize, Vec<u8>)> {
        let Some(next) = self.queue.pop_front() else {
            self.taken = 0;
            return None;
        };
        self.taken += 1;
        assert!(
            self.taken <= Self::STORM,
            "a message storm: {} envelopes delivered and {} still queued",
            self.taken,
            self.queue.len()
        );
        Some(next)
    }

    /// Delivers the oldest queued message; false when none is left.
    pub fn step(&mut self) -> bool {
        let Some((from, to, bytes)) = self.next_queued() else {
            return false;
        };
        if let Some(m) = self.open_at(from, to, &bytes) {
            self.input(to, Input::Message(m));
        }
        true
    }

    /// Delivers queued messages until none are left, except those `drop` names (by addressee
    /// and message), which are lost; opened with the genesis directory, as honest messages of
    /// the genesis set are.
    pub fn run_dropping(&mut self, drop: impl Fn(usize, &Message) -> bool) {
        let dir = self.dir.clone();
        while let Some((_, to, bytes)) = self.next_queued() {
            let m = open(&bytes, &dir).expect("honest messages open");
            if !drop(to, m.value()) {
                self.input(to, Input::Message(m));
            }
        }
    }

    /// Delivers queued messages until none are left (at most [`Self::STORM`]).
    pub fn run(&mut self) {
        while self.step() {}
    }

    /// The directory replica `i` resolves signers with: its epoch's (the genesis one while it
    /// is down).
    pub fn directory_of(&self, i: usize) -> &Directory {
        self.replicas[i]
            .as_ref()
            .map_or(&self.dir, |r| &r.config().directory)
    }

    /// Opens `bytes` from `from` as replica `to`'s edge does. A message its sender's own
    /// directory cannot open is a bug (panics); one the receiver's cannot (a key of an epoch
    /// it has not reached, or one retired before its own) is dropped, as the edge drops it.
    fn open_at(&self, from: usize, to: usize, bytes: &[u8]) -> Option<Signed<Message>> {
        if let Ok(m) = open(bytes, self.directory_of(to)) {
            return Some(m);
        }
        if let Some(Ok(m)) = self.ahead.get(&to).map(|d| open(bytes, d)) {
            return Some(m);
        }
        open(bytes, self.directory_of(from)).expect("honest messages open");
        None
    }

    /// Replica `i`'s edge learns `sets` (a chain checked elsewhere): it resolves their keys
    /// as well as its own directory's from now on.
    pub fn learn_ahead(&mut self, i: usize, sets: &[ValidatorSet]) {
        let dir = self
            .directory_of(i)
            .resolving(sets.iter())
            .expect("valid keys");
        self.ahead.insert(i, dir);
    }

    pub fn fire(&mut self, i: usize, kind: TimerKind) {
        let t = self.timers[i].remove(&kind).expect("timer armed");
        self.input(i, Input::Timeout(t));
        self.run();
    }

    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.replicas.len() {
            self.cut.insert((i, j));
            self.cut.insert((j, i));
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// The commit certificates of replica `i`'s decisions, in order: its decided log.
    pub fn decided_certificates(&self, i: usize) -> Vec<CommitCert> {
        self.delivered[i]
            .iter()
            .map(|d| d.certificate.clone())
            .collect()
    }

    /// The stable checkpoint certificates replica `i` persisted, the last one per seq, as the
    /// audit trail keeps them (an epoch's boundary is persisted first with the votes in when
    /// the replica moved on, then again once the old set's quorum is in).
    pub fn stable_certificates(&self, i: usize) -> Vec<CheckpointCert> {
        self.stores[i]
            .iter()
            .filter_map(|r| match r {
                Record::Stable(s) => Some((s.seq, s.clone())),
                _ => None,
            })
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect()
    }

    /// Requests replica `i` executed, over all its decisions.
    pub fn executed_requests(&self, i: usize) -> usize {
        self.delivered[i].iter().map(|d| d.executed.len()).sum()
    }

    /// The timer of `kind` armed at replica `i`, if any.
    pub fn armed(&self, i: usize, kind: TimerKind) -> Option<Timer> {
        self.timers[i].get(&kind).copied()
    }

    /// Fires timer `kind` at replica `i` if it is armed.
    pub fn fire_if_armed(&mut self, i: usize, kind: TimerKind) {
        if self.timers[i].contains_key(&kind) {
            self.fire(i, kind);
        }
    }

    /// One heartbeat interval everywhere: every replica's heartbeat timer fires once, in id
    /// order (the primary of view 0 first, so its heartbeat is in flight before backups count).
    pub fn heartbeat_tick(&mut self) {
        for i in 0..self.replicas.len() {
            self.fire_if_armed(i, TimerKind::Heartbeat);
        }
    }

    pub fn executed_seqs(&self, i: usize) -> Vec<u64> {
        self.delivered[i].iter().map(|d| d.seq.0).collect()
    }

    /// Messages of `kind` replica `i` has broadcast so far.
    pub fn broadcasts(&self, i: usize, kind: Kind) -> usize {
        self.log[i]
            .iter()
            .filter(|a| matches!(a, Action::Broadcast(e) if e.kind == kind))
            .count()
    }

    /// Messages of `kind` replica `i` has sent to replica `to` alone so far.
    pub fn sends(&self, i: usize, to: usize, kind: Kind) -> usize {
        self.log[i]
            .iter()
            .filter(|a| {
                matches!(a, Action::Send { to: ReplicaId(t), envelope } if *t as usize == to && envelope.kind == kind)
            })
            .count()
    }

    /// Every backup hears view 0's primary once (its heartbeat), as the backups of a running
    /// cluster have, without a heartbeat interval passing: until then a replica tolerates four
    /// times the configured silence (`replica/silence_gauge.rs`).
    pub fn hear_primary(&mut self) {
        let hb = Heartbeat {
            view: View(0),
            last_executed: Seq(0),
        };
        let signed = self.signed_by(0, Kind::Heartbeat, ProtoCodec.encode_heartbeat(&hb));
        for i in 1..self.replicas.len() {
            self.input(i, Input::Message(signed.clone()));
        }
    }

    /// Every message of `kind` replica `i` sent so far (broadcast or to one peer), as a peer
    /// opens it.
    pub fn sent(&self, i: usize, kind: Kind) -> Vec<Signed<Message>> {
        self.log[i]
            .iter()
            .filter_map(|a| match a {
                Action::Broadcast(e) | Action::Send { envelope: e, .. } => Some(e),
                _ => None,
            })
            .filter(|e| e.kind == kind)
            .map(|e| {
                open(&encode_envelope(e), self.directory_of(i)).expect("a replica's message opens")
            })
            .collect()
    }

    /// A message of `kind` with `payload` (already encoded) signed by validator `from`, opened
    /// as the wire would: what a peer, honest or not, could send.
    pub fn signed_by(&self, from: usize, kind: Kind, payload: Vec<u8>) -> Signed<Message> {
        let env = Envelope::seal(kind, payload, &self.keys[from]);
        open(&encode_envelope(&env), self.directory_of(from)).expect("a validator's message opens")
    }

    /// A request from the cluster's client that puts `members` in force as the next
    /// validator set (see [`ChainApp::set_operation`]).
    pub fn set_request(
        &self,
        nonce: u64,
        members: &[(ReplicaId, scbe_core::crypto::PublicKey)],
    ) -> Signed<Request> {
        self.request_with(nonce, ChainApp::set_operation(members))
    }

    /// A request from the cluster's client carrying `operation`.
    pub fn request_with(&self, nonce: u64, operation: Vec<u8>) -> Signed<Request> {
        Signed::seal(
            Request { nonce, operation },
            Kind::Request,
            |r| ProtoCodec.encode_request(r),
            &self.client,
            Principal::Requester,
        )
    }

    /// The key the cluster's client signs its requests with.
    pub fn client_key(&self) -> scbe_core::crypto::PublicKey {
        self.client.public()
    }

    /// On a fresh cluster (checkpoints every 4): requests 1 and 2 decided, then request 3
    /// rotates validator 3's key, and replicas 1 and 2 prepare it but hear nothing after that.
    /// Only 0 and 3 execute the boundary batch (seq 3) and enter epoch 1, with the boundary's
    /// proof short of the old set's quorum; 1 and 2 stay at seq 2 in epoch 0.
    pub fn boundary_short_of_its_proof(&mut self) {
        self.decide_each(0, 1..=2);
        let mut set: Vec<(ReplicaId, scbe_core::crypto::PublicKey)> = (self.keys.iter())
            .enumerate()
            .map(|(i, k)| (ReplicaId(i as u32), k.public()))
            .collect();
        set[3].1 = Keypair::from_label("short boundary").public();
        self.input(0, Input::ClientRequest(self.set_request(3, &set)));
        self.run_dropping(|to, m| {
            let early = matches!(m, Message::PrePrepare(_) | Message::Prepare(_));
            (to == 1 || to == 2) && !early
        });
    }

    /// Restarts replica `i` from its store, signing with `key` (its own, or the one a
    /// rotation gave it).
    pub fn restart_with_key(&mut self, i: usize, key: Keypair) -> Result<(), RestoreError> {
        let (r, actions) = Replica::restore(
            self.config(i),
            key.clone(),
            Arc::new(ProtoCodec),
            ChainApp::default(),
            &self.stores[i],
        )?;
        self.keys[i] = key;
        self.timers[i].clear();
        self.replicas[i] = Some(r);
        self.apply(i, actions);
        Ok(())
    }
}
