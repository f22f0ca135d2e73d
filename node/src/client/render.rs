//! Text renderings of the status summary and of a proposal's decision.

use std::fmt::Write as _;

use scbe_proto::v1 as pb;
use serde_json::Value;

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// One line per rollout: id, version, target, status, batch progress, reason.
pub fn rollout_line(r: &Value) -> String {
    let batches = r["batches"].as_array().map_or(0, Vec::len);
    let done = r["batches_done"].as_u64().unwrap_or(0);
    let mut line = format!(
        "#{:<3} {:<14} -> {:<10} {:<12} batches {done}/{batches}",
        r["id"],
        text(&r["version"]),
        text(&r["stage"]),
        text(&r["status"]),
    );
    if r["status"] == "in_progress" {
        let _ = write!(
            line,
            " (batch {}: {} of {} recorded)",
            done + 1,
            r["recorded_in_batch"],
            r["current_batch"].as_array().map_or(0, Vec::len)
        );
    }
    if r["status"] == "rolling_back" {
        let pending = r["rollback_pending"].as_array().map_or(0, Vec::len);
        let _ = write!(line, " ({pending} agents still to roll back)");
    }
    if let Some(reason) = r["reason"].as_str().filter(|x| !x.is_empty()) {
        let _ = write!(line, "\n       {reason}");
    }
    line
}

/// The readable `scbe status`.
pub fn status_text(reply: &pb::StatusReply, s: &Value) -> String {
    let mut out = format!(
        "validator {}: view {} ({}), executed {}, stable checkpoint {}\n",
        reply.node, reply.view, reply.status, reply.last_executed, reply.stable_checkpoint
    );
    let stages: Vec<String> = ["production", "canary"]
        .iter()
        .filter_map(|st| s["current"][st].as_str().map(|v| format!("{st} {v}")))
        .collect();
    let _ = writeln!(out, "stages:    {}", stages.join("  ·  "));
    if let Some(rel) = s["releases"].as_object() {
        let list: Vec<String> = rel
            .iter()
            .map(|(v, st)| format!("{v} ({})", text(st)))
            .collect();
        let total = s["releases_total"].as_u64().unwrap_or(list.len() as u64);
        let more = total.saturating_sub(list.len() as u64);
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
    }
    let open: Vec<String> = s["open_proposals"]
        .as_array()
        .map(|a| a.iter().map(|p| format!("#{p}")).collect())
        .unwrap_or_default();
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
    for p in s["proposals"].as_array().into_iter().flatten().take(5) {
        let _ = writeln!(
            out,
            "  #{:<3} {:<40} {:<9} {} for, {} against",
            p["id"],
            text(&p["what"]),
            text(&p["status"]),
            p["approvals"],
            p["rejections"]
        );
    }
    let rollouts: Vec<&Value> = s["rollouts"]
        .as_array()
        .into_iter()
        .flatten()
        .take(5)
        .collect();
    let _ = writeln!(
        out,
        "rollouts:  {}",
        if rollouts.is_empty() { "none" } else { "" }
    );
    for r in rollouts {
        let _ = writeln!(out, "  {}", rollout_line(r));
    }
    let f = &s["fleet"];
    let _ = writeln!(
        out,
        "fleet:     {} agents reporting · safety min {} mean {} · {} tasks/min · consensus rate {}",
        f["agents_reporting"],
        num(&f["safety_score_min"], 3),
        num(&f["safety_score_mean"], 3),
        num(&f["task_throughput"], 0),
        num(&f["consensus_rate"], 2),
    );
    let agents: Vec<&Value> = s["agents"].as_array().into_iter().flatten().collect();
    if !agents.is_empty() {
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
        for a in agents {
            let h = &a["health"];
            let age = h["age_ms"]
                .as_u64()
                .map(|ms| format!("{:.1}s", ms as f64 / 1e3))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:<12} {:<15} {:<10} {:<10} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}  {}",
                text(&a["id"]),
                text(&a["specialty"]),
                text(&a["assigned"]),
                text(&a["version"]),
                num(&h["coherence"], 3),
                num(&h["error_rate"], 3),
                num(&h["response_ms_p95"], 0),
                num(&h["safety"], 3),
                h["samples"].as_u64().map_or("-".into(), |n| n.to_string()),
                age,
                if h.is_null() {
                    "no data"
                } else {
                    text(&h["verdict"])
                },
            );
        }
    }
    out
}

