//! The simulation's message path: a delivery through the real wire door (`scbe_wire::open`) into a
//! replica (or a Byzantine node's mischief), the actions a replica returns (persisted, sent over
//! the faulty network, timers armed), and the invariant checks that watch what is sent and
//! decided.

use super::*;
use scbe_core::consensus::{Request, Signed};
use scbe_core::validator_step::Submission;

impl Simulation {
    /// Writes the bodies `node`'s ledger registered or installed since the last turn to its
    /// body store, as the runtime does with the turn's commit.
    fn store_bodies(&mut self, node: usize) {
        let n = &self.nodes[node];
        let (Some(bodies), Some(step)) = (&n.bodies, &n.step) else {
            return;
        };
        let fresh = step.ledger().take_new().bodies;
        for (key, json) in &fresh {
            if bodies.put(*key, json).is_err() {
                self.violation(
                    "bodies",
                    format!("replica {node} made a body that is not JSON"),
                );
                return;
            }
        }
        self.stats.bodies_stored += fresh.len() as u64;
    }

    pub(super) fn deliver(&mut self, to: usize, bytes: Arc<Vec<u8>>) {
        if self.nodes[to].step.is_none() {
            return;
        }
        if let Some(b) = self.nodes[to].byzantine.as_mut() {
            b.observe(&mut self.rng, &bytes);
        }
        // The edge resolves signers in the receiver's epoch, and in the sets it learnt ahead
        // of it, as the runtime's does.
        match self.open_at_edge(to, &bytes) {
            Some(Ok(message)) => self.feed(to, Input::Message(message)),
            Some(Err(_)) => self.stats.rejected_at_edge += 1,
            None => {}
        }
    }

    pub(crate) fn feed(&mut self, node: usize, input: Input) {
        let Some(step) = self.nodes[node].step.as_mut() else {
            return;
        };
        let actions = step.handle(input);
        self.apply(node, actions);
    }

    /// A client request reaching validator `node` through its client API: admitted (or answered,
    /// or refused) by the validator step, as the runtime does. The simulated validators keep no
    /// store of old outcomes beyond the ledger's.
    pub(crate) fn submit(&mut self, node: usize, request: Signed<Request>) {
        let Some(step) = self.nodes[node].step.as_mut() else {
            return;
        };
        if let Ok(Submission::Ordered(actions)) = step.submit(request, |_, _| None) {
            self.apply(node, actions);
        }
    }

    /// The ledger of validator `node`, if it is up.
    pub(crate) fn ledger(&self, node: usize) -> Option<&Ledger> {
        self.nodes[node].step.as_ref().map(ValidatorStep::ledger)
    }

    /// The honest validators' ledgers that are up.
    pub(crate) fn honest_ledgers(&self) -> Vec<&Ledger> {
        (0..self.sc.nodes())
            .filter(|i| self.is_honest(*i))
            .filter_map(|i| self.ledger(i))
            .collect()
    }

    /// The most advanced honest ledger (the requester reads it).
    pub(crate) fn advanced(&self) -> Option<usize> {
        (0..self.sc.nodes())
            .filter(|i| self.is_honest(*i))
            .filter(|i| self.nodes[*i].step.is_some())
            .max_by_key(|i| {
                self.nodes[*i]
                    .step
                    .as_ref()
                    .map_or(0, |s| s.last_executed().0)
            })
    }

    pub(crate) fn apply(&mut self, node: usize, actions: Vec<Action>) {
        self.store_bodies(node);
        for action in actions {
            if std::env::var_os("SCBE_SIM_DEBUG").is_some() {
                let what = match &action {
                    Action::Send { to, envelope } => {
                        format!("send {} to {to}", envelope.kind.name())
                    }
                    Action::Broadcast(e) => format!("broadcast {}", e.kind.name()),
                    Action::Deliver(d) => {
                        format!("deliver {} ({} requests)", d.seq, d.executed.len())
                    }
                    Action::Persist(_) => "persist".into(),
                    other => format!("{other:?}"),
                };
                eprintln!("{:>7} r{node} {what}", self.now);
            }
            match action {
                Action::Persist(record) => self.nodes[node].store.append(record),
                Action::Send { to, envelope } => self.send(node, &[to.0 as usize], &envelope),
                Action::Broadcast(envelope) => {
                    // To every node, members or not (a removed validator still receives).
                    let all: Vec<usize> = (0..self.sc.nodes()).filter(|j| *j != node).collect();
                    self.send(node, &all, &envelope);
                }
                Action::Deliver(decision) => self.on_deliver(node, decision),
                Action::Restored { seq, state_digest } => {
                    self.stats.state_restores += 1;
                    self.trace(&[b"restored", &seq.0.to_be_bytes()]);
                    if self.is_honest(node) {
                        if let Some(v) = self.agreement.on_state(node, seq, state_digest) {
                            self.violation("agreement", v);
                        }
                    }
                }
                Action::SetTimer(timer) => {
                    self.nodes[node].armed.insert(timer.kind, timer);
                    let base = match timer.kind {
                        TimerKind::Request => self.sc.request_timeout_ms,
                        TimerKind::ViewChange => self.sc.view_change_timeout_ms,
                        TimerKind::Status => STATUS_INTERVAL_MS,
                        TimerKind::Heartbeat => HEARTBEAT_INTERVAL_MS,
                    };
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(
                        base << timer.backoff.min(6),
                        Event::Timer {
                            node,
                            incarnation,
                            timer,
                        },
                    );
                }
                Action::CancelTimer(kind) => {
                    self.nodes[node].armed.remove(&kind);
                }
            }
        }
    }

