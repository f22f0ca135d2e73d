//! Every long-lived task of a daemon (a validator's gRPC server, peer links, executor, health
//! streams, heartbeat pacer and metrics server; an agent's server and sampler) runs under a
//! [`Supervisor`], which keeps its handle and its name. None of them is meant to end while the
//! daemon runs: one that returns or panics stops the daemon with an error naming it, so a
//! validator that can no longer execute rollouts (or an agent that no longer samples) never goes
//! on looking healthy.

use std::collections::BTreeMap;
use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};

/// A task that ended while the daemon was running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {task} task {how}")]
pub struct TaskEnded {
    pub task: String,
    /// "returned", "panicked: <message>" or "was cancelled".
    pub how: String,
}

/// A daemon's long-lived tasks. Dropping it aborts them all.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: BTreeMap<Id, String>,
}

impl Supervisor {
    /// Runs `task` under supervision; `name` says in an error which part of the daemon it is.
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name.into());
    }

    /// Tasks running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits until a task ends and says which and how. Never returns while every task runs
    /// (nor when there is none).
    pub async fn first_ended(&mut self) -> TaskEnded {
        let Some(done) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, how) = match done {
            Ok((id, ())) => (id, "returned".to_string()),
            Err(e) => (e.id(), how_it_failed(e)),
        };
        TaskEnded {
            task: self.names.remove(&id).unwrap_or_else(|| "unnamed".into()),
            how,
        }
    }
}

fn how_it_failed(e: JoinError) -> String {
    if !e.is_panic() {
        return "was cancelled".into();
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_returns_is_named() {
        let mut s = Supervisor::default();
        s.spawn("idle", std::future::pending());
        s.spawn("executor", async { panic!("injected") });
        let ended = s.first_ended().await;
        assert_eq!(
            ended,
            TaskEnded {
                task: "executor".into(),
                how: "panicked: injected".into()
            }
        );
        s.spawn("metrics server", async {});
        let ended = s.first_ended().await;
        assert_eq!(ended.task, "metrics server");
        assert_eq!(ended.how, "returned");
        assert_eq!(s.len(), 1, "the idle task still runs");
    }
}
