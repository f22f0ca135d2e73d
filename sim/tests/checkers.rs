//! Each invariant checker catches a violation planted in its input (and stays quiet on the
//! honest input it is given first), so a checker that silently stopped checking fails here:
//! agreement, certificates, double-sign, integrity, validity, liveness, rollback, membership
//! and epochs (links, certificates and orders across a validator-set change: in
//! `checkers_epochs.rs`). Fleet-authority and rollout-evidence (which need a whole fleet) and the quorum
//! rule (agreement through the simulator) are broken on purpose in `honesty.rs`, and so is
//! recovery (a store that loses snapshot nonces: the restarted replica fails to restore);
//! own-nonces has its own unit tests.

use scbe_core::consensus::{Decision, Digest, Seq, ValidatorSet};
use scbe_sim::invariants::agreement::Agreement;
use scbe_sim::invariants::certificates::Certificates;
use scbe_sim::invariants::double_sign::DoubleSign;
use scbe_sim::invariants::integrity::Integrity;
use scbe_sim::invariants::liveness::Progress;
use scbe_sim::invariants::validity::Validity;
use scbe_wire::testkit::Cluster;

/// A 4-replica cluster that decided three requests, and replica 0's decisions.
fn decided() -> (Cluster, Vec<Decision>) {
    let mut c = Cluster::new(4, 8);
    for nonce in 1..=3 {
        c.input(
            0,
            scbe_core::consensus::Input::ClientRequest(c.request(nonce)),
        );
        c.run();
    }
    let d = c.delivered[0].clone();
    assert_eq!(d.len(), 3);
    (c, d)
}

#[test]
fn agreement_catches_two_batches_or_two_states_at_one_seq() {
    let mut a = Agreement::default();
    let (x, y) = (Digest::of_parts(&[b"x"]), Digest::of_parts(&[b"y"]));
    assert_eq!(a.on_decided(0, Seq(1), x), None);
    assert_eq!(a.on_decided(1, Seq(1), x), None);
    assert!(a.on_decided(2, Seq(1), y).is_some());
    assert_eq!(a.on_state(0, Seq(8), x), None);
    assert!(a.on_state(3, Seq(8), y).is_some());
}

#[test]
fn certificates_catches_a_short_quorum_a_repeated_signer_and_another_seq() {
    let (c, decisions) = decided();
    let check = Certificates;
    let set = ValidatorSet::genesis(c.dir.validators());
    for d in &decisions {
        assert_eq!(
            check.on_deliver(0, d, &set),
            None,
            "honest decision at {}",
            d.seq
        );
    }
    let mut short = decisions[0].clone();
    short.certificate.commits.truncate(2);
    assert!(check.on_deliver(0, &short, &set).is_some());
    let mut repeated = decisions[0].clone();
    let again = repeated.certificate.commits[0].clone();
    repeated.certificate.commits = vec![again.clone(), again.clone(), again];
    assert!(
        check.on_deliver(0, &repeated, &set).is_some(),
        "one signer three times"
    );
    let mut moved = decisions[0].clone();
    moved.seq = Seq(2);
    assert!(
        check.on_deliver(0, &moved, &set).is_some(),
        "certificate for another seq"
    );
}

