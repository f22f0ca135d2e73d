//! Warnings before a suspicion (`replica/suspicion.rs`): a backup one interval short of its
//! silence limit says so (`Suspect` marked early), and a backup that reaches its own limit
//! leaves on `f` such warnings without waiting a delay for the others' suspicions. A warning is
//! not a suspicion: it makes nobody join, it lapses after an interval, and a warner whose primary
//! is heard again follows the peer that left on its word, so the leaver is not stranded.

use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;
use scbe_wire::ProtoCodec;

/// Validator `from`'s warning that its silence limit for `view` is an interval away.
fn warning(c: &Cluster, from: usize, view: u64) -> Signed<Message> {
    let s = Suspect {
        view: View(view),
        early: true,
    };
    c.signed_by(from, Kind::Suspect, ProtoCodec.encode_suspect(&s))
}

/// The first backup to reach its limit leaves at once on the warnings of the two one interval
/// short, though its own suspicion never reached them (so they could not join it): across a WAN
/// that is the delay a round of suspicions cost. Their warnings cut off, it only suspects.
/// Once its view change reaches them, the warners follow and the view changes.
#[test]
fn a_backup_at_its_limit_leaves_on_the_warnings_of_those_an_interval_short() {
    for warnings_arrive in [true, false] {
        let mut c = Cluster::new(4, 128);
        c.hear_primary();
        let silence = c.config(1).silence_ticks as usize;
        c.isolate(0);
        c.cut.insert((1, 2));
        c.cut.insert((1, 3));
        if !warnings_arrive {
            c.cut.insert((2, 1));
            c.cut.insert((3, 1));
        }
        for t in 0..silence {
            c.fire_if_armed(1, TimerKind::Heartbeat);
            if t + 1 < silence {
                c.fire_if_armed(2, TimerKind::Heartbeat);
                c.fire_if_armed(3, TimerKind::Heartbeat);
            }
        }
        for i in [2, 3] {
            assert_eq!(c.replica(i).suspecting(), None, "replica {i} only warned");
            assert_eq!(c.replica(i).view(), View(0), "replica {i}");
        }
        if !warnings_arrive {
            assert_eq!(c.replica(1).view(), View(0), "without warnings it stays");
            assert_eq!(c.replica(1).suspecting(), Some(View(0)));
            continue;
        }
        assert_eq!(c.replica(1).view(), View(1), "it left on the warnings");
        assert_eq!(c.replica(1).status(), Status::ViewChanging);
        // Its view change (retransmitted at its status tick) reaches the warners: they follow.
        c.heal();
        c.isolate(0);
        c.fire(1, TimerKind::Status);
        for i in 1..4 {
            assert_eq!(c.replica(i).view(), View(1), "replica {i}");
            assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
        }
    }
}

/// Warnings alone move nobody: `f + 1` of them, where `f + 1` suspicions would make a backup
/// join, leave it in its view, not suspecting. One suspicion and `f` warnings do make it join
/// (the first of them reached its limit, and the others are an interval from theirs): it
/// leaves as soon as the first suspicion arrives, not a delay after the second.
#[test]
fn warnings_make_no_one_join_without_a_suspicion() {
    for n in [4usize, 7] {
        let f = (n - 1) / 3;
        let me = n - 1;
        let mut c = Cluster::new(n, 128);
        c.hear_primary();
        c.isolate(0);
        for from in 1..=f + 1 {
            c.input(me, Input::Message(warning(&c, from, 0)));
        }
        assert_eq!(c.replica(me).suspecting(), None, "n = {n}");
        assert_eq!(c.replica(me).view(), View(0), "n = {n}");
        assert_eq!(c.replica(me).status(), Status::Normal, "n = {n}");
        let suspicion = Suspect {
            view: View(0),
            early: false,
        };
        let firm = c.signed_by(1, Kind::Suspect, ProtoCodec.encode_suspect(&suspicion));
        c.input(me, Input::Message(firm));
        assert_eq!(c.replica(me).view(), View(1), "n = {n}: one suspects");
        assert_eq!(c.replica(me).status(), Status::ViewChanging);
    }
}

