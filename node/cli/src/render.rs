//! Text renderings of the status summary and of a proposal's decision, from the typed
//! [`StatusSummary`] and ledger proposal the validators return.

use std::fmt::Write as _;

use scbe_core::governance::ledger::{Proposal, ProposalStatus, RolloutStatus, VoteRecord};
use scbe_core::governance::Stage;
use scbe_core::rollout::baseline::BaselineVerdict;
use scbe_proto::v1 as pb;
use scbe_wire::status_summary::{AgentHealthSummary, RolloutSummary, StatusSummary};

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn text(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// One line per rollout: id, version, target, status, batch progress, reason.
pub fn rollout_line(r: &RolloutSummary) -> String {
    let batches = r.batches.len();
    let done = r.batches_done;
    let mut line = format!(
        "#{:<3} {:<14} -> {:<10} {:<12} batches {done}/{batches}",
        r.id,
        r.version,
        r.stage,
        r.status.name(),
    );
    if let Some(batch) = r.paused_before {
        let before = if batch as usize > r.batches.len() {
            "completing".to_string()
        } else {
            format!("batch {batch}")
        };
        let _ = write!(
            line,
            " (paused before {before}: scbe approve --rollout {} or scbe abort --rollout {})",
            r.id, r.id
        );
    } else if r.status == RolloutStatus::InProgress {
        let _ = write!(
            line,
            " (batch {}: {} of {} recorded)",
            done + 1,
            r.recorded_in_batch,
            r.current_batch.as_ref().map_or(0, Vec::len)
        );
    }
    if r.status == RolloutStatus::RollingBack {
        let pending = r.rollback_pending.len();
        let _ = write!(line, " ({pending} agents still to roll back)");
    }
    if !r.reason.is_empty() {
        let _ = write!(line, "\n       {}", r.reason);
    }
    if let Some(c) = &r.comparison {
        let verdict = match &c.verdict {
            BaselineVerdict::Pass { score } => format!("passed (score {score})"),
            BaselineVerdict::Fail { score } => format!("failed (score {score})"),
            BaselineVerdict::Inconclusive { reason } => format!("inconclusive: {reason}"),
        };
        let _ = write!(line, "\n       against the baseline: {verdict}");
        for m in &c.metrics {
            let _ = write!(line, "\n         {}", m.describe());
        }
    }
    line
}

/// The readable `scbe status`.
pub fn status_text(reply: &pb::StatusReply, s: &StatusSummary) -> String {
    let view = scbe_core::consensus::View(reply.view);
    let mut out = format!(
        "validator {}: epoch {}, view {} ({}), executed {}, stable checkpoint {}{}\n",
        reply.node,
        reply.epoch,
        view.in_epoch(),
        reply.status,
        reply.last_executed,
        reply.stable_checkpoint,
        if reply.observing {
            let proven = reply.epoch_proven;
            format!(" · {}", crate::cluster_view::Flag::Observing { proven })
        } else {
            String::new()
        }
    );
    if !reply.state_digest.is_empty() {
        // What `scbe audit verify` prints for a log exported up to this seq.
        let _ = writeln!(
            out,
            "state:     digest {} at seq {}",
            scbe_wire::key_file::encode_hex(&reply.state_digest),
            reply.last_executed
        );
    }
    let stages: Vec<String> = [Stage::Production, Stage::Canary]
        .iter()
        .filter_map(|st| s.serving(*st).map(|v| format!("{} {v}", st.name())))
        .collect();
    let _ = writeln!(out, "stages:    {}", stages.join("  ·  "));
    let list: Vec<String> = s
        .releases
        .iter()
        .map(|(v, st)| format!("{v} ({})", st.name()))
        .collect();
    let more = s.releases_total.saturating_sub(list.len());
    let _ = writeln!(
        out,
        "releases:  {}{}",
        if list.is_empty() {
            "none".into()
        } else {
            list.join(", ")
        },
        if more > 0 {
            format!(" (and {more} older)")
        } else {
            String::new()
        }
    );
    let open: Vec<String> = s.open_proposals.iter().map(|p| format!("#{p}")).collect();
    let _ = writeln!(
        out,
        "proposals: {} open{}",
        open.len(),
        if open.is_empty() {
            String::new()
        } else {
            format!(" ({})", open.join(", "))
        }
    );
    for p in s.proposals.iter().take(5) {
        let _ = writeln!(
            out,
            "  #{:<3} {:<40} {:<9} {} for, {} against",
            p.id,
            p.what,
            p.status.name(),
            p.approvals,
            p.rejections
        );
    }
    let (g, h) = (&s.settings.gates, &s.settings.health);
    let _ = writeln!(
        out,
        "gates:     quality >= {} · safety >= {} · p95 <= {} ms · cost <= ${}/1K tokens",
        g.min_quality, g.min_safety, g.max_latency_ms_p95, g.max_cost_per_1k_tokens
    );
    let _ = writeln!(
        out,
        "health:    coherence > {} · error rate < {} · sample safety >= {} · {} breaching samples roll back",
        h.min_coherence, h.max_error_rate, h.min_safety, h.breach_samples
    );
    let _ = writeln!(
        out,
        "digest:    {} (how checkpoints digest the state)",
        s.settings.state_digest.name()
    );
    let requesters: Vec<String> = s
        .requesters
        .iter()
        .map(|(name, key)| format!("{name} ({})", key.get(..16).unwrap_or(key)))
        .collect();
    let _ = writeln!(
        out,
        "requesters: {}",
        if requesters.is_empty() {
            "none listed".to_string()
        } else {
            requesters.join(", ")
        }
    );
    let rollouts: Vec<&RolloutSummary> = s.rollouts.iter().take(5).collect();
    let _ = writeln!(
        out,
        "rollouts:  {}",
        if rollouts.is_empty() { "none" } else { "" }
    );
    for r in rollouts {
        let _ = writeln!(out, "  {}", rollout_line(r));
    }
    if !s.notified.is_empty() {
        let sinks: Vec<String> = s
            .notified
            .iter()
            .map(|(name, through)| format!("{name} through event {through}"))
            .collect();
        let _ = writeln!(
            out,
            "notify:    {} (of {} events)",
            sinks.join(" · "),
            s.events
        );
    }
    let f = &s.fleet;
    let _ = writeln!(
        out,
        "fleet:     {} agents reporting · safety min {} mean {} · {} tasks/min · consensus rate {}",
        f.agents_reporting,
        num(Some(f.safety_score_min), 3),
        num(Some(f.safety_score_mean), 3),
        num(Some(f.task_throughput), 0),
        num(Some(f.consensus_rate), 2),
    );
    if !s.agents.is_empty() {
        let _ = writeln!(
            out,
            "  {:<12} {:<15} {:<10} {:<10} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}  verdict",
            "agent",
            "specialty",
            "assigned",
            "runs",
            "coherence",
            "errors",
            "p95 ms",
            "safety",
            "samples",
            "age"
        );
        for a in &s.agents {
            let h = a.health.as_ref();
            let age = h
                .map(|h| format!("{:.1}s", h.age_ms as f64 / 1e3))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:<12} {:<15} {:<10} {:<10} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}  {}",
                a.id,
                a.specialty,
                text(a.assigned.as_deref()),
                text(a.version.as_deref()),
                num(h.map(|h| h.coherence), 3),
                num(h.map(|h| h.error_rate), 3),
                num(h.map(|h| h.response_ms_p95), 0),
                num(h.map(|h| h.safety), 3),
                h.map_or("-".into(), |h| h.samples.to_string()),
                age,
                h.map_or("no data", |h| h.verdict.name()),
            );
        }
        for a in &s.agents {
            if let Some(w) = &a.warning {
                let _ = writeln!(out, "  WARNING {}: {w}", a.id);
            }
        }
    }
    out
}

