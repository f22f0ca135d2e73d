//! View changes between replicas that are not in step: a replica that left a view late is
//! brought into the view its peers installed, and each sender's latest view change is the one
//! kept. The view-change scenarios in `paper.rs` have every replica change views together;
//! cargo-mutants found these two rules unseen there.

use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;
use scbe_wire::ProtoCodec;

/// A view change for `view` signed by validator `from`, from the genesis checkpoint.
fn view_change(c: &Cluster, from: usize, view: u64) -> Signed<Message> {
    let vc = ViewChange {
        new_view: View(view),
        stable: c.replica(from).stable_checkpoint().clone(),
        prepared: Vec::new(),
    };
    c.signed_by(from, Kind::ViewChange, ProtoCodec.encode_view_change(&vc))
}

/// Replicas 0, 1 and 2 move to view 1 while replica 3, cut off, stays in view 0.
fn view_one_while_replica_three_is_cut_off() -> Cluster {
    let mut c = Cluster::new(4, 128);
    c.isolate(3);
    for i in 0..3 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    for i in 0..3 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.replica(i).status(), Status::Normal, "replica {i}");
    }
    assert_eq!(c.replica(3).view(), View(0));
    c
}

/// Replica 3 was cut off while the others moved to view 1; when it gives up on view 0 itself,
/// its view change reaches replicas already in view 1, which answer with the new-view that
/// started it, and it joins them.
#[test]
fn a_replica_that_leaves_a_view_late_is_sent_the_new_view_its_peers_installed() {
    let mut c = view_one_while_replica_three_is_cut_off();
    c.heal();
    c.input(3, Input::ReplacePrimary { view: View(0) });
    c.run();
    assert_eq!(c.replica(3).view(), View(1));
    assert_eq!(
        c.replica(3).status(),
        Status::Normal,
        "joined by the new-view"
    );

    // It then follows the new primary like the others.
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    for i in 0..4 {
        assert_eq!(c.executed_seqs(i), vec![1], "replica {i}");
    }
}

/// The new-view sent back to a peer whose view change is behind is sent at most once per
/// `SUSPICION_TICKS` heartbeat intervals per peer (a peer that re-sent a small view change
/// could otherwise make its receiver send a whole new-view, a quorum's view changes, for
/// each); a new-view installed since is offered at once.
#[test]
fn a_view_change_that_is_behind_is_answered_with_the_new_view_once_per_interval() {
    let mut c = view_one_while_replica_three_is_cut_off();
    let offered = |c: &Cluster| c.sends(1, 3, Kind::NewView);
    for _ in 0..3 {
        c.input(1, Input::Message(view_change(&c, 3, 1)));
    }
    assert_eq!(offered(&c), 1, "once, not per view change");
    for _ in 0..scbe_core::consensus::replica::SUSPICION_TICKS {
        c.heartbeat_tick();
    }
    c.input(1, Input::Message(view_change(&c, 3, 1)));
    assert_eq!(offered(&c), 2, "again after SUSPICION_TICKS intervals");
    // The others move on to view 2 (no interval passes): replica 1 offers view 2's new-view
    // at once.
    for i in 0..3 {
        c.input(i, Input::ReplacePrimary { view: View(1) });
    }
    c.run();
    assert_eq!(c.replica(1).view(), View(2));
    c.input(1, Input::Message(view_change(&c, 3, 1)));
    assert_eq!(offered(&c), 3, "a new new-view is not held back");
}

/// A sender's view change is kept until it sends one for a higher view: the same one again or
/// an older one is dropped, a newer one replaces it.
#[test]
fn only_a_senders_newer_view_change_replaces_the_one_kept() {
    let dropped = "duplicate or older view change";
    let mut c = Cluster::new(7, 128);
    let count = |c: &Cluster| c.replica(0).dropped().get(dropped).copied().unwrap_or(0);
    c.input(0, Input::Message(view_change(&c, 1, 2)));
    c.input(0, Input::Message(view_change(&c, 1, 2)));
    assert_eq!(count(&c), 1, "the same view change twice");
    c.input(0, Input::Message(view_change(&c, 1, 1)));
    assert_eq!(count(&c), 2, "an older one");
    c.input(0, Input::Message(view_change(&c, 1, 3)));
    assert_eq!(count(&c), 2, "a newer one replaces it");
    // With two others (f = 2 at n = 7) it takes three senders beyond its view to join; the
    // smallest view among them is the one it joins.
    c.input(0, Input::Message(view_change(&c, 2, 4)));
    assert_eq!(c.replica(0).view(), View(0));
    c.input(0, Input::Message(view_change(&c, 3, 5)));
    assert_eq!(
        c.replica(0).view(),
        View(3),
        "1's latest, view 3, is the smallest"
    );
}

