//! Helpers for the end-to-end tests: where the workspace's binaries are, and a harness that
//! runs a local quorum (and fleet) of real processes on loopback with a gRPC client. Waits poll
//! a condition against a generous deadline; nothing sleeps a fixed time to pass.

pub mod browser;
pub mod netns;
pub mod offline_ledger;

use scbe_core::governance::ledger::{Proposal, ProposalStatus, RolloutStatus};
pub use scbe_wire::status_summary::StatusSummary;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use scbe_core::consensus::{Codec as _, Kind, Principal, Request, Signed};
use scbe_core::crypto::Keypair;
use scbe_core::governance::manifest::{Metrics, Provider};
use scbe_core::governance::release::Unit;
use scbe_core::governance::{FusedRelease, Gates, Operation};
use scbe_proto::v1 as pb;
use scbe_proto::v1::governance_client::GovernanceClient;
use scbe_sim::local::{Launch, LocalCluster, LocalOptions};
use scbe_wire::{envelope_to_proto, ProtoCodec};

/// Path of a workspace binary built in the same profile as the running test, building every
/// workspace binary first (`cargo test --workspace` builds none of them: they belong to other
/// packages). One `cargo build` for all four, once per test process, even when they exist: a
/// binary left from before a change would test old code (a no-op build takes about a second).
/// Built one package at a time, each resolves features on its own and recompiles the shared
/// crates.
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    // Test executables live in target/<profile>/deps/; binaries in target/<profile>/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let bin = profile_dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bins"]);
        for package in ["scbe-validator", "scbe-agent", "scbe-cli", "scbe-sim"] {
            cmd.args(["-p", package]);
        }
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the workspace's binaries failed");
        *built = true;
    }
    assert!(bin.exists(), "{} not found after building", bin.display());
    bin
}

pub const DEADLINE: Duration = Duration::from_secs(60);

/// Awaits one step of a test within [`DEADLINE`], or fails naming it: a call that never
/// answers (gRPC calls carry no deadline of their own) fails the test instead of hanging it.
pub async fn within<T>(step: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{step}: no answer within {DEADLINE:?}"),
    }
}

/// One cluster at a time: four debug-build validators already keep both cores busy.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Holds the machine for a test that runs its own processes outside a [`Harness`] (one cluster
/// at a time, and no two tests picking the same free ports).
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

