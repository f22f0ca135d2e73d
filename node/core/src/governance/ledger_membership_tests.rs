//! Membership by governance: an agent admitted by an approved proposal joins the next
//! rollout's plan and its evidence counts; a removed one leaves every later plan and its
//! evidence stops counting; a re-keyed one's old key stops counting; every check a validator
//! makes refuses what it should; a snapshot carries the fleet.

use super::ledger::{AgentChange, ProposalStatus};
use super::ledger_world::{promotion, World};
use super::{Operation, Stage};
use crate::consensus::StateMachine as _;
use crate::crypto::Keypair;
use crate::governance::ledger::{Ledger, Signer};

fn add(id: &str, key: &Keypair) -> AgentChange {
    AgentChange::Add {
        id: id.into(),
        specialty: "doc_plan".into(),
        public_key: key.public(),
        address: "agent-new.fleet.svc:7100".into(),
    }
}

/// Proposes `change` and has validators 0..3 vote `approve`; the proposal's final status.
fn decide(w: &mut World, change: AgentChange, approve: bool) -> ProposalStatus {
    w.decide(Operation::ProposeAgent { change }, approve)
}

#[test]
fn an_admitted_agent_joins_the_next_rollout_and_its_evidence_counts() {
    let mut w = World::new();
    let key = Keypair::from_label("agent-new");
    // Validators' own evaluation approves it.
    let o = w.request(Operation::ProposeAgent {
        change: add("agent-new", &key),
    });
    let p = o.proposal.expect("proposal");
    assert_eq!(
        w.ledger.evaluate(p),
        (true, vec!["all checks pass".to_string()])
    );
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    let fleet = &w.ledger.state().agents;
    assert_eq!(fleet.len(), 7);
    assert_eq!(fleet[6].address, "agent-new.fleet.svc:7100");
    assert_eq!(
        w.ledger
            .state()
            .assigned
            .get("agent-new")
            .map(String::as_str),
        Some("v0"),
        "it runs what the fleet runs"
    );
    // A production rollout reaches it, and its signed ack and report are accepted.
    w.agents.push((w.ledger.state().agents[6].clone(), key));
    let canary = w.promote_to_canary("r1");
    w.complete_batches(canary, "r1");
    let o = w.request(promotion("r1", Stage::Production));
    assert!(o.accepted, "{:?}", o.reasons);
    let rollout = w.approve(o.proposal.expect("proposal"));
    let planned: Vec<String> = w.ledger.state().rollouts[&rollout]
        .batches
        .iter()
        .flatten()
        .cloned()
        .collect();
    assert!(planned.contains(&"agent-new".to_string()), "{planned:?}");
    w.complete_batches(rollout, "r1");
    assert_eq!(
        w.ledger
            .state()
            .assigned
            .get("agent-new")
            .map(String::as_str),
        Some("r1")
    );
}

#[test]
fn a_removed_agent_leaves_the_plan_and_its_evidence_stops_counting() {
    let mut w = World::new();
    assert_eq!(
        decide(
            &mut w,
            AgentChange::Remove {
                id: "agent-1".into()
            },
            true
        ),
        ProposalStatus::Approved
    );
    assert!(w.ledger.state().agent("agent-1").is_none());
    assert!(!w.ledger.state().assigned.contains_key("agent-1"));
    let rollout = w.promote_to_canary("r1");
    let r = &w.ledger.state().rollouts[&rollout];
    assert!(!r.batches.iter().flatten().any(|a| a == "agent-1"));
    // Its signed evidence is no longer anyone's.
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RolloutProgress {
            rollout,
            batch: 1,
            acks: vec![w.ack(1, rollout, "r1")],
            reports: vec![w.health(1, rollout, "r1", 0.9)],
            baseline: Vec::new(),
        },
    );
    assert!(!o.accepted);
}

/// An update may move an agent without re-keying it (and re-key it without moving it); one
/// that changes neither is refused.
#[test]
fn an_update_changes_the_address_the_key_or_both() {
    let mut w = World::new();
    let moved = AgentChange::Update {
        id: "agent-1".into(),
        address: Some("agent-1.fleet.svc:7100".into()),
        public_key: None,
    };
    assert_eq!(decide(&mut w, moved, true), ProposalStatus::Approved);
    assert_eq!(w.ledger.state().agents[1].address, "agent-1.fleet.svc:7100");
    let key = Keypair::from_label("agent-2 new");
    let rekeyed = AgentChange::Update {
        id: "agent-2".into(),
        address: None,
        public_key: Some(key.public()),
    };
    assert_eq!(decide(&mut w, rekeyed, true), ProposalStatus::Approved);
    assert_eq!(w.ledger.state().agents[2].key, key.public());
    let o = w.request(Operation::ProposeAgent {
        change: AgentChange::Update {
            id: "agent-3".into(),
            address: None,
            public_key: None,
        },
    });
    assert!(!o.accepted);
    assert!(
        o.reasons
            .iter()
            .any(|r| r.contains("the address, the key or both")),
        "{:?}",
        o.reasons
    );
}