/// A warning counts for `WARNING_TICKS` interval after it arrived: by then its sender suspects
/// (and says so) or heard its primary. A backup that reaches its limit one interval after the
/// warning leaves on it; two intervals after, it only suspects.
#[test]
fn a_warning_lapses_after_an_interval() {
    assert_eq!(scbe_core::consensus::replica::WARNING_TICKS, 1);
    for (intervals_after, leaves) in [(1, true), (2, false)] {
        let mut c = Cluster::new(4, 128);
        c.hear_primary();
        let silence = c.config(3).silence_ticks as usize;
        c.isolate(0);
        for _ in 0..silence - intervals_after {
            c.fire_if_armed(3, TimerKind::Heartbeat);
        }
        c.input(3, Input::Message(warning(&c, 2, 0)));
        for _ in 0..intervals_after {
            c.fire_if_armed(3, TimerKind::Heartbeat);
        }
        let left = c.replica(3).view() == View(1);
        assert_eq!(
            left, leaves,
            "its limit {intervals_after} interval(s) after"
        );
        if !leaves {
            assert_eq!(c.replica(3).suspecting(), Some(View(0)));
        }
    }
}

/// At n = 7 (f = 2): replica 1 reaches its limit and leaves on the warnings of replicas 2 and
/// 3, then their primary is heard again before its view change reaches them, two intervals
/// later. They follow it (one left, and with the other's warning, which they count as long as
/// a suspicion, they are f), so three view changes move everyone and nobody is stranded in
/// view 1. A warner follows only with `f` others in all: with one
/// leaver and no other word, it stays.
#[test]
fn warners_follow_the_backup_that_left_on_their_warnings_after_their_primary_is_heard() {
    for other_warner in [true, false] {
        let mut c = Cluster::new(7, 128);
        c.hear_primary();
        let silence = c.config(1).silence_ticks as usize;
        let warners: Vec<usize> = if other_warner { vec![2, 3] } else { vec![2] };
        // The primary is silent to replica 1 and the warners; replica 1's messages reach no
        // one (the warners would join its suspicion, and so would the others, with the
        // warnings: one suspicion and f warnings).
        c.cut.insert((0, 1));
        for to in 2..7 {
            c.cut.insert((1, to));
        }
        for &i in &warners {
            c.cut.insert((0, i));
        }
        let hearing: Vec<usize> = (0..7).filter(|i| *i != 1 && !warners.contains(i)).collect();
        for t in 0..silence {
            c.fire_if_armed(1, TimerKind::Heartbeat);
            for &i in &hearing {
                c.fire_if_armed(i, TimerKind::Heartbeat);
            }
            if t + 1 < silence {
                for &i in &warners {
                    c.fire_if_armed(i, TimerKind::Heartbeat);
                }
            }
        }
        let expected = if other_warner { View(1) } else { View(0) };
        assert_eq!(
            c.replica(1).view(),
            expected,
            "replica 1 leaves on f warnings"
        );
        if !other_warner {
            // Make replica 1 leave anyway (as if on a Byzantine peer's word): one leaver.
            c.input(1, Input::ReplacePrimary { view: View(0) });
            assert_eq!(c.replica(1).view(), View(1));
        }
        // The warners hear their primary again, then replica 1's view change.
        c.cut.remove(&(0, 2));
        c.cut.remove(&(0, 3));
        c.fire_if_armed(0, TimerKind::Heartbeat);
        // Two intervals pass: the others no longer count the warnings (so they cannot join on
        // one view change and them), while the warners' own word still may have counted.
        c.heartbeat_tick();
        c.heartbeat_tick();
        for &i in &warners {
            assert_eq!(
                c.replica(i).view(),
                View(0),
                "replica {i} heard its primary"
            );
        }
        for to in 2..7 {
            c.cut.remove(&(1, to));
        }
        c.fire(1, TimerKind::Status);
        if other_warner {
            for i in 1..7 {
                assert_eq!(c.replica(i).view(), View(1), "replica {i}");
                assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
            }
        } else {
            assert_eq!(c.replica(2).view(), View(0), "one leaver is not f others");
        }
    }
}