/// A validator's vote, one line.
pub fn vote_line(validator: u32, vote: &VoteRecord) -> String {
    let verdict = if vote.approve { "approve" } else { "reject " };
    format!(
        "validator {validator}: {verdict}  {}",
        vote.reasons.join("; ")
    )
}

/// The decision on a proposal, with the tally; whether it was approved.
pub fn decision_text(p: &Proposal) -> (String, bool) {
    let approved = p.status == ProposalStatus::Approved;
    let mut out = format!(
        "proposal {} {}: {} for, {} against",
        p.id,
        p.status.name().to_uppercase(),
        p.approvals(),
        p.rejections()
    );
    if let Some(r) = p.rollout {
        let _ = write!(
            out,
            " (rollout {r}; follow it with `scbe watch --rollout {r}`)"
        );
    }
    if let Some(v) = p.validator {
        let _ = write!(
            out,
            " (added as validator {v}: its node.toml sets id = {v} and added = true)"
        );
    }
    (out, approved)
}

/// Turns successive summaries into AV-tagged lines, one per change of an agent's health verdict
/// or running version, and one per new warning about an agent (what `scbe watch` prints besides
/// the ledger's events).
#[derive(Default)]
pub struct HealthChanges {
    last: std::collections::BTreeMap<String, (String, String)>,
    warned: std::collections::BTreeMap<String, String>,
}