/// A validator's vote, one line.
pub fn vote_line(validator: u64, vote: &Value) -> String {
    let verdict = if vote["approve"] == true {
        "approve"
    } else {
        "reject "
    };
    let reasons: Vec<&str> = vote["reasons"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!("validator {validator}: {verdict}  {}", reasons.join("; "))
}

/// The decision on a proposal, with the tally; whether it was approved.
pub fn decision_text(p: &Value) -> (String, bool) {
    let approved = p["status"] == "approved";
    let approvals = p["votes"]
        .as_object()
        .map_or(0, |v| v.values().filter(|x| x["approve"] == true).count());
    let rejections = p["votes"]
        .as_object()
        .map_or(0, |v| v.values().filter(|x| x["approve"] == false).count());
    let mut out = format!(
        "proposal {} {}: {approvals} for, {rejections} against",
        p["id"],
        text(&p["status"]).to_uppercase()
    );
    if let Some(r) = p["rollout"].as_u64() {
        let _ = write!(
            out,
            " (rollout {r}; follow it with `scbe watch --rollout {r}`)"
        );
    }
    (out, approved)
}

/// Turns successive summaries into AV-tagged lines, one per change of an agent's health verdict
/// or running version (what `scbe watch` prints besides the ledger's events).
#[derive(Default)]
pub struct HealthChanges {
    last: std::collections::BTreeMap<String, (String, String)>,
}

impl HealthChanges {
    pub fn changes(&mut self, s: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for a in s["agents"].as_array().into_iter().flatten() {
            let Some(id) = a["id"].as_str() else { continue };
            let h = &a["health"];
            let verdict = if h.is_null() {
                "no data".to_string()
            } else {
                text(&h["verdict"]).to_string()
            };
            let version = text(&a["version"]).to_string();
            let now = (version.clone(), verdict.clone());
            if self.last.get(id) == Some(&now) {
                continue;
            }
            self.last.insert(id.to_string(), now);
            out.push(format!(
                "AV Avali    monitor  health               {id} runs {version}: {verdict} (coherence {} errors {} p95 {} ms safety {} over {} samples)",
                num(&h["coherence"], 3),
                num(&h["error_rate"], 3),
                num(&h["response_ms_p95"], 0),
                num(&h["safety"], 3),
                h["samples"].as_u64().map_or("-".into(), |n| n.to_string()),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::HealthChanges;

    #[test]
    fn health_lines_are_printed_once_per_change() {
        let mut h = HealthChanges::default();
        let healthy = json!({"agents": [{"id": "a1", "version": "r1", "health": {
            "verdict": "healthy", "coherence": 0.9, "error_rate": 0.01,
            "response_ms_p95": 80.0, "safety": 0.99, "samples": 4}}]});
        let first = h.changes(&healthy);
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("AV "), "{}", first[0]);
        assert!(first[0].contains("a1 runs r1: healthy"), "{}", first[0]);
        assert!(h.changes(&healthy).is_empty(), "no change, no line");
        let degraded = json!({"agents": [{"id": "a1", "version": "r1", "health": {
            "verdict": "degraded", "coherence": 0.3, "error_rate": 0.2,
            "response_ms_p95": 80.0, "safety": 0.99, "samples": 5}}]});
        let lines = h.changes(&degraded);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("degraded"), "{}", lines[0]);
        let silent = json!({"agents": [{"id": "a1", "version": "r1", "health": null}]});
        assert!(h.changes(&silent)[0].contains("no data"));
    }
}
