//! A validator that was down while every other validator was re-keyed finds its way back, end
//! to end with real processes. Validator 3 is stopped; validators 0, 1 and 2 are rotated by
//! `scbe propose validator rotate` in turn, each restarted with its new key (epochs 1 to 3).
//! Started again, validator 3 pins and resolves none of its peers' keys: its chain fetcher
//! asks them for their chain, checks it from the genesis, and its edge then accepts their
//! keys in the later sets. It catches up into epoch 3 and its vote counts: with validator 2
//! down, the next proposal is approved by 0, 1 and 3. `scbe` with only the genesis in hand
//! reaches a re-keyed validator the same way, through the chain, even when no validator of
//! the genesis still holds its genesis key.

use scbe_sim::local::LocalOptions;
use scbe_tests::{fast, Harness};
use scbe_wire::key_file::encode_hex;

/// Rotates validator `id` by a proposal sent to validator `via` (one whose key is still the
/// genesis's), waits for `members` to enter epoch `epoch`, then restarts `id` with its new key.
async fn rotate(h: &mut Harness, id: usize, via: usize, epoch: u64, members: &[usize]) {
    let dir = h.cluster.dir.clone();
    let file = format!("keys/node{id}-rotated.key");
    let new_key = scbe_wire::key_file::write_new_key(&dir.join(&file)).expect("key");
    let (code, text) = h.scbe_text(
        via,
        &[
            "propose",
            "validator",
            "rotate",
            "--id",
            &id.to_string(),
            "--public-key",
            &encode_hex(new_key.public().as_bytes()),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("APPROVED"), "{text}");
    for &i in members {
        h.wait_status(i, None, &format!("epoch {epoch}"), |s| s.epoch == epoch)
            .await;
    }
    h.cluster.kill(id);
    let config = h.cluster.nodes[id].config.clone();
    let text = std::fs::read_to_string(&config).expect("node.toml");
    let old_line = format!("key_file = \"keys/node{id}.key\"");
    assert!(text.contains(&old_line), "{text}");
    std::fs::write(
        &config,
        text.replace(&old_line, &format!("key_file = \"{file}\"\nrekeyed = true")),
    )
    .expect("write");
    h.cluster.start(id).expect("restarts");
    h.cluster.validator_keys[id] = new_key.public();
    h.wait_status(id, None, "back in the set", |s| {
        s.epoch == epoch && !s.observing
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_down_while_every_peer_was_rekeyed_catches_up() {
    let mut h = Harness::start(LocalOptions { ..fast() }).await;
    h.status(0, None).await;
    h.cluster.kill(3);
    rotate(&mut h, 0, 1, 1, &[0, 1, 2]).await;
    rotate(&mut h, 1, 2, 2, &[0, 1, 2]).await;
    rotate(&mut h, 2, 2, 3, &[0, 1, 2]).await;

    h.cluster.start(3).expect("validator 3 starts again");
    let executed = h.status(0, None).await.last_executed;
    let back = h
        .wait_status(3, None, "validator 3 caught up into epoch 3", |s| {
            s.epoch == 3 && !s.observing && s.last_executed >= executed
        })
        .await;
    assert_eq!(back.epoch, 3);
    let log = h.cluster.log(3);
    assert!(
        log.contains("peers are in later validator-set epochs"),
        "the fetcher said why it accepts new keys: {log}"
    );

    // `scbe` with only the genesis reaches validator 0 (re-keyed) through the chain.
    let (code, text) = h.scbe_text(0, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("epoch 3"), "{text}");

    // Validator 3's vote counts: with 2 down, 0, 1 and 3 are the only quorum.
    h.cluster.kill(2);
    let (code, text) = h.scbe_text(3, &["propose", "settings", "--min-quality", "0.81"]);
    // Once (under CI load beside two simulator runs) this was not decided within 30 s: the
    // validators' logs say which view each was in and why.
    let logs = || {
        [0, 1, 3]
            .map(|i| format!("--- validator {i}:\n{}", tail(&h.cluster.log(i), 80)))
            .join("\n")
    };
    assert_eq!(code, Some(0), "{text}\n{}", logs());
    assert!(text.contains("APPROVED"), "{text}\n{}", logs());
    assert!(h.cluster.is_running(3), "{}", h.cluster.log(3));

    // With only re-keyed validators up (2 and 3 down), `scbe` with only the genesis still
    // reaches validator 0: it asks them for the chain accepting any certificate, and checks
    // the chain from the genesis.
    h.cluster.kill(3);
    let (code, text) = h.scbe_text(0, &["status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("epoch 3"), "{text}");
}

/// The last `n` lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