#[test]
fn a_rekeyed_agents_old_key_stops_counting() {
    let mut w = World::new();
    let new_key = Keypair::from_label("agent-0 new");
    let change = AgentChange::Update {
        id: "agent-0".into(),
        address: Some("10.0.0.9:7100".into()),
        public_key: Some(new_key.public()),
    };
    assert_eq!(decide(&mut w, change, true), ProposalStatus::Approved);
    assert_eq!(w.ledger.state().agents[0].key, new_key.public());
    assert_eq!(w.ledger.state().agents[0].address, "10.0.0.9:7100");
    let rollout = w.promote_to_canary("r1");
    let first = w.ledger.state().rollouts[&rollout].batches[0].clone();
    assert!(first.contains(&"agent-0".to_string()), "{first:?}");
    // Agent-0's signed report of a failed deploy, as the auto-rollback's evidence.
    let old = w.fail_deploy(rollout, 0, "r1");
    assert!(
        !old.accepted,
        "an ack signed with the old key is not evidence"
    );
    w.agents[0].1 = new_key;
    let new = w.fail_deploy(rollout, 0, "r1");
    assert!(new.accepted, "{:?}", new.reasons);
}

#[test]
fn what_a_validator_checks_is_refused_with_the_reason() {
    let mut w = World::new();
    let taken = w.agents[2].0.key;
    let cases: Vec<(AgentChange, &str)> = vec![
        (
            add("agent-3", &Keypair::from_label("x")),
            "already in the fleet",
        ),
        (
            AgentChange::Add {
                id: "fresh".into(),
                specialty: "doc_plan".into(),
                public_key: taken,
                address: "h:1".into(),
            },
            "another agent's key",
        ),
        (
            AgentChange::Add {
                id: "fresh".into(),
                specialty: "doc_plan".into(),
                public_key: Keypair::from_label("y").public(),
                address: "no port".into(),
            },
            "must be host:port",
        ),
        (add("bad id!", &Keypair::from_label("z")), "id must be"),
        (
            AgentChange::Remove {
                id: "nobody".into(),
            },
            "not in the fleet",
        ),
        (
            AgentChange::Update {
                id: "agent-0".into(),
                address: None,
                public_key: None,
            },
            "changes the address, the key or both",
        ),
    ];
    for (change, expect) in cases {
        let o = w.request(Operation::ProposeAgent { change });
        assert!(!o.accepted);
        assert!(
            o.reasons.iter().any(|r| r.contains(expect)),
            "expected {expect:?} in {:?}",
            o.reasons
        );
    }
    // Validators propose nothing; one change at a time; none while a rollout holds the fleet.
    let o = w.submit(
        Signer::Validator(0),
        &Operation::ProposeAgent {
            change: AgentChange::Remove {
                id: "agent-0".into(),
            },
        },
    );
    assert!(!o.accepted);
    w.promote_to_canary("r1");
    let o = w.request(Operation::ProposeAgent {
        change: add("late", &Keypair::from_label("late")),
    });
    assert!(
        o.reasons.iter().any(|r| r.contains("holds the fleet")),
        "{:?}",
        o.reasons
    );
}

#[test]
fn a_rejected_change_changes_nothing_and_a_snapshot_carries_the_fleet() {
    let mut w = World::new();
    let before = w.ledger.state().agents.clone();
    assert_eq!(
        decide(
            &mut w,
            AgentChange::Remove {
                id: "agent-0".into()
            },
            false
        ),
        ProposalStatus::Rejected
    );
    assert_eq!(w.ledger.state().agents, before);
    assert_eq!(
        decide(&mut w, add("agent-new", &Keypair::from_label("n")), true),
        ProposalStatus::Approved
    );
    let snapshot = w.ledger.snapshot().bytes().to_vec();
    let mut fresh = Ledger::new(w.ledger.config().clone());
    assert_ne!(
        fresh.digest(),
        w.ledger.digest(),
        "the fleet is in the digest"
    );
    fresh.restore(&snapshot).expect("restores");
    assert_eq!(fresh.state().agents, w.ledger.state().agents);
    assert_eq!(fresh.digest(), w.ledger.digest());
}

