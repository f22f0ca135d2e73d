//! End to end: real `scbe-node` processes on loopback (free ports, killed on drop), a real gRPC
//! client. Waits poll a condition against a generous deadline; nothing sleeps a fixed time to
//! pass.

use scbe_core::governance::ledger::{ProposalStatus, RolloutStatus};
use std::collections::BTreeMap;

use scbe_core::crypto::Keypair;
use scbe_core::governance::{Operation, Stage};
use scbe_proto::v1 as pb;
use scbe_sim::local::LocalOptions;
use scbe_tests::{fast, release, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_is_decided_and_approved_by_the_validators_votes() {
    let mut h = Harness::start(LocalOptions::default()).await;
    let r = h
        .submit(
            1,
            Operation::RegisterRelease {
                release: release("v1"),
            },
        )
        .await;
    assert!(r.accepted, "{:?}", r.reasons);
    let p = h.promote(2, "v1", Stage::Canary).await;
    for i in 0..4 {
        h.wait_proposal(i, p, ProposalStatus::Approved).await;
    }
    // This quorum has no fleet: the approved promotion deploys nothing, so it must not count
    // as a canary (the rollout fails with a reason, the release stays in staging).
    let s = h.summary(3).await;
    assert_eq!(s.releases.get("v1"), Some(&Stage::Staging), "{s:?}");
    // A backup that has heard its primary tolerates between `silence_ticks` (4) and 4 x that
    // many heartbeat intervals (50 ms, the defaults) of its silence, and says so.
    let tolerated = h.status(3, None).await.silence_tolerated_ms;
    assert!((200..=800).contains(&tolerated), "{tolerated} ms");
    let r = &s.rollouts[0];
    assert_eq!(r.status, RolloutStatus::Failed, "{s:?}");
    assert!(r.reason.contains("no registered agents"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_primary_is_killed_the_next_proposal_is_decided_in_a_new_view() {
    let mut h = Harness::start(fast()).await;
    assert!(
        h.submit(
            1,
            Operation::RegisterRelease {
                release: release("v1")
            }
        )
        .await
        .accepted
    );
    h.cluster.kill(0); // primary of view 0
    let r = h
        .submit(
            2,
            Operation::RegisterRelease {
                release: release("v2"),
            },
        )
        .await;
    assert!(r.accepted, "{:?}", r.reasons);
    let s = h.status(2, None).await;
    assert!(s.view >= 1, "decided after a view change: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backup_restarts_from_storage_and_catches_up() {
    let mut h = Harness::start(fast()).await;
    assert!(
        h.submit(
            0,
            Operation::RegisterRelease {
                release: release("v1")
            }
        )
        .await
        .accepted
    );
    h.cluster.kill(3);
    for v in 2..=7 {
        let r = h
            .submit(
                1,
                Operation::RegisterRelease {
                    release: release(&format!("v{v}")),
                },
            )
            .await;
        assert!(r.accepted, "{:?}", r.reasons);
    }
    let target = h.status(1, None).await.last_executed;
    h.cluster.start(3).expect("restart");
    h.wait_status(3, None, "caught up", |s| s.last_executed >= target)
        .await;
    assert!(h.cluster.is_running(3), "restarted replica keeps running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_requester_is_permission_denied() {
    let mut h = Harness::start(LocalOptions::default()).await;
    let stranger = Keypair::from_label("stranger");
    let env = h.request(
        &stranger,
        &Operation::RegisterRelease {
            release: release("v1"),
        },
    );
    let mut c = h.client(0).await;
    let err = c.submit(env).await.expect_err("must be refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // Named in full, with the command that admits it.
    let hex = scbe_wire::key_file::encode_hex(stranger.public().as_bytes());
    assert!(
        err.message()
            .contains(&format!("key {hex} is not a requester of this cluster"))
            && err.message().contains("scbe propose requester add"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_envelopes_are_dropped_while_the_node_keeps_serving() {
    use pb::consensus_client::ConsensusClient;
    let mut h = Harness::start(LocalOptions::default()).await;
    h.status(0, None).await; // serving
                             // Over TLS, only a validator's certificate may open a consensus stream: a caller without
                             // one is refused before anything it sends is read.
    let mut anonymous = ConsensusClient::new(h.cluster.channel(0).await.expect("connect"));
    let refused = anonymous
        .stream(tokio_stream::iter(vec![]))
        .await
        .expect_err("no validator certificate");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    // What follows is sent with validator 3's certificate: a validator gone bad.
    let mut peer = ConsensusClient::new(h.cluster.peer_channel(0, 3).await.expect("connect"));
    let forged = pb::Envelope {
        kind: pb::Kind::Prepare as i32,
        payload: vec![1, 2, 3].into(),
        signer: vec![7; 32].into(),
        signature: vec![9; 64].into(),
    };
    let garbage = pb::Envelope {
        kind: 99,
        payload: vec![0xff; 10].into(),
        signer: vec![1].into(),
        signature: vec![].into(),
    };
    // A caller that presents no genesis (or another one) is refused before anything it sends
    // is read, and told the genesis this validator runs.
    let unnamed = peer
        .stream(tokio_stream::iter(vec![forged.clone()]))
        .await
        .expect_err("no genesis presented");
    assert_eq!(unnamed.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        scbe_wire::genesis::refused_genesis(&unnamed),
        Some(h.cluster.genesis)
    );
    let genesis = h.cluster.genesis;
    let with_genesis = |envelopes: Vec<pb::Envelope>| {
        let mut r = tonic::Request::new(tokio_stream::iter(envelopes));
        scbe_wire::genesis::present(&mut r, &genesis);
        r
    };
    let summary = peer
        .stream(with_genesis(vec![forged, garbage]))
        .await
        .expect("stream accepted")
        .into_inner();
    assert_eq!(summary.received, 2);
    let huge = pb::Envelope {
        kind: pb::Kind::Prepare as i32,
        payload: vec![0; 17 * 1024 * 1024].into(),
        signer: vec![].into(),
        signature: vec![].into(),
    };
    let refused = peer.stream(with_genesis(vec![huge])).await;
    assert!(refused.is_err(), "an envelope over the size cap is refused");
    let r = h
        .submit(
            0,
            Operation::RegisterRelease {
                release: release("v1"),
            },
        )
        .await;
    assert!(r.accepted, "node still decides: {:?}", r.reasons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_replays_to_the_clusters_state_and_a_gap_swap_or_tamper_is_refused() {
    use prost::Message as _;
    // Checkpoints every 4 seqs, so the log carries signed checkpoints to compare.
    let mut h = Harness::start(LocalOptions {
        checkpoint_interval: 4,
        ..LocalOptions::default()
    })
    .await;
    for v in ["v1", "v2", "v3"] {
        h.register(0, v).await;
    }
    let p = h
        .submit(
            1,
            Operation::Promote {
                version: "v1".into(),
                to: Stage::Canary,
                rollback_to: "v0".into(),
                pause_before: None,
                steps: Vec::new(),
            },
        )
        .await
        .proposal
        .expect("proposal");
    for i in 0..4 {
        h.wait_proposal(i, p, ProposalStatus::Approved).await;
    }
    let out = h.cluster.dir.join("audit.bin");
    let scbe = scbe_tests::workspace_bin("scbe");
    let url = h.cluster.url(2);
    let genesis = h.cluster.dir.join(scbe_sim::local::GENESIS);
    let verify = |file: &std::path::Path| {
        let o = std::process::Command::new(&scbe)
            .args(["audit", "verify"])
            .arg(file)
            .arg("--genesis")
            .arg(&genesis)
            .output()
            .expect("scbe runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    // Export while nothing is being decided (the last votes may still be ordered: export again
    // until validator 2 executed nothing new around the export), so the export's last seq is
    // the validator's and the digests can be compared.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (before, text) = loop {
        let before = h.status(2, None).await;
        let export = std::process::Command::new(&scbe)
            .args(["--node", &url, "audit", "export", "--out"])
            .env("SCBE_GENESIS", h.cluster.genesis_path())
            .arg(&out)
            .output()
            .expect("scbe runs");
        assert!(
            export.status.success(),
            "{}",
            String::from_utf8_lossy(&export.stderr)
        );
        let after = h.status(2, None).await;
        // Quiet: nothing executed meanwhile, and the state digest (computed when the
        // validator's queue empties) published for that seq.
        if after.last_executed == before.last_executed && !before.state_digest.is_empty() {
            let (code, text) = verify(&out);
            assert_eq!(code, Some(0), "{text}");
            break (before, text);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "validator 2 never went quiet"
        );
    };
    let digest = scbe_wire::key_file::encode_hex(&before.state_digest);
    let last = before.last_executed;
    assert!(
        text.contains(&format!("verified seqs 1..={last}"))
            && text.contains(&format!("final state digest (seq {last}): {digest}"))
            && text.contains("quorum of 3 of the 4 validators")
            && text.contains(&h.cluster.genesis.to_string()),
        "{text}"
    );
    // What the ledger holds, as the replay reached it (this cluster has no agents, so the
    // approved canary rollout failed).
    assert!(
        text.contains("production v0")
            && text.contains("3 registered; proposals: 1")
            && text.contains("v1             -> canary     failed"),
        "{text}"
    );
    let matched: usize = text
        .lines()
        .next()
        .unwrap_or_default()
        .split("; ")
        .find_map(|part| part.strip_suffix(" signed checkpoints match the replayed state"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a checkpoint count");
    assert!(matched >= 1 && last >= 5, "{text}");

    let log = pb::AuditLog::decode(std::fs::read(&out).expect("read").as_slice()).expect("log");
    assert_eq!(log.decided.len() as u64, last);
    let dir = h.cluster.dir.clone();
    let refused = |name: &str, log: pb::AuditLog, seq: u64| {
        let file = dir.join(name);
        std::fs::write(&file, log.encode_to_vec()).expect("write");
        let (code, text) = verify(&file);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(
            text.contains(&format!("INVALID at seq {seq}:")),
            "{name}: {text}"
        );
    };
    let mut middle = log.clone();
    middle.decided.remove(2);
    refused("middle.bin", middle, 3);
    let mut first = log.clone();
    first.decided.remove(0);
    refused("first.bin", first, 1);
    let mut swapped = log.clone();
    swapped.decided.swap(1, 2);
    refused("swapped.bin", swapped, 2);
    let mut twice = log.clone();
    twice.decided.insert(3, log.decided[2].clone());
    refused("twice.bin", twice, 4);
    // A signed checkpoint whose digest was changed no longer carries a quorum for it.
    let mut forged = log.clone();
    forged.checkpoints[0].state_digest = vec![7u8; 32].into();
    let seq = forged.checkpoints[0].seq;
    refused("forged.bin", forged, seq);
    // One byte flipped inside the last signed checkpoint.
    let mut bytes = log.encode_to_vec();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    let bad = dir.join("tampered.bin");
    std::fs::write(&bad, bytes).expect("write");
    let (code, text) = verify(&bad);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("INVALID"), "{text}");
}

/// A batch decided with nothing after it reaches every validator's disk on its own: the turn
/// that executed it committed without an fsync (nothing a peer receives waits for it), and the
/// loop syncs it within `UNSYNCED_FOR` when no later commit did. A copy of a running
/// validator's file is what a SIGKILL at that instant leaves (redb publishes a commit without
/// an fsync only in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_with_nothing_after_it_reaches_every_disk() {
    use scbe_validator::storage::RecordStore;
    let mut h = Harness::start(fast()).await;
    h.register(1, "quiet-1").await;
    let target = h.status(1, None).await.last_executed;
    let copies = tempfile::tempdir().expect("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for i in 0..4 {
        h.wait_status(i, None, "executed", |s| s.last_executed >= target)
            .await;
        let key =
            scbe_wire::key_file::read_key_file(&h.cluster.dir.join(format!("keys/node{i}.key")))
                .expect("key");
        let data = h.cluster.dir.join(format!("data/node{i}/records.redb"));
        let copy = copies.path().join(format!("node{i}.redb"));
        let mut polls = 0;
        loop {
            polls += 1;
            std::fs::copy(&data, &copy).expect("copies the running validator's file");
            // A copy read while a commit was being written may be torn (a kill never tears
            // a write): such a copy is only skipped.
            let on_disk = RecordStore::open(&copy, &key.public(), &h.cluster.genesis)
                .ok()
                .and_then(|s| s.decided_from(0, usize::MAX).ok())
                .is_some_and(|d| d.iter().any(|(seq, _)| *seq >= target));
            if on_disk {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "validator {i}: decision {target} not on disk after {polls} polls"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restarted_under_load_catches_up_and_never_signs_conflicting_votes() {
    use scbe_core::consensus::{Envelope, Record};
    use scbe_validator::storage::RecordStore;
    let opts = LocalOptions {
        checkpoint_interval: 128, // keep the evidence: nothing is compacted in this run
        ..fast()
    };
    let mut h = Harness::start(opts).await;
    assert!(
        h.submit(
            1,
            Operation::RegisterRelease {
                release: release("v0-load")
            }
        )
        .await
        .accepted
    );
    let mut version = 0;
    for _ in 0..2 {
        h.cluster.kill(3);
        for _ in 0..4 {
            version += 1;
            h.register(1 + version % 2, &format!("load-{version}"))
                .await;
        }
        h.cluster.start(3).expect("restart");
        // Load continues while it recovers.
        for _ in 0..3 {
            version += 1;
            h.register(2, &format!("load-{version}")).await;
        }
        let target = h.status(1, None).await.last_executed;
        h.wait_status(3, None, "caught up", |s| s.last_executed >= target)
            .await;
    }
    // Replica 3 caught up, maybe only by state transfer on a busy machine: a few more
    // requests, each decided before the next, with all four up, so that it votes and the
    // stores hold evidence to check (the count is asserted below).
    for _ in 0..6 {
        version += 1;
        h.register(3, &format!("load-{version}")).await;
        let target = h.status(1, None).await.last_executed;
        h.wait_status(3, None, "executed", |s| s.last_executed >= target)
            .await;
    }
    for i in 0..4 {
        h.cluster.kill(i);
    }
    // Everything replica 3 ever signed, as seen in every store.
    let genesis = scbe_wire::genesis::Genesis::load(&h.cluster.dir.join(scbe_sim::local::GENESIS))
        .expect("the cluster's genesis");
    let dir = genesis.directory();
    let r3 = *dir
        .validator_key(scbe_core::consensus::ReplicaId(3))
        .expect("key");
    let mut signed: BTreeMap<(String, u64, u64), scbe_core::consensus::Digest> = BTreeMap::new();
    let mut seen = 0usize;
    let mut check = |kind: &str, view: u64, seq: u64, digest: scbe_core::consensus::Digest| {
        seen += 1;
        let key = (kind.to_string(), view, seq);
        if let Some(old) = signed.insert(key.clone(), digest) {
            assert_eq!(old, digest, "replica 3 signed two different {key:?}");
        }
    };
    let env_vote = |e: &Envelope| e.signer == r3;
    for i in 0..4 {
        let data = h.cluster.dir.join(format!("data/node{i}/records.redb"));
        let key =
            scbe_wire::key_file::read_key_file(&h.cluster.dir.join(format!("keys/node{i}.key")))
                .expect("key");
        let store = RecordStore::open(&data, &key.public(), &h.cluster.genesis).expect("store");
        let records = store.load(dir).expect("records");
        // The whole audit trail too, as `Committed` records: records at or below the last stable
        // checkpoint are compacted away, the decided batches (with replica 3's commits) never are.
        let audit = store
            .decided_from(0, usize::MAX)
            .expect("audit trail")
            .into_iter()
            .map(|(_, bytes)| {
                Record::Committed(scbe_wire::decode_commit_cert(&bytes, dir).expect("audit entry"))
            });
        for rec in records.into_iter().chain(audit) {
            match rec {
                Record::Signed {
                    pre_prepare,
                    view,
                    seq,
                    digest,
                } if i == 3 => check(
                    if pre_prepare {
                        "pre_prepare"
                    } else {
                        "prepare"
                    },
                    view.0,
                    seq.0,
                    digest,
                ),
                Record::Prepared(c) => {
                    let pp = c.pre_prepare.value();
                    if env_vote(c.pre_prepare.envelope()) {
                        check("pre_prepare", pp.view.0, pp.seq.0, pp.digest);
                    }
                    for v in c.prepares.iter().filter(|v| env_vote(v.envelope())) {
                        check(
                            "prepare",
                            v.value().view.0,
                            v.value().seq.0,
                            v.value().digest,
                        );
                    }
                }
                Record::Committed(c) => {
                    for v in c.commits.iter().filter(|v| env_vote(v.envelope())) {
                        check(
                            "commit",
                            v.value().view.0,
                            v.value().seq.0,
                            v.value().digest,
                        );
                    }
                }
                _ => {}
            }
        }
    }
    assert!(seen > 10, "the stores hold replica 3's votes ({seen} seen)");
}

/// `scbe audit prove`: a release registered before a stable checkpoint is proven from the
/// genesis alone (the validator's certificate and the proof checked by the CLI, not taken on
/// trust); what the checkpoint does not hold is refused with exit 2, naming it. (A validator
/// that bends the answer is `scbe_wire`'s `state_proof_check_tests`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_proven_at_a_stable_checkpoint_from_the_genesis_alone() {
    // Checkpoints every 4 seqs: the fifth registration makes the fourth's stable.
    let mut h = Harness::start(scbe_tests::fast()).await;
    for v in ["v1", "v2", "v3", "v4", "v5"] {
        h.register(0, v).await;
    }
    let deadline = std::time::Instant::now() + scbe_tests::DEADLINE;
    let (code, text) = loop {
        let (code, text) = h.scbe_text(1, &["audit", "prove", "release", "v1"]);
        if code == Some(0) || std::time::Instant::now() > deadline {
            break (code, text);
        }
        // Not yet at a stable checkpoint that holds v1: refused, saying so.
        assert_eq!(code, Some(2), "{text}");
        assert!(
            text.contains("no entry") || text.contains("no stable checkpoint"),
            "{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.starts_with("proven: releases v1 as it stood at seq ")
            && text.contains("(epoch 0, 4 validators)")
            && text.contains(&h.cluster.genesis.to_string())
            && text.contains("\"v1\""),
        "{text}"
    );
    let o = h.scbe(1, &["audit", "prove", "release", "v1", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert!(doc["seq"].as_u64().is_some_and(|s| s >= 4), "{doc}");
    assert!(
        doc["signers"].as_array().is_some_and(|s| s.len() >= 3),
        "a quorum signed: {doc}"
    );
    assert_eq!(doc["map"], "releases");
    assert!(doc["entry"].to_string().contains("\"v1\""), "{doc}");

    let (code, text) = h.scbe_text(1, &["audit", "prove", "release", "nope"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("NotFound") && text.contains("nope"), "{text}");
    let (code, text) = h.scbe_text(1, &["audit", "prove", "rollout", "x"]);
    assert_eq!(code, Some(2), "{text}");
}
