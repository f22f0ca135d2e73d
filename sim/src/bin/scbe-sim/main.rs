//! `scbe-sim`: run the PBFT core under a deterministic simulator, or benchmark it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scbe_sim::check::{check, replay_command, CheckOptions};
use scbe_sim::scenario::Overrides;

mod cluster_commands;
use cluster_commands::{
    bench, bench_fleet, bench_orders, bench_reads, canary_rates, demo, read_flood, up,
};

/// jemalloc, not glibc's malloc: why is beside `tikv-jemallocator` in the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "scbe-sim",
    version,
    about = "SCBE Fleet simulator: prove the consensus core under faults, benchmark it",
    long_about = "SCBE Fleet simulator.\n\n`check` runs the real PBFT core under a simulated clock and network with message loss, \
duplication, reordering, partitions, crashes with restart from persisted state, and Byzantine \
validators, then heals the faults and demands progress. Every run is derived from one seed, so a \
failing seed replays exactly.\n\n`bench-core` measures the core's decisions per second and CPU per \
decision with real signatures and no network."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole mission on one machine, narrated: a release reaching a fleet.
    ///
    /// Starts 4 validators and 12 agents (3 specialties, synthetic health) as real processes on
    /// loopback, then through the public API only: fuses the embedded provider manifests and
    /// checks the gates; registers a release and promotes it staging -> canary -> production
    /// (votes as they arrive, every batch live); promotes a second release whose canary degrades
    /// and is rolled back on agent-signed evidence (with the reaction time); kills the primary
    /// with SIGKILL in the middle of a third rollout and shows the new primary resuming it;
    /// ends with a summary checked against the ledger and the agents. Exit 0 only if every
    /// step behaved as expected. Ctrl-C stops every process it started.
    Demo {
        /// Keep keys, configs, data, logs, status.json and summary.json here.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Monitoring window of every batch.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
        /// Shorter windows and sample intervals (for CI).
        #[arg(long)]
        fast: bool,
    },
    /// Run seeds through the simulator and check every invariant.
    ///
    /// Checked invariants: agreement, validity, integrity, certificate validity, no honest
    /// double-sign, recovery from persisted state, state proofs of every stable checkpoint,
    /// and liveness after healing. Ends with a line `N passed, M failed (K changed the
    /// validator set; P entries ... proven; B release bodies written ...; R restarts from
    /// snapshots naming stored bodies)`, where the odd validators keep their release bodies in
    /// a store and the others in memory; exits non-zero if any seed failed.
    Check {
        /// How many seeds to run (from --first-seed upwards).
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed of the range.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Run exactly this seed (overrides --seeds/--first-seed) and print its details.
        #[arg(long)]
        seed: Option<u64>,
        /// Cluster size; derived from each seed (4..=7) when omitted.
        #[arg(long)]
        validators: Option<usize>,
        /// How many validators are Byzantine (at most f = (n-1)/3); derived from the seed when omitted.
        #[arg(long)]
        byzantine: Option<usize>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Every seed adds, rotates or removes a validator by governance while a rollout is in
        /// flight (a third of the seeds do otherwise; a quarter of the changes are additions,
        /// whose validator runs from the start with only the genesis; a third of the rotations
        /// where a validator is Byzantine rotate its key, and it keeps the retired one).
        #[arg(long)]
        validator_change: bool,
        /// No seed adds a validator or rotates a Byzantine one: each draws the honest rotation
        /// or removal it drew before those existed (to replay seeds pinned then).
        #[arg(long)]
        no_additions: bool,
        /// Testing the tester: run every replica with this (unsafe) quorum size.
        #[arg(long, hide = true)]
        unsafe_quorum: Option<usize>,
    },
    /// Start a local quorum and fleet of real `scbe-node` and `scbe-agent` processes on loopback.
    ///
    /// Generates keys and configs in --dir (keys are kept across runs), starts every validator
    /// and agent (synthetic health, three specialties), prints how to point `scbe` at them, and
    /// stops every process it started on Ctrl-C.
    Up {
        /// Number of validators (at least 4).
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Number of fleet agents (0 for a quorum without a fleet).
        #[arg(long, default_value_t = 6)]
        agents: usize,
        /// Agents degrade on any release whose version or unit ids contain this text
        /// (e.g. `--degrade bad`: a release fused from an artifact `textgen-bad-v2` degrades).
        #[arg(long, value_name = "TEXT")]
        degrade: Option<String>,
        /// Agents drift on any release whose version or unit ids contain this text: measurably
        /// worse than the agents still on the running version, yet inside every absolute
        /// threshold, so only the canary's comparison with its baseline rolls it back.
        #[arg(long, value_name = "TEXT")]
        drift: Option<String>,
        /// Monitoring window of every batch (agents sample once a second).
        #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
        /// Directory for keys, configs, data and logs.
        #[arg(long, default_value = "scbe-local")]
        dir: std::path::PathBuf,
        /// Plaintext gRPC instead of TLS (loopback only; for tools that cannot pin a key).
        #[arg(long)]
        plaintext: bool,
        /// A webhook the leader posts rollout events to (JSON with a Slack-compatible `text`;
        /// the genesis's default event filter); repeat for more. Named notify-0, notify-1, ...
        #[arg(long, value_name = "URL")]
        notify: Vec<String>,
    },
    /// Benchmark a loopback cluster of real validator processes (fsync on).
    ///
    /// Three phases: latency at light load (p50/p99 submit to decided), decided requests/s at
    /// saturation, and the time from SIGKILL of the primary to the next decision.
    Bench {
        #[command(flatten)]
        opts: scbe_sim::bench_cluster::BenchOptions,
        /// Keep the cluster's configs, data and logs (a temporary directory, printed at the end)
        /// even when the run succeeds; set RUST_LOG=debug for per-decision log lines.
        #[arg(long)]
        keep: bool,
    },
    /// Benchmark the fleet: rollback reaction on a process cluster, and a production rollout
    /// across a large simulated fleet (in one process, real ledger, watcher, agent core and
    /// signatures; virtual time with 5-minute windows and 10-second samples).
    BenchFleet {
        /// Agents of the large rollout.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Degrading canaries per breach setting in the reaction benchmark.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only the large rollout (and the restore).
        #[arg(long)]
        skip_reaction: bool,
        /// Agents of the fast-rollback measurement (a restore of every agent to v0 after a
        /// production rollout); 0 skips it.
        #[arg(long, default_value_t = 1000)]
        restore_agents: usize,
        /// In the reaction benchmark, a one-way delay on every validator-to-validator and
        /// validator-to-agent link (each direction), through a relay in front of each validator
        /// and each agent (`delay_relay.rs`). 0: no relays
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        delay: std::time::Duration,
        /// With `--delay`: each chunk is delayed up to this much more (uniform), order kept
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        jitter: std::time::Duration,
    },
    /// Measure the canary comparison: seeded canaries of a good release (how many are rolled
    /// back: false positives) and of a drifting one, worse than the baseline yet inside every
    /// threshold (how many the comparison catches), each through the real ledger, watcher and
    /// agent core in virtual time.
    CanaryRates {
        /// Trials of each kind (seeds 0..N).
        #[arg(long, default_value_t = 200)]
        trials: u64,
        /// Agents in the fleet (three specialties; the canary is one agent per specialty).
        #[arg(long, default_value_t = 12)]
        agents: usize,
        /// Monitoring window.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
        /// Sample interval.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        sample: std::time::Duration,
        /// Judge on the thresholds alone (analysis = "thresholds"), for comparison.
        #[arg(long)]
        thresholds_only: bool,
    },
    /// Measure what an order costs an agent to check: a legitimate one (3 of 4 validators) and
    /// junk a stranger can send with no key, each 1 MiB, beside what the junk cost before each
    /// validator key was tried at most once per order.
    BenchOrders {
        /// Repetitions per kind of order; the median is reported.
        #[arg(long, default_value_t = 21)]
        runs: usize,
    },
    /// Measure what a crowd of anonymous readers (Status, Watch, Audit.Export) costs a
    /// requester: submit-to-decided p50 quiet and under the flood, on a cluster with history,
    /// with the CPU of the validators, the readers and the requester apart.
    BenchReads {
        #[command(flatten)]
        opts: scbe_sim::bench_reads::ReadsOptions,
    },
    /// The readers of `bench-reads`, in their own process (so their CPU is measured apart).
    #[command(hide = true)]
    ReadFlood {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 48)]
        readers: usize,
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        #[arg(long)]
        without_export: bool,
    },
    /// Run a validator (what `scbe-node run` does); scbe-sim starts its local processes so.
    #[command(hide = true)]
    Validator {
        #[command(subcommand)]
        run: DaemonRun,
    },
    /// Run a fleet agent (what `scbe-agent run` does).
    #[command(hide = true)]
    Agent {
        #[command(subcommand)]
        run: DaemonRun,
    },
    /// Benchmark the consensus core in one process: real signatures, no network.
    ///
    /// Reports decisions per second and CPU per decision, split into signature work (signing and
    /// verifying) and protocol work (everything else), for each cluster size.
    BenchCore {
        /// Cluster sizes to measure.
        #[arg(long, value_delimiter = ',', default_values_t = vec![4, 7, 10])]
        validators: Vec<usize>,
        /// Requests to decide per measurement.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Requests per batch.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Repetitions per size; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Benchmark a checkpoint's state digest as history grows: the digest tree against a walk
    /// hashing every entry's digest (the definition before the tree), in the same run.
    ///
    /// Builds a map of ~1 KB entries per size, then per round inserts `--changes` entries and
    /// times settle + digest (the checkpoint's work on the map) and, apart, one walk over every
    /// entry digest. The walk leaves out the encoding settle does, so the ratio understates what
    /// the tree saves. Medians of `--rounds`.
    BenchDigest {
        /// Entries in the map before the rounds.
        #[arg(long, value_delimiter = ',', default_values_t = vec![10_000, 100_000, 1_000_000])]
        sizes: Vec<usize>,
        /// Entries inserted per round (per checkpoint).
        #[arg(long, default_value_t = 1_000)]
        changes: usize,
        /// Rounds per size; the median is reported.
        #[arg(long, default_value_t = 9)]
        rounds: usize,
        /// Also measure restoring a snapshot of a ledger with this many registered releases
        /// (each size), decoded once against the path before (decoded twice).
        #[arg(long, value_delimiter = ',')]
        restore_releases: Vec<usize>,
        /// Also measure proving one release of a ledger with this many registered releases
        /// (each size): the first and a later proof at a checkpoint, the proof's size and a
        /// client's check of it, against decoding the whole snapshot to its digest.
        #[arg(long, value_delimiter = ',')]
        prove_releases: Vec<usize>,
        /// Also measure what a ledger of this many registered releases (each size, settled as
        /// at a checkpoint) adds to this process's resident memory, and how much of it is the
        /// entries' JSON (the releases' bodies). Measured first, in a fresh ledger each; give
        /// one size per run for a clean figure (a later size may reuse memory an earlier one
        /// freed).
        #[arg(long, value_delimiter = ',')]
        memory_releases: Vec<usize>,
        /// With --memory-releases: the ledger keeps its release bodies in a store, as a
        /// validator's does (a record store in a temporary directory, written every 1,024
        /// registrations, each followed by a checkpoint), so what is measured is the ledger
        /// without them (plus the store's page cache, at most 16 MiB).
        #[arg(long)]
        bodies_stored: bool,
        /// Also measure, for a ledger of this many registered releases (each size) whose
        /// bodies are in a record store: persisting a snapshot in the store form (naming the
        /// bodies) against the whole form (carrying them), and restarting from each.
        #[arg(long, value_delimiter = ',')]
        persisted_releases: Vec<usize>,
        /// Also measure what registering this many releases (each size) costs a ledger per
        /// release, and the release digest check's share of it, against that check made
        /// through a `serde_json::Value` (the route before it), in the same run.
        #[arg(long, value_delimiter = ',')]
        register_releases: Vec<usize>,
        /// Also measure, after this many promotions (each size: a closed proposal and a
        /// finished rollout each), what the questions asked at every decided seq and watcher
        /// tick cost (the pending proposals, the active rollout), found from the open entries
        /// and by a walk over every entry in the same run, and a whole refused request.
        #[arg(long, value_delimiter = ',')]
        history_promotions: Vec<usize>,
    },
}

