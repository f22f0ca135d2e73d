//! Release bodies in each validator's store (`release_bodies_in_store`, on by default): real
//! `scbe-node` processes on loopback decide, approve, restart and prove with the bodies read
//! back from their files, and the files hold them; with the option off, in memory, the files
//! hold none.

use scbe_core::consensus::Record;
use scbe_core::governance::body_store::REFERENCE_PREFIX;
use scbe_core::governance::ledger::ProposalStatus;
use scbe_core::governance::Stage;
use scbe_sim::local::LocalOptions;
use scbe_tests::{fast, Harness};
use scbe_validator::storage::{RecordStore, StoredBodies};
use scbe_wire::genesis::Genesis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_bodies_in_the_store_promotions_restarts_and_proofs_work_as_with_them_in_memory() {
    // Checkpoints every 4 seqs: the bodies registered first leave memory at the first. Every
    // validator's evaluation of the promotion reads v1 back from its store, and the approved
    // rollout's plan reads its units.
    let mut h = five_registered_and_v1_approved(true).await;

    // A restart restores from the store (a snapshot naming stored bodies, read back from the
    // file) and catches up.
    h.cluster.kill(3);
    let key =
        scbe_wire::key_file::read_key_file(&h.cluster.dir.join("keys/node3.key")).expect("key");
    {
        let data = h.cluster.dir.join("data/node3/records.redb");
        let store = RecordStore::open(&data, &key.public(), &h.cluster.genesis).expect("store");
        let held = StoredBodies::new(store.reader()).len().expect("reads");
        assert_eq!(held, 5, "every registered body is in validator 3's file");
        // Its persisted snapshots name the bodies the file holds instead of carrying them.
        let genesis = Genesis::load(&h.cluster.genesis_path()).expect("genesis");
        let records = store.load(genesis.directory()).expect("loads");
        let named = records
            .iter()
            .filter_map(|r| match r {
                Record::Snapshot(s) => Some(String::from_utf8_lossy(&s.app_state).into_owned()),
                _ => None,
            })
            .map(|json| json.matches(&format!("\"{REFERENCE_PREFIX}")).count())
            .max();
        assert!(
            named.is_some_and(|n| n > 0),
            "a persisted snapshot names stored bodies: {named:?}"
        );
    }
    for v in ["v6", "v7", "v8", "v9"] {
        h.register(1, v).await;
    }
    let target = h.status(1, None).await.last_executed;
    h.cluster.start(3).expect("restart");
    h.wait_status(3, None, "caught up", |s| s.last_executed >= target)
        .await;
    assert!(h.cluster.is_running(3), "restarted replica keeps running");

    // A proof serialises the entry, its body read from the store.
    let (code, text) = prove_v1(&h, 1).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("\"v1\""), "{text}");

    // With nothing more submitted (no checkpoint to come), a validator restarted from its
    // store proves at once: its restored checkpoint keeps what proofs are made from.
    let executed = h.status(2, None).await.last_executed;
    h.cluster.kill(2);
    h.cluster.start(2).expect("restart");
    h.wait_status(2, None, "restarted", |s| s.last_executed >= executed)
        .await;
    let (code, text) = prove_v1(&h, 2).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        h.status(2, None).await.last_executed,
        executed,
        "proven without a new checkpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_bodies_in_memory_a_promotion_is_approved_and_the_files_hold_no_body() {
    let mut h = five_registered_and_v1_approved(false).await;
    let (code, text) = prove_v1(&h, 1).await;
    assert_eq!(code, Some(0), "{text}");
    h.cluster.kill(3);
    let key =
        scbe_wire::key_file::read_key_file(&h.cluster.dir.join("keys/node3.key")).expect("key");
    let data = h.cluster.dir.join("data/node3/records.redb");
    let store = RecordStore::open(&data, &key.public(), &h.cluster.genesis).expect("store");
    let held = StoredBodies::new(store.reader()).len().expect("reads");
    assert_eq!(
        held, 0,
        "release_bodies_in_store = false keeps bodies out of the file"
    );
}

/// A cluster (bodies in stores or in memory) that registered v1-v5 and approved v1 to canary
/// on every validator.
async fn five_registered_and_v1_approved(bodies_in_store: bool) -> Harness {
    let mut h = Harness::start(LocalOptions {
        bodies_in_store,
        ..fast()
    })
    .await;
    for v in ["v1", "v2", "v3", "v4", "v5"] {
        h.register(0, v).await;
    }
    let p = h.promote(1, "v1", Stage::Canary).await;
    for i in 0..4 {
        h.wait_proposal(i, p, ProposalStatus::Approved).await;
    }
    h
}

/// `scbe audit prove release v1` against validator `i`, asked until it succeeds or the
/// deadline passes: the exit code and what it printed.
async fn prove_v1(h: &Harness, i: usize) -> (Option<i32>, String) {
    let deadline = std::time::Instant::now() + scbe_tests::DEADLINE;
    loop {
        let (code, text) = h.scbe_text(i, &["audit", "prove", "release", "v1"]);
        if code == Some(0) || std::time::Instant::now() > deadline {
            return (code, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
