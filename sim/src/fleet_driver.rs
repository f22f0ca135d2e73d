//! The fleet's part of a simulation run: every tick agents sample and publish signed reports,
//! every validator refreshes its watcher from its own ledger and submits what it decides, the
//! primary delivers the current order (endorsed by the validators whose ledgers derive it), the
//! release requester follows its script, and fleet liars forge evidence. Agents obey orders with
//! the real agent core; the checkers look at what agents really ran.

use std::sync::Arc;

use rand::Rng;
use scbe_core::consensus::{Kind, Principal, Request, Signed};
use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::AgentChange;
use scbe_core::governance::Operation;
use scbe_core::rollout::evidence::HealthReport;
use scbe_core::rollout::evidence::OrderAction;
use scbe_core::rollout::order::{Endorsement, SignedOrder};
use scbe_core::rollout::watcher::StepView;
use scbe_wire::ProtoCodec;

use crate::fleet::{
    leaked_key_report, rekeyed_key, Evidence, Obeyed, ORDER_RETRY_MS, SAMPLE_TICKS,
};
use crate::invariants::agent_keys::check_no_leaked_key;
use crate::invariants::fleet_authority::check_order;
use crate::invariants::membership::{approved_changes, check_planned};
use crate::invariants::rollback::check_rolled_back;
use crate::invariants::rollout_evidence::check_completed;
use crate::invariants::settings;
use crate::scenario::AgentBehaviour;
use crate::simulation::{Event, Phase, Simulation};

impl Simulation {
    fn agent_silent(&self, agent: usize) -> bool {
        self.agents[agent].behaviour == AgentBehaviour::Silent && self.phase == Phase::Safety
    }

    /// Sends verified evidence to every validator, each copy with its own network delay.
    fn publish(&mut self, evidence: Evidence) {
        for node in 0..self.sc.nodes() {
            self.send_evidence(node, evidence.clone());
        }
    }

    /// Sends evidence to validator `node` with a network delay.
    fn send_evidence(&mut self, node: usize, evidence: Evidence) {
        let delay = self
            .rng
            .random_range(self.sc.delay_min_ms..=self.sc.delay_max_ms);
        self.schedule(delay, Event::Evidence { node, evidence });
    }

    pub(crate) fn fleet_tick(&mut self) {
        self.ticks += 1;
        self.restart_mid_rollout();
        self.rotate_when_observing();
        self.rekey_agents();
        if self.ticks.is_multiple_of(SAMPLE_TICKS) {
            self.agents_sample();
            self.leaked_keys_lie();
        }
        for node in 0..self.sc.nodes() {
            self.validator_tick(node);
        }
        self.requester_tick();
    }

    /// `Scenario::restart_mid_rollout`: crash the replica the first time its own ledger has a
    /// rollout in progress, and restart it later.
    fn restart_mid_rollout(&mut self) {
        let Some((node, after_ms)) = self.sc.restart_mid_rollout else {
            return;
        };
        if self.stats.restarted_mid_rollout.is_some() {
            return;
        }
        let rolling = self.ledger(node).is_some_and(|l| {
            l.state()
                .rollouts
                .open_values()
                .any(|r| r.status == scbe_core::governance::ledger::RolloutStatus::InProgress)
        });
        if rolling {
            self.stats.restarted_mid_rollout = Some(node);
            self.schedule(0, Event::Crash(node));
            self.schedule(after_ms, Event::Restart(node));
        }
    }

    /// An agent re-keyed by an approved proposal is restarted with its new key by its operator
    /// as soon as the requester sees the approval; its old key is taken to have leaked.
    fn rekey_agents(&mut self) {
        if !self.sc.fleet.membership {
            return;
        }
        let Some(ledger) = self.advanced().and_then(|r| self.ledger(r)) else {
            return;
        };
        let due: Vec<(usize, Keypair)> = approved_changes(ledger)
            .into_iter()
            .filter_map(|(_, change)| match change {
                AgentChange::Update {
                    id,
                    public_key: Some(new),
                    ..
                } => {
                    let i = self.agents.iter().position(|a| a.id == id)?;
                    let key = rekeyed_key(&id);
                    (key.public() == new && self.agents[i].key.public() != new).then_some((i, key))
                }
                _ => None,
            })
            .collect();
        for (i, key) in due {
            let old = self.agents[i].restart_with(key);
            self.stats.agents_rekeyed += 1;
            self.leaked.push((self.agents[i].id.clone(), old));
        }
    }

