//! `scbe-sim bench`: a loopback cluster of real `scbe-node` processes (fsync on: redb commits
//! durably every loop turn), driven over gRPC.
//!
//! Method, in three phases on one cluster:
//! 1. Light load: one client, one request at a time, for a third of `--duration`; latency is
//!    submit to decided-reply as the client sees it (p50, p99).
//! 2. Saturation: `--clients` clients (each with its own requester key, since a key's nonces must
//!    increase) submit back to back for a third of `--duration`; decided requests per second.
//!    With `--depth` above 1 each client keeps that many requests in flight on one
//!    `SubmitStream` call; with 1 it waits for each unary `Submit` (the CLI's path).
//! 3. Failover: the primaries of the current view and the next `--kill-primaries - 1` views (1 by
//!    default) are killed with SIGKILL while a client keeps submitting to a surviving validator;
//!    the time from the kill to the next decided request.
//!
//! With `--workload rollback` (the default) the operation is a cheap one the ledger rejects (a
//! rollback to the version already in production), so the figures are about ordering, storage
//! and the network, not ledger work. With `--workload register` every saturation request
//! registers a new release fused from the example provider manifests, each with its own
//! training-run suffix and metrics (its operation is 1,050-1,150 bytes of JSON), which the
//! ledger checks and keeps: its state grows with every request.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::delay_relay::{DelayRelay, LinkDelay};
use crate::local::{dir_bytes, Launch, LocalCluster, LocalOptions};
use scbe_core::consensus::{Codec as _, Kind, Principal, Request, Signed};
use scbe_core::crypto::Keypair;
use scbe_core::governance::Operation;
use scbe_proto::v1::governance_client::GovernanceClient;
use scbe_wire::tls::Dial;
use scbe_wire::{envelope_to_proto, ProtoCodec};
use tonic::transport::Channel;

/// What the saturation clients submit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// A rollback the ledger rejects: ordering, storage and network only.
    #[default]
    Rollback,
    /// A new release per request (fused from the example manifests, 1,050-1,150 bytes), which
    /// the ledger accepts and keeps.
    Register,
}

/// What `scbe-sim bench` runs (its command-line options).
#[derive(Clone, Copy, clap::Args)]
pub struct BenchOptions {
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Sets the phases' length: the light-load phase and the saturation phase each last a third
    /// of it (e.g. 30s: 10 s each; the failover phase follows).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The saturation phase's length instead of a third of `--duration`: a long one shows
    /// what many registrations cost a validator's memory (e.g. `--workload register
    /// --saturation 6m`: about a million on this kind of machine),
    /// without a light-load phase as long.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub saturation: Option<Duration>,
    /// Concurrent clients in the saturation phase.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Batches the primary keeps in flight (fewer means bigger batches).
    #[arg(long, default_value_t = 8)]
    pub max_inflight_batches: u64,
    /// Requests each saturation client keeps in flight on one `SubmitStream` call; 1 uses
    /// unary `Submit`, one request at a time (the CLI's path).
    #[arg(long, default_value_t = 32)]
    pub depth: usize,
    /// Validators killed at once in the failover phase: the primaries of the current view and
    /// the next ones (at most f). With 2, the first new view fails too and its view-change
    /// timeout counts.
    #[arg(long, default_value_t = 1)]
    pub kill_primaries: usize,
    /// K: a checkpoint every this many sequence numbers (the window is 2K). A view change
    /// re-proposes every batch above the last stable checkpoint, so K bounds its work.
    #[arg(long, default_value_t = 32)]
    pub checkpoint_interval: u64,
    /// What the saturation clients submit (light load and failover always use rollbacks).
    #[arg(long, value_enum, default_value_t = Workload::Rollback)]
    pub workload: Workload,
    /// Plaintext gRPC instead of TLS (to compare the two).
    #[arg(long)]
    pub plaintext: bool,
    /// One-way delay on every validator-to-validator link (each direction), through a relay
    /// in front of each validator (`delay_relay.rs`): the cluster as if its validators were far
    /// apart. Clients reach validators directly (a client next to the primary). 0: no relay.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub delay: Duration,
    /// With `--delay`: each chunk is delayed up to this much more (uniform), order kept.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub jitter: Duration,
    /// Validators keep release bodies in memory, not in their stores
    /// (`release_bodies_in_store = false` in every node.toml).
    #[arg(long)]
    pub bodies_in_memory: bool,
    /// Accepted for the commands of earlier runs: bodies in stores is the default now.
    #[arg(long, hide = true, conflicts_with = "bodies_in_memory")]
    pub bodies_in_store: bool,
}

