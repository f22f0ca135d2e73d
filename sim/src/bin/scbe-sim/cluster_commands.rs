//! The `scbe-sim` subcommands that run real processes: `demo`, `up`, `bench` and
//! `bench-fleet` (the deterministic `check` runs in-process, in `main.rs`).

use std::process::ExitCode;

use super::{runtime, self_launch};

pub(crate) fn bench_fleet(
    agents: usize,
    runs: usize,
    skip_reaction: bool,
    restore_agents: usize,
    link: scbe_sim::delay_relay::LinkDelay,
) -> ExitCode {
    use scbe_sim::bench_fleet::{median, reaction};
    use scbe_sim::bench_large_fleet::large;
    use scbe_sim::bench_trials::restore;
    let ms = |d: std::time::Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    if !skip_reaction {
        let launch = match self_launch() {
            Ok(l) => l,
            Err(code) => return code,
        };
        let rt = match runtime(true) {
            Ok(r) => r,
            Err(code) => return code,
        };
        println!("rollback reaction: 4 validators, 6 agents, one sample per second, {runs} degrading canaries each");
        if !link.delay.is_zero() {
            println!(
                "links from each validator to the others and to agents: {:?} one way (+ up to {:?} jitter), through a relay per validator and per agent",
                link.delay, link.jitter
            );
        }
        println!("| breach_samples | median | runs |\n|---|---|---|");
        for breach in [1u32, 2] {
            let dir = std::env::temp_dir()
                .join(format!("scbe-bench-fleet-{}-{breach}", std::process::id()));
            let r = rt.block_on(reaction(&launch, &dir, runs, breach, link));
            let _ = std::fs::remove_dir_all(&dir);
            match r {
                Ok(v) => println!(
                    "| {breach} | {} | {} |",
                    median(&v).map_or("-".into(), ms),
                    v.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
                ),
                Err(e) => {
                    eprintln!("error: reaction benchmark: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if restore_agents > 0 {
        match restore(restore_agents) {
            Ok((end, promotion_batches)) => println!(
                "\nfast rollback: {restore_agents} agents back on v0 in {} batch(es) (the promotion shape: {promotion_batches}); all the work in this process (4 ledgers, executor, agents) {}",
                end.batches,
                ms(end.wall)
            ),
            Err(e) => {
                eprintln!("error: restore: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    match large(agents) {
        Ok(r) => {
            let share = |d: std::time::Duration| 100.0 * d.as_secs_f64() / r.windows.as_secs_f64();
            println!(
                "\nproduction rollout across {} agents (canary first): {} batches, windows of 5 min = {} s of monitoring",
                r.agents,
                r.batches,
                r.windows.as_secs()
            );
            println!("| work | time | share of the windows |\n|---|---|---|");
            println!("| leader's executor (orders, endorsements, acks, watcher ticks, progress) | {} | {:.4}% |", ms(r.executor), share(r.executor));
            println!(
                "| one validator's monitor ({} signed reports checked) | {} | {:.4}% |",
                r.reports_checked,
                ms(r.monitor),
                share(r.monitor)
            );
            println!("| one ledger applying the rollout ({} progress operations, largest {} KB) | {} | {:.4}% |", r.progress_ops, r.largest_op_bytes / 1024, ms(r.ledger_apply), share(r.ledger_apply));
            println!(
                "| all agents (sampling, signing, order checks) | {} | - |",
                ms(r.agents_cpu)
            );
            println!(
                "ledger state {} KB; peak RSS of this process (4 ledgers, {} agents, watcher) {}; wall {:.1} s",
                r.ledger_state_bytes / 1024,
                r.agents,
                r.peak_rss_kb.map_or("-".into(), |k| format!("{} MB", k / 1024)),
                r.wall.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: large rollout: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn demo(
    dir: Option<std::path::PathBuf>,
    window: std::time::Duration,
    fast: bool,
) -> ExitCode {
    let launch = match self_launch() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (window, sample_interval) = if fast {
        (
            window.min(std::time::Duration::from_secs(1)),
            std::time::Duration::from_millis(250),
        )
    } else {
        (window, std::time::Duration::from_millis(500))
    };
    if window < sample_interval {
        eprintln!("error: --window must be at least the sample interval ({sample_interval:?})");
        return ExitCode::from(2);
    }
    let mut replay = "cargo run --release -p scbe-sim -- demo".to_string();
    if fast {
        replay.push_str(" --fast");
    }
    if let Some(d) = &dir {
        replay.push_str(&format!(" --dir {}", d.display()));
    }
    let opts = scbe_sim::demo::DemoOptions {
        dir,
        window,
        sample_interval,
        replay,
    };
    let rt = match runtime(true) {
        Ok(r) => r,
        Err(code) => return code,
    };
    rt.block_on(async {
        tokio::select! {
            r = scbe_sim::demo::run(&launch, &opts) => match r {
                Ok(_) => {
                    println!("demo passed");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("demo FAILED: {e:#}");
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: stopping every process the demo started");
                ExitCode::from(130)
            }
        }
    })
}

pub(crate) fn up(n: usize, opts: scbe_sim::local::LocalOptions, dir: &std::path::Path) -> ExitCode {
    use scbe_sim::local::LocalCluster;
    if n < 4 {
        eprintln!("error: --validators must be at least 4 (got {n})");
        return ExitCode::from(2);
    }
    let launch = match self_launch() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let agents = opts.agents;
    let existed = dir.join(scbe_sim::local::GENESIS).exists();
    let mut cluster = match LocalCluster::generate(&launch, dir, n, &opts) {
        Ok(c) if existed => {
            println!(
                "reusing the cluster in {} (genesis {}): its keys, ports, data and settings are \
                 the ones it was created with; --window, --degrade, --drift, --notify and --plaintext apply to a new --dir only",
                dir.display(),
                c.genesis
            );
            c
        }
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot prepare {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let rt = match runtime(false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // Registered before anything starts: from here on a Ctrl-C is ours to handle, and the
    // children (in their own process group) never see it.
    let mut interrupt = match rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot handle Ctrl-C: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = cluster.start_all() {
        eprintln!("error: cannot start validators: {e}");
        return ExitCode::FAILURE;
    }
    // Stop nothing before it is up: a node stopped while creating its store is the one
    // instant that used to need care.
    if let Err(e) = cluster.wait_listening(std::time::Duration::from_secs(30)) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "{n} validators and {agents} agents running (logs in {}/logs):",
        dir.display()
    );
    for (i, node) in cluster.nodes.iter().enumerate() {
        let dashboard = node
            .dashboard_url()
            .map(|u| format!("  dashboard {u}"))
            .unwrap_or_default();
        println!(
            "  validator {i}: {}  metrics http://{}/metrics{dashboard}",
            cluster.url(i),
            node.metrics
        );
    }
    for (i, a) in cluster.agents.iter().enumerate() {
        let key = cluster
            .agent_keys
            .get(i)
            .map(|k| k.to_hex())
            .unwrap_or_default();
        let metrics = a
            .metrics
            .map(|m| format!("  metrics http://{m}/metrics"))
            .unwrap_or_default();
        println!(
            "  {} ({}): {}{metrics}  key {key}",
            a.id, a.specialty, a.addr
        );
    }
    // What the cluster's genesis says (a reused directory keeps its own sinks).
    if let Ok(g) = scbe_wire::genesis::Genesis::load(&cluster.genesis_path()) {
        for n in &g.file().notify {
            println!("  {}: the leader posts rollout events to {}", n.name, n.url);
        }
    }
    let key = cluster.requester_key.display();
    println!(
        "\nLinks are {}.",
        if cluster.plaintext {
            "plaintext (--plaintext; loopback only)"
        } else {
            "TLS, each node's certificate made from its key; clients check it against the genesis"
        }
    );
    println!("Point scbe at the quorum (any validator answers):");
    println!("  export SCBE_NODE={}", cluster.url(0));
    println!(
        "  export SCBE_GENESIS={}",
        cluster.dir.join(scbe_sim::local::GENESIS).display()
    );
    println!("  export SCBE_KEY={key}");
    println!("Then try:");
    println!("  scbe status");
    println!("  scbe fuse --manifests configs/examples/manifests/*.json --output release.json");
    println!("  scbe propose register --release release.json");
    println!("  scbe propose promote --release VERSION --to canary --rollback-to v0");
    println!("  scbe watch --rollout 0");
    println!("\nCtrl-C stops every validator and agent.");
    rt.block_on(async {
        let _ = interrupt.recv().await;
    });
    drop(cluster);
    println!("stopped");
    ExitCode::SUCCESS
}

pub(crate) fn bench(opts: &scbe_sim::bench_cluster::BenchOptions, keep: bool) -> ExitCode {
    let scbe_sim::bench_cluster::BenchOptions {
        validators,
        clients,
        depth,
        kill_primaries,
        workload,
        delay,
        jitter,
        ..
    } = *opts;
    if validators < 4 || clients == 0 || depth == 0 {
        eprintln!("error: need --validators >= 4, --clients >= 1 and --depth >= 1");
        return ExitCode::from(2);
    }
    let f = (validators - 1) / 3;
    if kill_primaries == 0 || kill_primaries > f {
        eprintln!(
            "error: --kill-primaries must be between 1 and f = {f} for {validators} validators"
        );
        return ExitCode::from(2);
    }
    let launch = match self_launch() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let dir = std::env::temp_dir().join(format!("scbe-bench-{}", std::process::id()));
    let rt = match runtime(true) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = rt.block_on(scbe_sim::bench_cluster::run(&launch, &dir, opts));
    // A run that failed or never saw the failover decision keeps its configs and logs.
    if !keep && result.as_ref().is_ok_and(|r| r.failover.is_some()) {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("logs and data kept in {}", dir.display());
    }
    match result {
        Ok(r) => {
            println!(
                "bench: n={validators}, {clients} saturation clients with {depth} in flight each ({}), phases of {:?} (saturation {:?}), workload {workload:?}",
                if depth > 1 { "SubmitStream" } else { "unary Submit" },
                opts.light_phase(),
                opts.saturation_phase()
            );
            if opts.bodies_in_memory {
                println!("release bodies in each validator's memory (--bodies-in-memory)");
            } else {
                println!("release bodies in each validator's store, read on demand");
            }
            if !delay.is_zero() {
                println!(
                    "links between validators: {delay:?} one way (+ up to {jitter:?} jitter), through a relay per validator"
                );
            }
            println!("| metric | value |\n|---|---|");
            println!(
                "| light load: submit-to-decided p50 | {:.2} ms ({} samples) |",
                r.p50.as_secs_f64() * 1e3,
                r.light_samples
            );
            println!(
                "| light load: submit-to-decided p99 | {:.2} ms |",
                r.p99.as_secs_f64() * 1e3
            );
            println!(
                "| saturation: decided requests/s | {:.0} ({} decided, {} accepted by the ledger) |",
                r.saturation_rps, r.saturation_requests, r.saturation_accepted
            );
            match &r.stream_error {
                None => println!("| saturation: client streams that broke and were opened again | 0 |"),
                Some(e) => println!(
                    "| saturation: client streams that broke and were opened again | {} (the first: {}) |",
                    r.streams_reopened,
                    e.replace('|', "/")
                ),
            }
            let killed = if kill_primaries == 1 {
                "primary".to_string()
            } else {
                format!("primaries of {kill_primaries} views in a row")
            };
            match r.failover {
                Some(d) => println!(
                    "| failover: SIGKILL of {killed} to next decision | {:.0} ms |",
                    d.as_secs_f64() * 1e3
                ),
                None => println!(
                    "| failover: SIGKILL of {killed} to next decision | no decision within 60 s |"
                ),
            }
            // Issue 27's target: 4 one-way delays (view change, then the request's three
            // phases) beyond the silence the survivors tolerated.
            let target = r.silence_tolerated + 4 * delay;
            println!(
                "| failover target: silence tolerated ((f + 1)-th smallest of the survivors') + 4 one-way delays | {:.0} + {:.0} = {:.0} ms: {} |",
                r.silence_tolerated.as_secs_f64() * 1e3,
                (4 * delay).as_secs_f64() * 1e3,
                target.as_secs_f64() * 1e3,
                match r.failover {
                    Some(d) if d <= target => "met".to_string(),
                    Some(d) => format!("missed by {:.0} ms", (d - target).as_secs_f64() * 1e3),
                    None => "missed".to_string(),
                }
            );
            // What the view change carries: at saturation's end these batches are full, so a
            // kill just after a checkpoint fails over faster than one just before.
            if let Some(b) = r.batches_reproposed {
                println!(
                    "| failover: batches the new view re-proposed, above the stable checkpoint (each view change and the new-view carry them whole) | {b} |"
                );
            }
            let per_request = |cpu: f64| cpu * 1e6 / r.saturation_requests.max(1) as f64;
            println!(
                "| saturation: CPU per decided request, validators together / clients | {:.0} / {:.0} µs ({:.2} / {:.2} cores) |",
                per_request(r.validator_cpu),
                per_request(r.client_cpu),
                r.validator_cpu / r.saturation_secs.max(1e-9),
                r.client_cpu / r.saturation_secs.max(1e-9),
            );
            let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
            println!(
                "| largest validator RSS: before / halfway / after saturation | {:.1} / {:.1} / {:.1} MB |",
                mb(r.rss_before),
                mb(r.rss_half),
                mb(r.rss_after)
            );
            let tenths: Vec<String> = r
                .rss_tenths
                .iter()
                .map(|b| format!("{:.1}", mb(*b)))
                .collect();
            println!(
                "| largest validator RSS at each tenth of saturation | {} MB |",
                tenths.join(" / ")
            );
            println!(
                "| largest validator data directory after {} decided requests | {:.1} MB ({:.0} bytes per decided request) |",
                r.decided_total,
                mb(r.store_bytes),
                r.store_bytes as f64 / r.decided_total.max(1) as f64
            );
            if r.saturation_accepted > 0 {
                // Registrations only: the light phase's refused rollbacks take some of these
                // bytes too, so this is an upper bound (dividing by every decided request
                // gave a figure 6-7% too low).
                println!(
                    "| data directory per registration ({} registrations) | {:.0} bytes |",
                    r.saturation_accepted,
                    r.store_bytes as f64 / r.saturation_accepted as f64
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn canary_rates(
    trials: u64,
    agents: usize,
    (window, sample): (std::time::Duration, std::time::Duration),
    thresholds_only: bool,
) -> ExitCode {
    use scbe_core::rollout::baseline::AnalysisSettings;
    use scbe_wire::genesis_file::{AnalysisSection, RolloutSection, SampleSupply};
    // What a generated genesis would hold for this fleet (`scbe-sim up`, `scbe-node testnet`).
    let rollout = RolloutSection {
        window,
        sample_interval: sample,
        ..RolloutSection::default()
    };
    let supply = SampleSupply::new(&rollout, 3, agents as u64);
    let analysis = if thresholds_only {
        AnalysisSettings::thresholds_only()
    } else {
        match AnalysisSection::fitted(supply).settings(supply) {
            Ok(a) => a,
            Err((key, problem)) => {
                eprintln!("error: {key}: {problem}");
                return ExitCode::from(2);
            }
        }
    };
    if agents < 6 || sample.is_zero() || window < sample {
        eprintln!("error: needs --agents of at least 6 (a baseline beside the canary) and --window of at least --sample");
        return ExitCode::from(2);
    }
    let bar = indicatif::ProgressBar::new(trials);
    let r =
        scbe_sim::bench_trials::canary_rates(trials, agents, (window, sample), &analysis, |done| {
            bar.set_position(done)
        });
    bar.finish_and_clear();
    match r {
        Ok(r) => {
            println!(
                "canaries judged by {} over {} seeded trials each ({agents} agents, a {} window sampled every {}):",
                if thresholds_only { "the thresholds alone" } else { "the thresholds and the comparison" },
                r.trials,
                humantime::format_duration(window),
                humantime::format_duration(sample)
            );
            println!("| release | rolled back | of |\n|---|---|---|");
            println!(
                "| good (false positives) | {} | {} |",
                r.good_rolled_back, r.trials
            );
            println!(
                "| drifting, inside every threshold (caught) | {} | {} |",
                r.drift_caught, r.trials
            );
            for m in r.misjudged.iter().take(5) {
                println!("misjudged: {m}");
            }
            if r.misjudged.len() > 5 {
                println!("... and {} more misjudged", r.misjudged.len() - 5);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn bench_orders(runs: usize) -> ExitCode {
    let ms = |d: std::time::Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
    println!("order checks at an agent: 1 MiB orders, 4 validators, quorum 3, median of {runs}");
    println!("| order | endorsements | verdict | now | before the caps | ratio |");
    println!("|---|---|---|---|---|---|");
    for c in scbe_sim::bench_orders::order_costs(runs) {
        let (before, ratio) = match c.before {
            Some(b) => (
                ms(b),
                format!("{:.0}x", b.as_secs_f64() / c.now.as_secs_f64().max(1e-9)),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {} | {before} | {ratio} |",
            c.name,
            c.endorsements,
            if c.accepted { "accepted" } else { "refused" },
            ms(c.now)
        );
    }
    ExitCode::SUCCESS
}

pub(crate) fn bench_reads(opts: &scbe_sim::bench_reads::ReadsOptions) -> ExitCode {
    let launch = match self_launch() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("error: cannot locate this executable");
        return ExitCode::FAILURE;
    };
    let dir = std::env::temp_dir().join(format!("scbe-bench-reads-{}", std::process::id()));
    let rt = match runtime(true) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = rt.block_on(scbe_sim::bench_reads::run(&launch, &exe, &dir, opts));
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(r) => {
            let ms = |d: std::time::Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
            println!(
                "history: {} releases, {:.1} MB in the largest validator store",
                r.registered,
                r.store_bytes as f64 / 1e6
            );
            println!("| phase | p50 submit-to-decided | samples | validators' CPU | readers' CPU | requester's CPU |");
            println!("|---|---|---|---|---|---|");
            for (name, p50, n, cpu) in [
                ("quiet", r.quiet_p50, r.quiet_samples, r.quiet_cpu),
                ("flood", r.flood_p50, r.flood_samples, r.flood_cpu),
            ] {
                println!(
                    "| {name} | {} | {n} | {:.1} s | {:.1} s | {:.1} s |",
                    ms(p50),
                    cpu.0,
                    cpu.1,
                    cpu.2
                );
            }
            println!(
                "flood/quiet p50: {:.2}x; reads done: {} Status, {} Watch, {} exports, {} errors",
                r.flood_p50.as_secs_f64() / r.quiet_p50.as_secs_f64().max(1e-9),
                r.reads.status,
                r.reads.watch,
                r.reads.exports,
                r.reads.errors
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn read_flood(
    dir: &std::path::Path,
    readers: usize,
    duration: std::time::Duration,
    export: bool,
) -> ExitCode {
    let rt = match runtime(true) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match rt.block_on(scbe_sim::bench_reads::flood(dir, readers, duration, export)) {
        Ok(counts) => {
            println!("{}", serde_json::to_string(&counts).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