    /// Whoever holds a leaked agent key sends validators healthy reports for the rollout in
    /// progress under that agent's name. Each validator's monitor checks the signature against
    /// the key its own ledger lists (a validator behind on the re-key takes it, and only its
    /// ledger, which orders the re-key first, can refuse it in a batch).
    fn leaked_keys_lie(&mut self) {
        if self.leaked.is_empty() {
            return;
        }
        let Some(ledger) = self.advanced().and_then(|r| self.ledger(r)) else {
            return;
        };
        let Some(r) = ledger.state().rollouts.open_values().next() else {
            return;
        };
        let (rollout, version) = (r.id, r.version.clone());
        let lies: Vec<(String, HealthReport)> = self
            .leaked
            .iter()
            .map(|(id, k)| {
                let lie = leaked_key_report(id, rollout, &version, k);
                (id.clone(), lie)
            })
            .collect();
        for (id, lie) in lies {
            for node in 0..self.sc.nodes() {
                let listed = self
                    .ledger(node)
                    .and_then(|l| l.state().agent(&id).map(|a| a.key));
                match lie.open(|_| listed.as_ref()) {
                    Ok(body) => self.send_evidence(node, Evidence::Report(lie.clone(), body)),
                    Err(_) => self.stats.evidence_refused += 1,
                }
            }
        }
    }

    fn agents_sample(&mut self) {
        for a in 0..self.agents.len() {
            if self.agent_silent(a) {
                continue;
            }
            let Some(report) = self.agents[a].sample() else {
                continue;
            };
            let key = self.agents[a].key.public();
            if let Ok(body) = report.open(|_| Some(&key)) {
                self.publish(Evidence::Report(report, body));
            }
            if self.agents[a].behaviour == AgentBehaviour::Byzantine && self.rng.random_bool(0.3) {
                let rng = &mut self.rng;
                if let Some(lie) = self.agents[a].lie(rng) {
                    // What each validator's monitor does with it: check the signature against
                    // the agent's registered key first.
                    match lie.open(|_| Some(&key)) {
                        Ok(body) => self.publish(Evidence::Report(lie, body)),
                        Err(_) => self.stats.evidence_refused += 1,
                    }
                }
            }
        }
    }

    /// Verified evidence reaching validator `node` (its monitor checked the agent's signature).
    pub(crate) fn on_evidence(&mut self, node: usize, evidence: Evidence) {
        let now = self.now;
        let n = &mut self.nodes[node];
        let Some(step) = n.step.as_mut() else {
            return;
        };
        if n.fleet_liar {
            n.fleet.collect(&evidence);
        }
        match evidence {
            Evidence::Report(signed, body) => step.report(signed, body, now),
            Evidence::Ack(signed, body) => step.ack(signed, body),
        }
    }

    /// A validator's fleet tick, as the runtime's: the step's fleet turn (votes, leaving a
    /// replaced view, the watcher's decisions), then, on the primary, the executor. A fleet
    /// liar forges instead of deciding, and delivers nothing.
    fn validator_tick(&mut self, node: usize) {
        let silent = self.nodes[node]
            .byzantine
            .as_ref()
            .is_some_and(|b| b.is_silent());
        let liar = self.nodes[node].fleet_liar;
        let now = self.now;
        let Some(step) = self.nodes[node].step.as_mut() else {
            return;
        };
        if silent {
            return;
        }
        // Byzantine validators vote too, as the core lets them.
        let turn = step.fleet_turn(now, !liar);
        let primary = step.replica().is_primary();
        let active = step.watcher().step().cloned();
        if let Some((_, nonce)) = turn.submitted.first() {
            if std::mem::take(&mut self.nodes[node].fresh_restart) {
                self.own_nonces.on_first_after_restart(node, *nonce);
            }
        }
        for (op, nonce) in &turn.submitted {
            self.trace(&[b"own", &(node as u64).to_be_bytes(), op.as_bytes()]);
            if self.is_honest(node) {
                if let Some(v) = self.own_nonces.on_signed(node, *nonce) {
                    self.violation("own-nonces", v);
                }
            }
        }
        if turn.replaced_view.is_some() {
            self.trace(&[b"replace-primary", &(node as u64).to_be_bytes()]);
        }
        self.apply(node, turn.actions);
        if liar {
            if self.rng.random_bool(0.1) {
                self.forge_order(node);
            }
            if let Some(active) = &active {
                if self.rng.random_bool(0.3) {
                    let key = self.nodes[node].key.clone();
                    let rng = &mut self.rng;
                    let leaked = &self.leaked;
                    if let Some(op) = self.nodes[node].fleet.forge(rng, &key, active, leaked) {
                        self.liar_request(node, &op);
                    }
                }
            }
            return; // a liar delivers no orders when it leads
        }
        if primary {
            if let Some(active) = active {
                self.execute(node, &active);
            }
        }
    }

    /// A fleet liar's forged operation, signed and ordered like its honest ones (the ledger
    /// must refuse it).
    fn liar_request(&mut self, node: usize, op: &Operation) {
        let Some(step) = self.nodes[node].step.as_mut() else {
            return;
        };
        let actions = step.submit_operation(op);
        self.trace(&[
            b"forged",
            &(node as u64).to_be_bytes(),
            op.name().as_bytes(),
        ]);
        self.apply(node, actions);
    }