#[test]
fn double_sign_catches_two_prepares_for_one_slot() {
    let (c, _) = decided();
    let mut check = DoubleSign::default();
    // Replica 1's honest messages: nothing to report.
    let sent: Vec<_> = c.log[1]
        .iter()
        .filter_map(|a| match a {
            scbe_core::consensus::Action::Broadcast(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert!(!sent.is_empty());
    for e in &sent {
        assert_eq!(check.on_sent(1, e), None);
    }
    // Replica 1 prepares another digest for a slot it prepared.
    let prepare = sent
        .iter()
        .find(|e| e.kind == scbe_core::consensus::Kind::Prepare)
        .expect("a prepare");
    let vote = scbe_core::consensus::Vote {
        view: scbe_core::consensus::View(0),
        seq: Seq(1),
        digest: Digest::of_parts(&[b"another batch"]),
    };
    use scbe_core::consensus::Codec as _;
    let other = scbe_core::consensus::Envelope::seal(
        prepare.kind,
        scbe_wire::ProtoCodec.encode_vote(&vote),
        &c.keys[1],
    );
    assert!(check.on_sent(1, &other).is_some());
}

#[test]
fn integrity_catches_a_request_executed_twice() {
    let (_, decisions) = decided();
    let mut check = Integrity::default();
    for d in &decisions {
        assert!(check.on_deliver(0, d).is_empty());
        assert!(
            check.on_deliver(1, d).is_empty(),
            "another replica, same seq"
        );
    }
    // Replica 0 executes the request of seq 1 again at seq 3.
    let mut again = decisions[2].clone();
    again.executed = decisions[0].executed.clone();
    assert!(!check.on_deliver(0, &again).is_empty());
    // Replica 2 executes it first at another seq than the others did.
    let mut elsewhere = decisions[1].clone();
    elsewhere.executed = decisions[0].executed.clone();
    assert!(!check.on_deliver(2, &elsewhere).is_empty());
}

#[test]
fn validity_catches_a_request_nobody_submitted() {
    let (c, decisions) = decided();
    let mut check = Validity::default();
    for d in &decisions[..2] {
        for r in &d.executed {
            check.on_submitted(r.envelope().digest());
        }
    }
    for d in &decisions[..2] {
        assert!(check.on_deliver(0, d, &c.dir).is_empty());
    }
    assert!(!check.on_deliver(0, &decisions[2], &c.dir).is_empty());
}

#[test]
fn liveness_catches_every_kind_of_unfinished_work() {
    let done = || Progress {
        outstanding_requests: 0,
        flood_outstanding: 0,
        target: Seq(9),
        honest: vec![(0, Seq(9)), (1, Seq(9)), (2, Seq(10))],
        fleet_pending: Vec::new(),
    };
    assert_eq!(done().violation(), None);
    let mut p = done();
    p.outstanding_requests = 1;
    assert!(p.violation().is_some());
    let mut p = done();
    p.flood_outstanding = 3;
    assert!(p
        .violation()
        .is_some_and(|v| v.contains("3 flood requests")));
    let mut p = done();
    p.honest[1].1 = Seq(8);
    assert!(p.violation().is_some());
    let mut p = done();
    p.fleet_pending.push("rollout 1 is still InProgress".into());
    assert!(p.violation().is_some());
}

/// The ledger rolls a canary back on a failed deploy ack and records every agent of the batch
/// rolled back on signed acks; the rollback checker asks the agents themselves. Agents on the
/// rollback version pass; one that still runs the bad version is caught.
#[test]
fn rollback_catches_an_agent_left_on_the_bad_version() {
    use scbe_core::agent::{AgentCore, AgentState, SyntheticModel};
    use scbe_core::crypto::Keypair;
    use scbe_core::governance::ledger::{RolloutStatus, Signer};
    use scbe_core::governance::ledger_world::World;
    use scbe_core::governance::Operation;
    use scbe_core::rollout::evidence::{AckOutcome, OrderAction};
    use scbe_sim::fleet::SimAgent;
    use scbe_sim::invariants::rollback::check_rolled_back;
    use scbe_sim::scenario::AgentBehaviour;

    let mut w = World::new();
    let r = w.promote_to_canary("v1");
    let batch = w.ledger.state().rollouts[&r].batches[0].clone();
    let idx: Vec<usize> = batch.iter().map(|id| w.agent_index(id)).collect();
    let failed = w.ack_with(idx[0], r, OrderAction::Deploy, "v1", AckOutcome::Failed);
    let o = w.submit(
        Signer::Validator(2),
        &Operation::AutoRollback {
            rollout: r,
            reports: vec![],
            acks: vec![failed],
        },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    let acks = idx
        .iter()
        .map(|&i| w.ack_with(i, r, OrderAction::Rollback, "v0", AckOutcome::Done))
        .collect();
    let o = w.submit(
        Signer::Validator(0),
        &Operation::RollbackDone { rollout: r, acks },
    );
    assert!(o.accepted, "{:?}", o.reasons);
    let rollout = &w.ledger.state().rollouts[&r];
    assert_eq!(rollout.status, RolloutStatus::RolledBack);
    assert_eq!(rollout.rollback_agents, batch);

    let agent = |id: &str, runs: &str| {
        let key = Keypair::from_label(id);
        SimAgent {
            id: id.to_string(),
            specialty: String::new(),
            core: AgentCore::new(
                id.to_string(),
                key.clone(),
                Vec::new(),
                3,
                AgentState::initial(runs),
                10,
            ),
            key,
            behaviour: AgentBehaviour::Honest,
            model: SyntheticModel {
                seed: 0,
                degrade: None,
                degrade_after: 0,
                drift: None,
            },
            obeyed: Vec::new(),
            genesis: (Vec::new(), 3),
        }
    };
    let honest: Vec<SimAgent> = batch.iter().map(|id| agent(id, "v0")).collect();
    assert!(check_rolled_back(rollout, &honest).is_empty());
    let mut left = honest;
    left[1] = agent(&batch[1], "v1");
    let found = check_rolled_back(rollout, &left);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&batch[1]), "{found:?}");
}

/// After an approved removal the ledger plans the next rollout without the agent, and the
/// membership checker is quiet; the same rollout with the removed agent planted in a batch is
/// caught, naming the agent and the seq that removed it.
#[test]
fn membership_catches_a_rollout_that_plans_a_removed_agent() {
    use scbe_core::governance::ledger::{AgentChange, ProposalStatus};
    use scbe_core::governance::ledger_world::World;
    use scbe_core::governance::Operation;
    use scbe_sim::invariants::membership::{approved_changes, check_planned};

    let mut w = World::new();
    let o = w.request(Operation::ProposeAgent {
        change: AgentChange::Remove {
            id: "agent-1".into(),
        },
    });
    assert!(o.accepted, "{:?}", o.reasons);
    let p = o.proposal.expect("a proposal");
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    let r = w.promote_to_canary("r1");
    let changes = approved_changes(&w.ledger);
    assert_eq!(changes.len(), 1);
    let mut rollout = w.ledger.state().rollouts[&r].clone();
    assert!(check_planned(&rollout, &changes).is_empty());
    rollout.batches[0].push("agent-1".into());
    let found = check_planned(&rollout, &changes);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("agent-1"), "{found:?}");
}

/// After an approved re-key, evidence signed with the agent's old (leaked) key is refused by
/// the ledger while the same evidence under the new key is recorded, and the agent-keys
/// checker is quiet; the rollout with a leaked-key report planted among its reports is
/// caught, naming the agent.
#[test]
fn agent_keys_catches_a_rollout_that_counted_a_leaked_key_report() {
    use scbe_core::crypto::Keypair;
    use scbe_core::governance::ledger::{AgentChange, ProposalStatus, Signer};
    use scbe_core::governance::ledger_world::World;
    use scbe_core::governance::Operation;
    use scbe_core::rollout::evidence::{
        AckBody, AckOutcome, DeployAck, HealthBody, HealthReport, OrderAction,
    };
    use scbe_sim::fleet::{leaked_key_report, rekeyed_key};
    use scbe_sim::invariants::agent_keys::check_no_leaked_key;

    // The world is deterministic: the agent first in the canary's batch is the same with or
    // without the re-key.
    let id = {
        let mut scratch = World::new();
        let r = scratch.promote_to_canary("r1");
        scratch.ledger.state().rollouts[&r].batches[0][0].clone()
    };
    let mut w = World::new();
    let old = w.agents[w.agent_index(&id)].1.clone();
    let new = rekeyed_key(&id);
    let status = w.decide(
        Operation::ProposeAgent {
            change: AgentChange::Update {
                id: id.clone(),
                address: None,
                public_key: Some(new.public()),
            },
        },
        true,
    );
    assert_eq!(status, ProposalStatus::Approved);
    let r = w.promote_to_canary("r1");
    // A healthy report under `key`: the attacker's (marked as leaked), or the agent's own.
    // Both cover the world's whole monitoring window, so only the key tells them apart.
    let old_public = old.public();
    let need = w.ledger.config().health.min_samples;
    let leaked_body = HealthBody {
        samples: need,
        window: need,
        ..leaked_key_report(&id, r, "r1", &old)
            .open(|_| Some(&old_public))
            .expect("signed with the old key")
    };
    let own_body = HealthBody {
        tasks_per_minute: 60.0,
        ..leaked_body.clone()
    };
    let evidence = |key: &Keypair, body: &HealthBody, w: &World| {
        let ack = AckBody {
            agent: id.clone(),
            rollout: r,
            action: OrderAction::Deploy,
            issued_seq: w.step(r),
            version: "r1".into(),
            outcome: AckOutcome::Done,
            detail: String::new(),
            refusal: None,
        };
        Operation::RolloutProgress {
            rollout: r,
            batch: 1,
            acks: vec![DeployAck::sign(&ack, key)],
            reports: vec![HealthReport::sign(body, key)],
            baseline: Vec::new(),
        }
    };
    let o = w.submit(Signer::Validator(0), &evidence(&old, &leaked_body, &w));
    assert!(!o.accepted, "evidence under the retired key was taken");
    assert!(!w.ledger.state().rollouts[&r].recorded.contains(&id));
    let o = w.submit(Signer::Validator(0), &evidence(&new, &own_body, &w));
    assert!(o.accepted, "{:?}", o.reasons);
    assert!(w.ledger.state().rollouts[&r].recorded.contains(&id));

    let mut rollout = w.ledger.state().rollouts[&r].clone();
    assert!(check_no_leaked_key(&rollout).is_empty());
    rollout.reports.insert(id.clone(), leaked_body);
    let found = check_no_leaked_key(&rollout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&id), "{found:?}");
}

