//! Suspicion before a view change (`replica/suspicion.rs`): a replica whose timer fires alone
//! stays in its view and votes there again once it hears from the others; a suspicion lapses once
//! its sender stops re-sending it; a replica already alone in a higher view still counts for the
//! others' view change.

use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;
use scbe_wire::ProtoCodec;

/// Validator `from`'s suspicion of `view`, as the wire delivers it.
fn suspect(c: &Cluster, from: usize, view: u64) -> Signed<Message> {
    let s = Suspect {
        view: View(view),
        early: false,
    };
    c.signed_by(from, Kind::Suspect, ProtoCodec.encode_suspect(&s))
}

fn cut_inbound(c: &mut Cluster, to: usize) {
    for j in 0..c.replicas.len() {
        c.cut.insert((j, to));
    }
}

/// The crash campaign's replica alone in a higher view: restarted or cut off, its request timer
/// fired while the others kept deciding. Before suspicion it left for view 1 alone and could never
/// vote in view 0 again, so one more crash halted view 0.
#[test]
fn a_replica_whose_timer_fires_alone_stays_in_its_view_and_votes_there_again() {
    let mut c = Cluster::new(4, 128);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    assert_eq!(c.executed_requests(3), 1);
    // Replica 3 hears nothing for a while, with a request waiting (it reaches the others, who
    // decide it without replica 3).
    cut_inbound(&mut c, 3);
    c.input(3, Input::ClientRequest(c.request(2)));
    c.run();
    c.fire(3, TimerKind::Request);
    assert_eq!(c.replica(3).suspicion_cause(), Some("stalled"));
    for _ in 0..12 {
        c.heartbeat_tick();
    }
    assert_eq!(c.replica(3).suspecting(), Some(View(0)));
    for i in 0..4 {
        assert_eq!(c.replica(i).view(), View(0), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
    // Back in touch; then replica 2 crashes. View 0 needs replica 3's votes to decide.
    c.heal();
    c.isolate(2);
    c.input(0, Input::ClientRequest(c.request(3)));
    c.run();
    assert_eq!(c.executed_requests(0), 3, "decided with replica 3's votes");
    // Replica 3 fetches the batch it missed at its next status tick.
    c.fire(3, TimerKind::Status);
    for i in [0, 1, 3] {
        assert_eq!(c.replica(i).view(), View(0), "replica {i}");
        assert_eq!(c.executed_requests(i), 3, "replica {i}");
    }
    assert_eq!(
        c.replica(3).suspecting(),
        None,
        "progress ends the suspicion"
    );
}

/// A suspicion counts for `SUSPICION_TICKS` intervals after it arrived: one replica's passing
/// doubt must not give another replica's lone timer, much later, the company it needs.
#[test]
fn a_suspicion_lapses_once_its_sender_stops_sending_it() {
    let mut c = Cluster::new(4, 128);
    c.hear_primary();
    let silence = c.config(1).silence_ticks as usize;
    // What an operator reads (the validator's log): the silence tolerated, then why it suspects.
    assert_eq!(c.replica(3).silence_tolerated() as usize, silence);
    assert_eq!(c.replica(3).suspicion_cause(), None);
    // Replica 3 stops hearing the primary for the silence allowed: it suspects, alone.
    c.cut.insert((0, 3));
    for _ in 0..silence {
        c.heartbeat_tick();
    }
    assert_eq!(c.replica(3).suspecting(), Some(View(0)));
    assert_eq!(c.replica(3).suspicion_cause(), Some("silent"));
    // The primary is heard again: the suspicion ends and is no longer re-sent.
    c.heal();
    c.heartbeat_tick();
    assert_eq!(c.replica(3).suspecting(), None);
    assert_eq!(c.replica(3).suspicion_cause(), None);
    for _ in 0..6 {
        c.heartbeat_tick();
    }
    // Now replica 2 stops hearing the primary: alone too, so it stays.
    c.cut.insert((0, 2));
    for _ in 0..silence {
        c.heartbeat_tick();
    }
    assert_eq!(c.replica(2).suspecting(), Some(View(0)));
    for i in 0..4 {
        assert_eq!(c.replica(i).view(), View(0), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
}

/// Only the primary's own messages of the view count as hearing it: a backup the primary no
/// longer reaches suspects it even while the other backups' prepares and commits of that view
/// keep arriving.
#[test]
fn a_backup_cut_off_from_the_primary_suspects_it_whatever_the_others_send() {
    let mut c = Cluster::new(4, 128);
    c.hear_primary();
    let silence = c.config(1).silence_ticks as u64;
    c.cut.insert((0, 3));
    for n in 1..=silence {
        c.input(0, Input::ClientRequest(c.request(n)));
        c.run();
        c.heartbeat_tick();
    }
    assert_eq!(
        c.executed_requests(1),
        silence as usize,
        "the others decide"
    );
    assert_eq!(c.replica(3).suspecting(), Some(View(0)));
    assert_eq!(c.replica(3).suspicion_cause(), Some("silent"));
}

/// A replica alone in a higher view (its view change is on record, as after a verdict only it
/// reached) cannot vote in the old view, but its view change is a suspicion of that view: when
/// one more replica fails, the others leave with it and the cluster decides again.
#[test]
fn a_replica_alone_in_a_higher_view_counts_for_the_next_view_change() {
    let mut c = Cluster::new(4, 128);
    c.input(3, Input::ReplacePrimary { view: View(0) });
    c.run();
    assert_eq!(c.replica(3).view(), View(1));
    assert_eq!(c.replica(3).status(), Status::ViewChanging);
    assert_eq!(c.replica(1).view(), View(0));
    c.isolate(2);
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    assert_eq!(c.executed_requests(1), 0, "view 0 lacks a quorum of voters");
    // Replica 1 alone would only suspect; with replica 3's view change it leaves.
    c.fire(1, TimerKind::Request);
    for i in [0, 1, 3] {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
        assert_eq!(c.executed_requests(i), 1, "replica {i}");
    }
}

/// The first backup to reach the silence limit brings along those one interval short of it:
/// the view changes without waiting for a second clock to reach the limit. Two intervals short,
/// a backup does not join, and one suspicion alone does not move the view.
#[test]
fn a_backup_one_interval_short_of_the_silence_limit_joins_a_suspicion() {
    for (short_by, joins) in [(1, true), (2, false)] {
        let mut c = Cluster::new(4, 128);
        c.hear_primary();
        let silence = c.config(1).silence_ticks as usize;
        c.isolate(0);
        // Replica 1 counts every interval; replicas 2 and 3 miss the last `short_by`.
        for t in 0..silence {
            c.fire_if_armed(0, TimerKind::Heartbeat);
            c.fire_if_armed(1, TimerKind::Heartbeat);
            if t + short_by < silence {
                c.fire_if_armed(2, TimerKind::Heartbeat);
                c.fire_if_armed(3, TimerKind::Heartbeat);
            }
        }
        for i in 1..4 {
            let left = c.replica(i).view() == View(1);
            assert_eq!(left, joins, "replica {i}, {short_by} interval(s) short");
        }
        if joins {
            // The new primary (replica 1) completes the view change with the two joiners.
            for i in 1..4 {
                assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
            }
        } else {
            assert_eq!(
                c.replica(1).suspecting(),
                Some(View(0)),
                "alone, it only suspects"
            );
        }
    }
}

/// Found by `scbe-sim bench` (a 300 ms disk stall at light load): replica 3 suspected its silent
/// primary, replica 2 (one interval short) joined and left for view 1, then replica 3 heard the
/// primary again and dropped its suspicion before replica 2's view change reached it. Replica 2
/// sat alone in view 1 for six minutes. A replica whose `Suspect` may still have counted for the
/// peers that left follows them; once its suspicion is older than that, it does not.
#[test]
fn a_replica_whose_suspicion_ended_follows_the_peers_that_left_on_it() {
    for (aged_by, follows) in [
        (0, true),
        // The last interval in which its `Suspect` may still have counted.
        (
            scbe_core::consensus::replica::SUSPICION_TICKS as usize + 1,
            true,
        ),
        (
            scbe_core::consensus::replica::SUSPICION_TICKS as usize + 2,
            false,
        ),
    ] {
        let mut c = Cluster::new(4, 128);
        c.hear_primary();
        let silence = c.config(1).silence_ticks as usize;
        // The primary is silent to 2 and 3; 2's messages do not reach 3 for now, nor 3's
        // replica 1 (which would otherwise hear f + 1 others suspect, and join them).
        for cut in [(0, 2), (0, 3), (2, 3), (3, 1)] {
            c.cut.insert(cut);
        }
        for t in 0..silence {
            for i in [0, 1, 3] {
                c.fire_if_armed(i, TimerKind::Heartbeat);
            }
            if t + 1 < silence {
                c.fire_if_armed(2, TimerKind::Heartbeat);
            }
        }
        assert_eq!(c.replica(2).view(), View(1), "replica 2 joined and left");
        assert_eq!(c.replica(3).suspecting(), Some(View(0)));
        // Replica 3 hears the primary again: its suspicion ends.
        c.cut.remove(&(0, 3));
        c.fire_if_armed(0, TimerKind::Heartbeat);
        assert_eq!(c.replica(3).suspecting(), None);
        for _ in 0..aged_by {
            c.heartbeat_tick();
        }
        // Replica 2's view change (retransmitted at its status tick) reaches replica 3.
        c.cut.remove(&(2, 3));
        c.cut.remove(&(3, 1));
        c.fire(2, TimerKind::Status);
        if follows {
            for i in 0..4 {
                assert_eq!(c.replica(i).view(), View(1), "replica {i}");
                assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
            }
        } else {
            for i in [0, 1, 3] {
                assert_eq!(c.replica(i).view(), View(0), "replica {i}");
            }
            assert_eq!(c.replica(2).view(), View(1));
        }
    }
}

/// A suspicion of a view the replica has left is dropped, and counted. cargo-mutants at
/// 7814b00 left its `<` as `>` unseen.
#[test]
fn a_suspicion_of_a_view_already_left_is_dropped() {
    let reason = "suspicion of a view already left";
    let mut c = Cluster::new(4, 128);
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    assert_eq!(c.replica(3).view(), View(1));
    let before = c.replica(3).dropped().get(reason).copied().unwrap_or(0);
    c.input(3, Input::Message(suspect(&c, 2, 0)));
    assert_eq!(c.replica(3).dropped().get(reason), Some(&(before + 1)));
    c.input(3, Input::Message(suspect(&c, 2, 1)));
    assert_eq!(
        c.replica(3).dropped().get(reason),
        Some(&(before + 1)),
        "one of its view counts"
    );
}

/// Progress ends this replica's own suspicion, but a peer's fresh suspicion of the current
/// view still counts until it lapses: with it, this replica's own timer firing next is enough
/// to leave. cargo-mutants at 7814b00 left the forgetting rule (`>=` as `<`) unseen.
#[test]
fn progress_keeps_the_peers_suspicions_of_the_current_view() {
    let mut c = Cluster::new(4, 128);
    c.hear_primary();
    c.input(3, Input::Message(suspect(&c, 2, 0)));
    assert_eq!(
        c.replica(3).view(),
        View(0),
        "one peer's suspicion alone moves nothing"
    );
    // Something executes at replica 3.
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    assert_eq!(c.executed_requests(3), 1);
    // Replica 2's view: no longer hearing the others (its suspicion stays as sent).
    for j in 0..4 {
        c.cut.insert((j, 2));
        c.cut.insert((2, j));
    }
    // Replica 3's own timer: a request waits and nothing executes.
    c.isolate(0);
    c.input(3, Input::ClientRequest(c.request(2)));
    c.fire(3, TimerKind::Request);
    assert_eq!(
        c.replica(3).status(),
        Status::ViewChanging,
        "its suspicion and the peer's are f + 1"
    );
}

/// A backup that hears `f + 1` others suspect its view joins them whatever its own silence
/// count (they include an honest replica, and their view changes would bring it anyway, a
/// delay later); `f` others are not enough without its own clock near the limit. Found with
/// `scbe-sim bench --delay 50ms`: a backup tolerating more silence than the others joined only
/// on their view changes, and the new primary waited one more delay for its quorum.
#[test]
fn a_backup_joins_once_f_plus_one_others_suspect_whatever_its_own_clock() {
    for n in [4usize, 7] {
        let mut c = Cluster::new(n, 128);
        c.hear_primary();
        let f = (n - 1) / 3;
        let me = n - 1;
        c.isolate(0);
        for from in 1..=f {
            c.input(me, Input::Message(suspect(&c, from, 0)));
        }
        assert_eq!(c.replica(me).suspecting(), None, "n = {n}: f others");
        assert_eq!(c.replica(me).view(), View(0));
        c.input(me, Input::Message(suspect(&c, f + 1, 0)));
        assert_eq!(c.replica(me).view(), View(1), "n = {n}: f + 1 others");
        assert_eq!(c.replica(me).status(), Status::ViewChanging);
    }
}

/// Joining the others' suspicion one interval short of one's own silence limit needs `f`
/// others suspecting, a backup, and silence detection on: a replica nearly silent with no one
/// else suspecting does not join, nor does one with silence detection off, nor the primary.
/// cargo-mutants at 7814b00 left `suspected_by() < f` as `>`, `silence_ticks > 0` as `>=` and
/// the primary's exemption (`||` as `&&`) unseen.
#[test]
fn joining_a_suspicion_needs_others_a_backup_and_silence_detection() {
    // Nearly silent, and the only other message is a suspicion of a later view.
    let mut c = Cluster::new(4, 128);
    c.hear_primary();
    let silence = c.config(3).silence_ticks as usize;
    c.isolate(0);
    for _ in 0..silence - 1 {
        c.fire_if_armed(3, TimerKind::Heartbeat);
    }
    c.input(3, Input::Message(suspect(&c, 2, 1)));
    assert_eq!(c.replica(3).suspecting(), None, "no one suspects its view");
    c.input(3, Input::Message(suspect(&c, 2, 0)));
    assert_eq!(
        c.replica(3).view(),
        View(1),
        "one does: it joins, and with that suspicion they are f + 1 (the positive case)"
    );

    // Silence detection off: never nearly silent.
    let mut c = Cluster::new_with(4, 128, |cfg| cfg.silence_ticks = 0);
    c.isolate(0);
    c.input(3, Input::Message(suspect(&c, 2, 0)));
    assert_eq!(c.replica(3).suspecting(), None, "silence detection off");
    assert_eq!(c.replica(3).view(), View(0));

    // The primary of view 1 (replica 1), which heard view 0's primary once and tolerates one
    // interval of silence, is never nearly silent towards itself.
    let mut c = Cluster::new_with(4, 128, |cfg| cfg.silence_ticks = 1);
    c.hear_primary();
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    assert!(c.replica(1).is_primary());
    // Progress in view 1: the silence tolerated is back to base (no failed view doubling it).
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    assert_eq!(c.executed_requests(1), 1);
    c.input(1, Input::Message(suspect(&c, 2, 1)));
    assert_eq!(c.replica(1).suspecting(), None, "the primary");
    assert_eq!(c.replica(1).view(), View(1));
}

/// The others move to view 1 while `stranded` hears none of it and stays in view 0, in normal
/// operation; then they are back in touch and `crashed` is cut off. A request is submitted at
/// replica 1 (view 1's primary), and waits: view 1 has two voters.
fn stranded_in_view_0(stranded: usize, crashed: usize) -> Cluster {
    let mut c = Cluster::new(4, 128);
    c.hear_primary();
    cut_inbound(&mut c, stranded);
    let others: Vec<usize> = (0..4).filter(|i| *i != stranded).collect();
    for &i in &others {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    for &i in &others {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
    assert_eq!(c.replica(stranded).view(), View(0));
    assert_eq!(c.replica(stranded).status(), Status::Normal);
    c.heal();
    c.isolate(crashed);
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    assert_eq!(c.executed_requests(1), 0, "view 1 has two voters");
    c
}

/// Found by the simulator (seed 1329 at n = 4, pinned in `sim/tests/regressions.rs`): replica 3
/// missed the new-view of view 1 and sat in view 0, in normal operation, suspecting it alone;
/// the others dropped its suspicion (a view they had left). With one more replica down, view 1
/// had two voters and view 0 one: no quorum, and no view change either, for good. A replica that
/// hears a suspicion of a view it left answers with the new-view that started its own, so the
/// stranded replica joins and votes again; at most once per `SUSPICION_TICKS` intervals per peer.
#[test]
fn a_replica_stranded_in_a_view_the_others_left_is_brought_along_by_its_suspicion() {
    // Replica 3 stays in view 0; replica 2 crashes. A request waits: view 1 lacks a voter.
    let mut c = stranded_in_view_0(3, 2);
    c.input(3, Input::ClientRequest(c.request(1)));
    c.run();
    let offered = |c: &Cluster| c.sends(1, 3, Kind::NewView);
    let before = offered(&c);
    // Replica 3's request timer fires: it suspects view 0, alone. The new-view comes back.
    c.fire(3, TimerKind::Request);
    assert_eq!(offered(&c), before + 1, "replica 1 offers its new-view");
    for i in [0, 1, 3] {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
        assert_eq!(c.executed_requests(i), 1, "replica {i} decided in view 1");
    }
    // A peer that keeps suspecting a left view gets the new-view once per SUSPICION_TICKS.
    let sent = offered(&c);
    for _ in 0..3 {
        c.input(1, Input::Message(suspect(&c, 3, 0)));
    }
    assert_eq!(
        offered(&c),
        sent,
        "offered again only after SUSPICION_TICKS intervals"
    );
    for _ in 0..scbe_core::consensus::replica::SUSPICION_TICKS {
        c.heartbeat_tick();
    }
    c.input(1, Input::Message(suspect(&c, 3, 0)));
    assert_eq!(offered(&c), sent + 1);
}

/// Found by the simulator (seed 1034 at n = 4 with a validator change, pinned in
/// `sim/tests/regressions.rs`): the stranded replica was the primary of the view the others
/// left. A primary suspects no one, so it never said anything the others answered; it only
/// heartbeat in its old view. A heartbeat of a view the receiver left is answered with the
/// new-view too, and the old primary joins.
#[test]
fn a_primary_stranded_in_a_view_the_others_left_is_brought_along_by_its_heartbeat() {
    // Replica 0, view 0's primary, stays in view 0; replica 3 crashes.
    let mut c = stranded_in_view_0(0, 3);
    assert!(c.replica(0).is_primary());
    // Replica 0 heartbeats in view 0: the others answer with view 1's new-view.
    c.fire(0, TimerKind::Heartbeat);
    for i in 0..3 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
    c.input(1, Input::ClientRequest(c.request(2)));
    c.run();
    for i in 0..3 {
        assert_eq!(c.executed_requests(i), 2, "replica {i} decided in view 1");
    }
}