    /// The primary's executor: endorsements from every reachable validator whose ledger derives
    /// the same order (a Byzantine one signs anything), then the order to every agent of the
    /// step that has not answered, again every `ORDER_RETRY_MS`.
    fn execute(&mut self, node: usize, step: &StepView) {
        let key = (step.rollout, step.order.issued_seq, step.order.action);
        let now = self.now;
        let n = &mut self.nodes[node];
        let Some(watcher) = n.step.as_ref().map(|s| s.watcher()) else {
            return;
        };
        let f = &mut n.fleet;
        if f.step_key != Some(key) {
            f.step_key = Some(key);
            f.sent.clear();
        }
        let due: Vec<String> = step
            .remaining()
            .filter(|a| !watcher.acked(a))
            .filter(|a| f.sent.get(*a).is_none_or(|t| now >= t + ORDER_RETRY_MS))
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        let bytes = step.order.to_bytes();
        // As the runtime's executor: the validators of the set in force endorse (checked
        // against the keys that set holds), and the order carries the chain that proves it.
        let Some(chain) = self.nodes[node].step.as_ref().map(|s| s.epoch_chain()) else {
            return;
        };
        let stale = self.sc.unsafe_stale_endorsers;
        let mut endorsers: Vec<(usize, Option<scbe_core::crypto::PublicKey>)> = if stale {
            (0..self.sc.n).map(|j| (j, None)).collect()
        } else {
            chain
                .set
                .members
                .iter()
                .map(|(id, k)| (id.0 as usize, Some(*k)))
                .collect()
        };
        // Its own endorsement first, then the peers after it; it stops at a quorum, as the
        // runtime's executor does.
        let own = endorsers.iter().position(|(j, _)| *j >= node).unwrap_or(0);
        endorsers.rotate_left(own);
        let quorum = if stale {
            self.ledger_cfg.quorum()
        } else {
            scbe_core::consensus::config::quorum_for(chain.set.n())
        };
        let mut endorsements = Vec::new();
        for (j, in_force) in endorsers {
            if endorsements.len() == quorum {
                break;
            }
            if j != node && !self.net.connected(node, j) {
                continue;
            }
            let key = if stale {
                &self.genesis_keys[j]
            } else {
                &self.nodes[j].key
            };
            if in_force.is_some_and(|k| key.public() != k) {
                continue; // still on a retired key: its endorsement would not count
            }
            let agrees = match &self.nodes[j].byzantine {
                Some(b) => !b.is_silent() && self.nodes[j].step.is_some(),
                None => self
                    .ledger(j)
                    .and_then(|l| l.current_order(step.rollout))
                    .is_some_and(|o| o.to_bytes() == bytes),
            };
            if agrees {
                endorsements.push(Endorsement::sign(&bytes, key));
            }
        }
        if endorsements.len() < quorum {
            return;
        }
        let order = Arc::new(SignedOrder {
            order: bytes,
            endorsements,
            epochs: if stale {
                Vec::new()
            } else {
                chain.links.clone()
            },
        });
        for agent_id in due {
            let Some(agent) = self.agents.iter().position(|a| a.id == agent_id) else {
                continue;
            };
            self.nodes[node].fleet.sent.insert(agent_id, now);
            let delay = self
                .rng
                .random_range(self.sc.delay_min_ms..=self.sc.delay_max_ms);
            self.schedule(
                delay,
                Event::Order {
                    agent,
                    order: Arc::clone(&order),
                    action: step.order.action,
                },
            );
        }
    }

    /// A liar orders an agent to deploy a version nobody approved, endorsed by itself alone
    /// (three times over): agents must refuse it.
    fn forge_order(&mut self, node: usize) {
        if self.agents.is_empty() {
            return;
        }
        let mut agents: Vec<String> = self.agents.iter().map(|a| a.id.clone()).collect();
        agents.sort();
        let order = scbe_core::rollout::order::Order {
            rollout: 0,
            action: OrderAction::Deploy,
            batch: 1,
            issued_seq: u64::MAX / 2,
            version: "evil".into(),
            release_digest: String::new(),
            units: vec![],
            agents,
        };
        let bytes = order.to_bytes();
        let e = Endorsement::sign(&bytes, &self.nodes[node].key);
        let signed = Arc::new(SignedOrder {
            order: bytes,
            endorsements: vec![e.clone(), e.clone(), e],
            epochs: Vec::new(),
        });
        let agent = self.rng.random_range(0..self.agents.len());
        self.schedule(
            1,
            Event::Order {
                agent,
                order: signed,
                action: OrderAction::Deploy,
            },
        );
    }

