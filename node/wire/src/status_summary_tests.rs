//! Tests of the `Status` summary: the requesters in force, the newest releases (bounded, newest
//! first, followed from the ledger's events), and an old report read as stale.

use super::*;
use scbe_core::governance::ledger_world::{release, World};
use scbe_core::governance::Operation;

/// The summary lists the requesters in force: the genesis's, then as proposals change them.
#[test]
fn the_summary_lists_the_requesters_in_force() {
    use scbe_core::crypto::Keypair;
    use scbe_core::governance::ledger::RequesterChange;
    let mut w = World::new();
    let listed = |w: &World| {
        StatusSummary::of(&w.ledger, &BTreeMap::new(), &BTreeMap::new(), u64::MAX).requesters
    };
    let ops = w.requester.public().to_hex();
    assert_eq!(listed(&w), [("ops".to_string(), ops.clone())].into());
    let bot = Keypair::from_label("release-bot").public();
    let change = RequesterChange::Add {
        name: "release-bot".into(),
        public_key: bot,
    };
    w.decide(Operation::ProposeRequester { change }, true);
    assert_eq!(
        listed(&w),
        [
            ("ops".to_string(), ops),
            ("release-bot".to_string(), bot.to_hex())
        ]
        .into()
    );
}

/// The summary stays bounded however many releases the ledger holds: it names the newest
/// and the ones a stage serves (here the oldest, which serves canary), and counts the rest.
#[test]
fn the_summary_lists_a_bounded_number_of_releases_newest_first() {
    let mut w = World::new();
    let rollout = w.promote_to_canary("r0000");
    w.complete_batches(rollout, "r0000");
    assert_eq!(
        w.ledger
            .state()
            .current
            .get(&Stage::Canary)
            .map(String::as_str),
        Some("r0000")
    );
    let n = RELEASES_LISTED + 40;
    for i in 1..n {
        let o = w.request(Operation::RegisterRelease {
            release: release(&format!("r{i:04}")),
        });
        assert!(o.accepted, "{:?}", o.reasons);
    }
    let s = StatusSummary::of(&w.ledger, &BTreeMap::new(), &BTreeMap::new(), u64::MAX);
    let listed = &s.releases;
    assert_eq!(s.releases_total, n);
    assert_eq!(listed.len(), RELEASES_LISTED + 1, "{listed:?}");
    assert_eq!(
        listed.get(&format!("r{:04}", n - 1)),
        Some(&Stage::Staging),
        "the newest is listed"
    );
    assert!(
        !listed.contains_key("r0001"),
        "an old one no stage serves is not"
    );
    assert_eq!(
        listed.get("r0000"),
        Some(&Stage::Canary),
        "the oldest is listed: it serves canary"
    );
}

/// The newest registrations read from the journal's kept events are the ones a scan of
/// every release finds, and too few events to decide say so.
#[test]
fn the_newest_registrations_follow_from_enough_events() {
    let mut w = World::new();
    let events = |w: &World| {
        w.ledger
            .journal()
            .events
            .iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    for i in 0..RELEASES_LISTED {
        w.request(Operation::RegisterRelease {
            release: release(&format!("r{i:04}")),
        });
    }
    // The first registration shares the run's first seq: it cannot count.
    assert_eq!(newest_in_events(&events(&w)), None, "one short");
    for i in RELEASES_LISTED..RELEASES_LISTED + 40 {
        w.request(Operation::RegisterRelease {
            release: release(&format!("r{i:04}")),
        });
    }
    let mut scanned = newest_releases(&w.ledger);
    scanned.sort();
    assert_eq!(newest_in_events(&events(&w)), Some(scanned));
    assert_eq!(newest_in_events(&[]), None);
}

/// A report older than the stale threshold reads "stale", never "healthy", whatever its
/// figures; a fresh one with the same figures is healthy.
#[test]
fn an_old_report_reads_stale() {
    let w = World::new();
    let (agent, key) = &w.agents[0];
    let public = key.public();
    let body = w
        .health_with(0, 0, "v0", 0.9, 30)
        .open(|_| Some(&public))
        .expect("signed");
    let summary = |age_ms: u64| {
        let health = BTreeMap::from([(
            agent.id.clone(),
            LatestReport {
                body: body.clone(),
                age_ms,
            },
        )]);
        let s = StatusSummary::of(&w.ledger, &health, &BTreeMap::new(), 30_000);
        let a = s.agents.iter().find(|a| a.id == agent.id).expect("listed");
        a.health.as_ref().expect("health").verdict
    };
    assert_eq!(summary(1_000), HealthVerdict::Healthy);
    assert_eq!(summary(30_000), HealthVerdict::Healthy);
    assert_eq!(summary(70_000), HealthVerdict::Stale);
}
