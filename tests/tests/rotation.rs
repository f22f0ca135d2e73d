//! A validator's key rotated by governance, end to end with real processes: `scbe propose
//! validator rotate` is voted and applied with no restart of the others (every validator
//! moves to epoch 1 and `scbe status` shows it); the rotated validator, still on its old key,
//! observes; restarted with its new key (`node.rekeyed = true`) it opens its own data
//! directory and takes part again; the next promotion is decided with its vote under the new
//! key needed (another validator down); before any order, every agent admits the re-keyed
//! validator's health watch on the chain it carries; the agents obey orders that carry the
//! chain to the new set, which they keep; the decided log across the change verifies offline from the
//! genesis.

use std::time::Duration;

use scbe_core::governance::ledger::{ProposalStatus, RolloutStatus};
use scbe_core::governance::Stage;
use scbe_sim::local::LocalOptions;
use scbe_tests::{fleet_options, rollout_is, Harness};
use scbe_wire::key_file::encode_hex;

const ROLLOUT_DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_validator_rejoins_with_its_new_key_and_agents_follow_the_new_set() {
    let mut h = Harness::start(LocalOptions {
        agents: 3,
        ..fleet_options()
    })
    .await;
    h.status(0, None).await;
    let dir = h.cluster.dir.clone();
    let new_key =
        scbe_wire::key_file::write_new_key(&dir.join("keys/node3-rotated.key")).expect("key");

    let (code, text) = h.scbe_text(
        1,
        &[
            "propose",
            "validator",
            "rotate",
            "--id",
            "3",
            "--public-key",
            &encode_hex(new_key.public().as_bytes()),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("APPROVED"), "{text}");

    for i in 0..4 {
        h.wait_status(i, None, "epoch 1", |s| s.epoch == 1).await;
    }
    let s3 = h
        .wait_status(3, None, "validator 3 observing", |s| s.observing)
        .await;
    assert_eq!(s3.epoch, 1);
    let o = h.scbe(0, &["status"]);
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(table.contains("OBSERVING"), "{table}");

    // Its operator restarts it with the new key.
    h.cluster.kill(3);
    let config = h.cluster.nodes[3].config.clone();
    let text = std::fs::read_to_string(&config).expect("node3.toml");
    let old_line = "key_file = \"keys/node3.key\"";
    assert!(text.contains(old_line), "{text}");
    std::fs::write(
        &config,
        text.replace(
            old_line,
            "key_file = \"keys/node3-rotated.key\"\nrekeyed = true",
        ),
    )
    .expect("write");
    h.cluster.start(3).expect("restarts");
    // This test's own client pins each validator's key: validator 3's is the new one now.
    h.cluster.validator_keys[3] = new_key.public();
    let back = h
        .wait_status(3, None, "validator 3 in the set again", |s| {
            s.epoch == 1 && !s.observing
        })
        .await;
    assert!(
        h.cluster.is_running(3),
        "validator 3 stopped: {}",
        h.cluster.log(3)
    );
    assert_eq!(back.epoch, 1);
    // `scbe --node` naming the re-keyed validator, with only the genesis in hand: it asks the
    // genesis's validators for the chain and reaches validator 3 under the key it proves.
    let (code, text) = h.scbe_text(3, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("epoch 1"), "{text}");
    // `scbe status` checks the chain the validator it asks reports from the genesis and
    // reaches validator 3 under its new key.
    let o = h.scbe(0, &["status"]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("3 "))
        .unwrap_or_default();
    assert!(
        !row.is_empty() && !row.contains("UNREACHABLE") && !row.contains("OBSERVING"),
        "{text}"
    );

    // No order has carried the new set to the agents yet: validator 3's health watch carries
    // the chain, and each agent admits its new certificate key once the chain proves it.
    let agents = h.cluster.agents.len();
    let watched = h
        .wait_summary(
            3,
            "validator 3 watching every agent",
            ROLLOUT_DEADLINE,
            |s| {
                s.agents.len() == agents
                    && s.agents.iter().all(|a| {
                        a.warning.is_none() && a.health.as_ref().is_some_and(|h| h.age_ms < 5_000)
                    })
            },
        )
        .await;
    assert_eq!(watched.agents.len(), 3);

    // A promotion decided under the new set with validator 3's new key needed: validator 2 is
    // down, so 0, 1 and 3 are the only quorum (for consensus and for the vote).
    let executed = h.status(0, None).await.last_executed;
    h.wait_status(3, None, "validator 3 caught up", |s| {
        s.last_executed >= executed
    })
    .await;
    h.cluster.kill(2);
    let proposal = h.register_and_promote("r1", Stage::Canary).await;
    let p = h.wait_proposal(0, proposal, ProposalStatus::Approved).await;
    assert!(
        p.votes.get(&3).is_some_and(|v| v.approve),
        "validator 3's vote under its new key counts: {:?}",
        p.votes
    );
    h.cluster.start(2).expect("validator 2 back");
    h.wait_summary(1, "canary completed", ROLLOUT_DEADLINE, |s| {
        rollout_is(s, 0, RolloutStatus::Completed)
    })
    .await;

    // Every agent that obeyed an order trusts the new set from now on (kept in its state).
    let mut obeyed = 0;
    for a in &h.cluster.agents {
        let id = a
            .config
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let state = std::fs::read_to_string(dir.join(format!("data/{id}/agent-state.json")))
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
        if v["last_order_seq"].as_u64().unwrap_or(0) > 0 {
            obeyed += 1;
            assert_eq!(v["validators"]["epoch"].as_u64(), Some(1), "{id}: {state}");
        }
    }
    assert!(obeyed > 0, "no agent obeyed the canary's orders");

    // The decided log across the rotation verifies offline from the genesis alone: the
    // certificates after the change are signed with validator 3's new key.
    let text = h.verify_audit_from_genesis();
    assert!(text.contains("verified seqs 1..="), "{text}");
    assert!(text.contains("then epoch 1 after seq"), "{text}");
}