    pub(crate) fn on_order(&mut self, agent: usize, signed: &SignedOrder, action: OrderAction) {
        if self.agent_silent(agent) {
            return;
        }
        let order = match self.agents[agent].core.authorise(signed, action) {
            Ok(o) => o,
            Err(_) => {
                self.stats.orders_refused += 1;
                return;
            }
        };
        if let Some(v) = self
            .epochs
            .check_order(&self.agents[agent].id, signed, &order)
        {
            self.violation("order-epoch", v);
        }
        let runs_hook = self.agents[agent].core.step(&order) == scbe_core::agent::Step::RunHook;
        if runs_hook {
            let id = self.agents[agent].id.clone();
            if let Some(v) = check_order(&order, &id, &self.honest_ledgers()) {
                self.violation("fleet-authority", v);
            }
        }
        self.trace(&[
            b"order",
            &(agent as u64).to_be_bytes(),
            order.version.as_bytes(),
        ]);
        let ack = self.agents[agent]
            .core
            .finish(&order, scbe_core::agent::HookOutcome::Done);
        self.stats.orders_obeyed += 1;
        self.agents[agent].obeyed.push(Obeyed {
            rollout: order.rollout,
            action: order.action,
            version: order.version.clone(),
            issued_seq: order.issued_seq,
        });
        let key = self.agents[agent].key.public();
        if let Ok(body) = ack.open(|_| Some(&key)) {
            self.publish(Evidence::Ack(ack, body));
        }
    }

    /// The requester sends the script's next operation when nothing is outstanding.
    fn requester_tick(&mut self) {
        if self.clients.is_empty() || self.clients[0].outstanding.is_some() {
            return;
        }
        let Some(reader) = self.advanced() else {
            return;
        };
        let key = self.clients[0].key.public();
        let now = self.now;
        let op = {
            let Some(ledger) = self.nodes[reader].step.as_ref().map(|s| s.ledger()) else {
                return;
            };
            self.script.next(ledger, &key, now)
        };
        let Some(op) = op else { return };
        let c = &mut self.clients[0];
        c.nonce += 1;
        let nonce = c.nonce;
        let signed = Signed::seal(
            Request {
                nonce,
                operation: op.to_bytes(),
            },
            Kind::Request,
            |r| scbe_core::consensus::Codec::encode_request(&ProtoCodec, r),
            &c.key,
            Principal::Requester,
        );
        self.validity.on_submitted(signed.envelope().digest());
        self.clients[0].outstanding = Some(signed);
        self.script.sent(nonce);
        self.resend(0, nonce, false);
    }

    /// When an honest ledger shows a rollout completed or rolled back, check the agents.
    pub(crate) fn check_rollout_ends(&mut self, node: usize) {
        let Some(ledger) = self.ledger(node) else {
            return;
        };
        let ended: Vec<_> = ledger
            .state()
            .rollouts
            .values()
            .filter(|r| {
                matches!(
                    r.status,
                    scbe_core::governance::ledger::RolloutStatus::Completed
                        | scbe_core::governance::ledger::RolloutStatus::RolledBack
                )
            })
            .filter(|r| !self.checked.contains(&(r.id, r.status as u8)))
            .cloned()
            .collect();
        // Settings (`invariants/settings.rs`): checked on the rollouts that ended and the
        // releases they deployed, each once.
        let settings_found = settings::applied_changes(ledger).map(|applied| {
            let genesis = ledger.config().gates;
            let mut found = Vec::new();
            for r in &ended {
                found.extend(settings::check_rollout(r, &applied));
                let release = ledger.state().releases.get(r.version.as_str());
                found.extend(settings::check_releases(release, genesis, &applied));
            }
            (applied.len() as u64, found)
        });
        // Membership (`invariants/membership.rs`).
        let changes = approved_changes(ledger);
        self.stats.membership_changes = changes.len() as u64;
        for r in &ended {
            for v in check_planned(r, &changes) {
                self.violation("membership", v);
            }
            for v in check_no_leaked_key(r) {
                self.violation("agent-keys", v);
            }
        }
        if let Some((applied, found)) = settings_found {
            self.stats.settings_changes = applied;
            for v in found {
                self.violation("settings", v);
            }
        }
        for r in ended {
            self.checked.insert((r.id, r.status as u8));
            let problems = if r.status == scbe_core::governance::ledger::RolloutStatus::Completed {
                self.stats.rollouts_completed += 1;
                check_completed(&r, &self.agents)
            } else {
                self.stats.rollouts_rolled_back += 1;
                check_rolled_back(&r, &self.agents)
            };
            for p in problems {
                let invariant =
                    if r.status == scbe_core::governance::ledger::RolloutStatus::Completed {
                        "rollout-evidence"
                    } else {
                        "rollback"
                    };
                self.violation(invariant, p);
            }
        }
    }
}