    fn send(&mut self, from: usize, dests: &[usize], env: &Envelope) {
        let copies: Vec<(usize, Vec<u8>)> = match self.nodes[from].byzantine.as_mut() {
            Some(b) => b.outgoing(&mut self.rng, &self.directory, dests, env),
            None => {
                if let Some(v) = self.double_sign.on_sent(from, env) {
                    self.violation("no-double-sign", v);
                }
                if env.kind == Kind::Checkpoint {
                    self.check_checkpoint_agreement(from, env);
                }
                let bytes = encode_envelope(env);
                if bytes.len() > MAX_ENVELOPE_BYTES {
                    // The real edge refuses it: nobody would ever receive it.
                    self.violation(
                        "message cap",
                        format!(
                            "replica {from} sent a {} of {} bytes (cap {MAX_ENVELOPE_BYTES})",
                            env.kind.name(),
                            bytes.len()
                        ),
                    );
                    return;
                }
                dests.iter().map(|&d| (d, bytes.clone())).collect()
            }
        };
        for (to, bytes) in copies {
            let bytes = Arc::new(bytes);
            for delay in self.net.route(&mut self.rng, from, to) {
                self.stats.messages += 1;
                self.schedule(
                    delay,
                    Event::Deliver {
                        to,
                        bytes: Arc::clone(&bytes),
                    },
                );
            }
        }
    }

    fn check_checkpoint_agreement(&mut self, from: usize, env: &Envelope) {
        use prost::Message as _;
        if let Ok(cp) = scbe_proto::v1::Checkpoint::decode(env.payload.as_slice()) {
            if let Some(d) = Digest::from_slice(&cp.state_digest) {
                if let Some(v) = self.agreement.on_state(from, Seq(cp.seq), d) {
                    self.violation("agreement", v);
                }
            }
        }
    }

    fn on_deliver(&mut self, node: usize, d: Decision) {
        self.trace(&[
            b"decided",
            &(node as u64).to_be_bytes(),
            &d.seq.0.to_be_bytes(),
            d.certificate.pre_prepare.value().digest.as_bytes(),
        ]);
        if !self.is_honest(node) {
            return;
        }
        self.check_rollout_ends(node);
        self.stats.decided = self.stats.decided.max(d.seq.0);
        let digest = d.certificate.pre_prepare.value().digest;
        if let Some(v) = self.agreement.on_decided(node, d.seq, digest) {
            self.violation("agreement", v);
        }
        // The sets this replica went through, before its decision is checked against one.
        let found = match self.nodes[node].step.as_ref() {
            Some(step) => {
                let r = step.replica();
                let mut found: Vec<String> = self
                    .epochs
                    .on_epoch(node, &r.config().directory.set())
                    .into_iter()
                    .collect();
                found.extend(self.epochs.on_links(node, r.epoch_links()));
                found
            }
            None => Vec::new(),
        };
        let unproven = match self.nodes[node].step.as_ref() {
            Some(step) => self.state_proofs.on_stable(node, step.replica()),
            None => Vec::new(),
        };
        for v in unproven {
            self.violation("state-proofs", v);
        }
        for v in found {
            self.violation("epoch-links", v);
        }
        self.stats.epochs = self.epochs.changes() as u64;
        for v in self
            .validity
            .on_deliver(node, &d, self.epochs.directory_at(d.seq))
        {
            self.violation("validity", v);
        }
        for v in self.integrity.on_deliver(node, &d) {
            self.violation("integrity", v);
        }
        if let Some(v) = self
            .certificates
            .on_deliver(node, &d, self.epochs.set_at(d.seq))
        {
            self.violation("certificate", v);
        }
        for v in self.own_nonces.on_deliver(&d) {
            self.violation("own-nonces", v);
        }
        for r in &d.executed {
            for c in 0..self.clients.len() {
                let done = self.clients[c]
                    .outstanding
                    .as_ref()
                    .is_some_and(|o| o.envelope().digest() == r.envelope().digest());
                if done {
                    self.clients[c].outstanding = None;
                    self.stats.requests_completed += 1;
                    self.target = self.target.max(d.seq);
                    let think = self.rng.random_range(0..50);
                    let nonce = self.clients[c].nonce + 1;
                    self.schedule(
                        think,
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
