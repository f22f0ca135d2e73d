//! `scbe-sim bench-reads`: what a crowd of anonymous readers costs a requester (issue 26).
//!
//! Method, on one loopback cluster of real validator processes (TLS, fsync on):
//! 1. History: clients register releases (about 1.1 KB each) until the largest validator data
//!    directory holds `--history` bytes.
//! 2. Quiet: one requester submits one request at a time (a rollback the ledger refuses: the
//!    figure is about ordering, not ledger work) for `--duration`; submit-to-decided p50.
//! 3. Flood: `--readers` anonymous readers in a separate process (`scbe-sim read-flood`, so
//!    their CPU is measured apart from the requester's) loop over `Status`, a `Watch` from the
//!    first event (up to 2,000 events, then the stream is dropped) and a whole `Audit.Export`,
//!    spread over the validators; after a warm-up the requester measures p50 again.
//!
//! CPU is read from `/proc` for the validators, the reader process and this process apart.
//! `--node-bin` runs the validators from another `scbe-node` (e.g. one built from an older
//! commit) under the same method; the clusters it writes then have no `[dashboard]`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bench_cluster::{cpu_seconds, percentile, validators_cpu, BenchClient, Workload};
use crate::local::{dir_bytes, Launch, LocalCluster, LocalOptions};

#[derive(Clone, Debug, clap::Args)]
pub struct ReadsOptions {
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// History to build before measuring: bytes in the largest validator data directory.
    #[arg(long, default_value_t = 40_000_000)]
    pub history: u64,
    /// Anonymous readers in the flood.
    #[arg(long, default_value_t = 48)]
    pub readers: usize,
    /// Length of each measured phase (quiet, flood).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Run the validators from this `scbe-node` binary instead of this program.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// Readers loop over `Status` and `Watch` only (no `Audit.Export`).
    #[arg(long)]
    pub without_export: bool,
}

#[derive(Debug)]
pub struct ReadsResult {
    pub store_bytes: u64,
    pub registered: u64,
    pub quiet_p50: Duration,
    pub quiet_samples: usize,
    pub flood_p50: Duration,
    pub flood_samples: usize,
    /// CPU seconds per phase: validators together, the reader process, this process.
    pub quiet_cpu: (f64, f64, f64),
    pub flood_cpu: (f64, f64, f64),
    /// Reads the reader process completed (Status calls, Watch streams, exports).
    pub reads: FloodCounts,
}

/// What `scbe-sim read-flood` did, printed as JSON on its last line.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FloodCounts {
    pub status: u64,
    pub watch: u64,
    pub exports: u64,
    pub errors: u64,
}

/// Submits `op`s one at a time for `phase`; the sorted latencies.
async fn sequential(c: &mut BenchClient, phase: Duration) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < phase {
        let t = Instant::now();
        c.submit().await?;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    Ok(latencies)
}

fn cpu_now(pids: &[u32], flood: Option<u32>) -> (f64, f64, f64) {
    (
        validators_cpu(pids),
        flood.map_or(0.0, |p| cpu_seconds(&p.to_string())),
        cpu_seconds("self"),
    )
}

fn minus(a: (f64, f64, f64), b: (f64, f64, f64)) -> (f64, f64, f64) {
    (a.0 - b.0, a.1 - b.1, a.2 - b.2)
}

