//! Settings: a rollout is judged by one set of gates and thresholds from its plan to its end
//! (no approved settings change applies while it is in flight), and every release registered
//! after a change was fused against the gates that change put in force.
//!
//! What was applied, and when, comes from the ledger's records (its `settings_changed` events
//! and the approved proposals they name), not from the rule the ledger applies: a ledger that
//! applied a change mid-rollout, or kept accepting the old gates, is caught.

use scbe_core::governance::ledger::{
    ProposalKind, ReleaseEntry, Rollout, Settings, SettingsChange,
};
use scbe_core::governance::{Gates, Ledger};

/// Every settings change `ledger` applied, with the seq it applied at, oldest first; `None`
/// when its journal no longer holds its first events (a long flood seed), so nothing can be
/// said.
pub fn applied_changes(ledger: &Ledger) -> Option<Vec<(u64, SettingsChange)>> {
    let events = &ledger.journal().events;
    if events.first() != 0 {
        return None;
    }
    let changes = events
        .iter()
        .filter(|e| e.kind == "settings_changed")
        .filter_map(|e| {
            let id: u64 = e.subject.strip_prefix("proposal:")?.parse().ok()?;
            match &ledger.state().proposals.get(&id)?.kind {
                ProposalKind::Settings { change } => Some((e.seq, change.clone())),
                _ => None,
            }
        })
        .collect();
    Some(changes)
}

/// A change applied while `r` was in flight (after it was planned, before it ended).
pub fn check_rollout(r: &Rollout, changes: &[(u64, SettingsChange)]) -> Vec<String> {
    changes
        .iter()
        .filter(|(seq, _)| *seq > r.planned_seq && r.ended_seq.is_none_or(|end| *seq < end))
        .map(|(seq, c)| {
            format!(
                "rollout {} (planned at seq {}, ended {:?}) saw \"{}\" applied at seq {seq}",
                r.id,
                r.planned_seq,
                r.ended_seq,
                c.describe()
            )
        })
        .collect()
}

/// Releases registered under gates other than those in force at their seq (`genesis`, then
/// each change in turn).
pub fn check_releases<'a>(
    releases: impl IntoIterator<Item = &'a ReleaseEntry>,
    genesis: Gates,
    changes: &[(u64, SettingsChange)],
) -> Vec<String> {
    let gates_at = |seq: u64| {
        changes
            .iter()
            .filter(|(at, _)| *at < seq)
            .fold(genesis, |gates, (_, c)| {
                let s = Settings {
                    gates,
                    ..Settings::default()
                };
                c.applied_to(s).gates
            })
    };
    releases
        .into_iter()
        .filter_map(|e| match e.release.release() {
            Err(err) => Some(format!(
                "release registered at seq {} does not decode: {err}",
                e.registered_seq
            )),
            Ok(r) if r.gates != gates_at(e.registered_seq) => Some(format!(
                "release {} registered at seq {} under gates {:?}, not those in force {:?}",
                r.version,
                e.registered_seq,
                r.gates,
                gates_at(e.registered_seq)
            )),
            Ok(_) => None,
        })
        .collect()
}
