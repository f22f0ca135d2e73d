//! The cluster's quality gates and health thresholds, changed by the quorum: a requester
//! proposes new values (`scbe propose settings --min-quality 0.85`); every validator checks
//! them (each a valid setting, within the floors below, something actually changing, no
//! rollout in flight) and votes like on a promotion; at `q` approvals they apply at that
//! sequence number on every replica. Until a change is approved the genesis's values hold, and
//! the state digest is the one a cluster had before settings could change.
//!
//! The floors exist because a quorum of validators is trusted to decide, not to be careless:
//! no proposal can make a release with 0.5 safety pass its gates or an agent erring on a
//! third of its requests count as healthy, whatever the votes. A genesis may still set values
//! outside them (a test cluster's); a proposal has to land inside.

use serde::{Deserialize, Serialize};

use super::state::StateDigest;
use super::{Ledger, Rejection};
use crate::governance::gates::Gates;
use crate::governance::stage::Tongue;
use crate::rollout::health::HealthThresholds;

/// The gates, thresholds and state digest in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub gates: Gates,
    pub health: HealthThresholds,
    /// Left out of the JSON (and so of the state digest) while it is the walk, so a cluster
    /// that changed its gates before this existed keeps its digests.
    #[serde(default, skip_serializing_if = "StateDigest::is_walk")]
    pub state_digest: StateDigest,
}

/// The settings in force in `state`: the genesis's until a change is approved.
pub(super) fn in_force(state: &super::LedgerState, cfg: &super::LedgerConfig) -> Settings {
    state.settings.unwrap_or(Settings {
        gates: cfg.gates,
        health: cfg.health,
        state_digest: cfg.state_digest,
    })
}

/// New values for some gates and health thresholds; a field left out keeps its value. The
/// latency gate also bounds agents' p95 response time, as in the genesis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_quality: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_safety: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms_p95: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_per_1k_tokens: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_coherence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// The health threshold `[health] min_safety`: every sample's safety.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_min_safety: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_samples: Option<u32>,
    /// How the state digest is computed from the next checkpoint on (a cluster upgraded from a
    /// build before the digest tree moves to it this way, see OPERATIONS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_digest: Option<StateDigest>,
}

/// One decimal setting a proposal may change: its name, the change's value for it, where it
/// lives in the settings, and the inclusive range a proposal must keep it in.
struct Field {
    name: &'static str,
    proposed: fn(&SettingsChange) -> Option<f64>,
    at: fn(&mut Settings) -> &mut f64,
    range: (f64, f64),
}

/// Every decimal setting (`breach_samples`, a count, is handled beside them), with the floors
/// (and ceilings) a proposal must respect.
const FIELDS: [Field; 7] = [
    Field {
        name: "min_quality",
        proposed: |c| c.min_quality,
        at: |s| &mut s.gates.min_quality,
        range: (0.5, 1.0),
    },
    Field {
        name: "min_safety",
        proposed: |c| c.min_safety,
        at: |s| &mut s.gates.min_safety,
        range: (0.9, 1.0),
    },
    Field {
        name: "max_latency_ms_p95",
        proposed: |c| c.max_latency_ms_p95,
        at: |s| &mut s.gates.max_latency_ms_p95,
        range: (1.0, 10_000.0),
    },
    Field {
        name: "max_cost_per_1k_tokens",
        proposed: |c| c.max_cost_per_1k_tokens,
        at: |s| &mut s.gates.max_cost_per_1k_tokens,
        range: (0.0, 100.0),
    },
    Field {
        name: "min_coherence",
        proposed: |c| c.min_coherence,
        at: |s| &mut s.health.min_coherence,
        range: (0.3, 1.0),
    },
    Field {
        name: "max_error_rate",
        proposed: |c| c.max_error_rate,
        at: |s| &mut s.health.max_error_rate,
        range: (0.0, 0.25),
    },
    Field {
        name: "health_min_safety",
        proposed: |c| c.health_min_safety,
        at: |s| &mut s.health.min_safety,
        range: (0.9, 1.0),
    },
];