/// The view-change timer (how long a replica waits for the new view before trying the next)
/// starts once a quorum has given up on the views below this replica's (its own view change
/// and view changes for its view or a higher one count), and more view changes do not restart
/// it. cargo-mutants at 7814b00 left each comparison in that rule unseen (`>=` as `<` twice,
/// `&&` as `||`, the `!` deleted).
#[test]
fn the_view_change_timer_starts_with_a_quorum_giving_up_and_is_not_restarted() {
    let mut c = Cluster::new(4, 128);
    // Replica 3 leaves view 0 alone; its own messages go nowhere.
    c.isolate(3);
    c.input(3, Input::ReplacePrimary { view: View(0) });
    assert_eq!(c.replica(3).status(), Status::ViewChanging);
    assert_eq!(c.armed(3, TimerKind::ViewChange), None, "its own alone");
    c.input(3, Input::Message(view_change(&c, 2, 1)));
    assert_eq!(
        c.armed(3, TimerKind::ViewChange),
        None,
        "two of a quorum of three"
    );
    // A view change for a higher view says its sender gave up on view 1's predecessors too.
    c.input(3, Input::Message(view_change(&c, 0, 2)));
    let Some(timer) = c.armed(3, TimerKind::ViewChange) else {
        panic!("a quorum gave up: the timer runs");
    };
    c.input(3, Input::Message(view_change(&c, 1, 1)));
    assert_eq!(
        c.armed(3, TimerKind::ViewChange),
        Some(timer),
        "the fourth does not restart it"
    );
}

/// Replicas 0, 1 and 2 install view 1 (with a batch prepared in view 0 that must be
/// re-proposed); replica 3 changed view too but the new-view did not reach it. Returns the
/// new-view replica 1 sent.
fn view_one_without_replica_three(c: &mut Cluster) -> NewView {
    c.drop_kinds.insert(Kind::Commit);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    c.drop_kinds.clear();
    assert_eq!(c.executed_requests(0), 0, "prepared, not committed");
    // Nothing reaches replica 3 (a peer in view 1 would answer its view change with the
    // new-view); its view change reaches the others.
    for j in 0..3 {
        c.cut.insert((j, 3));
    }
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    assert_eq!(c.replica(1).view(), View(1));
    assert_eq!(c.replica(3).status(), Status::ViewChanging);
    last_new_view(c, 1)
}

/// The last new-view replica `from` sent.
fn last_new_view(c: &Cluster, from: usize) -> NewView {
    match c.sent(from, Kind::NewView).last().map(|m| m.value()) {
        Some(Message::NewView(nv)) => nv.clone(),
        other => panic!("replica {from} sent a new-view: {other:?}"),
    }
}

/// `nv` signed by validator `from` and delivered to replica 3.
fn deliver_new_view(c: &mut Cluster, from: usize, nv: &NewView) {
    let signed = c.signed_by(from, Kind::NewView, ProtoCodec.encode_new_view(nv));
    c.input(3, Input::Message(signed));
}

/// A pre-prepare signed by validator `from`, as a new-view carries it.
fn pre_prepare_by(c: &Cluster, from: usize, pp: &PrePrepare) -> Signed<PrePrepare> {
    let m = c.signed_by(from, Kind::PrePrepare, ProtoCodec.encode_pre_prepare(pp));
    scbe_core::consensus::message::retype(&m, pp.clone())
}

