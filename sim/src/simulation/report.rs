//! What one seed's run reports: the violations found, a hash of the whole trace (the same seed
//! always gives the same one), and counters.

use crate::invariants::Violation;
use crate::scenario::Scenario;

/// Counters for the report.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub messages: u64,
    pub rejected_at_edge: u64,
    pub decided: u64,
    pub max_view: u64,
    pub restarts: u64,
    pub state_restores: u64,
    pub requests_completed: u64,
    pub rollouts_completed: u64,
    pub rollouts_rolled_back: u64,
    /// Approved membership changes (agents removed or admitted) in the last ledger checked.
    pub membership_changes: u64,
    /// Agents restarted with a new key after an approved re-key.
    pub agents_rekeyed: u64,
    /// Times a node's edge learnt later validator sets from a peer's chain.
    pub chains_learnt: u64,
    /// Settings changes applied, in the last ledger checked.
    pub settings_changes: u64,
    pub orders_obeyed: u64,
    pub orders_refused: u64,
    pub evidence_refused: u64,
    /// Requests of restarted validators, signed after their restart, that took effect.
    pub own_executed_after_restart: u64,
    /// Validator-set changes that took effect (links the honest replicas hold).
    pub epochs: u64,
    /// Entries (and provers' digests) of stable checkpoints proven to the signed digest.
    pub state_proofs: u64,
    /// Release bodies the odd validators wrote to their body stores.
    pub bodies_stored: u64,
    /// Restarts from a persisted snapshot that named stored bodies, whose snapshot then served
    /// to peers was checked readable without the store.
    pub restored_from_references: u64,
    /// The rotated validator was restarted with its new key (`Scenario::validator_change`).
    pub rekeyed: bool,
    /// The validator restarted mid-rollout (`Scenario::restart_mid_rollout`), once it was.
    pub restarted_mid_rollout: Option<usize>,
    pub end_ms: u64,
    /// One line per replica at the end: view, status, executed, pending, drop reasons.
    pub replicas: Vec<String>,
}

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: Scenario,
    pub violations: Vec<Violation>,
    pub trace_hash: [u8; 32],
    pub stats: Stats,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}
