//! The agent's decisions, without I/O: which orders to obey, what a hook's result means for the
//! agent's state, and the signed acks and health reports it answers with. The daemon
//! (`scbe-agent`'s `service.rs`) runs hooks and sources around it; the simulator drives it directly.
//!
//! An order is obeyed only if it carries valid signatures of a quorum of the configured validator
//! set, names this agent, matches the RPC it came on, and is not older than the newest order
//! already obeyed (so a replayed deploy cannot undo a later rollback). An agent already on the
//! ordered version acks at once without running a hook, which makes orders idempotent.

use std::collections::VecDeque;

use crate::crypto::{Keypair, Verifier};
use crate::rollout::evidence::{
    AckBody, AckOutcome, DeployAck, HealthBody, HealthReport, OrderAction, Refusal, Sample,
    MAX_LATEST_SAMPLES,
};
use crate::rollout::health::aggregate;
use crate::rollout::order::{Order, OrderError, SignedOrder};

use super::agent_state::{AgentState, Installed};
pub use super::order_checker::OrderChecker;

/// Why an agent does not obey an order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderRefusal {
    #[error(transparent)]
    Unauthorised(#[from] OrderError),
    #[error("a {order:?} order arrived on the {call:?} call")]
    WrongCall {
        order: OrderAction,
        call: OrderAction,
    },
    #[error("the order is not for agent {agent}")]
    NotForThisAgent { agent: String },
    #[error(
        "stale order: issued at seq {issued}, but an order of seq {obeyed} was already obeyed"
    )]
    Stale { issued: u64, obeyed: u64 },
}

impl OrderRefusal {
    /// The reason as the signed ack states it.
    pub fn reason(&self) -> Refusal {
        match self {
            OrderRefusal::Unauthorised(OrderError::NotEnoughEndorsements { .. }) => {
                Refusal::NotEnoughEndorsements
            }
            // More endorsements than validators is malformed by construction: no honest leader
            // sends one.
            OrderRefusal::Unauthorised(
                OrderError::TooLarge(_)
                | OrderError::Malformed(_)
                | OrderError::TooManyEndorsements { .. }
                | OrderError::Chain(_),
            ) => Refusal::Malformed,
            OrderRefusal::WrongCall { .. } => Refusal::WrongCall,
            OrderRefusal::NotForThisAgent { .. } => Refusal::NotForThisAgent,
            OrderRefusal::Stale { .. } => Refusal::Stale,
        }
    }
}

/// How running a hook went, as the agent reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    /// The hook succeeded, or none was needed.
    Done,
    /// The hook failed or timed out; the text says how (it goes into the signed ack).
    Failed(String),
}

/// What obeying an order takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already on the ordered version: ack without running a hook.
    AlreadyThere,
    /// Run the deploy or rollback hook, then [`AgentCore::finish`].
    RunHook,
}

pub struct AgentCore {
    pub id: String,
    key: Keypair,
    checker: OrderChecker,
    state: AgentState,
    /// The latest samples on the current version (at most `report_window`).
    window: VecDeque<Sample>,
    report_window: usize,
    /// Samples taken since the current version was deployed.
    samples: u32,
    /// Every sample ever taken by this process (numbers synthetic noise).
    taken: u64,
    reports: u64,
}

