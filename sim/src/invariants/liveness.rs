//! Liveness after healing: once faults stop (Byzantine replicas keep misbehaving), every client
//! request completes, every request of a flooding requester that the nonce window admits
//! executes, every honest replica executes up to the last decided request, the release
//! requester's script finishes and no rollout is left in progress or rolling back, within the
//! deadline.

use scbe_core::consensus::Seq;

/// A snapshot of progress at the deadline.
pub struct Progress {
    pub outstanding_requests: usize,
    /// Requests of the flooding requester (`Scenario::floods`) not executed by every honest
    /// replica that is up.
    pub flood_outstanding: usize,
    pub target: Seq,
    /// (replica, last executed) for every honest replica.
    pub honest: Vec<(usize, Seq)>,
    /// Fleet work not finished: the requester's script, rollouts still active.
    pub fleet_pending: Vec<String>,
}

impl Progress {
    pub fn reached(&self) -> bool {
        self.outstanding_requests == 0
            && self.flood_outstanding == 0
            && self.fleet_pending.is_empty()
            && self.honest.iter().all(|(_, s)| *s >= self.target)
    }

    pub fn violation(&self) -> Option<String> {
        if self.reached() {
            return None;
        }
        let behind: Vec<String> = self
            .honest
            .iter()
            .filter(|(_, s)| *s < self.target)
            .map(|(id, s)| format!("r{id} at {s}"))
            .collect();
        Some(format!(
            "no progress after healing: {} client requests and {} flood requests outstanding, target {}, behind: [{}], fleet: [{}]",
            self.outstanding_requests,
            self.flood_outstanding,
            self.target,
            behind.join(", "),
            self.fleet_pending.join("; ")
        ))
    }
}