impl HealthChanges {
    pub fn changes(&mut self, s: &StatusSummary) -> Vec<String> {
        let mut out = Vec::new();
        for a in &s.agents {
            let h: Option<&AgentHealthSummary> = a.health.as_ref();
            let verdict = h.map_or("no data", |h| h.verdict.name()).to_string();
            let version = text(a.version.as_deref()).to_string();
            if self.warned.get(&a.id) != a.warning.as_ref() {
                if let Some(w) = &a.warning {
                    out.push(format!("WARNING {}: {w}", a.id));
                }
                match &a.warning {
                    Some(w) => self.warned.insert(a.id.clone(), w.clone()),
                    None => self.warned.remove(&a.id),
                };
            }
            let now = (version.clone(), verdict.clone());
            if self.last.get(&a.id) == Some(&now) {
                continue;
            }
            self.last.insert(a.id.clone(), now);
            out.push(format!(
                "AV Avali    monitor  health               {} runs {version}: {verdict} (coherence {} errors {} p95 {} ms safety {} over {} samples)",
                a.id,
                num(h.map(|h| h.coherence), 3),
                num(h.map(|h| h.error_rate), 3),
                num(h.map(|h| h.response_ms_p95), 0),
                num(h.map(|h| h.safety), 3),
                h.map_or("-".into(), |h| h.samples.to_string()),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_wire::status_summary::{AgentSummary, FleetSummary, HealthVerdict};

    fn summary(health: Option<(HealthVerdict, f64, u32)>) -> StatusSummary {
        StatusSummary {
            releases: Default::default(),
            releases_total: 0,
            current: Default::default(),
            known_good: Default::default(),
            open_proposals: vec![],
            proposals: vec![],
            rollouts: vec![],
            agents: vec![AgentSummary {
                id: "a1".into(),
                specialty: "code_execute".into(),
                assigned: Some("r1".into()),
                version: Some("r1".into()),
                health: health.map(|(verdict, coherence, samples)| AgentHealthSummary {
                    coherence,
                    error_rate: 0.01,
                    response_ms_p95: 80.0,
                    safety: 0.99,
                    tasks_per_minute: 10.0,
                    samples,
                    age_ms: 100,
                    verdict,
                }),
                warning: None,
            }],
            fleet: FleetSummary::default(),
            events: 0,
            notified: Default::default(),
            settings: Default::default(),
            requesters: [("ci".to_string(), "ab".repeat(32))].into(),
        }
    }

    /// `scbe status` lists the requesters in force by name, with the start of each key.
    #[test]
    fn status_lists_the_requesters_in_force() {
        let mut s = summary(None);
        let text = status_text(&pb::StatusReply::default(), &s);
        assert!(
            text.contains("requesters: ci (abababababababab)\n"),
            "{text}"
        );
        s.requesters.insert("release-bot".into(), "cd".repeat(32));
        let text = status_text(&pb::StatusReply::default(), &s);
        assert!(
            text.contains("requesters: ci (abababababababab), release-bot (cdcdcdcdcdcdcdcd)\n"),
            "{text}"
        );
        s.requesters.clear();
        let text = status_text(&pb::StatusReply::default(), &s);
        assert!(text.contains("requesters: none listed\n"), "{text}");
    }

    #[test]
    fn health_lines_are_printed_once_per_change() {
        let mut h = HealthChanges::default();
        let healthy = summary(Some((HealthVerdict::Healthy, 0.9, 4)));
        let first = h.changes(&healthy);
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("AV "), "{}", first[0]);
        assert!(first[0].contains("a1 runs r1: healthy"), "{}", first[0]);
        assert!(h.changes(&healthy).is_empty(), "no change, no line");
        let degraded = summary(Some((HealthVerdict::Degraded, 0.3, 5)));
        let lines = h.changes(&degraded);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("degraded"), "{}", lines[0]);
        let silent = summary(None);
        assert!(h.changes(&silent)[0].contains("no data"));
    }

    #[test]
    fn a_pause_names_the_batch_it_waits_before_or_the_completion() {
        let mut r = RolloutSummary {
            id: 4,
            proposal: 9,
            version: "r4".into(),
            stage: "canary".into(),
            status: RolloutStatus::InProgress,
            batches: vec![3],
            batches_done: 0,
            agents: 3,
            recorded_in_batch: 0,
            current_batch: None,
            rollback_agents: vec![],
            rollback_to: "v0".into(),
            rollback_pending: Default::default(),
            reason: String::new(),
            planned_seq: 1,
            ended_seq: None,
            comparison: None,
            paused_before: Some(1),
        };
        let line = rollout_line(&r);
        assert!(
            line.contains(
                "(paused before batch 1: scbe approve --rollout 4 or scbe abort --rollout 4)"
            ),
            "{line}"
        );
        (r.batches_done, r.paused_before) = (1, Some(2));
        let line = rollout_line(&r);
        assert!(
            line.contains("(paused before completing: scbe approve --rollout 4"),
            "{line}"
        );
    }
}
