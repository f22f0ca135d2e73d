//! Failover on silence: a crashed primary is replaced after `silence_ticks` heartbeat intervals
//! even when no request waits, a live primary's heartbeats keep an idle cluster in its view, and
//! the silence allowed doubles while views keep failing.

use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;

#[test]
fn an_idle_cluster_replaces_a_crashed_primary_after_the_silence_allowed() {
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    c.isolate(0);
    // Nothing is pending anywhere: only silence can tell the primary is gone.
    for _ in 0..3 {
        c.heartbeat_tick();
        for i in 1..4 {
            assert_eq!(c.replica(i).view(), View(0), "replica {i} left too early");
        }
    }
    c.heartbeat_tick();
    for i in 1..4 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
    // The new primary serves at once.
    c.input(2, Input::ClientRequest(c.request(2)));
    c.run();
    for i in 1..4 {
        assert_eq!(c.executed_requests(i), 2, "replica {i}");
    }
}

#[test]
fn heartbeats_keep_an_idle_cluster_in_its_view() {
    let mut c = Cluster::new(4, 128);
    for _ in 0..40 {
        c.heartbeat_tick();
    }
    for i in 0..4 {
        assert_eq!(c.replica(i).view(), View(0), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
}

#[test]
fn a_primary_that_only_stops_heartbeating_is_kept_while_its_batches_arrive() {
    let mut c = Cluster::new(4, 128);
    c.drop_kinds.insert(Kind::Heartbeat);
    // Its pre-prepares count as signs of life: a busy primary whose heartbeats are late stays.
    for nonce in 1..=10 {
        c.input(0, Input::ClientRequest(c.request(nonce)));
        c.run();
        c.heartbeat_tick();
    }
    for i in 0..4 {
        assert_eq!(c.replica(i).view(), View(0), "replica {i}");
    }
    // Idle and silent: replaced.
    for _ in 0..4 {
        c.heartbeat_tick();
    }
    for i in 1..4 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
    }
}

/// Heartbeat intervals until every live replica (`live`) is in `view`, at most `limit`.
fn ticks_until_view(c: &mut Cluster, live: std::ops::Range<usize>, view: View, limit: u32) -> u32 {
    for t in 1..=limit {
        c.heartbeat_tick();
        if live.clone().all(|i| c.replica(i).view() >= view) {
            return t;
        }
    }
    panic!("not in {view:?} after {limit} intervals");
}

#[test]
fn the_silence_allowed_doubles_while_views_fail_and_returns_to_base_after_progress() {
    // n = 7 tolerates two crashed primaries in a row.
    let mut c = Cluster::new(7, 128);
    // Heard once: a replica that never heard its primary tolerates the most silence (below).
    c.hear_primary();
    c.isolate(0);
    assert_eq!(ticks_until_view(&mut c, 1..7, View(1), 20), 4);
    // One interval in which view 1's primary is heard: the backups tick right after its heartbeat,
    // and that interval counts as the first of the silence once it is gone.
    c.heartbeat_tick();
    // View 1 has executed nothing when its primary crashes too: twice the silence.
    c.isolate(1);
    assert_eq!(ticks_until_view(&mut c, 2..7, View(2), 40), 8 - 1);
    // View 2 makes progress: back to base for its successor.
    c.input(3, Input::ClientRequest(c.request(1)));
    c.run();
    assert_eq!(c.executed_requests(3), 1);
    c.heartbeat_tick();
    c.isolate(2);
    assert_eq!(ticks_until_view(&mut c, 3..7, View(3), 40), 4 - 1);
}

/// A heartbeat from validator `from` for `view`, signed and opened as the wire would.
fn heartbeat(c: &Cluster, from: usize, view: u64, last_executed: u64) -> Signed<Message> {
    let hb = Heartbeat {
        view: View(view),
        last_executed: Seq(last_executed),
    };
    c.signed_by(
        from,
        Kind::Heartbeat,
        scbe_wire::ProtoCodec.encode_heartbeat(&hb),
    )
}

/// Only the primary of the replica's own view is heard: a heartbeat from a backup, or the
/// primary's for another view, is dropped and counted. cargo-mutants (consensus shard 5) left
/// `on_heartbeat` doing nothing, and its guard's `||` as `&&` and either `!=` as `==`, unseen.
#[test]
fn only_the_primary_of_the_replicas_view_is_heard() {
    let reason = "heartbeat from a replica that does not lead this view";
    let mut c = Cluster::new(4, 128);
    c.input(3, Input::Message(heartbeat(&c, 1, 0, 0)));
    assert_eq!(c.replica(3).dropped().get(reason), Some(&1), "a backup's");
    c.input(3, Input::Message(heartbeat(&c, 0, 1, 0)));
    assert_eq!(
        c.replica(3).dropped().get(reason),
        Some(&2),
        "another view's"
    );
    c.input(3, Input::Message(heartbeat(&c, 0, 0, 0)));
    assert_eq!(
        c.replica(3).dropped().get(reason),
        Some(&2),
        "the primary's is heard"
    );
}

/// A backup that missed the tail of the log (it knows of nothing beyond what it executed)
/// asks for state as soon as the primary's heartbeat says it executed more, and catches up;
/// a heartbeat at its own height asks nothing. cargo-mutants (consensus shard 5) left the
/// comparison (`>` as `>=`, `==` or `<`), the `&&` as `||` and the negation unseen.
#[test]
fn a_backup_that_missed_the_tail_asks_for_it_on_the_primarys_heartbeat() {
    let mut c = Cluster::new(4, 128);
    c.isolate(3);
    c.decide_each(0, 1..=3);
    c.heal();
    assert_eq!(c.replica(3).last_executed(), Seq(0));
    let before = c.broadcasts(3, Kind::StateRequest);
    c.input(3, Input::Message(heartbeat(&c, 0, 0, 3)));
    assert_eq!(c.broadcasts(3, Kind::StateRequest), before + 1);
    c.run();
    assert_eq!(c.replica(3).last_executed(), Seq(3), "caught up");
    c.input(3, Input::Message(heartbeat(&c, 0, 0, 3)));
    assert_eq!(
        c.broadcasts(3, Kind::StateRequest),
        before + 1,
        "level: nothing to ask"
    );
}

/// The primary's heartbeats reach every backup only every `every` intervals (bunched by a
/// jittery link), `rounds` times.
fn heard_every(c: &mut Cluster, every: u32, rounds: u32) {
    for _ in 0..rounds {
        for _ in 0..every {
            c.heartbeat_tick();
        }
        for i in 1..4 {
            c.input(i, Input::Message(heartbeat(c, 0, 0, 0)));
        }
        c.run();
    }
}

/// A backup tolerates twice the longest silence its primary recently kept before being heard
/// again (never less than configured, never more than four times it), so a primary behind a
/// jittery link whose heartbeats arrive in bunches is not deposed for nothing, and a silent
/// one is still replaced. Silences of 3 intervals let 6 pass; then 5 let 10; a primary whose
/// silences keep growing buys at most 16.
#[test]
fn a_backup_tolerates_twice_the_longest_recent_silence_of_its_primary() {
    let mut c = Cluster::new(4, 128);
    c.drop_kinds.insert(Kind::Heartbeat);
    heard_every(&mut c, 3, 5);
    heard_every(&mut c, 5, 5);
    for i in 0..4 {
        assert_eq!(
            c.replica(i).view(),
            View(0),
            "replica {i} deposed a jittery primary"
        );
    }
    assert_eq!(ticks_until_view(&mut c, 1..4, View(1), 40), 10);

    // Without the silences learned first, a silence of 5 is past the configured 4.
    let mut c = Cluster::new(4, 128);
    c.drop_kinds.insert(Kind::Heartbeat);
    heard_every(&mut c, 1, 5);
    assert_eq!(ticks_until_view(&mut c, 1..4, View(1), 40), 4);

    // Silences that keep growing buy at most four times the configured silence.
    let mut c = Cluster::new(4, 128);
    c.drop_kinds.insert(Kind::Heartbeat);
    for every in [3, 5, 9, 15] {
        heard_every(&mut c, every, 2);
    }
    assert_eq!(c.replica(1).view(), View(0));
    assert_eq!(ticks_until_view(&mut c, 1..4, View(1), 40), 16);
}

/// A replica that has not heard a primary since it started (its links still being set up, and
/// their handshakes take several round trips across a WAN) tolerates four times the configured
/// silence before suspecting; once heard, the configured silence.
#[test]
fn a_replica_that_never_heard_its_primary_tolerates_four_times_the_silence() {
    let mut c = Cluster::new(4, 128);
    c.isolate(0);
    assert_eq!(ticks_until_view(&mut c, 1..4, View(1), 40), 16);
}
