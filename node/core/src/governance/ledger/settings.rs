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

use super::{reject, Ledger, Rejection};
use crate::governance::gates::Gates;
use crate::governance::stage::Tongue;
use crate::rollout::health::HealthThresholds;

/// The gates and thresholds in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub gates: Gates,
    pub health: HealthThresholds,
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
}

/// A bound no approved change may cross.
struct Floor {
    setting: &'static str,
    value: fn(&Settings) -> f64,
    /// Inclusive range the value must stay within.
    range: (f64, f64),
}

/// The floors (and ceilings) a proposal must respect.
const FLOORS: [Floor; 7] = [
    Floor {
        setting: "min_quality",
        value: |s| s.gates.min_quality,
        range: (0.5, 1.0),
    },
    Floor {
        setting: "min_safety",
        value: |s| s.gates.min_safety,
        range: (0.9, 1.0),
    },
    Floor {
        setting: "max_latency_ms_p95",
        value: |s| s.gates.max_latency_ms_p95,
        range: (1.0, 10_000.0),
    },
    Floor {
        setting: "max_cost_per_1k_tokens",
        value: |s| s.gates.max_cost_per_1k_tokens,
        range: (0.0, 100.0),
    },
    Floor {
        setting: "min_coherence",
        value: |s| s.health.min_coherence,
        range: (0.3, 1.0),
    },
    Floor {
        setting: "max_error_rate",
        value: |s| s.health.max_error_rate,
        range: (0.0, 0.25),
    },
    Floor {
        setting: "health_min_safety",
        value: |s| s.health.min_safety,
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
        let set = |to: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *to = v;
            }
        };
        set(&mut s.gates.min_quality, self.min_quality);
        set(&mut s.gates.min_safety, self.min_safety);
        set(&mut s.gates.max_latency_ms_p95, self.max_latency_ms_p95);
        set(&mut s.health.max_response_ms_p95, self.max_latency_ms_p95);
        set(
            &mut s.gates.max_cost_per_1k_tokens,
            self.max_cost_per_1k_tokens,
        );
        set(&mut s.health.min_coherence, self.min_coherence);
        set(&mut s.health.max_error_rate, self.max_error_rate);
        set(&mut s.health.min_safety, self.health_min_safety);
        if let Some(b) = self.breach_samples {
            s.health.breach_samples = b;
        }
        s
    }

    /// One line for events and `scbe status`: "settings: min_quality 0.85, breach_samples 3".
    pub fn describe(&self) -> String {
        let floats = [
            ("min_quality", self.min_quality),
            ("min_safety", self.min_safety),
            ("max_latency_ms_p95", self.max_latency_ms_p95),
            ("max_cost_per_1k_tokens", self.max_cost_per_1k_tokens),
            ("min_coherence", self.min_coherence),
            ("max_error_rate", self.max_error_rate),
            ("health_min_safety", self.health_min_safety),
        ];
        let mut parts: Vec<String> = floats
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
            .collect();
        if let Some(b) = self.breach_samples {
            parts.push(format!("breach_samples {b}"));
        }
        format!("settings: {}", parts.join(", "))
    }
}

impl Ledger {
    /// The gates and health thresholds in force: the genesis's until a change is approved.
    pub fn settings(&self) -> Settings {
        self.state.settings.unwrap_or(Settings {
            gates: self.cfg.gates,
            health: self.cfg.health,
        })
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
        for f in &FLOORS {
            let v = (f.value)(&next);
            let (lo, hi) = f.range;
            // Only values the change sets are held to the floors: a genesis outside them
            // stays valid until someone proposes to change that value.
            if (f.value)(&now) != v && !(lo..=hi).contains(&v) {
                reasons.push(format!(
                    "{} {v} is outside what a proposal may set ({lo} to {hi})",
                    f.setting
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
        if !reasons.is_empty() {
            return Err(reasons);
        }
        if let Some(p) = self.pending_proposal() {
            return reject(format!(
                "proposal {} is still being voted on; one change at a time",
                p.id
            ));
        }
        let what = change.describe();
        let id = self.open_proposal(seq, super::ProposalKind::Settings { change });
        self.event(
            seq,
            Tongue::UM,
            "settings_proposed",
            format!("proposal:{id}"),
            what,
        );
        Ok(id)
    }

    /// An approved change applies (checked again, as membership changes are).
    pub(super) fn apply_settings(&mut self, seq: u64, proposal: u64, change: SettingsChange) {
        let reasons = self.check_settings_change(&change);
        if !reasons.is_empty() {
            self.event(
                seq,
                Tongue::UM,
                "settings_not_applied",
                format!("proposal:{proposal}"),
                reasons.join("; "),
            );
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
