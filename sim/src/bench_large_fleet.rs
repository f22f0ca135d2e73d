//! `scbe-sim bench-fleet`, part 2: a production rollout across a large simulated fleet, in one
//! process without gRPC (see [`crate::bench_fleet`]'s doc for what is measured and how).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use scbe_core::agent::synthetic::SyntheticModel;
use scbe_core::agent::AgentCore;
use scbe_core::agent::AgentState;
use scbe_core::crypto::{Keypair, Verifier};
use scbe_core::governance::ledger::{Ledger, LedgerConfig, RolloutStatus, Signer};
use scbe_core::governance::{Gates, Operation, Stage};
use scbe_core::rollout::baseline::AnalysisSettings;
use scbe_core::rollout::health::HealthThresholds;
use scbe_core::rollout::order::{endorse, SignedOrder, ORDER_KIND};
use scbe_core::rollout::plan::FleetAgent;
use scbe_core::rollout::watcher::{StepView, WatchSettings, Watcher};

use crate::fleet::release;

/// What the large rollout measured.
pub struct LargeResult {
    pub agents: usize,
    pub batches: usize,
    pub windows: Duration,
    pub executor: Duration,
    pub monitor: Duration,
    pub ledger_apply: Duration,
    pub agents_cpu: Duration,
    pub reports_checked: u64,
    pub progress_ops: usize,
    pub largest_op_bytes: usize,
    pub ledger_state_bytes: usize,
    pub peak_rss_kb: Option<u64>,
    pub wall: Duration,
}

/// Peak resident set size of this process (Linux).
pub fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Sim {
    ledgers: Vec<Ledger>,
    validators: Vec<Keypair>,
    seq: u64,
    nonce: u64,
    requester: Keypair,
    apply: Duration,
}

impl Sim {
    /// Applies an operation to every ledger in the same order; times one of them.
    fn apply(&mut self, signer: Option<u32>, op: &Operation) -> bool {
        self.seq += 1;
        self.nonce += 1;
        let bytes = op.to_bytes();
        let (s, key) = match signer {
            Some(v) => (Signer::Validator(v), self.validators[v as usize].public()),
            None => (
                Signer::Requester(self.requester.public()),
                self.requester.public(),
            ),
        };
        let mut accepted = true;
        for (i, l) in self.ledgers.iter_mut().enumerate() {
            let t = Instant::now();
            let o = l.apply_operation(self.seq, s, &key, self.nonce, &bytes);
            if i == 0 {
                self.apply += t.elapsed();
            }
            accepted &= o.accepted;
        }
        accepted
    }

    fn vote_all(&mut self) {
        for v in 0..self.validators.len() as u32 {
            for op in self.ledgers[v as usize].votes_owed(v) {
                self.apply(Some(v), &op);
            }
        }
    }
}

/// Rollouts of one release through the real ledger, watcher and agent core, in virtual time.
#[derive(Clone, Debug)]
pub struct Trial {
    pub agents: usize,
    pub window: Duration,
    pub sample: Duration,
    /// Seed of the agents' synthetic health.
    pub seed: u64,
    /// Agents drift on releases matching this (see `SyntheticModel::drift`).
    pub drift: Option<String>,
    pub version: String,
    /// Promoted to each in turn, while the previous one completes.
    pub stages: Vec<Stage>,
    /// How canary steps are judged.
    pub analysis: AnalysisSettings,
    /// After the stages complete, a manual rollback of every agent to v0 (a restore).
    pub restore_after: bool,
}

/// How one promotion of a trial ended.
#[derive(Clone, Debug)]
pub struct TrialEnd {
    /// The stage promoted to; for the restore, production.
    pub stage: Stage,
    pub restore: bool,
    /// Batches the rollout took, and the wall time of all its work in this process.
    pub batches: usize,
    pub wall: Duration,
    pub status: RolloutStatus,
    pub reason: String,
}

/// A canary then a production rollout across `n` agents, with the default 5-minute window and
/// 10-second samples.
pub fn large(n: usize) -> anyhow::Result<LargeResult> {
    let trial = Trial {
        agents: n,
        window: Duration::from_secs(300),
        sample: Duration::from_secs(10),
        seed: 7,
        drift: None,
        version: "r1".into(),
        stages: vec![Stage::Canary, Stage::Production],
        analysis: AnalysisSettings::default(),
        restore_after: false,
    };
    let (result, ends, on) = run_trial(&trial)?;
    if let Some(e) = ends.iter().find(|e| e.status != RolloutStatus::Completed) {
        bail!("the {} rollout ended {:?}: {}", e.stage, e.status, e.reason);
    }
    if on != BTreeSet::from(["r1".to_string()]) {
        bail!("agents run {on:?} after the production rollout");
    }
    Ok(result)
}