/// After an approved settings change, a rollout planned later and a release fused against the
/// new gates pass the settings checker; the same rollout planted as in flight when the change
/// applied, and a release planted as registered under the old gates after it, are caught.
#[test]
fn settings_catches_a_change_mid_rollout_and_a_release_under_old_gates() {
    use scbe_core::governance::ledger::{ProposalStatus, SettingsChange};
    use scbe_core::governance::ledger_world::World;
    use scbe_core::governance::Operation;
    use scbe_sim::invariants::settings::{applied_changes, check_releases, check_rollout};

    let mut w = World::new();
    let o = w.request(Operation::ProposeSettings {
        change: SettingsChange {
            max_cost_per_1k_tokens: Some(1.5),
            ..SettingsChange::default()
        },
    });
    assert!(o.accepted, "{:?}", o.reasons);
    let p = o.proposal.expect("a proposal");
    for v in 0..3 {
        w.vote(v, p, true);
    }
    assert_eq!(
        w.ledger.state().proposals[&p].status,
        ProposalStatus::Approved
    );
    let applied = applied_changes(&w.ledger).expect("the whole journal");
    assert_eq!(applied.len(), 1, "{applied:?}");
    let changed_at = applied[0].0;
    let genesis = w.ledger.config().gates;
    // A release fused against the new gates, registered and promoted after the change.
    let version = "r1";
    let mut entry = {
        let release = scbe_sim::fleet::release_under(version, w.ledger.gates());
        let o = w.request(Operation::RegisterRelease { release });
        assert!(o.accepted, "{:?}", o.reasons);
        w.ledger.state().releases[version].clone()
    };
    assert!(check_releases([&entry], genesis, &applied).is_empty());
    let o = w.request(scbe_core::governance::ledger_world::promotion(
        version,
        scbe_core::governance::Stage::Canary,
    ));
    let r = w.approve(o.proposal.expect("a proposal"));
    w.complete_batches(r, version);
    let mut rollout = w.ledger.state().rollouts[&r].clone();
    assert!(rollout.ended_seq.is_some());
    assert!(check_rollout(&rollout, &applied).is_empty());
    // Planted: the rollout was planned before the change and ended after it.
    rollout.planned_seq = changed_at - 1;
    let found = check_rollout(&rollout, &applied);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("max_cost_per_1k_tokens 1.5"), "{found:?}");
    // Planted: a release under the genesis's gates registered after the change.
    let mut planted = entry.release.release().expect("decodes");
    planted.gates = genesis;
    entry.release = scbe_core::governance::ReleaseBody::new(&planted).expect("encodes");
    let found = check_releases([&entry], genesis, &applied);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(version), "{found:?}");
}
