//! The newest registrations a validator's status summary lists, followed from the ledger's
//! events as they happen instead of found by scanning every release after every batch.

use std::collections::BTreeSet;

use scbe_core::governance::event::RELEASE_REGISTERED as REGISTERED;
use scbe_core::governance::Ledger;

/// (registered seq, version) if `json` is a registration's event. The event's other fields are
/// not read; an event that does not parse is none (the ledger wrote it, from an `Event`).
fn registration_in(json: &[u8]) -> Option<(u64, String)> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        seq: u64,
        #[serde(borrow)]
        kind: std::borrow::Cow<'a, str>,
        subject: String,
    }
    let head: Head = serde_json::from_slice(json).ok()?;
    (head.kind == REGISTERED).then_some((head.seq, head.subject))
}

/// Where [`NewestRegistrations::follow`] learnt the registrations from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// No event since the last call.
    Nothing,
    /// The ledger's kept events.
    Journal,
    /// The turn's own events, handed to the store.
    TurnEvents,
    /// The kept events alone, once they went by unseen and still decided it.
    KeptEvents,
    /// Every release.
    Scan,
}

/// The [`RELEASES_LISTED`](scbe_wire::status_summary::RELEASES_LISTED) newest registrations
/// as (registered seq, version), and how far the ledger's events were read for them.
#[derive(Debug, Default)]
pub struct NewestRegistrations {
    newest: BTreeSet<(u64, String)>,
    /// Events read for registrations so far (a position in the ledger's event sequence).
    scanned: u64,
}

impl NewestRegistrations {
    /// The newest registrations of `ledger` (a scan of every release: once, at start-up).
    pub fn of(ledger: &Ledger) -> Self {
        Self {
            newest: scbe_wire::status_summary::newest_releases(ledger)
                .into_iter()
                .collect(),
            scanned: ledger.journal().events.total(),
        }
    }

    /// The versions, oldest registration first.
    pub fn versions(&self) -> impl Iterator<Item = &String> {
        self.newest.iter().map(|(_, v)| v)
    }

    /// Keeps the set current with the registrations the ledger's events report since the last
    /// call; everything again when told to, or when events went by unseen (a restore).
    ///
    /// `fresh` is the turn's events as the ledger handed them to the store (position, JSON):
    /// when the turn executed more events than the journal keeps, they still hold every one
    /// since the last call. Why: a batch of more than
    /// [`EVENTS_KEPT`](scbe_core::governance::ledger::EVENTS_KEPT) registrations (one event
    /// each) left the kept events all of one seq, which cannot say which of that seq's versions
    /// are newest, so every release was scanned after each such turn: 2.8% of a validator's
    /// CPU at ~35,000 releases under saturated registrations, growing with history.
    pub fn follow(&mut self, ledger: &Ledger, all: bool, fresh: &[(u64, Vec<u8>)]) -> Followed {
        let journal = &ledger.journal().events;
        if !all && self.scanned >= journal.total() {
            return Followed::Nothing; // most turns
        }
        let followed;
        if all || journal.first() > self.scanned {
            let covered = fresh.first().is_some_and(|(p, _)| *p <= self.scanned)
                && fresh.last().is_some_and(|(p, _)| p + 1 == journal.total());
            if !all && covered {
                for (position, json) in fresh {
                    if *position >= self.scanned {
                        if let Some((seq, version)) = registration_in(json) {
                            self.add(seq, version);
                        }
                    }
                }
                followed = Followed::TurnEvents;
            } else {
                // Events went by unseen: the kept ones usually decide it, else every release
                // is scanned.
                let kept = (!all)
                    .then(|| scbe_wire::status_summary::newest_in_events(journal.iter()))
                    .flatten();
                followed = if kept.is_some() {
                    Followed::KeptEvents
                } else {
                    Followed::Scan
                };
                let newest =
                    kept.unwrap_or_else(|| scbe_wire::status_summary::newest_releases(ledger));
                self.newest = newest.into_iter().collect();
            }
        } else {
            for (_, e) in journal.since(self.scanned) {
                if e.kind == REGISTERED {
                    self.add(e.seq, e.subject.clone());
                }
            }
            followed = Followed::Journal;
        }
        self.scanned = journal.total();
        followed
    }