/// A backup recomputes the new primary's plan from the view changes in the new-view and
/// enters the view only if each pre-prepare is exactly that plan: signed by the new primary,
/// for the new view, at the plan's seq, with the plan's batch digest. Each forged new-view
/// below differs in one of those and is refused; the genuine one is then accepted.
/// cargo-mutants at 7814b00 left each `&&` of that check as `||` unseen.
#[test]
fn a_new_view_whose_pre_prepares_differ_from_the_plan_in_any_field_is_refused() {
    let reason = "new-view pre-prepares differ from the recomputed plan";
    let mut c = Cluster::new(4, 128);
    let nv = view_one_without_replica_three(&mut c);
    assert_eq!(
        nv.pre_prepares.len(),
        1,
        "the prepared batch is re-proposed"
    );
    let genuine = nv.pre_prepares[0].value().clone();
    let forged = |c: &Cluster, signer: usize, pp: PrePrepare| NewView {
        pre_prepares: vec![pre_prepare_by(c, signer, &pp)],
        ..nv.clone()
    };
    let variants = [
        (
            "signed by another validator",
            forged(&c, 2, genuine.clone()),
        ),
        (
            "for another view",
            forged(
                &c,
                1,
                PrePrepare {
                    view: View(2),
                    ..genuine.clone()
                },
            ),
        ),
        (
            "at another seq",
            forged(
                &c,
                1,
                PrePrepare {
                    seq: genuine.seq.next(),
                    ..genuine.clone()
                },
            ),
        ),
        (
            "with another digest",
            forged(
                &c,
                1,
                PrePrepare {
                    digest: Digest([7; 32]),
                    ..genuine.clone()
                },
            ),
        ),
    ];
    for (n, (what, bad)) in variants.iter().enumerate() {
        deliver_new_view(&mut c, 1, bad);
        assert_eq!(
            c.replica(3).dropped().get(reason),
            Some(&(n as u64 + 1)),
            "a pre-prepare {what}"
        );
        assert_eq!(c.replica(3).status(), Status::ViewChanging, "{what}");
    }
    deliver_new_view(&mut c, 1, &nv);
    assert_eq!(c.replica(3).view(), View(1));
    assert_eq!(c.replica(3).status(), Status::Normal, "the genuine one");
}

/// A new-view must carry view changes from a quorum: with one fewer it is refused, even from
/// the right primary. cargo-mutants at 7814b00 left `<` as `>` in that check unseen.
#[test]
fn a_new_view_with_fewer_than_a_quorum_of_view_changes_is_refused() {
    let mut c = Cluster::new(4, 128);
    let nv = view_one_without_replica_three(&mut c);
    assert_eq!(nv.view_changes.len(), 3);
    let short = NewView {
        view_changes: nv.view_changes[..2].to_vec(),
        ..nv.clone()
    };
    deliver_new_view(&mut c, 1, &short);
    assert_eq!(
        c.replica(3)
            .dropped()
            .get("new-view without a quorum of view changes"),
        Some(&1)
    );
    assert_eq!(c.replica(3).status(), Status::ViewChanging);
}

/// A new-view for a view below the replica's, or for its own view once it is in it, is stale
/// and dropped; it never takes the replica back. cargo-mutants at 7814b00 left that test's
/// `<` as `>`, `==` as `!=` and `||` as `&&` unseen.
#[test]
fn a_stale_or_repeated_new_view_is_dropped() {
    let reason = "stale new-view";
    let mut c = Cluster::new(4, 128);
    let nv = view_one_without_replica_three(&mut c);
    deliver_new_view(&mut c, 1, &nv);
    assert_eq!(c.replica(3).status(), Status::Normal);
    assert_eq!(c.replica(3).dropped().get(reason), None);
    deliver_new_view(&mut c, 1, &nv);
    assert_eq!(c.replica(3).dropped().get(reason), Some(&1), "repeated");
    c.heal();
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(1) });
    }
    c.run();
    assert_eq!(c.replica(3).view(), View(2));
    let before = c.replica(3).dropped().get(reason).copied().unwrap_or(0);
    deliver_new_view(&mut c, 1, &nv);
    assert_eq!(
        c.replica(3).dropped().get(reason),
        Some(&(before + 1)),
        "older"
    );
    assert_eq!(c.replica(3).view(), View(2), "never back");
}

