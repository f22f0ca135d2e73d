//! The fleet as this validator's ledger has it now: the genesis's agents as approved
//! membership proposals changed them. The core task publishes it after every turn that changed
//! it; the executor reads addresses and keys from it, and [`keep_health_streams`] keeps one
//! health stream per agent with an address: started for an admitted agent, stopped for a
//! removed one, restarted for one that moved. No restart of the validator is needed.

use std::collections::BTreeMap;
use std::sync::Arc;

use scbe_core::crypto::PublicKey;
use scbe_core::rollout::plan::FleetAgent;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::executor::FleetContext;
use super::monitor::{watch_agent, FleetHealth};

/// An agent as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    pub key: PublicKey,
    pub specialty: String,
    /// `host:port` of its FleetAgent service (`None`: it cannot be reached).
    pub address: Option<String>,
}

/// Every agent by id.
pub type Roster = Arc<BTreeMap<String, AgentInfo>>;

pub fn roster_of(agents: &[FleetAgent]) -> Roster {
    Arc::new(
        agents
            .iter()
            .map(|a| {
                (
                    a.id.clone(),
                    AgentInfo {
                        key: a.key,
                        specialty: a.specialty.clone(),
                        address: (!a.address.is_empty()).then(|| a.address.clone()),
                    },
                )
            })
            .collect(),
    )
}

/// Whether `roster` lists exactly `agents` (the core task publishes only a change).
pub fn same_fleet(roster: &Roster, agents: &[FleetAgent]) -> bool {
    roster.len() == agents.len()
        && agents.iter().all(|a| {
            roster.get(&a.id).is_some_and(|i| {
                i.key == a.key
                    && i.specialty == a.specialty
                    && i.address.as_deref().unwrap_or("") == a.address
            })
        })
}

/// One health stream per agent of the roster, following it as it changes, until the roster's
/// sender is gone. A stream task that panics takes this task down with it (and the supervisor
/// the validator).
pub async fn keep_health_streams(
    ctx: Arc<FleetContext>,
    health: Arc<FleetHealth>,
    mut roster: watch::Receiver<Roster>,
) {
    let mut running: BTreeMap<String, (String, AbortHandle)> = BTreeMap::new();
    let mut streams = JoinSet::new();
    loop {
        let current = roster.borrow_and_update().clone();
        running.retain(|id, (addr, handle)| {
            let keep = current.get(id).and_then(|a| a.address.as_ref()) == Some(addr);
            if !keep {
                tracing::info!(agent = %id, "agent left the fleet or moved: its health stream stops");
                handle.abort();
                health.forget(id);
            }
            keep
        });
        for (id, info) in current.iter() {
            let Some(addr) = &info.address else { continue };
            if running.contains_key(id) {
                continue;
            }
            let handle = streams.spawn(watch_agent(
                Arc::clone(&ctx),
                Arc::clone(&health),
                id.clone(),
                addr.clone(),
            ));
            running.insert(id.clone(), (addr.clone(), handle));
        }
        tokio::select! {
            changed = roster.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(ended) = streams.join_next() => {
                if let Err(e) = ended {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_differs_from_a_fleet_that_changed() {
        let a = |id: &str, address: &str| FleetAgent {
            id: id.into(),
            specialty: "textgen".into(),
            key: PublicKey([1; 32]),
            address: address.into(),
        };
        let fleet = vec![a("a", "h:1"), a("b", "")];
        let r = roster_of(&fleet);
        assert!(same_fleet(&r, &fleet));
        assert_eq!(r["b"].address, None);
        assert!(!same_fleet(&r, &[a("a", "h:1")]));
        assert!(!same_fleet(&r, &[a("a", "h:2"), a("b", "")]));
        assert!(!same_fleet(&r, &[a("a", "h:1"), a("c", "")]));
    }
}