#[derive(Subcommand)]
enum DaemonRun {
    Run {
        #[arg(long)]
        config: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { dir, window, fast } => demo(dir, window, fast),
        Command::BenchFleet {
            agents,
            runs,
            skip_reaction,
            restore_agents,
            delay,
            jitter,
        } => bench_fleet(
            agents,
            runs,
            skip_reaction,
            restore_agents,
            scbe_sim::delay_relay::LinkDelay { delay, jitter },
        ),
        Command::CanaryRates {
            trials,
            agents,
            window,
            sample,
            thresholds_only,
        } => canary_rates(trials, agents, (window, sample), thresholds_only),
        Command::BenchOrders { runs } => bench_orders(runs),
        Command::BenchReads { opts } => bench_reads(&opts),
        Command::ReadFlood {
            dir,
            readers,
            duration,
            without_export,
        } => read_flood(&dir, readers, duration, !without_export),
        Command::Validator {
            run: DaemonRun::Run { config },
        } => scbe_validator::daemon::run_validator(&config),
        Command::Agent {
            run: DaemonRun::Run { config },
        } => scbe_agent::daemon::run_agent(&config),
        Command::Check {
            seeds,
            first_seed,
            seed,
            validators,
            byzantine,
            threads,
            validator_change,
            no_additions,
            unsafe_quorum,
        } => {
            if let Some(n) = validators {
                if n < 4 {
                    eprintln!("error: --validators must be at least 4 (got {n})");
                    return ExitCode::from(2);
                }
                if let Some(b) = byzantine {
                    if b > (n - 1) / 3 {
                        eprintln!(
                            "error: --byzantine {b} exceeds f = {} for {n} validators",
                            (n - 1) / 3
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            let overrides = Overrides {
                validators,
                byzantine,
                unsafe_quorum,
                validator_change,
                no_additions,
                ..Overrides::default()
            };
            let (first_seed, seeds, verbose) = match seed {
                Some(s) => (s, 1, true),
                None => (first_seed, seeds, false),
            };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = CheckOptions {
                first_seed,
                seeds,
                overrides: overrides.clone(),
                threads,
            };
            let done = std::sync::atomic::AtomicU64::new(0);
            let changed = std::sync::atomic::AtomicU64::new(0);
            let proofs = std::sync::atomic::AtomicU64::new(0);
            let bodies = std::sync::atomic::AtomicU64::new(0);
            let by_reference = std::sync::atomic::AtomicU64::new(0);
            let summary = check(&opts, |r| {
                let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                proofs.fetch_add(r.stats.state_proofs, std::sync::atomic::Ordering::Relaxed);
                bodies.fetch_add(r.stats.bodies_stored, std::sync::atomic::Ordering::Relaxed);
                by_reference.fetch_add(
                    r.stats.restored_from_references,
                    std::sync::atomic::Ordering::Relaxed,
                );
                if r.stats.epochs > 0 {
                    changed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if verbose {
                    println!("seed {}: {}", r.scenario.seed, r.scenario.summary());
                    let mut stats = r.stats.clone();
                    let replicas = std::mem::take(&mut stats.replicas);
                    println!("  stats: {stats:?}");
                    for line in replicas {
                        println!("  {line}");
                    }
                    println!("  trace: {}", hex(&r.trace_hash));
                } else if k.is_multiple_of(100) {
                    eprintln!("... {k}/{seeds} seeds");
                }
            });
            for r in &summary.failed {
                println!("FAILED seed {}: {}", r.scenario.seed, r.scenario.summary());
                for v in r.violations.iter().take(5) {
                    println!("  [{}] at {} ms: {}", v.invariant, v.at_ms, v.detail);
                }
                if r.violations.len() > 5 {
                    println!("  ... and {} more", r.violations.len() - 5);
                }
                println!("  replay: {}", replay_command(r.scenario.seed, &overrides));
            }
            println!(
                "{} passed, {} failed ({} changed the validator set; {} entries of stable \
                 checkpoints proven to the signed digest; {} release bodies written to the odd \
                 validators' stores; {} restarts from snapshots naming stored bodies)",
                summary.passed,
                summary.failed.len(),
                changed.into_inner(),
                proofs.into_inner(),
                bodies.into_inner(),
                by_reference.into_inner()
            );
            if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Up {
            validators,
            agents,
            degrade,
            drift,
            window,
            dir,
            plaintext,
            notify,
        } => {
            let opts = scbe_sim::local::LocalOptions {
                agents,
                degrade,
                drift,
                window,
                plaintext,
                notify: notify
                    .into_iter()
                    .enumerate()
                    .map(|(i, url)| scbe_wire::notify_entry::NotifyEntry {
                        name: format!("notify-{i}"),
                        url,
                        events: Vec::new(),
                    })
                    .collect(),
                ..scbe_sim::local::LocalOptions::default()
            };
            up(validators, opts, &dir)
        }
        Command::Bench { opts, keep } => bench(&opts, keep),
        Command::BenchDigest {
            sizes,
            changes,
            rounds,
            restore_releases,
            prove_releases,
            memory_releases,
            bodies_stored,
            persisted_releases,
            register_releases,
            history_promotions,
        } => {
            if rounds == 0 {
                eprintln!("error: --rounds must be at least 1");
                return ExitCode::from(2);
            }
            if let Err(e) = scbe_sim::bench_digest::print_memory(&memory_releases, bodies_stored) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            scbe_sim::bench_digest::run_and_print(&sizes, changes, rounds);
            scbe_sim::bench_digest::print_restore(&restore_releases, rounds);
            scbe_sim::bench_digest::print_proofs(&prove_releases, rounds);
            if let Err(e) = scbe_sim::bench_persisted::print_persisted(&persisted_releases, rounds)
                .and_then(|()| scbe_sim::bench_register::print_register(&register_releases, rounds))
                .and_then(|()| scbe_sim::bench_history::print_history(&history_promotions, rounds))
            {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Command::BenchCore {
            validators,
            requests,
            batch,
            runs,
        } => {
            for &n in &validators {
                if n < 4 {
                    eprintln!("error: --validators must be at least 4 (got {n})");
                    return ExitCode::from(2);
                }
            }
            scbe_sim::bench_core::run_and_print(
                &validators_or_default(validators),
                requests,
                batch,
                runs,
            );
            ExitCode::SUCCESS
        }
    }
}

/// How this binary starts validators and agents: itself, with the hidden `validator` and
/// `agent` subcommands (the same library code as `scbe-node run` and `scbe-agent run`), so
/// `cargo run -p scbe-sim` needs no other binary built first.
pub fn self_launch() -> Result<scbe_sim::local::Launch, ExitCode> {
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("error: cannot locate this executable: {e}");
        ExitCode::FAILURE
    })?;
    Ok(scbe_sim::local::Launch::subcommands(
        &exe,
        "validator",
        "agent",
    ))
}

fn validators_or_default(v: Vec<usize>) -> Vec<usize> {
    if v.is_empty() {
        vec![4, 7, 10]
    } else {
        v
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tokio runtime (multi-threaded or not), or the exit code after saying why it failed.
fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}