pub async fn run(
    launch: &Launch,
    self_exe: &Path,
    dir: &Path,
    o: &ReadsOptions,
) -> anyhow::Result<ReadsResult> {
    const WRITERS: usize = 8;
    let opts = LocalOptions {
        extra_requesters: WRITERS,
        quota_requests: Some(u32::MAX),
        dashboards: o.node_bin.is_none(),
        ..LocalOptions::default()
    };
    let launch = match &o.node_bin {
        Some(bin) => Launch::binaries(bin),
        None => Launch {
            validator: launch.validator.clone(),
            agent: launch.agent.clone(),
        },
    };
    let mut cluster = LocalCluster::generate(&launch, dir, o.validators, &opts)?;
    cluster.start_all()?;
    cluster.wait_listening(Duration::from_secs(30))?;
    let key =
        |i: usize| scbe_wire::key_file::read_key_file(&dir.join(format!("keys/requester{i}.key")));
    let mut light = BenchClient::first_decision(&cluster).await?;

    let store = || {
        (0..o.validators)
            .map(|i| dir_bytes(&dir.join(format!("data/node{i}"))))
            .max()
            .unwrap_or(0)
    };
    eprintln!("building {} MB of history", o.history / 1_000_000);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let node = cluster.dial(i % o.validators);
        let k = key(i)?;
        let done = std::sync::Arc::clone(&done);
        writers.push(tokio::spawn(async move {
            let mut c = BenchClient::connect(&node, k).await?;
            c.workload = Workload::Register;
            let mut accepted = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let until = Instant::now() + Duration::from_secs(1);
                accepted += c.stream_until(32, until).await?.accepted;
            }
            anyhow::Ok(accepted)
        }));
    }
    let built = Instant::now();
    while store() < o.history {
        anyhow::ensure!(
            built.elapsed() < Duration::from_secs(600),
            "history not built within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut registered = 0;
    for w in writers {
        registered += w.await??;
    }
    // Requests still in flight when the writers stopped are decided before anything is timed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let store_bytes = store();
    eprintln!(
        "{registered} releases registered; {:.1} MB in the largest store",
        store_bytes as f64 / 1e6
    );

    let pids: Vec<u32> = cluster.nodes.iter().filter_map(|n| n.pid()).collect();
    eprintln!("quiet: one requester for {:?}", o.duration);
    let before = cpu_now(&pids, None);
    let quiet = sequential(&mut light, o.duration).await?;
    let quiet_cpu = minus(cpu_now(&pids, None), before);

    eprintln!("flood: {} readers in another process", o.readers);
    let warm_up = Duration::from_secs(3);
    let flood = std::process::Command::new(self_exe)
        .arg("read-flood")
        .arg("--dir")
        .arg(dir)
        .arg("--readers")
        .arg(o.readers.to_string())
        .arg("--duration")
        .arg(humantime::format_duration(o.duration + warm_up * 2).to_string())
        .args(o.without_export.then_some("--without-export"))
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    tokio::time::sleep(warm_up).await;
    let before = cpu_now(&pids, Some(flood.id()));
    let flooded = sequential(&mut light, o.duration).await;
    let flood_cpu = minus(cpu_now(&pids, Some(flood.id())), before);
    let out = tokio::task::spawn_blocking(move || flood.wait_with_output()).await??;
    let flooded = flooded?;
    let reads = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    Ok(ReadsResult {
        store_bytes,
        registered,
        quiet_p50: percentile(&quiet, 0.5),
        quiet_samples: quiet.len(),
        flood_p50: percentile(&flooded, 0.5),
        flood_samples: flooded.len(),
        quiet_cpu,
        flood_cpu,
        reads,
    })
}

/// `scbe-sim read-flood`: `readers` anonymous readers against the cluster in `dir` for
/// `duration`, each on its own connection to validator `i mod n`, looping over `Status`, a
/// `Watch` from the first event (up to 2,000 events) and, if `export`, a whole `Audit.Export`.
pub async fn flood(
    dir: &Path,
    readers: usize,
    duration: Duration,
    export: bool,
) -> anyhow::Result<FloodCounts> {
    use scbe_proto::v1 as pb;
    let launch = Launch {
        validator: Vec::new(),
        agent: Vec::new(),
    };
    let cluster = LocalCluster::reopen(&launch, dir)?;
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for i in 0..readers {
        let dial = cluster.dial(i % cluster.nodes.len());
        tasks.push(tokio::spawn(async move {
            let mut n = FloodCounts::default();
            let Ok(ch) = dial.connect().await else {
                n.errors += 1;
                return n;
            };
            let mut gov = pb::governance_client::GovernanceClient::new(ch.clone())
                .max_decoding_message_size(64 << 20);
            let mut audit =
                pb::audit_client::AuditClient::new(ch).max_decoding_message_size(64 << 20);
            while Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                let round = async {
                    match gov.status(pb::StatusRequest::default()).await {
                        Ok(_) => n.status += 1,
                        Err(_) => n.errors += 1,
                    }
                    if let Ok(s) = gov.watch(pb::WatchRequest { from_event: 0 }).await {
                        let mut s = s.into_inner();
                        let mut got = 0;
                        while got < 2_000 {
                            match tokio::time::timeout(Duration::from_millis(500), s.message())
                                .await
                            {
                                Ok(Ok(Some(_))) => got += 1,
                                _ => break,
                            }
                        }
                        n.watch += 1;
                    } else {
                        n.errors += 1;
                    }
                    if !export {
                        return;
                    }
                    match audit.export(pb::AuditRequest { from_seq: 1 }).await {
                        Ok(s) => {
                            let mut s = s.into_inner();
                            while let Ok(Some(_)) = s.message().await {}
                            n.exports += 1;
                        }
                        Err(_) => n.errors += 1,
                    }
                };
                if tokio::time::timeout(left, round).await.is_err() {
                    break;
                }
            }
            n
        }));
    }
    let mut total = FloodCounts::default();
    for t in tasks {
        let n = t.await?;
        total.status += n.status;
        total.watch += n.watch;
        total.exports += n.exports;
        total.errors += n.errors;
    }
    Ok(total)
}
