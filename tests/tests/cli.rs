//! `scbe` against a live quorum and fleet, as a requester uses it: environment instead of
//! flags, promotions that wait for the vote, readable and JSON status, a status piped into a
//! reader that hangs up, following a rollout to its end, and resubmission of a decided request.

use std::io::Read as _;
use std::process::{Command, Stdio};

use scbe_core::governance::{Operation, Stage};
use scbe_proto::v1 as pb;
use scbe_tests::{fleet_options, release, Harness};

fn scbe(h: &Harness, args: &[&str]) -> std::process::Output {
    h.scbe(1, args)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scbe_answers_the_question_asked() {
    let mut h = Harness::start(fleet_options()).await;
    // Wait for the quorum to serve before handing over to the CLI.
    h.status(1, None).await;
    let rel = h.cluster.dir.join("release.json");
    std::fs::write(&rel, release("r7").to_json_pretty()).expect("write");
    let o = scbe(
        &h,
        &[
            "propose",
            "register",
            "--release",
            rel.to_str().expect("utf8"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("accepted"), "{}", text(&o));

    // A promotion waits for the validators' votes and prints each, then the decision.
    let o = scbe(
        &h,
        &[
            "propose",
            "promote",
            "--release",
            "r7",
            "--to",
            "canary",
            "--rollback-to",
            "v0",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("APPROVED") && t.matches("approve  all checks pass").count() >= 3,
        "{t}"
    );

    // Following the rollout exits with its outcome.
    let o = scbe(&h, &["watch", "--rollout", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("rollout completed"), "{}", text(&o));

    // A rejected proposal exits 1 with the reason.
    let o = scbe(
        &h,
        &[
            "propose",
            "promote",
            "--release",
            "r-none",
            "--to",
            "canary",
            "--rollback-to",
            "v0",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("unknown release r-none"), "{}", text(&o));

    // Readable status by default, JSON on request.
    let o = scbe(&h, &["status"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("stages:") && t.contains("canary r7") && t.contains("agent-05"),
        "{t}"
    );
    let o = scbe(&h, &["status", "--json"]);
    let v: scbe_tests::StatusSummary = serde_json::from_slice(&o.stdout).expect("the summary");
    assert_eq!(
        v.rollouts[0].status,
        scbe_core::governance::ledger::RolloutStatus::Completed
    );
    assert_eq!(v.agents.len(), 6);

    // `scbe status | head -1`: the reader hangs up after one line; no panic.
    let mut child = Command::new(scbe_tests::workspace_bin("scbe"))
        .arg("status")
        .env("SCBE_NODE", h.cluster.url(1))
        .env("SCBE_GENESIS", h.cluster.genesis_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 16];
    let _ = child.stdout.as_mut().expect("stdout").read(&mut first);
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("waits");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");

    // Nonces cannot brick a key: one far above the highest executed is refused at once, and
    // the key keeps working (the CLI counts up from what the cluster reports, no clock).
    let mut c = h.client(2).await;
    let last = h.status(2, None).await;
    assert_eq!(last.last_nonce, 0, "not asked for a key");
    h.nonce = u64::MAX - 1;
    let brick = h.request(
        &h.requester.clone(),
        &Operation::Rollback {
            target_version: "v0".into(),
            reason: "test".into(),
        },
    );
    let e = c.submit(brick).await.expect_err("nonce 2^64-1 refused");
    assert!(e.message().contains("jumps more than"), "{e:?}");
    let o = scbe(
        &h,
        &[
            "rollback",
            "--target-version",
            "v0",
            "--reason",
            "nonce test",
        ],
    );
    assert_ne!(
        o.status.code(),
        Some(2),
        "the key still works: {}",
        text(&o)
    );
    // The same request submitted again is answered at once from the ledger.
    let mut asked =
        pb::governance_client::GovernanceClient::new(h.cluster.channel(2).await.expect("connects"));
    let highest = asked
        .status(pb::StatusRequest {
            proposal: None,
            signer: h.requester.public().as_bytes().to_vec().into(),
            brief: false,
        })
        .await
        .expect("status")
        .into_inner()
        .last_nonce;
    assert!(highest >= 1, "the CLI's requests executed");
    h.nonce = highest + 1000;
    let env = h.request(
        &h.requester.clone(),
        &Operation::Promote {
            version: "r7".into(),
            to: Stage::Production,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        },
    );
    let first = c.submit(env.clone()).await.expect("decided").into_inner();
    assert!(!first.already_decided);
    let again = c.submit(env).await.expect("answered").into_inner();
    assert!(again.already_decided, "{again:?}");
    assert_eq!((again.seq, again.accepted), (first.seq, first.accepted));
    // A nonce more than the window below the highest is refused at once, not left to time out.
    h.nonce = highest;
    let stale = h.request(
        &h.requester.clone(),
        &Operation::Rollback {
            target_version: "v0".into(),
            reason: "test".into(),
        },
    );
    let e = c.submit(stale).await.expect_err("stale nonce");
    assert!(e.message().contains("below"), "{e:?}");
}