/// Runs `t`: what it cost, how each promotion ended, and the versions the agents run after.
pub fn run_trial(t: &Trial) -> anyhow::Result<(LargeResult, Vec<TrialEnd>, BTreeSet<String>)> {
    let n = t.agents;
    let wall = Instant::now();
    let window = t.window;
    let sample = t.sample;
    let tick = Duration::from_millis(250);
    let thresholds = HealthThresholds {
        min_samples: (window.as_nanos() / sample.as_nanos().max(1)).clamp(1, 1 << 20) as u32,
        ..HealthThresholds::default()
    };
    let validators: Vec<Keypair> = (0..4)
        .map(|i| Keypair::from_label(&format!("bench/v{i}")))
        .collect();
    let verifiers: Vec<Verifier> = validators
        .iter()
        .filter_map(|k| Verifier::new(k.public()).ok())
        .collect();
    let specialties = ["code_execute", "doc_plan", "memory_storage"];
    let model = SyntheticModel {
        seed: t.seed,
        degrade: None,
        degrade_after: 0,
        drift: t.drift.clone(),
    };
    let report_window = thresholds.min_samples as usize;
    let mut agents: Vec<AgentCore> = (0..n)
        .map(|i| {
            AgentCore::new(
                format!("agent-{i:05}"),
                Keypair::from_label(&format!("bench/agent/{i}")),
                verifiers.clone(),
                3,
                AgentState::initial("v0"),
                report_window,
            )
        })
        .collect();
    let index: BTreeMap<String, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.clone(), i))
        .collect();
    let keys: BTreeMap<String, scbe_core::crypto::PublicKey> = agents
        .iter()
        .map(|a| (a.id.clone(), a.key().public()))
        .collect();
    let cfg = LedgerConfig {
        validators: validators.iter().map(Keypair::public).collect(),
        known_good: vec!["v0".into()],
        known_good_units: Default::default(),
        gates: Gates::default(),
        vote_window_seqs: 1_000_000,
        agents: agents
            .iter()
            .enumerate()
            .map(|(i, a)| FleetAgent {
                id: a.id.clone(),
                specialty: specialties[i % 3].into(),
                key: a.key().public(),
                address: String::new(),
            })
            .collect(),
        health: thresholds,
        analysis: t.analysis.clone(),
        notify_sinks: Vec::new(),
        state_digest: scbe_core::governance::ledger::StateDigest::Tree,
        requesters: [(
            "bench".to_string(),
            Keypair::from_label("bench/requester").public(),
        )]
        .into(),
    };
    let mut sim = Sim {
        ledgers: (0..4).map(|_| Ledger::new(cfg.clone())).collect(),
        validators,
        seq: 0,
        nonce: 0,
        requester: Keypair::from_label("bench/requester"),
        apply: Duration::ZERO,
    };
    let mut watcher = Watcher::new(WatchSettings {
        step_deadline_ms: u64::MAX / 4,
        resubmit_ms: 2_000,
        leader_grace_ms: 2_000,
        stall_ms: u64::MAX / 4,
        max_op_bytes: scbe_core::governance::operation::MAX_OPERATION_BYTES / 2,
    });
    let (mut executor, mut monitor, mut agents_cpu) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut reports_checked, mut progress_ops, mut largest_op, mut batches) =
        (0u64, 0usize, 0usize, 0usize);
    let mut now_ms = 0u64;
    if !sim.apply(
        None,
        &Operation::RegisterRelease {
            release: release(&t.version),
        },
    ) {
        bail!("registration refused");
    }
    let mut ends = Vec::new();
    let phases = t
        .stages
        .iter()
        .map(|&s| (s, false))
        .chain(t.restore_after.then_some((Stage::Production, true)));
    for (stage, restore) in phases {
        let (phase_wall, phase_batches) = (Instant::now(), batches);
        let op = if restore {
            Operation::Rollback {
                target_version: "v0".into(),
                reason: "bench: restore".into(),
            }
        } else {
            Operation::Promote {
                version: t.version.clone(),
                to: stage,
                rollback_to: "v0".into(),
                pause_before: None,
                steps: Vec::new(),
            }
        };
        if !sim.apply(None, &op) {
            bail!("the ledger refused {}", op.name());
        }
        sim.vote_all();
        loop {
            let view = StepView::of(&sim.ledgers[0]);
            let Some(step) = view.clone() else { break };
            batches += 1;
            // The leader's executor: derive, endorse (its own signature and checking its peers'),
            // deliver and check the acks.
            let t = Instant::now();
            watcher.observe(view, now_ms);
            let bytes = step.order.to_bytes();
            let mut endorsements = Vec::new();
            for (i, l) in sim.ledgers.iter().enumerate() {
                let e =
                    endorse(l, step.rollout, &bytes, &sim.validators[i]).map_err(|e| anyhow!(e))?;
                if i > 0
                    && verifiers[i]
                        .verify(ORDER_KIND, &bytes, &e.signature)
                        .is_err()
                {
                    bail!("bad endorsement");
                }
                endorsements.push(e);
            }
            let signed = SignedOrder {
                order: bytes,
                endorsements,
                epochs: Vec::new(),
            };
            executor += t.elapsed();
            for id in step.remaining() {
                let a = &mut agents[index[id]];
                let t = Instant::now();
                let order = a
                    .authorise(&signed, step.order.action)
                    .map_err(|e| anyhow!(e))?;
                let ack = a.finish(&order, scbe_core::agent::HookOutcome::Done);
                agents_cpu += t.elapsed();
                let t = Instant::now();
                let body = ack.open(|k| keys.get(k)).map_err(|e| anyhow!("{e}"))?;
                watcher.ack(ack, body);
                executor += t.elapsed();
            }
            // The monitoring window, sample by sample; the watcher ticks every 250 ms.
            // Every agent reports; the watched ones and, in the canary step, the baseline
            // matter to the watcher.
            let watched: Vec<usize> = step
                .watch
                .iter()
                .chain(step.baseline.keys())
                .map(|id| index[id])
                .collect();
            for _ in 0..thresholds.min_samples {
                now_ms += sample.as_millis() as u64;
                for &i in &watched {
                    let a = &mut agents[i];
                    let t = Instant::now();
                    let serving = a.state().current.clone();
                    let s = model.sample(
                        &a.id,
                        &serving.version,
                        &serving.units,
                        a.samples(),
                        a.taken(),
                    );
                    a.record(s);
                    let rep = a.report();
                    agents_cpu += t.elapsed();
                    let Some(rep) = rep else { continue };
                    let t = Instant::now();
                    let body = rep.open(|k| keys.get(k)).map_err(|e| anyhow!("{e}"))?;
                    watcher.report(rep, body, now_ms);
                    monitor += t.elapsed();
                    reports_checked += 1;
                }
                // The watcher's ticks until one decides something (executor work), then the
                // ledgers apply it (consensus work, timed apart) and the watcher observes the
                // new step (executor work again). Each interval is counted once.
                let t = Instant::now();
                let mut decided = Vec::new();
                for _ in 0..(sample.as_millis() / tick.as_millis()).max(1) {
                    decided = watcher.decide(now_ms, true, 0);
                    if !decided.is_empty() {
                        break;
                    }
                }
                executor += t.elapsed();
                if !decided.is_empty() {
                    for op in &decided {
                        largest_op = largest_op.max(op.to_bytes().len());
                        progress_ops += 1;
                        if !sim.apply(Some(0), op) {
                            bail!("the ledger refused {}", op.name());
                        }
                    }
                    let t = Instant::now();
                    let view = StepView::of(&sim.ledgers[0]);
                    watcher.observe(view, now_ms);
                    executor += t.elapsed();
                }
                if StepView::of(&sim.ledgers[0])
                    .is_none_or(|v| v.order.issued_seq != step.order.issued_seq)
                {
                    break;
                }
            }
        }
        let r = sim.ledgers[0]
            .state()
            .rollouts
            .values()
            .last()
            .ok_or_else(|| anyhow!("no rollout"))?;
        let end = TrialEnd {
            stage,
            restore,
            batches: batches - phase_batches,
            wall: phase_wall.elapsed(),
            status: r.status,
            reason: r.reason.clone(),
        };
        let completed = end.status == RolloutStatus::Completed;
        ends.push(end);
        if !completed {
            break;
        }
    }
    let on: BTreeSet<String> = agents
        .iter()
        .map(|a| a.state().current.version.clone())
        .collect();
    let result = LargeResult {
        agents: n,
        batches,
        windows: window * batches as u32,
        executor,
        monitor,
        ledger_apply: sim.apply,
        agents_cpu,
        reports_checked,
        progress_ops,
        largest_op_bytes: largest_op,
        ledger_state_bytes: scbe_core::consensus::StateMachine::snapshot(&sim.ledgers[0]).len(),
        peak_rss_kb: peak_rss_kb(),
        wall: wall.elapsed(),
    };
    Ok((result, ends, on))
}
