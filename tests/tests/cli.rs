//! `scbe` against a live quorum and fleet, as a requester uses it: environment instead of
//! flags, promotions that wait for the vote, readable and JSON status, a status piped into a
//! reader that hangs up, following a rollout to its end, and resubmission of a decided request.

use std::io::Read as _;
use std::process::{Command, Stdio};

use scbe_node::governance::{Operation, Stage};
use scbe_tests::{fleet_options, release, Harness};

fn scbe(h: &Harness, args: &[&str]) -> std::process::Output {
    Command::new(scbe_tests::workspace_bin("scbe"))
        .args(args)
        .env("SCBE_NODE", h.cluster.url(1))
        .env("SCBE_KEY", &h.cluster.requester_key)
        .output()
        .expect("scbe runs")
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
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["rollouts"][0]["status"], "completed");
    assert_eq!(v["agents"].as_array().map(Vec::len), Some(6));

    // `scbe status | head -1`: the reader hangs up after one line; no panic.
    let mut child = Command::new(scbe_tests::workspace_bin("scbe"))
        .arg("status")
        .env("SCBE_NODE", h.cluster.url(1))
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

    // A request whose nonce is not above the key's last one is refused at once, not left to
    // time out (the CLI's nonces are microseconds since the epoch, far above 1).
    let stale = h.request(
        &h.requester.clone(),
        &Operation::Rollback {
            target_version: "v0".into(),
            reason: "test".into(),
        },
    );
    let mut c = h.client(2).await;
    let e = c.submit(stale).await.expect_err("stale nonce");
    assert!(e.message().contains("not above"), "{e:?}");
    // The same request submitted again is answered at once from the ledger.
    h.nonce = u64::MAX / 2;
    let env = h.request(
        &h.requester.clone(),
        &Operation::Promote {
            version: "r7".into(),
            to: Stage::Production,
            rollback_to: "v0".into(),
        },
    );
    let first = c.submit(env.clone()).await.expect("decided").into_inner();
    assert!(!first.already_decided);
    let again = c.submit(env).await.expect("answered").into_inner();
    assert!(again.already_decided, "{again:?}");
    assert_eq!((again.seq, again.accepted), (first.seq, first.accepted));
}