impl SettingsChange {
    /// Whether it names no setting at all.
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }

    /// `base` with this change's values.
    pub fn applied_to(&self, base: Settings) -> Settings {
        let mut s = base;
        for f in &FIELDS {
            if let Some(v) = (f.proposed)(self) {
                *(f.at)(&mut s) = v;
            }
        }
        // The latency gate also bounds agents' p95 response time, as in the genesis.
        if let Some(v) = self.max_latency_ms_p95 {
            s.health.max_response_ms_p95 = v;
        }
        if let Some(b) = self.breach_samples {
            s.health.breach_samples = b;
        }
        if let Some(d) = self.state_digest {
            s.state_digest = d;
        }
        s
    }

    /// One line for events and `scbe status`: "settings: min_quality 0.85, breach_samples 3".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = FIELDS
            .iter()
            .filter_map(|f| (f.proposed)(self).map(|v| format!("{} {v}", f.name)))
            .collect();
        if let Some(b) = self.breach_samples {
            parts.push(format!("breach_samples {b}"));
        }
        if let Some(d) = self.state_digest {
            parts.push(format!("state_digest {}", d.name()));
        }
        format!("settings: {}", parts.join(", "))
    }
}

impl Ledger {
    /// The gates, health thresholds and state digest in force: the genesis's until a change
    /// is approved.
    pub fn settings(&self) -> Settings {
        in_force(&self.state, &self.cfg)
    }

    /// The quality gates every registered release must meet.
    pub fn gates(&self) -> Gates {
        self.settings().gates
    }

    /// The health thresholds agents are judged by.
    pub fn health(&self) -> HealthThresholds {
        self.settings().health
    }

    /// Everything wrong with `change` against the settings in force (empty: it may apply).
    pub fn check_settings_change(&self, change: &SettingsChange) -> Vec<String> {
        let mut reasons = Vec::new();
        if change.is_empty() {
            reasons.push("a settings change names at least one gate or threshold".into());
            return reasons;
        }
        let now = self.settings();
        let next = change.applied_to(now);
        if next == now {
            reasons.push("every value named is already in force".into());
        }
        if let Err(e) = next.gates.validate() {
            reasons.push(e.to_string());
        }
        if let Err(e) = next.health.validate() {
            reasons.push(e.to_string());
        }
        let mut in_force = now;
        for f in &FIELDS {
            let (lo, hi) = f.range;
            // Only values the change sets are held to the floors: a genesis outside them
            // stays valid until someone proposes to change that value.
            let Some(v) = (f.proposed)(change) else {
                continue;
            };
            if *(f.at)(&mut in_force) != v && !(lo..=hi).contains(&v) {
                reasons.push(format!(
                    "{} {v} is outside what a proposal may set ({lo} to {hi})",
                    f.name
                ));
            }
        }
        if let Some(r) = self.state.active_rollout() {
            reasons.push(format!(
                "rollout {} ({}) is judged by the settings in force; changes wait for it",
                r.id, r.version
            ));
        }
        reasons
    }

    /// A requester proposes `change`; it opens a proposal when it could apply now.
    pub(super) fn propose_settings(
        &mut self,
        seq: u64,
        change: SettingsChange,
    ) -> Result<u64, Rejection> {
        let reasons = self.check_settings_change(&change);
        let what = change.describe();
        let kind = super::ProposalKind::Settings { change };
        self.open_change(seq, reasons, kind, "settings_proposed", what)
    }

    /// An approved change applies (checked again, as membership changes are).
    pub(super) fn apply_settings(&mut self, seq: u64, proposal: u64, change: SettingsChange) {
        let reasons = self.check_settings_change(&change);
        if !self.still_applies(seq, proposal, reasons, "settings_not_applied") {
            return;
        }
        self.state.settings = Some(change.applied_to(self.settings()));
        self.event(
            seq,
            Tongue::KO,
            "settings_changed",
            format!("proposal:{proposal}"),
            change.describe(),
        );
    }
}