/// View changes for views above the one a replica enters are kept through it: one peer had
/// already left view 1 when replica 3 entered it, and with a second (f + 1) replica 3 follows
/// them to view 2. cargo-mutants at 7814b00 left the pruning's `>` as `==` or `<` unseen.
#[test]
fn entering_a_view_keeps_the_view_changes_for_higher_views() {
    let mut c = Cluster::new(4, 128);
    let nv = view_one_without_replica_three(&mut c);
    c.input(3, Input::Message(view_change(&c, 0, 2)));
    deliver_new_view(&mut c, 1, &nv);
    assert_eq!(c.replica(3).view(), View(1));
    assert_eq!(c.replica(3).status(), Status::Normal);
    c.input(3, Input::Message(view_change(&c, 2, 2)));
    assert_eq!(
        c.replica(3).view(),
        View(2),
        "f + 1 left view 1: it follows"
    );
}

/// A replica entering a view whose new-view starts from a checkpoint past its own stable one
/// adopts that checkpoint at once when it holds the same state there itself, and asks for the
/// state otherwise; a replica whose own state at that seq differs never counts the quorum's
/// checkpoint as its own. cargo-mutants at 7814b00 left `min_s > stable` (as `==` or `<`) and
/// the digest guard (as `true`, `false` or `!=`) unseen.
#[test]
fn entering_a_view_from_a_later_checkpoint_adopts_it_only_with_the_same_state() {
    for diverged in [false, true] {
        let mut c = Cluster::new(4, 4);
        if diverged {
            c.replace_app(3, scbe_wire::testkit::ChainApp::diverging());
        }
        // Everyone executes 1..=4 and takes its checkpoint at 4, but hears no one else's.
        c.drop_kinds.insert(Kind::Checkpoint);
        c.decide_each(0, 1..=4);
        c.drop_kinds.clear();
        // From now on replica 3 hears nothing; the others exchange checkpoints again.
        for j in 0..3 {
            c.cut.insert((j, 3));
        }
        for i in 0..3 {
            c.fire(i, TimerKind::Status);
        }
        c.run();
        assert_eq!(c.replica(0).stable_checkpoint().seq, Seq(4));
        assert_eq!(c.replica(3).stable_checkpoint().seq, Seq(0));
        for i in 0..4 {
            c.input(i, Input::ReplacePrimary { view: View(0) });
        }
        c.run();
        let nv = last_new_view(&c, 1);
        let asked = c.sent(3, Kind::StateRequest).len();
        deliver_new_view(&mut c, 1, &nv);
        assert_eq!(c.replica(3).view(), View(1));
        let stable = c.replica(3).stable_checkpoint().seq;
        let asks = c.sent(3, Kind::StateRequest).len() - asked;
        if diverged {
            assert_eq!(stable, Seq(0), "its own state at 4 differs: not adopted");
            assert_eq!(asks, 1, "it asks for the quorum's state");
        } else {
            assert_eq!(stable, Seq(4), "its own state at 4 is the quorum's");
            assert_eq!(asks, 0, "nothing to ask for");
        }
    }
}

/// A view change from the checkpoint every replica already counts stable (the genesis, or 4
/// after four batches) adopts nothing: no replica asks for state, and none persists its stable
/// certificate again. cargo-mutants (this session) left `min_s > stable` as `>=` unseen: at
/// the genesis, which no snapshot holds, every replica then asked its peers for state on
/// every view change.
#[test]
fn entering_a_view_from_the_stable_checkpoint_adopts_nothing() {
    for decided in [0, 4] {
        let mut c = Cluster::new(4, 4);
        c.decide_each(0, 1..=decided);
        let stable = Seq(decided);
        let stable_records = |c: &Cluster, i: usize| {
            c.stores[i]
                .iter()
                .filter(|r| matches!(r, Record::Stable(_)))
                .count()
        };
        let before: Vec<usize> = (0..4).map(|i| stable_records(&c, i)).collect();
        for i in 0..4 {
            c.input(i, Input::ReplacePrimary { view: View(0) });
        }
        c.run();
        for (i, stable_before) in before.into_iter().enumerate() {
            let r = c.replica(i);
            assert_eq!((r.view(), r.status()), (View(1), Status::Normal));
            assert_eq!(r.stable_checkpoint().seq, stable, "replica {i}");
            assert!(
                c.sent(i, Kind::StateRequest).is_empty(),
                "replica {i} asked for state at stable {stable:?}"
            );
            assert_eq!(stable_records(&c, i), stable_before, "replica {i}");
        }
    }
}