impl BenchOptions {
    /// The light-load phase's length: a third of `--duration`.
    pub fn light_phase(&self) -> Duration {
        self.duration / 3
    }

    /// The saturation phase's length: `--saturation`, or as long as the light-load phase.
    pub fn saturation_phase(&self) -> Duration {
        self.saturation.unwrap_or(self.light_phase())
    }
}

pub struct BenchResult {
    pub light_samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub saturation_requests: u64,
    /// Of those, how many the ledger accepted (registrations; rollbacks are all refused).
    pub saturation_accepted: u64,
    pub saturation_rps: f64,
    pub saturation_secs: f64,
    /// Saturation clients' streams that broke and were opened again (0 in a healthy run).
    pub streams_reopened: u64,
    /// Why the first of them broke, if one did.
    pub stream_error: Option<String>,
    pub failover: Option<Duration>,
    /// The (f + 1)-th smallest silence the surviving validators tolerated from their primary
    /// just before it was killed: the view change cannot start before it has passed.
    pub silence_tolerated: Duration,
    /// Batches the failover's new view re-proposed, those above the last stable checkpoint:
    /// each view change carries them whole, with their prepares, and the new-view carries a
    /// quorum of view changes and re-proposes them all. Read from the survivor the failover
    /// client used, once its request was decided: what it executed, less that request and the
    /// stable checkpoint (the survivor counted the kill's in-flight batches by then; it may
    /// count a few too few if a checkpoint became stable in between).
    pub batches_reproposed: Option<u64>,
    /// Largest validator RSS before, halfway through and after the saturation phase, in bytes
    /// (the halfway figure tells growth with history from a one-off peak).
    pub rss_before: u64,
    pub rss_half: u64,
    pub rss_after: u64,
    /// Largest validator RSS at each tenth of the saturation phase (1/10 .. 9/10), in bytes: the
    /// shape of the growth, not just its ends.
    pub rss_tenths: Vec<u64>,
    /// Requests decided over the whole run before the failover phase, and the largest
    /// validator data directory then.
    pub decided_total: u64,
    pub store_bytes: u64,
    /// CPU time (user + system) the validators together and this process (the clients) used
    /// during the saturation phase, in seconds. Per decided request it is the cost being
    /// optimised, and far steadier than throughput on a shared machine.
    pub validator_cpu: f64,
    pub client_cpu: f64,
}

/// CPU time a process has used (Linux `/proc/PID/stat` utime + stime), in seconds; 0 where
/// unknown. Linux reports these in USER_HZ, which is 100 on every architecture it exposes it.
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    const USER_HZ: f64 = 100.0;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The command name (field 2) may hold spaces; the fields after it may not.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / USER_HZ)
        })
        .unwrap_or(0.0)
}

pub(crate) fn validators_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_seconds(&p.to_string())).sum()
}

/// Resident memory of a process (Linux `/proc`), 0 where unknown.
pub(crate) fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn max_rss(cluster: &LocalCluster) -> u64 {
    cluster
        .nodes
        .iter()
        .filter_map(|n| n.pid())
        .map(rss_bytes)
        .max()
        .unwrap_or(0)
}

