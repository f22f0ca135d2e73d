//! A validator added by governance, end to end with real processes: `scbe propose validator
//! add` is voted by the four genesis validators and applied with no restart (every one moves to
//! epoch 1, a set of five with a quorum of four, and links to the newcomer at the address its
//! addition named); the new node, started with only the genesis and `added = true`, catches up
//! from its peers through the epoch that added it and takes part; with one genesis validator
//! down, the next promotion is decided only because the newcomer orders and votes; the agents
//! obey orders endorsed by the new set; the decided log verifies offline from the genesis.

use std::time::Duration;

use scbe_core::governance::ledger::{ProposalStatus, RolloutStatus};
use scbe_core::governance::Stage;
use scbe_sim::local::LocalOptions;
use scbe_tests::{fleet_options, http_get, rollout_is, Harness};
use scbe_wire::key_file::encode_hex;

const ROLLOUT_DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_validator_catches_up_and_its_vote_decides_the_next_promotion() {
    let mut h = Harness::start(LocalOptions {
        agents: 3,
        ..fleet_options()
    })
    .await;
    h.status(0, None).await;
    let (new, key) = h.cluster.add_validator(4).expect("writes validator 4");
    let address = h.cluster.nodes[new].addr.to_string();

    let key_hex = encode_hex(key.as_bytes());
    let propose_add = |address: &str| {
        h.scbe_text(
            1,
            &[
                "propose",
                "validator",
                "add",
                "--public-key",
                &key_hex,
                "--address",
                address,
            ],
        )
    };
    // A bad address is refused by every validator's check, before any vote.
    let (code, text) = propose_add("not an address");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("host:port"), "{text}");

    let (code, text) = propose_add(&address);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("APPROVED"), "{text}");
    assert!(text.contains("added as validator 4"), "{text}");
    for i in 0..4 {
        h.wait_status(i, None, "epoch 1", |s| s.epoch == 1).await;
    }

    // Its operator starts it with the genesis, its key and `added = true`.
    h.cluster.start(new).expect("validator 4 starts");
    let executed = h.status(0, None).await.last_executed;
    let joined = h
        .wait_status(new, None, "validator 4 in the set, caught up", |s| {
            s.epoch == 1 && !s.observing && s.last_executed >= executed
        })
        .await;
    assert!(
        h.cluster.is_running(new),
        "validator 4 stopped: {}",
        h.cluster.log(new)
    );
    assert_eq!(joined.epoch, 1);
    // `scbe status` lists it among validator 0's peers, reached under the key the chain proves.
    let (code, text) = h.scbe_text(0, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("4 "))
        .unwrap_or_default();
    assert!(
        !row.is_empty() && !row.contains("UNREACHABLE") && !row.contains("OBSERVING"),
        "{text}"
    );

    // Validator 0's dashboard asks the added validator's position too, while a page watches.
    let dashboard = h.cluster.nodes[0]
        .dashboard
        .expect("validator 0 serves a dashboard");
    let mut watching = std::net::TcpStream::connect(dashboard).expect("dashboard");
    std::io::Write::write_all(
        &mut watching,
        b"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("stream");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let position_of_4 = loop {
        let state = http_get(dashboard, "/api/state");
        let body = state.split("\r\n\r\n").nth(1).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let four = v["validators"]
            .as_array()
            .and_then(|vs| vs.iter().find(|x| x["id"] == 4).cloned());
        if let Some(four) = four.filter(|f| f["executed"].as_u64().is_some()) {
            break four;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "validator 4 has no position on validator 0's dashboard: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(position_of_4["epoch"].as_u64(), Some(1), "{position_of_4}");
    drop(watching);

    // Validator 2 down: 0, 1, 3 and 4 are the only quorum of five (four), for consensus and
    // for the vote.
    h.cluster.kill(2);
    let proposal = h.register_and_promote("r1", Stage::Canary).await;
    let p = h.wait_proposal(0, proposal, ProposalStatus::Approved).await;
    assert!(
        p.votes.get(&4).is_some_and(|v| v.approve),
        "validator 4's vote counts: {:?}",
        p.votes
    );
    h.cluster.start(2).expect("validator 2 back");
    h.wait_summary(1, "canary completed", ROLLOUT_DEADLINE, |s| {
        rollout_is(s, 0, RolloutStatus::Completed)
    })
    .await;

    // The decided log across the addition verifies offline from the genesis alone.
    let text = h.verify_audit_from_genesis();
    assert!(text.contains("then epoch 1 after seq"), "{text}");
}
