//! Release stages and the Sacred Tongue tags that label what the ledger did.

use serde::{Deserialize, Serialize};

/// Where a release is: staging → canary (10% of agents, at least one per specialty) →
/// production (100%).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Staging,
    Canary,
    Production,
}

impl Stage {
    /// The only stage a promotion from here may target (no skipping).
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::Staging => Some(Stage::Canary),
            Stage::Canary => Some(Stage::Production),
            Stage::Production => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Staging => "staging",
            Stage::Canary => "canary",
            Stage::Production => "production",
        }
    }

    /// Share of the fleet a rollout to this stage reaches, in percent.
    pub fn target_percent(self) -> u32 {
        match self {
            Stage::Staging => 0,
            Stage::Canary => 10,
            Stage::Production => 100,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The deploy stage an event belongs to, tagged with its Sacred Tongue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tongue {
    /// Build: Cascade.
    CA,
    /// Test: Runethic.
    RU,
    /// Stage: Umbroth.
    UM,
    /// Deploy: Kor'aelin.
    KO,
    /// Monitor: Avali.
    AV,
    /// Rollback: Draumric.
    DR,
}

impl Tongue {
    pub fn phase(self) -> &'static str {
        match self {
            Tongue::CA => "build",
            Tongue::RU => "test",
            Tongue::UM => "stage",
            Tongue::KO => "deploy",
            Tongue::AV => "monitor",
            Tongue::DR => "rollback",
        }
    }

    pub fn tongue(self) -> &'static str {
        match self {
            Tongue::CA => "Cascade",
            Tongue::RU => "Runethic",
            Tongue::UM => "Umbroth",
            Tongue::KO => "Kor'aelin",
            Tongue::AV => "Avali",
            Tongue::DR => "Draumric",
        }
    }
}