    fn add(&mut self, seq: u64, version: String) {
        scbe_wire::status_summary::keep_newest(&mut self.newest, seq, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::governance::ledger::Signer;
    use scbe_core::governance::ledger_world::{release, World};
    use scbe_core::governance::Operation;
    use scbe_wire::status_summary::{newest_in_events, newest_releases, RELEASES_LISTED};

    /// Registers `versions` in one batch (one seq), as a saturated primary's batch does.
    fn register_in_one_batch(w: &mut World, seq: u64, versions: impl Iterator<Item = String>) {
        let key = w.requester.public();
        for (i, v) in versions.enumerate() {
            let op = Operation::RegisterRelease {
                release: release(&v),
            };
            let outcome = w.ledger.apply_operation(
                seq,
                Signer::Requester(key),
                &key,
                seq * 10_000 + i as u64,
                &op.to_bytes(),
            );
            assert!(outcome.accepted, "{v}: {:?}", outcome.reasons);
        }
    }

    fn scanned(w: &World) -> Vec<(u64, String)> {
        let mut all = newest_releases(&w.ledger);
        all.sort();
        all
    }

    fn followed(n: &NewestRegistrations) -> Vec<(u64, String)> {
        n.newest.iter().cloned().collect()
    }

    /// A batch of more registrations than the journal keeps: the kept events are all of one
    /// seq and cannot decide the newest (the scan the old path fell back to), the turn's own
    /// events do, and they agree with a scan of every release; so do smaller batches after it.
    #[test]
    fn follows_a_batch_larger_than_the_journal_from_the_turns_events() {
        let mut w = World::new();
        w.ledger.keep_fresh();
        let mut newest = NewestRegistrations::of(&w.ledger);
        let _ = w.ledger.take_new();
        // Versions that sort against their registration order, so a wrong tie-break shows.
        let big = scbe_core::governance::ledger::EVENTS_KEPT + 300;
        register_in_one_batch(&mut w, 5, (0..big).rev().map(|i| format!("b{i:05}")));
        let journal: Vec<_> = w.ledger.journal().events.iter().cloned().collect();
        assert!(
            journal.iter().all(|e| e.seq == 5),
            "the journal kept one seq"
        );
        assert_eq!(
            newest_in_events(&journal),
            None,
            "the kept events cannot decide"
        );
        let fresh = w.ledger.take_new();
        assert_eq!(
            newest.follow(&w.ledger, false, &fresh.events),
            Followed::TurnEvents
        );
        assert_eq!(followed(&newest).len(), RELEASES_LISTED);
        assert_eq!(followed(&newest), scanned(&w));
        // Smaller batches after it follow from the journal, and still agree.
        for seq in 6..9 {
            register_in_one_batch(&mut w, seq, (0..40).map(|i| format!("s{seq}-{i:03}")));
            let fresh = w.ledger.take_new();
            assert_eq!(
                newest.follow(&w.ledger, false, &fresh.events),
                Followed::Journal
            );
            assert_eq!(followed(&newest), scanned(&w));
        }
        let fresh = w.ledger.take_new();
        assert_eq!(
            newest.follow(&w.ledger, false, &fresh.events),
            Followed::Nothing
        );
    }

    /// Without the turn's events (a restore, or a ledger that does not keep them) it falls back
    /// to the kept events or a scan, and still agrees.
    #[test]
    fn without_the_turns_events_it_falls_back_to_a_scan() {
        let mut w = World::new();
        let mut newest = NewestRegistrations::of(&w.ledger);
        let big = scbe_core::governance::ledger::EVENTS_KEPT + 10;
        register_in_one_batch(&mut w, 3, (0..big).map(|i| format!("c{i:05}")));
        assert_eq!(newest.follow(&w.ledger, false, &[]), Followed::Scan);
        assert_eq!(followed(&newest), scanned(&w));
        assert_eq!(newest.follow(&w.ledger, true, &[]), Followed::Scan);
        assert_eq!(followed(&newest), scanned(&w));
    }

    #[test]
    fn only_registration_events_count() {
        assert_eq!(
            registration_in(br#"{"seq":4,"tongue":"KO","kind":"release_registered","subject":"v1","detail":""}"#),
            Some((4, "v1".to_string()))
        );
        assert_eq!(
            registration_in(
                br#"{"seq":4,"tongue":"KO","kind":"stage_changed","subject":"v1","detail":""}"#
            ),
            None
        );
        assert_eq!(registration_in(b"not json"), None);
    }
}