pub fn release(version: &str) -> FusedRelease {
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

pub struct Harness {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    pub cluster: LocalCluster,
    pub requester: Keypair,
    pub nonce: u64,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(opts: LocalOptions) -> Self {
        Self::start_with(opts, |_| {}).await
    }

    /// Like `start`, with a chance to change the generated files before anything runs.
    pub async fn start_with(opts: LocalOptions, prepare: impl FnOnce(&LocalCluster)) -> Self {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let _agent = workspace_bin("scbe-agent"); // the fleet's processes
        let mut cluster = LocalCluster::generate(
            &Launch::binaries(&workspace_bin("scbe-node")),
            dir.path(),
            4,
            &opts,
        )
        .expect("configs");
        prepare(&cluster);
        cluster.start_all().expect("validators start");
        let requester =
            scbe_wire::key_file::read_key_file(&cluster.requester_key).expect("requester key");
        let mut h = Harness {
            _serial: serial,
            cluster,
            requester,
            nonce: 0,
            _dir: dir,
        };
        // Every validator serves before the test talks to any: a test that waited for one and
        // then ran `scbe` against another found it not listening yet.
        for i in 0..h.cluster.nodes.len() {
            h.client(i).await;
        }
        h
    }

    pub fn request(&mut self, key: &Keypair, op: &Operation) -> pb::Envelope {
        self.raw_request(key, op.to_bytes())
    }

    /// A request with any operation bytes (the ledger refuses what does not parse, but only
    /// after it was ordered).
    pub fn raw_request(&mut self, key: &Keypair, operation: Vec<u8>) -> pb::Envelope {
        self.nonce += 1;
        let r = Signed::seal(
            Request {
                nonce: self.nonce,
                operation,
            },
            Kind::Request,
            |r| ProtoCodec.encode_request(r),
            key,
            Principal::Requester,
        );
        envelope_to_proto(r.envelope())
    }

    pub async fn client(&mut self, i: usize) -> GovernanceClient<tonic::transport::Channel> {
        let start = Instant::now();
        loop {
            match self.cluster.channel(i).await.map(GovernanceClient::new) {
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
    /// The nonce counts up from the highest one the cluster executed for the requester key, so
    /// a request signed elsewhere with the same key (the `scbe` CLI in a test) never collides.
    pub async fn submit(&mut self, i: usize, op: Operation) -> pb::SubmitReply {
        let key = self.requester.clone();
        let mut c = self.client(i).await;
        let call = c.status(pb::StatusRequest {
            proposal: None,
            signer: key.public().as_bytes().to_vec().into(),
            brief: true,
        });
        let executed = within(&format!("the nonce from validator {i}"), call)
            .await
            .map(|r| r.into_inner().last_nonce)
            .unwrap_or(0);
        self.nonce = self.nonce.max(executed);
        let env = self.request(&key, &op);
        let start = Instant::now();
        loop {
            let mut c = self.client(i).await;
            match within(&format!("Submit to validator {i}"), c.submit(env.clone())).await {
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

    pub async fn status(&mut self, i: usize, proposal: Option<u64>) -> pb::StatusReply {
        let mut c = self.client(i).await;
        let call = c.status(pb::StatusRequest {
            proposal,
            ..Default::default()
        });
        within(&format!("Status of validator {i}"), call)
            .await
            .expect("status")
            .into_inner()
    }

    /// Polls validator `i` until `pred` holds on its status, or panics at the deadline.
    pub async fn wait_status(
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

pub fn fast() -> LocalOptions {
    LocalOptions {
        request_timeout: Duration::from_millis(400),
        view_change_timeout: Duration::from_millis(800),
        status_interval: Duration::from_millis(200),
        checkpoint_interval: 4,
        ..LocalOptions::default()
    }
}

/// A local fleet for rollout tests: six agents in three specialties that degrade on releases
/// containing "bad" and drift (worse than the baseline, inside every threshold) on releases
/// containing "drift", monitoring windows of a few seconds, fast consensus timeouts.
pub fn fleet_options() -> LocalOptions {
    LocalOptions {
        agents: 6,
        degrade: Some("bad".into()),
        drift: Some("drift".into()),
        degrade_after: 2,
        window: Duration::from_secs(3),
        sample_interval: Duration::from_millis(500),
        deploy_deadline: Duration::from_secs(5),
        breach_samples: 2,
        ..fast()
    }
}

impl Harness {
    /// The ledger summary of validator `i` (`scbe status --json`).
    pub async fn summary(&mut self, i: usize) -> StatusSummary {
        let s = self.status(i, None).await;
        serde_json::from_str(&s.detail_json).unwrap_or_else(|e| {
            panic!(
                "validator {i}'s summary does not decode ({e}): {}",
                s.detail_json
            )
        })
    }

    /// Polls validator `i` until proposal `id` has `status`, or panics at the deadline.
    pub async fn wait_proposal(&mut self, i: usize, id: u64, status: ProposalStatus) -> Proposal {
        let start = Instant::now();
        loop {
            let p = self.proposal(i, id).await;
            if let Some(p) = p.filter(|p| p.status == status) {
                return p;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "validator {i}: proposal {id} not {} within {DEADLINE:?}\nlog:\n{}",
                status.name(),
                self.cluster.log(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Proposal `id` as validator `i`'s ledger holds it, if it does.
    pub async fn proposal(&mut self, i: usize, id: u64) -> Option<Proposal> {
        let s = self.status(i, Some(id)).await;
        serde_json::from_str(&s.detail_json).unwrap_or_else(|e| {
            panic!(
                "validator {i}'s proposal {id} does not decode ({e}): {}",
                s.detail_json
            )
        })
    }

    /// Polls validator `i`'s summary until `pred` holds, or panics at `deadline` with the last one.
    pub async fn wait_summary(
        &mut self,
        i: usize,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&StatusSummary) -> bool,
    ) -> StatusSummary {
        let start = Instant::now();
        loop {
            let s = self.summary(i).await;
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < deadline,
                "validator {i}: {what} not reached within {deadline:?}; last summary {}\nlog:\n{}",
                serde_json::to_string_pretty(&s).unwrap_or_default(),
                self.cluster.log(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What agent `i` says it runs (polls until it answers).
    pub async fn describe(&mut self, i: usize) -> pb::DescribeReply {
        let start = Instant::now();
        loop {
            let reply = match self.cluster.agent_channel(i, Duration::from_secs(5)) {
                Ok(ch) => pb::fleet_agent_client::FleetAgentClient::new(ch)
                    .describe(pb::DescribeRequest {})
                    .await
                    .map(|r| r.into_inner()),
                Err(e) => Err(tonic::Status::unavailable(e.to_string())),
            };
            match reply {
                Ok(r) => return r,
                Err(e) if start.elapsed() > DEADLINE => panic!(
                    "agent {i} does not answer ({e}); its log:\n{}",
                    self.cluster.agent_log(i)
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Polls agent `i` until it runs `version`.
    pub async fn wait_agent_version(&mut self, i: usize, version: &str, deadline: Duration) {
        let start = Instant::now();
        loop {
            let d = self.describe(i).await;
            if d.current_version == version {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "agent {i} still runs {:?}, not {version:?}; its log:\n{}",
                d.current_version,
                self.cluster.agent_log(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Registers a release `version` through validator `i`, which must accept it.
    pub async fn register(&mut self, i: usize, version: &str) -> pb::SubmitReply {
        let r = self
            .submit(
                i,
                Operation::RegisterRelease {
                    release: release(version),
                },
            )
            .await;
        assert!(r.accepted, "registering {version}: {:?}", r.reasons);
        r
    }

    /// Registers `version` and proposes it to `to`; returns the proposal id.
    pub async fn register_and_promote(
        &mut self,
        version: &str,
        to: scbe_core::governance::Stage,
    ) -> u64 {
        if to == scbe_core::governance::Stage::Canary {
            self.register(0, version).await;
        }
        self.promote(0, version, to).await
    }

    /// Proposes (through validator `i`) to promote `version` to `to`, rolling back to v0;
    /// returns the proposal id.
    pub async fn promote(
        &mut self,
        i: usize,
        version: &str,
        to: scbe_core::governance::Stage,
    ) -> u64 {
        let r = self
            .submit(
                i,
                Operation::Promote {
                    version: version.into(),
                    to,
                    rollback_to: "v0".into(),
                    pause_before: None,
                    steps: Vec::new(),
                },
            )
            .await;
        assert!(r.accepted, "{:?}", r.reasons);
        r.proposal.expect("a proposal opened")
    }

    /// `scbe ARGS` pointed at validator `i` (over TLS, checked against the cluster's genesis),
    /// signing with the requester key.
    pub fn scbe(&self, i: usize, args: &[&str]) -> std::process::Output {
        std::process::Command::new(workspace_bin("scbe"))
            .args(args)
            .env("SCBE_NODE", self.cluster.url(i))
            .env("SCBE_GENESIS", self.cluster.genesis_path())
            .env("SCBE_KEY", &self.cluster.requester_key)
            .output()
            .expect("scbe runs")
    }

    /// [`Self::scbe`]'s exit code and everything it printed (stdout, then stderr).
    pub fn scbe_text(&self, i: usize, args: &[&str]) -> (Option<i32>, String) {
        let o = self.scbe(i, args);
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    /// Prometheus text from validator `i`'s `/metrics`.
    pub fn metrics_text(&self, i: usize) -> String {
        scrape(self.cluster.nodes[i].metrics)
    }

    /// Prometheus text from agent `i`'s own `/metrics`.
    pub fn agent_metrics_text(&self, i: usize) -> String {
        self.cluster.agents[i]
            .metrics
            .map(scrape)
            .unwrap_or_default()
    }
}

/// What `/metrics` at `addr` answers, headers included ("" if it cannot be reached).
pub fn scrape(addr: std::net::SocketAddr) -> String {
    http_get(addr, "/metrics")
}

/// A plain HTTP/1.0 GET of `path` on loopback: the whole response, headers included (empty if
/// nothing answers).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of the series whose line starts with `series` (name and labels) on a page.
pub fn series_value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

impl Harness {
    /// Exports validator 0's decided log and verifies it offline from the genesis alone
    /// (`scbe audit verify --genesis`); asserts it passes and returns what it printed.
    pub fn verify_audit_from_genesis(&self) -> String {
        let out = self.cluster.dir.join("audit.bin");
        let o = self.scbe(0, &["audit", "export", "--out", &out.to_string_lossy()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = std::process::Command::new(workspace_bin("scbe"))
            .args(["audit", "verify"])
            .arg(&out)
            .arg("--genesis")
            .arg(self.cluster.genesis_path())
            .output()
            .expect("scbe runs");
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    }
}

/// Whether rollout `id` has `status` in a summary.
pub fn rollout_is(summary: &StatusSummary, id: u64, status: RolloutStatus) -> bool {
    summary.rollout(id).is_some_and(|r| r.status == status)
}
