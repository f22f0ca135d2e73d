//! The body a notification sink receives: one ledger event as JSON.
//!
//! `id` is the cluster's genesis digest (first 16 hex digits) and the event's index in the
//! ledger: every validator numbers events identically, so a notification resent by a new leader
//! after a failover carries the id of the first send, and a sink deduplicates by it (it is also
//! sent as the `Idempotency-Key` header). `text` makes the body a valid Slack incoming-webhook
//! message as it stands.

use serde::Serialize;

use scbe_core::governance::event::Event;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    pub id: String,
    /// The event's index in the ledger.
    pub index: u64,
    pub cluster: String,
    /// The event kind (`rollout_completed`, `auto_rollback`, ...).
    pub event: String,
    /// Sacred Tongue tag (`KO`), its name (`Kor'aelin`) and phase (`deploy`).
    pub tongue: String,
    pub tongue_name: String,
    pub phase: String,
    /// Consensus sequence number of the batch that produced it.
    pub seq: u64,
    pub subject: String,
    /// What happened, with the evidence for rollbacks (agents, metrics, medians, p-values).
    pub detail: String,
    /// One line for humans (Slack shows it).
    pub text: String,
}

impl Notification {
    pub fn new(genesis_hex: &str, cluster: &str, index: u64, e: &Event) -> Self {
        let tag = format!("{:?}", e.tongue);
        Self {
            id: format!("{}-{index}", &genesis_hex[..genesis_hex.len().min(16)]),
            index,
            cluster: cluster.to_string(),
            event: e.kind.clone(),
            text: format!(
                "[{tag} {}] {cluster}: {} {}: {}",
                e.tongue.tongue(),
                e.subject,
                e.kind.replace('_', " "),
                e.detail
            ),
            tongue: tag,
            tongue_name: e.tongue.tongue().to_string(),
            phase: e.tongue.phase().to_string(),
            seq: e.seq,
            subject: e.subject.clone(),
            detail: e.detail.clone(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::governance::Tongue;

    #[test]
    fn the_body_carries_the_tag_a_human_line_and_an_id_every_validator_shares() {
        let e = Event {
            seq: 41,
            tongue: Tongue::DR,
            kind: "auto_rollback".into(),
            subject: "rollout:2".into(),
            detail: "r2 -> v0 on 2 agents: agent-03 coherence 0.41".into(),
        };
        let n = Notification::new(&"ab".repeat(32), "prod-eu", 17, &e);
        let v: serde_json::Value = serde_json::from_slice(&n.to_json()).expect("json");
        assert_eq!(v["id"], "abababababababab-17");
        assert_eq!(v["index"], 17);
        assert_eq!(v["event"], "auto_rollback");
        assert_eq!(v["tongue"], "DR");
        assert_eq!(v["phase"], "rollback");
        assert_eq!(v["seq"], 41);
        let text = v["text"].as_str().expect("text");
        assert!(
            text.starts_with("[DR Draumric] prod-eu: rollout:2 auto rollback: r2 -> v0"),
            "{text}"
        );
        assert!(text.contains("agent-03 coherence 0.41"), "{text}");
    }
}