/// The runtime republishes the fleet only when the generation moves: it must move when a
/// change applies or a snapshot is restored, and not for other operations.
#[test]
fn the_fleet_generation_moves_exactly_when_the_fleet_may_have_changed() {
    let mut w = World::new();
    let g0 = w.ledger.fleet_generation();
    w.promote_to_canary("r1");
    assert_eq!(
        w.ledger.fleet_generation(),
        g0,
        "a rollout leaves the fleet alone"
    );
    let mut w = World::new();
    assert_eq!(
        decide(
            &mut w,
            AgentChange::Remove {
                id: "agent-5".into()
            },
            true
        ),
        ProposalStatus::Approved
    );
    let g1 = w.ledger.fleet_generation();
    assert!(g1 > g0);
    let snapshot = w.ledger.snapshot().bytes().to_vec();
    let mut other = World::new();
    other.ledger.restore(&snapshot).expect("restores");
    assert!(other.ledger.fleet_generation() > g0);
}

/// Names are bounded at exactly [`MAX_AGENT_NAME_CHARS`]: 64 characters pass, 65 and empty do
/// not; an over-long id is refused before anything echoes it.
#[test]
fn agent_names_are_bounded_at_exactly_the_limit_and_never_echoed_when_too_long() {
    use crate::governance::ledger::MAX_AGENT_NAME_CHARS;
    let w = World::new();
    let with = |id: &str, specialty: &str| AgentChange::Add {
        id: id.into(),
        specialty: specialty.into(),
        public_key: Keypair::from_label("bounded").public(),
        address: "h:1".into(),
    };
    let at_limit = "a".repeat(MAX_AGENT_NAME_CHARS);
    let over = "a".repeat(MAX_AGENT_NAME_CHARS + 1);
    let far_over = "a".repeat(4 * MAX_AGENT_NAME_CHARS);
    assert_eq!(
        w.ledger.check_agent_change(&with(&at_limit, &at_limit)),
        Vec::<String>::new()
    );
    for (id, specialty, field) in [
        (over.as_str(), "s", "id must be"),
        (far_over.as_str(), "s", "id must be"),
        ("", "s", "id must be"),
        ("fresh", over.as_str(), "specialty must be"),
        ("fresh", "", "specialty must be"),
    ] {
        let reasons = w.ledger.check_agent_change(&with(id, specialty));
        assert!(
            reasons.iter().any(|r| r.starts_with(field)),
            "{id:?}/{specialty:?}: {reasons:?}"
        );
    }
    // Through a request: the bound comes first, whatever the kind of change, and the reason
    // does not carry the id back.
    let mut w = w;
    for change in [
        with(&far_over, "s"),
        AgentChange::Remove {
            id: far_over.clone(),
        },
        AgentChange::Update {
            id: far_over.clone(),
            address: Some("h:2".into()),
            public_key: None,
        },
    ] {
        assert_eq!(change.agent(), far_over);
        let o = w.request(Operation::ProposeAgent { change });
        assert!(!o.accepted);
        assert_eq!(
            o.reasons,
            vec![format!(
                "agent id longer than {MAX_AGENT_NAME_CHARS} characters"
            )]
        );
    }
    // An id of exactly the limit passes the request's bound too and opens a proposal.
    let o = w.request(Operation::ProposeAgent {
        change: with(&at_limit, "s"),
    });
    assert!(o.accepted, "{:?}", o.reasons);
}

/// What a change does is said in its events, in words an operator reads in `scbe status`.
#[test]
fn a_membership_change_is_described_in_its_events() {
    let mut w = World::new();
    let key = Keypair::from_label("agent-new");
    assert_eq!(
        decide(&mut w, add("agent-new", &key), true),
        ProposalStatus::Approved
    );
    assert_eq!(
        decide(
            &mut w,
            AgentChange::Update {
                id: "agent-new".into(),
                address: Some("h:2".into()),
                public_key: Some(Keypair::from_label("agent-new 2").public()),
            },
            true
        ),
        ProposalStatus::Approved
    );
    assert_eq!(
        decide(
            &mut w,
            AgentChange::Remove {
                id: "agent-new".into()
            },
            true
        ),
        ProposalStatus::Approved
    );
    let said: Vec<(String, String)> = w
        .ledger
        .journal()
        .events
        .iter()
        .filter(|e| e.kind.starts_with("membership"))
        .map(|e| (e.kind.clone(), e.detail.clone()))
        .collect();
    let proposed: Vec<&str> = said
        .iter()
        .filter(|(k, _)| k == "membership_proposed")
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(
        proposed,
        vec![
            "add agent agent-new (doc_plan) at agent-new.fleet.svc:7100",
            "update agent agent-new: address h:2, a new key",
            "remove agent agent-new",
        ],
        "{said:?}"
    );
    assert!(
        said.iter()
            .filter(|(k, _)| k != "membership_proposed")
            .all(|(_, d)| !d.is_empty()),
        "{said:?}"
    );
}
