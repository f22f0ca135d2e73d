//! End to end: real `scbe-node` processes on loopback (free ports, killed on drop), a real gRPC
//! client. Waits poll a condition against a generous deadline; nothing sleeps a fixed time to
//! pass.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use scbe_node::consensus::{Codec as _, Kind, Principal, Request, Signed};
use scbe_node::crypto::Keypair;
use scbe_node::governance::manifest::{Metrics, Provider};
use scbe_node::governance::release::Unit;
use scbe_node::governance::{FusedRelease, Gates, Operation, Stage};
use scbe_node::local::{LocalCluster, LocalOptions};
use scbe_node::net::{envelope_to_proto, ProtoCodec};
use scbe_proto::v1 as pb;
use scbe_proto::v1::governance_client::GovernanceClient;

const DEADLINE: Duration = Duration::from_secs(60);

/// One cluster at a time: four debug-build validators already keep both cores busy.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn release(version: &str) -> FusedRelease {
    let unit = |id: &str, role: &str| Unit {
        id: id.into(),
        role: role.into(),
        uri: format!("u://{id}"),
        metrics: Metrics {
            quality: 0.85,
            safety: 0.98,
            latency_ms_p95: 90.0,
            cost_per_1k_tokens: 0.5,
        },
    };
    let units = BTreeMap::from([
        (Provider::Hf, unit("textgen", "textgen")),
        (Provider::Gcp, unit("embed", "embed")),
        (Provider::Aws, unit("runtime", "runtime")),
    ]);
    FusedRelease::new(units, Gates::default(), Some(version.into()), "t".into())
}

struct Harness {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    cluster: LocalCluster,
    requester: Keypair,
    nonce: u64,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(opts: LocalOptions) -> Self {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = LocalCluster::generate(
            std::path::Path::new(env!("CARGO_BIN_EXE_scbe-node")),
            dir.path(),
            4,
            &opts,
        )
        .expect("configs");
        cluster.start_all().expect("validators start");
        let requester =
            scbe_node::config::read_key_file(&cluster.requester_key).expect("requester key");
        Harness {
            _serial: serial,
            cluster,
            requester,
            nonce: 0,
            _dir: dir,
        }
    }

    fn request(&mut self, key: &Keypair, op: &Operation) -> pb::Envelope {
        self.nonce += 1;
        let r = Signed::seal(
            Request {
                nonce: self.nonce,
                operation: op.to_bytes(),
            },
            Kind::Request,
            |r| ProtoCodec.encode_request(r),
            key,
            Principal::Requester,
        );
        envelope_to_proto(r.envelope())
    }

    async fn client(&mut self, i: usize) -> GovernanceClient<tonic::transport::Channel> {
        let url = self.cluster.url(i);
        let start = Instant::now();
        loop {
            match GovernanceClient::connect(url.clone()).await {
                Ok(c) => return c,
                Err(e) if start.elapsed() > DEADLINE || !self.cluster.is_running(i) => {
                    panic!(
                        "validator {i} is not serving ({e}); its log:\n{}",
                        self.cluster.log(i)
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Submits to validator `i`, retrying while the cluster is still forming or changing view.
    async fn submit(&mut self, i: usize, op: Operation) -> pb::SubmitReply {
        let key = self.requester.clone();
        let env = self.request(&key, &op);
        let start = Instant::now();
        loop {
            let mut c = self.client(i).await;
            match c.submit(env.clone()).await {
                Ok(r) => return r.into_inner(),
                Err(s) if start.elapsed() < DEADLINE => {
                    eprintln!(
                        "submit to {i} not yet decided ({:?}: {}); retrying",
                        s.code(),
                        s.message()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => panic!("submit never decided: {s}"),
            }
        }
    }

    async fn status(&mut self, i: usize, proposal: Option<u64>) -> pb::StatusReply {
        let mut c = self.client(i).await;
        c.status(pb::StatusRequest { proposal })
            .await
            .expect("status")
            .into_inner()
    }

    /// Polls validator `i` until `pred` holds on its status, or panics at the deadline.
    async fn wait_status(
        &mut self,
        i: usize,
        proposal: Option<u64>,
        what: &str,
        pred: impl Fn(&pb::StatusReply) -> bool,
    ) -> pb::StatusReply {
        let start = Instant::now();
        loop {
            let s = self.status(i, proposal).await;
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "validator {i}: {what} not reached; last status {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn fast() -> LocalOptions {
    LocalOptions {
        request_timeout: Duration::from_millis(400),
        view_change_timeout: Duration::from_millis(800),
        status_interval: Duration::from_millis(200),
        checkpoint_interval: 4,
        ..LocalOptions::default()
    }
}

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
    let r = h
        .submit(
            2,
            Operation::Promote {
                version: "v1".into(),
                to: Stage::Canary,
                rollback_to: "v0".into(),
            },
        )
        .await;
    assert!(r.accepted, "{:?}", r.reasons);
    let p = r.proposal.expect("a proposal opened");
    for i in 0..4 {
        h.wait_status(i, Some(p), "proposal approved", |s| {
            s.detail_json.contains("\"status\":\"approved\"")
        })
        .await;
    }
    let s = h.status(3, None).await;
    assert!(
        s.detail_json.contains("\"v1\":\"canary\""),
        "{}",
        s.detail_json
    );
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
    assert!(
        err.message().contains("is not a registered requester"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_envelopes_are_dropped_while_the_node_keeps_serving() {
    use pb::consensus_client::ConsensusClient;
    let mut h = Harness::start(LocalOptions::default()).await;
    h.status(0, None).await; // serving
    let url = h.cluster.url(0);
    let mut peer = ConsensusClient::connect(url).await.expect("connect");
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
    let summary = peer
        .stream(tokio_stream::iter(vec![forged, garbage]))
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
    let refused = peer.stream(tokio_stream::iter(vec![huge])).await;
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
async fn the_audit_trail_exports_and_verifies_offline_and_tampering_is_caught() {
    let mut h = Harness::start(LocalOptions::default()).await;
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
    let p = h
        .submit(
            1,
            Operation::Promote {
                version: "v1".into(),
                to: Stage::Canary,
                rollback_to: "v0".into(),
            },
        )
        .await
        .proposal
        .expect("proposal");
    h.wait_status(2, Some(p), "approved", |s| {
        s.detail_json.contains("\"status\":\"approved\"")
    })
    .await;
    let out = h.cluster.dir.join("audit.bin");
    let scbe = env!("CARGO_BIN_EXE_scbe");
    let url = h.cluster.url(2);
    let export = std::process::Command::new(scbe)
        .args(["--node", &url, "audit", "export", "--out"])
        .arg(&out)
        .output()
        .expect("scbe runs");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let verify = |file: &std::path::Path| {
        std::process::Command::new(scbe)
            .args(["audit", "verify"])
            .arg(file)
            .arg("--config")
            .arg(&h.cluster.nodes[0].config)
            .output()
            .expect("scbe runs")
    };
    let ok = verify(&out);
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(ok.status.success(), "{text}");
    assert!(
        text.contains("verified") && text.contains("quorum 3"),
        "{text}"
    );
    // Registration, promotion and at least three votes were decided.
    let count: usize = text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(count >= 5, "{text}");
    // Flip one byte near the end (inside the last certificate's signatures).
    let mut bytes = std::fs::read(&out).expect("read");
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    let bad = h.cluster.dir.join("tampered.bin");
    std::fs::write(&bad, bytes).expect("write");
    let refused = verify(&bad);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(String::from_utf8_lossy(&refused.stdout).contains("INVALID"));
}
