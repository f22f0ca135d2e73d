//! The core's timers as one cancellable queue, polled by the core task itself: arming a timer of
//! a kind replaces the one armed before, cancelling removes it, so a timer the core no longer
//! wants never fires (it used to be a spawned task per `SetTimer` that `CancelTimer` could not
//! stop; the core ignored the stale firings, but they still woke the loop).

use std::collections::BTreeMap;
use std::time::Duration;

use scbe_core::consensus::{Timer, TimerKind};
use tokio_util::time::delay_queue::{DelayQueue, Key};

#[derive(Default)]
pub struct TimerQueue {
    queue: DelayQueue<Timer>,
    armed: BTreeMap<TimerKind, Key>,
}

impl TimerQueue {
    /// Arms `timer` to fire after `after`, replacing any armed timer of its kind.
    pub fn set(&mut self, timer: Timer, after: Duration) {
        self.cancel(timer.kind);
        let key = self.queue.insert(timer, after);
        self.armed.insert(timer.kind, key);
    }

    /// Disarms the timer of this kind, if one is armed.
    pub fn cancel(&mut self, kind: TimerKind) {
        if let Some(key) = self.armed.remove(&kind) {
            self.queue.remove(&key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// The next timer to fire, when it fires; `None` at once if none is armed.
    pub async fn next(&mut self) -> Option<Timer> {
        let expired = std::future::poll_fn(|cx| self.queue.poll_expired(cx)).await?;
        let timer = expired.into_inner();
        self.armed.remove(&timer.kind);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::View;

    fn timer(kind: TimerKind, id: u64) -> Timer {
        Timer {
            kind,
            view: View(0),
            backoff: 0,
            id,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn re_arming_replaces_and_cancelling_removes() {
        let mut q = TimerQueue::default();
        q.set(timer(TimerKind::Request, 1), Duration::from_millis(10));
        q.set(timer(TimerKind::Request, 2), Duration::from_millis(30));
        q.set(timer(TimerKind::Status, 3), Duration::from_millis(20));
        q.set(timer(TimerKind::ViewChange, 4), Duration::from_millis(5));
        q.cancel(TimerKind::ViewChange);
        assert_eq!(q.next().await.map(|t| t.id), Some(3));
        assert_eq!(q.next().await.map(|t| t.id), Some(2), "the re-armed one");
        assert!(q.is_empty());
        assert_eq!(q.next().await, None, "nothing armed: nothing fires");
    }
}
