//! The ledger's newest events, shared with readers. The core appends what its journal gained
//! after each turn; readers take chunks from it and fall back to the store for older ones.
//! It mirrors the journal's window (not only the store) because a replica restored from a
//! peer's snapshot holds the window's events in memory only.

use std::collections::VecDeque;
use std::sync::RwLock;

use scbe_core::governance::event::Event;
use scbe_core::governance::ledger::journal::Window;
use tokio::sync::watch;

/// Recent events and the count of every event the ledger ever produced.
pub struct EventFeed {
    kept: RwLock<Kept>,
    capacity: usize,
    /// Events ever produced, published after every turn that added some.
    total: watch::Sender<u64>,
}

#[derive(Default)]
struct Kept {
    /// Position of `events[0]`.
    first: u64,
    events: VecDeque<Event>,
}

impl Kept {
    fn next(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

impl EventFeed {
    /// A feed keeping the newest `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: RwLock::new(Kept::default()),
            capacity: capacity.max(1),
            total: watch::channel(0).0,
        }
    }

    /// Appends what `journal` holds past the feed. A journal whose kept events start past the
    /// feed's end (a replica restored from a peer's snapshot) replaces it.
    pub fn catch_up<const CAP: usize>(&self, journal: &Window<Event, CAP>) {
        let total = journal.total();
        if *self.total.borrow() >= total {
            return; // nothing new: no write lock on most turns
        }
        {
            let Ok(mut kept) = self.kept.write() else {
                return;
            };
            if kept.next() >= total {
                return;
            }
            if journal.first() > kept.next() {
                *kept = Kept {
                    first: journal.first(),
                    events: VecDeque::new(),
                };
            }
            let from = kept.next();
            kept.events
                .extend(journal.since(from).map(|(_, e)| e.clone()));
            while kept.events.len() > self.capacity {
                kept.events.pop_front();
                kept.first += 1;
            }
        }
        self.total.send_replace(total);
    }

    /// Events ever produced.
    pub fn total(&self) -> u64 {
        *self.total.borrow()
    }

    /// Changes whenever events are added.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.total.subscribe()
    }

    /// At most `limit` events from position `from` on, or `None` when `from` is older than the
    /// feed holds (read those from the store). Empty when `from` is not produced yet.
    pub fn read(&self, from: u64, limit: usize) -> Option<Vec<(u64, Event)>> {
        let kept = self.kept.read().ok()?;
        if from < kept.first {
            return None;
        }
        let skip = (from - kept.first) as usize;
        Some(
            (kept.first..)
                .zip(kept.events.iter())
                .skip(skip)
                .take(limit)
                .map(|(i, e)| (i, e.clone()))
                .collect(),
        )
    }

    /// Position of the oldest event the feed holds.
    pub fn first(&self) -> u64 {
        self.kept.read().map(|k| k.first).unwrap_or(0)
    }

    /// The newest `n` events, oldest first.
    pub fn newest(&self, n: usize) -> Vec<(u64, Event)> {
        let Ok(kept) = self.kept.read() else {
            return Vec::new();
        };
        let skip = kept.events.len().saturating_sub(n);
        (kept.first..)
            .zip(kept.events.iter())
            .skip(skip)
            .map(|(i, e)| (i, e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::governance::stage::Tongue;

    fn event(i: u64) -> Event {
        Event {
            seq: i,
            tongue: Tongue::KO,
            kind: "test".into(),
            subject: format!("s{i}"),
            detail: String::new(),
        }
    }

    fn journal(n: u64) -> Window<Event, 8> {
        let mut w = Window::default();
        for i in 0..n {
            w.push(event(i));
        }
        w
    }

    #[test]
    fn follows_the_journal_and_keeps_its_newest_events() {
        let feed = EventFeed::new(4);
        let j = journal(3);
        feed.catch_up(&j);
        assert_eq!(feed.total(), 3);
        let got = feed.read(0, 10).expect("held");
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
        let j = journal(7);
        feed.catch_up(&j);
        assert_eq!(feed.total(), 7);
        assert_eq!(feed.first(), 3, "capacity 4 keeps 3..=6");
        assert!(feed.read(2, 10).is_none(), "older than held: the store's");
        let got = feed.read(5, 10).expect("held");
        assert_eq!(
            got.iter().map(|(i, e)| (*i, e.seq)).collect::<Vec<_>>(),
            [(5, 5), (6, 6)]
        );
        assert_eq!(feed.read(7, 10), Some(Vec::new()), "not produced yet");
        assert_eq!(feed.read(3, 2).expect("held").len(), 2, "limit");
        assert_eq!(
            feed.newest(2).iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [5, 6]
        );
    }

    #[test]
    fn a_journal_restored_past_the_feed_replaces_it() {
        let feed = EventFeed::new(100);
        feed.catch_up(&journal(2));
        // A snapshot's journal: 20 events produced, the window (8) holds 12..20.
        let restored = journal(20);
        assert_eq!(restored.first(), 12);
        feed.catch_up(&restored);
        assert_eq!(feed.first(), 12);
        assert_eq!(feed.total(), 20);
        let got = feed.read(12, 100).expect("held");
        assert_eq!(got.len(), 8);
        assert!(got.iter().all(|(i, e)| *i == e.seq));
    }
}