/// One requester of the benchmarks, with its own key and nonces.
pub(crate) struct BenchClient {
    key: Keypair,
    pub(crate) nonce: u64,
    conn: GovernanceClient<Channel>,
    pub(crate) workload: Workload,
    /// Tells this client's release versions apart from every other client's.
    name: String,
    /// With the nonce, seeds the content of this client's releases.
    seed: u64,
}

/// What a stream of requests came to: decided, and of those accepted by the ledger.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) decided: u64,
    pub(crate) accepted: u64,
    /// Streams that broke and were opened again ([`BenchClient::stream_until`]).
    pub(crate) streams_reopened: u64,
    /// Why the first of them broke.
    pub(crate) stream_error: Option<String>,
}

impl BenchClient {
    pub(crate) async fn connect(node: &Dial, key: Keypair) -> anyhow::Result<Self> {
        let start = Instant::now();
        loop {
            match node.connect().await.map(GovernanceClient::new) {
                Ok(conn) => {
                    let id = key.public().as_bytes()[..8].try_into().expect("8 bytes");
                    return Ok(Self {
                        name: scbe_core::governance::release::hex(&key.public().as_bytes()[..6]),
                        seed: u64::from_le_bytes(id),
                        key,
                        nonce: 0,
                        conn,
                        workload: Workload::Rollback,
                    });
                }
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    anyhow::bail!("{e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The cluster's requester on validator 0, once its first request was decided (which also
    /// waits for every peer link to connect).
    pub(crate) async fn first_decision(cluster: &LocalCluster) -> anyhow::Result<Self> {
        let key = scbe_wire::key_file::read_key_file(&cluster.requester_key)?;
        let mut c = Self::connect(&cluster.dial(0), key).await?;
        let warm = Instant::now();
        while c.submit().await.is_err() {
            anyhow::ensure!(
                warm.elapsed() < Duration::from_secs(30),
                "cluster never decided a request"
            );
        }
        Ok(c)
    }

    /// Submits one request and waits until it is decided; whether the ledger accepted it. Err
    /// if it was not decided.
    pub(crate) async fn submit(&mut self) -> anyhow::Result<bool> {
        let env = self.next_envelope();
        self.conn
            .submit(env)
            .await
            .map(|r| r.into_inner().accepted)
            .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))
    }

    /// Keeps `depth` requests in flight on a `SubmitStream` call until `deadline`; returns how
    /// many were decided by then (answers arriving later are not counted). A stream that
    /// breaks (the validator ended it, or the connection dropped) is opened again, after a
    /// pause that doubles while opening fails, and counted in [`Tally::streams_reopened`]: one
    /// broken stream must not end the whole run (its requests in flight are not counted).
    pub(crate) async fn stream_until(
        &mut self,
        depth: usize,
        deadline: Instant,
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.one_stream(depth, deadline, &mut tally).await {
                Ok(()) => return Ok(tally),
                Err(e) => {
                    let wake = Instant::now() + pause;
                    if wake >= deadline {
                        return Ok(tally);
                    }
                    tally.streams_reopened += 1;
                    tally.stream_error.get_or_insert_with(|| e.to_string());
                    tokio::time::sleep_until(wake.into()).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// One `SubmitStream` call of [`BenchClient::stream_until`], adding its answers to
    /// `tally`: Ok at the deadline or when the validator ends the stream cleanly, Err when it
    /// could not be opened or broke.
    async fn one_stream(
        &mut self,
        depth: usize,
        deadline: Instant,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::mpsc::channel(depth);
        for _ in 0..depth {
            tx.send(self.next_envelope()).await?;
        }
        let mut answers = self
            .conn
            .submit_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        let mut tx = Some(tx);
        loop {
            let next = tokio::time::timeout_at(deadline.into(), answers.message()).await;
            let Ok(next) = next else { return Ok(()) }; // the phase is over
            let Some(answer) = next.map_err(|s| anyhow::anyhow!("{s}"))? else {
                return Ok(());
            };
            if let Some(reply) = answer.reply {
                tally.decided += 1;
                tally.accepted += u64::from(reply.accepted);
            }
            if let Some(t) = &tx {
                if t.send(self.next_envelope()).await.is_err() {
                    tx = None;
                }
            }
        }
    }

    /// The next request of this client (a fresh nonce), as it goes on the wire.
    fn next_envelope(&mut self) -> scbe_proto::v1::Envelope {
        self.nonce += 1;
        let op = match self.workload {
            Workload::Rollback => Operation::Rollback {
                target_version: "v0".into(),
                reason: "bench".into(),
            },
            Workload::Register => Operation::RegisterRelease {
                release: crate::releases::bench_release(
                    &format!("b{}-{}", self.name, self.nonce),
                    self.seed ^ self.nonce,
                ),
            },
        };
        let r = Signed::seal(
            Request {
                nonce: self.nonce,
                operation: op.to_bytes(),
            },
            Kind::Request,
            |r| ProtoCodec.encode_request(r),
            &self.key,
            Principal::Requester,
        );
        envelope_to_proto(r.envelope())
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(launch: &Launch, dir: &Path, o: &BenchOptions) -> anyhow::Result<BenchResult> {
    let opts = LocalOptions {
        extra_requesters: o.clients,
        max_inflight_batches: o.max_inflight_batches,
        checkpoint_interval: o.checkpoint_interval,
        // A load generator: the default quota (6,000 requests a minute per requester and
        // validator) would cap a long light-load phase, which is not what is measured here.
        quota_requests: Some(u32::MAX),
        plaintext: o.plaintext,
        bodies_in_store: !o.bodies_in_memory,
        ..LocalOptions::default()
    };
    // Relays bind first (their addresses go into the configs), then serve the validators'.
    let link = LinkDelay {
        delay: o.delay,
        jitter: o.jitter,
    };
    let mut opts = opts;
    let (listeners, relays) = DelayRelay::bind_all(link, o.validators).await?;
    opts.peer_relays = relays;
    let mut cluster = LocalCluster::generate(launch, dir, o.validators, &opts)?;
    let _relays = DelayRelay::serve_all(listeners, cluster.nodes.iter().map(|n| n.addr), link, 0)?;
    cluster.start_all()?;
    let phase = o.light_phase();
    let load_key =
        |i: usize| scbe_wire::key_file::read_key_file(&dir.join(format!("keys/requester{i}.key")));

    let mut light = BenchClient::first_decision(&cluster).await?;

    eprintln!("phase 1: light load for {phase:?}");
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < phase {
        let t = Instant::now();
        light.submit().await?;
        latencies.push(t.elapsed());
    }
    latencies.sort();

    let rss_before = max_rss(&cluster);
    let phase = o.saturation_phase();
    eprintln!(
        "phase 2: saturation with {} clients for {phase:?}",
        o.clients
    );
    let deadline = Instant::now() + phase;
    let mut tasks = Vec::new();
    for i in 0..o.clients {
        let node = cluster.dial(i % o.validators);
        let key = load_key(i)?;
        let depth = o.depth;
        let workload = o.workload;
        tasks.push(tokio::spawn(async move {
            let mut c = BenchClient::connect(&node, key).await?;
            c.workload = workload;
            if depth > 1 {
                return c.stream_until(depth, deadline).await;
            }
            let mut done = Tally::default();
            while Instant::now() < deadline {
                if let Ok(accepted) = c.submit().await {
                    done.decided += 1;
                    done.accepted += u64::from(accepted);
                }
            }
            anyhow::Ok(done)
        }));
    }
    let pids: Vec<u32> = cluster.nodes.iter().filter_map(|n| n.pid()).collect();
    let cpu_start = (validators_cpu(&pids), cpu_seconds("self"));
    let cpu_pids = pids.clone();
    let tenths = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(9);
        for _ in 1..10 {
            tokio::time::sleep(phase / 10).await;
            samples.push(pids.iter().copied().map(rss_bytes).max().unwrap_or(0));
        }
        samples
    });
    let sat_start = Instant::now();
    let (mut decided, mut accepted, mut streams_reopened) = (0, 0, 0);
    let mut stream_error = None;
    for t in tasks {
        let tally = t.await??;
        decided += tally.decided;
        accepted += tally.accepted;
        streams_reopened += tally.streams_reopened;
        stream_error = stream_error.or(tally.stream_error);
    }
    let sat_elapsed = sat_start.elapsed();
    let validator_cpu = validators_cpu(&cpu_pids) - cpu_start.0;
    let client_cpu = cpu_seconds("self") - cpu_start.1;
    let rss_after = max_rss(&cluster);
    let rss_tenths = tenths.await.unwrap_or_default();
    let rss_half = rss_tenths.get(4).copied().unwrap_or(0);
    let store_bytes = (0..o.validators)
        .map(|i| dir_bytes(&dir.join(format!("data/node{i}"))))
        .max()
        .unwrap_or(0);
    let decided_total = decided + latencies.len() as u64 + 1;

    // The primaries of the current view and the next k - 1 (saturation may have changed views);
    // the failover client talks to a validator that survives.
    let k = o.kill_primaries;
    let view = light
        .conn
        .status(scbe_proto::v1::StatusRequest::default())
        .await?
        .into_inner()
        .view;
    let n = o.validators as u64;
    let victims: Vec<usize> = (0..k as u64).map(|i| ((view + i) % n) as usize).collect();
    let survivor = (0..o.validators)
        .find(|i| !victims.contains(i))
        .unwrap_or(0);
    eprintln!("phase 3: failover (view {view}: SIGKILL of validators {victims:?}, the primaries of the next {k} views)");
    // What the failover is bounded by: a view change starts once f + 1 survivors suspect the
    // primary, each after the silence it tolerates now.
    let mut tolerated = Vec::new();
    let brief = scbe_proto::v1::StatusRequest {
        brief: true,
        ..Default::default()
    };
    for i in (0..o.validators).filter(|i| !victims.contains(i)) {
        let mut conn = GovernanceClient::new(cluster.dial(i).connect().await?);
        let ms = conn
            .status(brief.clone())
            .await?
            .into_inner()
            .silence_tolerated_ms;
        tolerated.push(Duration::from_millis(ms));
    }
    tolerated.sort();
    let f = (o.validators - 1) / 3;
    let silence_tolerated = tolerated.get(f).copied().unwrap_or_default();
    let mut c = BenchClient::connect(&cluster.dial(survivor), load_key(0)?).await?;
    c.nonce = 1 << 30; // above anything phase 2 used with this key, within a nonce jump
    c.submit().await?;
    let killed = Instant::now();
    for i in &victims {
        cluster.kill(*i);
    }
    let mut failover = None;
    while killed.elapsed() < Duration::from_secs(60) {
        if c.submit().await.is_ok() {
            failover = Some(killed.elapsed());
            break;
        }
    }
    let batches_reproposed = match failover {
        Some(_) => {
            let status = c.conn.status(brief).await?.into_inner();
            let above = status.stable_checkpoint.saturating_add(1);
            Some(status.last_executed.saturating_sub(above))
        }
        None => None,
    };
    Ok(BenchResult {
        light_samples: latencies.len(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        saturation_requests: decided,
        saturation_accepted: accepted,
        saturation_rps: decided as f64 / sat_elapsed.as_secs_f64(),
        saturation_secs: sat_elapsed.as_secs_f64(),
        streams_reopened,
        stream_error,
        failover,
        silence_tolerated,
        batches_reproposed,
        rss_before,
        rss_half,
        rss_after,
        rss_tenths,
        decided_total,
        store_bytes,
        validator_cpu,
        client_cpu,
    })
}