impl AgentCore {
    pub fn new(
        id: String,
        key: Keypair,
        validators: Vec<Verifier>,
        quorum: usize,
        state: AgentState,
        report_window: usize,
    ) -> Self {
        AgentCore {
            id,
            key,
            checker: OrderChecker::new(validators, quorum, state.validators.as_ref()),
            state,
            window: VecDeque::new(),
            report_window: report_window.max(1),
            samples: 0,
            taken: 0,
            reports: 0,
        }
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    pub fn key(&self) -> &Keypair {
        &self.key
    }

    pub fn samples(&self) -> u32 {
        self.samples
    }

    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Checks an order that arrived on the `call` RPC: its endorsements ([`Self::verify`]),
    /// then whether this agent may obey it now ([`Self::admit`]).
    pub fn authorise(
        &self,
        signed: &SignedOrder,
        call: OrderAction,
    ) -> Result<Order, OrderRefusal> {
        let order = self.verify(signed)?;
        self.admit(&order, call)?;
        Ok(order)
    }

    /// The order, if a quorum of the configured validator set endorsed it. The costly part of
    /// [`Self::authorise`], and independent of the agent's state: the daemon runs it before it
    /// takes its order lock, off its async workers.
    pub fn verify(&self, signed: &SignedOrder) -> Result<Order, OrderRefusal> {
        self.checker.verify(signed)
    }

    /// The checks of [`Self::authorise`] that depend on the agent's state: the call, the agent
    /// named, and that nothing newer was obeyed.
    pub fn admit(&self, order: &Order, call: OrderAction) -> Result<(), OrderRefusal> {
        if order.action != call {
            return Err(OrderRefusal::WrongCall {
                order: order.action,
                call,
            });
        }
        if !order.is_for(&self.id) {
            return Err(OrderRefusal::NotForThisAgent {
                agent: self.id.clone(),
            });
        }
        if order.issued_seq < self.state.last_order_seq {
            return Err(OrderRefusal::Stale {
                issued: order.issued_seq,
                obeyed: self.state.last_order_seq,
            });
        }
        Ok(())
    }

    /// What checks an order's endorsements, to use without holding the core.
    pub fn order_checker(&self) -> OrderChecker {
        self.checker.clone()
    }

    pub fn step(&self, order: &Order) -> Step {
        if self.state.current.version == order.version {
            Step::AlreadyThere
        } else {
            Step::RunHook
        }
    }

    /// Records the outcome of obeying `order` (the hook's result, or `Ok` when already there)
    /// and returns the signed ack. The caller persists [`AgentCore::state`] before answering.
    pub fn finish(&mut self, order: &Order, result: HookOutcome) -> DeployAck {
        self.state.rollout = order.rollout;
        // The newest validator set the orders proved, kept with the state: a restarted agent
        // never goes back to trusting a set the validators retired.
        self.state.validators = self.checker.learned();
        self.state.last_order_seq = self.state.last_order_seq.max(order.issued_seq);
        let (outcome, detail) = match result {
            HookOutcome::Done => {
                if self.state.current.version != order.version {
                    let now = Installed {
                        version: order.version.clone(),
                        release_digest: order.release_digest.clone(),
                        units: order.units.clone(),
                    };
                    self.state.previous = Some(std::mem::replace(&mut self.state.current, now));
                    // A new version starts a new monitoring window.
                    self.window.clear();
                    self.samples = 0;
                    (AckOutcome::Done, String::new())
                } else {
                    (AckOutcome::Done, "already running it".to_string())
                }
            }
            HookOutcome::Failed(why) => (AckOutcome::Failed, why),
        };
        self.ack(order, outcome, detail)
    }

    fn ack(&self, order: &Order, outcome: AckOutcome, detail: String) -> DeployAck {
        DeployAck::sign(
            &AckBody {
                agent: self.id.clone(),
                rollout: order.rollout,
                action: order.action,
                issued_seq: order.issued_seq,
                version: order.version.clone(),
                outcome,
                detail,
                refusal: None,
            },
            &self.key,
        )
    }

    /// A signed refusal. Only the agent's own words are in it: nothing of an unauthorised order.
    pub fn refuse(&self, call: OrderAction, refusal: &OrderRefusal) -> DeployAck {
        DeployAck::sign(
            &AckBody {
                agent: self.id.clone(),
                rollout: 0,
                action: call,
                issued_seq: 0,
                version: String::new(),
                outcome: AckOutcome::Refused,
                detail: refusal.to_string(),
                refusal: Some(refusal.reason()),
            },
            &self.key,
        )
    }

    /// Adds one sample of the current version.
    pub fn record(&mut self, sample: Sample) {
        self.taken += 1;
        self.samples = self.samples.saturating_add(1);
        self.window.push_back(sample);
        while self.window.len() > self.report_window {
            self.window.pop_front();
        }
    }

    /// A signed report of the current window (none before the first sample).
    pub fn report(&mut self) -> Option<HealthReport> {
        let window: Vec<Sample> = self.window.iter().copied().collect();
        let agg = aggregate(&window)?;
        self.reports += 1;
        let latest = window[window.len().saturating_sub(MAX_LATEST_SAMPLES)..].to_vec();
        let body = HealthBody {
            agent: self.id.clone(),
            rollout: self.state.rollout,
            version: self.state.current.version.clone(),
            report: self.reports,
            samples: self.samples,
            window: window.len() as u32,
            coherence_mean: agg.coherence,
            error_rate_mean: agg.error_rate,
            response_ms_p95: agg.response_ms,
            safety_min: agg.safety,
            tasks_per_minute: agg.tasks_per_minute,
            latest,
        };
        Some(HealthReport::sign(&body, &self.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::order::Endorsement;

    struct Set {
        keys: Vec<Keypair>,
        core: AgentCore,
    }

    fn set() -> Set {
        let keys: Vec<Keypair> = (0..4)
            .map(|i| Keypair::from_label(&format!("v{i}")))
            .collect();
        let validators = keys
            .iter()
            .map(|k| Verifier::new(k.public()).expect("key"))
            .collect();
        let core = AgentCore::new(
            "a1".into(),
            Keypair::from_label("a1"),
            validators,
            3,
            AgentState::initial("v0"),
            5,
        );
        Set { keys, core }
    }

    fn order(action: OrderAction, version: &str, seq: u64, agents: &[&str]) -> Order {
        Order {
            rollout: 1,
            action,
            batch: 1,
            issued_seq: seq,
            version: version.into(),
            release_digest: "d".into(),
            units: vec![],
            agents: agents.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn signed(keys: &[Keypair], o: &Order) -> SignedOrder {
        let bytes = o.to_bytes();
        SignedOrder {
            endorsements: keys.iter().map(|k| Endorsement::sign(&bytes, k)).collect(),
            order: bytes,
            epochs: Vec::new(),
        }
    }

    #[test]
    fn a_leader_only_order_is_refused_and_a_quorum_order_obeyed() {
        let mut s = set();
        let o = order(OrderAction::Deploy, "v1", 10, &["a1", "b2"]);
        let leader_only = signed(&s.keys[..1], &o);
        let e = s.core.authorise(&leader_only, OrderAction::Deploy).err();
        assert_eq!(
            e,
            Some(OrderRefusal::Unauthorised(
                OrderError::NotEnoughEndorsements {
                    valid: 1,
                    needed: 3
                }
            ))
        );
        let quorum = signed(&s.keys[1..], &o);
        let ok = s
            .core
            .authorise(&quorum, OrderAction::Deploy)
            .expect("authorised");
        assert_eq!(s.core.step(&ok), Step::RunHook);
        let ack = s.core.finish(&ok, HookOutcome::Done);
        assert!(ack.payload.contains("\"done\""));
        assert_eq!(s.core.state().current.version, "v1");
        assert_eq!(
            s.core.state().previous.as_ref().map(|p| p.version.as_str()),
            Some("v0")
        );
        // Idempotent: the same order again needs no hook.
        assert_eq!(s.core.step(&ok), Step::AlreadyThere);
        // Wrong RPC, not for me.
        assert!(s.core.authorise(&quorum, OrderAction::Rollback).is_err());
        let other = signed(&s.keys, &order(OrderAction::Deploy, "v1", 10, &["b2"]));
        assert!(s.core.authorise(&other, OrderAction::Deploy).is_err());
    }

    #[test]
    fn a_replayed_older_order_cannot_undo_a_later_rollback() {
        let mut s = set();
        let deploy = order(OrderAction::Deploy, "bad", 10, &["a1"]);
        let d = s
            .core
            .authorise(&signed(&s.keys, &deploy), OrderAction::Deploy)
            .expect("ok");
        s.core.finish(&d, HookOutcome::Done);
        let back = order(OrderAction::Rollback, "v0", 20, &["a1"]);
        let b = s
            .core
            .authorise(&signed(&s.keys, &back), OrderAction::Rollback)
            .expect("ok");
        s.core.finish(&b, HookOutcome::Done);
        assert_eq!(s.core.state().current.version, "v0");
        let e = s
            .core
            .authorise(&signed(&s.keys, &deploy), OrderAction::Deploy)
            .err();
        assert_eq!(
            e.as_ref().map(OrderRefusal::reason),
            Some(Refusal::Stale),
            "{e:?}"
        );
        // The refusal the agent signs says so in a field, not only in words.
        let refused = s.core.refuse(OrderAction::Deploy, &e.expect("refused"));
        let pk = s.core.key().public();
        let body = refused.open(|_| Some(&pk)).expect("signed by the agent");
        assert_eq!(body.refusal, Some(Refusal::Stale));
    }

    #[test]
    fn a_failed_hook_keeps_the_version_and_says_why() {
        let mut s = set();
        let o = order(OrderAction::Deploy, "v1", 3, &["a1"]);
        let ack = s
            .core
            .finish(&o, HookOutcome::Failed("hook exited with status 1".into()));
        assert!(ack.payload.contains("\"failed\"") && ack.payload.contains("status 1"));
        assert_eq!(s.core.state().current.version, "v0");
    }

    #[test]
    fn reports_cover_the_window_of_the_current_version() {
        let mut s = set();
        assert!(s.core.report().is_none(), "no sample, no report");
        let good = Sample {
            coherence: 0.9,
            error_rate: 0.01,
            response_ms: 80.0,
            safety: 0.99,
            tasks_per_minute: 10.0,
        };
        for _ in 0..7 {
            s.core.record(good);
        }
        let pk = s.core.key().public();
        let body = s
            .core
            .report()
            .expect("report")
            .open(|_| Some(&pk))
            .expect("valid");
        assert_eq!((body.samples, body.window, body.latest.len()), (7, 5, 5));
        let o = order(OrderAction::Deploy, "v1", 3, &["a1"]);
        s.core.finish(&o, HookOutcome::Done);
        assert!(
            s.core.report().is_none(),
            "a new version starts a new window"
        );
    }
}
