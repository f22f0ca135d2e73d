//! Liveness after healing: once faults stop (Byzantine replicas keep misbehaving), every client
//! request completes and every honest replica executes up to the last decided request, within
//! the deadline.

use scbe_node::consensus::Seq;

/// A snapshot of progress at the deadline.
pub struct Progress {
    pub outstanding_requests: usize,
    pub target: Seq,
    /// (replica, last executed) for every honest replica.
    pub honest: Vec<(usize, Seq)>,
}

impl Progress {
    pub fn reached(&self) -> bool {
        self.outstanding_requests == 0 && self.honest.iter().all(|(_, s)| *s >= self.target)
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
            "no progress after healing: {} client requests outstanding, target {}, behind: [{}]",
            self.outstanding_requests,
            self.target,
            behind.join(", ")
        ))
    }
}
