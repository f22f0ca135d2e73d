//! A rollout as live progress bars, one per batch: how many agents of the batch run the new
//! version (deployed), how far their monitoring window is (samples), how many report healthy and
//! how many the ledger recorded. Fed with ledger summaries; on a terminal the bars redraw in
//! place, elsewhere (CI, pipes) indicatif hides them and a line per finished batch is printed.

use std::collections::BTreeMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use scbe_core::governance::ledger::RolloutStatus;
use scbe_wire::status_summary::{AgentSummary, HealthVerdict, StatusSummary};

/// How a followed rollout ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    Completed,
    RolledBack(String),
    Failed(String),
}

pub struct RolloutProgress {
    rollout: u64,
    multi: MultiProgress,
    bars: BTreeMap<usize, ProgressBar>,
    /// Batches already reported finished (as plain lines when bars are hidden).
    finished: usize,
    rollback: Option<ProgressBar>,
    visible: bool,
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix:<10} [{bar:24}] {pos:>4}/{len:<4} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl RolloutProgress {
    pub fn new(rollout: u64) -> Self {
        let multi = MultiProgress::new();
        let visible = !multi.is_hidden();
        RolloutProgress {
            rollout,
            multi,
            bars: BTreeMap::new(),
            finished: 0,
            rollback: None,
            visible,
        }
    }

    /// Bars that never draw (for tests and non-interactive use).
    pub fn hidden(rollout: u64) -> Self {
        let mut p = Self::new(rollout);
        p.multi.set_draw_target(ProgressDrawTarget::hidden());
        p.visible = false;
        p
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else {
            println!("{line}");
        }
    }

    fn bar(&mut self, i: usize, len: u64) -> ProgressBar {
        let multi = &self.multi;
        self.bars
            .entry(i)
            .or_insert_with(|| {
                let b = multi.add(ProgressBar::new(len));
                b.set_style(style());
                b.set_prefix(format!("batch {}", i + 1));
                b
            })
            .clone()
    }

    /// Updates from a summary; returns how the rollout ended once it has.
    pub fn update(&mut self, summary: &StatusSummary) -> Option<Ended> {
        let r = summary.rollout(self.rollout)?.clone();
        let version = r.version.clone();
        let sizes: Vec<u64> = r.batches.iter().map(|n| *n as u64).collect();
        let done = r.batches_done as usize;
        let min_samples = summary.fleet.min_samples.max(1);
        let agents: BTreeMap<&str, &AgentSummary> =
            summary.agents.iter().map(|a| (a.id.as_str(), a)).collect();
        for (i, size) in sizes.iter().enumerate().take(done) {
            let b = self.bar(i, *size);
            if !b.is_finished() {
                b.set_position(*size);
                b.finish_with_message("deployed and healthy: recorded".to_string());
            }
        }
        while self.finished < done.min(sizes.len()) {
            if !self.visible {
                println!(
                    "  batch {}/{}: {} agents deployed and healthy",
                    self.finished + 1,
                    sizes.len(),
                    sizes[self.finished]
                );
            }
            self.finished += 1;
        }
        if r.status == RolloutStatus::InProgress {
            if let Some(batch) = &r.current_batch {
                let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
                let running: Vec<&AgentSummary> = ids
                    .iter()
                    .filter_map(|a| agents.get(a).copied())
                    .filter(|x| x.version.as_deref() == Some(version.as_str()))
                    .collect();
                let deployed = running.len();
                let healthy = running
                    .iter()
                    .filter(|x| {
                        x.health
                            .as_ref()
                            .is_some_and(|h| h.verdict == HealthVerdict::Healthy)
                    })
                    .count();
                let samples = running
                    .iter()
                    .filter_map(|x| x.health.as_ref().map(|h| h.samples))
                    .min()
                    .unwrap_or(0)
                    .min(min_samples);
                let recorded = r.recorded_in_batch;
                let b = self.bar(done, ids.len() as u64);
                b.set_position(deployed as u64);
                b.set_message(format!(
                    "deployed {deployed} · monitored {samples}/{min_samples} samples · healthy {healthy} · recorded {recorded}"
                ));
            }
        }
        let pending = r.rollback_pending.len() as u64;
        let touched = r.rollback_agents.len() as u64;
        if touched > 0 && self.rollback.is_none() {
            let b = self.multi.add(ProgressBar::new(touched));
            b.set_style(style());
            b.set_prefix("rollback");
            self.rollback = Some(b);
            self.println(&format!(
                "  rolling back {touched} agents to {}: {}",
                r.rollback_to, r.reason
            ));
        }
        if let Some(b) = &self.rollback {
            b.set_position(touched - pending.min(touched));
            b.set_message(format!(
                "{} back on {}",
                touched - pending.min(touched),
                r.rollback_to
            ));
        }
        let reason = r.reason.clone();
        let ended = match r.status {
            RolloutStatus::Completed => Some(Ended::Completed),
            RolloutStatus::RolledBack => Some(Ended::RolledBack(reason)),
            RolloutStatus::Failed => Some(Ended::Failed(reason)),
            RolloutStatus::InProgress | RolloutStatus::RollingBack => None,
        };
        if ended.is_some() {
            for b in self.bars.values().chain(self.rollback.iter()) {
                if !b.is_finished() {
                    b.abandon();
                }
            }
        }
        ended
    }
}
