//! A rollout as live progress bars, one per batch: how many agents of the batch run the new
//! version (deployed), how far their monitoring window is (samples), how many report healthy and
//! how many the ledger recorded. Fed with ledger summaries; on a terminal the bars redraw in
//! place, elsewhere (CI, pipes) indicatif hides them and a line per finished batch is printed.

use std::collections::BTreeMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

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
    pub fn update(&mut self, summary: &Value) -> Option<Ended> {
        let r = summary["rollouts"]
            .as_array()?
            .iter()
            .find(|r| r["id"].as_u64() == Some(self.rollout))?
            .clone();
        let version = r["version"].as_str().unwrap_or_default().to_string();
        let sizes: Vec<u64> = r["batches"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let done = r["batches_done"].as_u64().unwrap_or(0) as usize;
        let min_samples = summary["fleet"]["min_samples"].as_u64().unwrap_or(1).max(1);
        let agents: BTreeMap<&str, &Value> = summary["agents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["id"].as_str().map(|id| (id, x)))
                    .collect()
            })
            .unwrap_or_default();
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
        if r["status"] == "in_progress" {
            if let Some(batch) = r["current_batch"].as_array() {
                let ids: Vec<&str> = batch.iter().filter_map(Value::as_str).collect();
                let running: Vec<&Value> = ids
                    .iter()
                    .filter_map(|a| agents.get(a).copied())
                    .filter(|x| x["version"] == version.as_str())
                    .collect();
                let deployed = running.len();
                let healthy = running
                    .iter()
                    .filter(|x| x["health"]["verdict"] == "healthy")
                    .count();
                let samples = running
                    .iter()
                    .filter_map(|x| x["health"]["samples"].as_u64())
                    .min()
                    .unwrap_or(0)
                    .min(min_samples);
                let recorded = r["recorded_in_batch"].as_u64().unwrap_or(0);
                let b = self.bar(done, ids.len() as u64);
                b.set_position(deployed as u64);
                b.set_message(format!(
                    "deployed {deployed} · monitored {samples}/{min_samples} samples · healthy {healthy} · recorded {recorded}"
                ));
            }
        }
        let pending = r["rollback_pending"].as_array().map_or(0, Vec::len) as u64;
        let touched = r["rollback_agents"].as_array().map_or(0, Vec::len) as u64;
        if touched > 0 && self.rollback.is_none() {
            let b = self.multi.add(ProgressBar::new(touched));
            b.set_style(style());
            b.set_prefix("rollback");
            self.rollback = Some(b);
            self.println(&format!(
                "  rolling back {touched} agents to {}: {}",
                r["rollback_to"].as_str().unwrap_or("?"),
                r["reason"].as_str().unwrap_or("")
            ));
        }
        if let Some(b) = &self.rollback {
            b.set_position(touched - pending.min(touched));
            b.set_message(format!(
                "{} back on {}",
                touched - pending.min(touched),
                r["rollback_to"].as_str().unwrap_or("?")
            ));
        }
        let reason = r["reason"].as_str().unwrap_or_default().to_string();
        let ended = match r["status"].as_str() {
            Some("completed") => Some(Ended::Completed),
            Some("rolled_back") => Some(Ended::RolledBack(reason)),
            Some("failed") => Some(Ended::Failed(reason)),
            _ => None,
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
