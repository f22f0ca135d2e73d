//! Restarts from the store, rule by rule: a replica restarted in the middle of a view change
//! resumes it, one restarted after entering a view is back in it, the newest prepared
//! certificate per seq is the one it keeps, and a stable checkpoint whose snapshot was not
//! persisted is reached again by replaying from an older one and checked against its
//! certificate. `paper.rs` and `checkpoint_tests.rs` restart replicas too, but cargo-mutants at
//! 7814b00 left 23 of `replica/restore.rs`'s 29 viable mutants unseen by them.

use std::sync::Arc;

use scbe_core::consensus::*;
use scbe_wire::testkit::{ChainApp, Cluster};
use scbe_wire::ProtoCodec;

/// Replica `i` restarted from `store` with `app`.
fn restart(
    c: &Cluster,
    i: usize,
    app: ChainApp,
    store: &[Record],
) -> Result<(Replica<ChainApp>, Vec<Action>), RestoreError> {
    Replica::restore(
        c.config(i),
        c.keys[i].clone(),
        Arc::new(ProtoCodec),
        app,
        store,
    )
}

fn broadcasts(actions: &[Action], kind: Kind) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Broadcast(e) if e.kind == kind))
        .count()
}

/// Mid-view-change: back in the view it was changing to, still changing, and its view change
/// sent again (peers may have missed it), with its timers armed, and nothing else.
#[test]
fn a_replica_restarted_mid_view_change_resumes_it_and_sends_its_view_change_again() {
    let mut c = Cluster::new(4, 128);
    for j in 0..3 {
        c.cut.insert((j, 3));
    }
    c.input(3, Input::ReplacePrimary { view: View(0) });
    assert_eq!(c.replica(3).status(), Status::ViewChanging);
    let (r, actions) = restart(&c, 3, ChainApp::default(), &c.stores[3]).expect("opens");
    assert_eq!(r.view(), View(1));
    assert_eq!(r.status(), Status::ViewChanging);
    assert_eq!(broadcasts(&actions, Kind::ViewChange), 1, "sent again");
    // Nothing stable yet: nothing to replay, no checkpoint to take again, nothing to persist
    // (cargo-mutants at 8c1a26e: replaying for a stable checkpoint at 0, `>` as `>=`, took and
    // persisted a genesis snapshot on every such restart).
    assert_eq!(broadcasts(&actions, Kind::Checkpoint), 0);
    assert!(!actions.iter().any(|a| matches!(a, Action::Persist(_))));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::SetTimer(t) if t.kind == TimerKind::Heartbeat)),
        "its timers armed"
    );
}

/// After a completed view change: back in the new view, in normal operation.
#[test]
fn a_replica_restarted_after_entering_a_view_is_back_in_it() {
    let mut c = Cluster::new(4, 128);
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    assert_eq!(c.replica(3).view(), View(1));
    let (r, _) = restart(&c, 3, ChainApp::default(), &c.stores[3]).expect("opens");
    assert_eq!(r.view(), View(1));
    assert_eq!(r.status(), Status::Normal);
}

/// The same in a later epoch: a replica restarted after a view change of epoch 1 is back in
/// that view, not the epoch's first (restoring the epoch's state must not reset a view the
/// store says it already left). cargo-mutants at 8c1a26e left `enter_epoch`'s view reset
/// (`<` as `<=`) unseen: no test restarted a replica past an epoch's first view.
#[test]
fn a_replica_restarted_after_a_view_change_in_a_later_epoch_is_back_in_that_view() {
    let mut c = Cluster::new(4, 4);
    let same = super::epoch_tests::members(&c);
    c.input(0, Input::ClientRequest(c.set_request(1, &same)));
    c.run();
    let first = View::first_of_epoch(1);
    assert_eq!(c.replica(3).view(), first);
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: first });
    }
    c.run();
    c.decide_each(1, 2..=2);
    let r3 = c.replica(3);
    assert_eq!((r3.view(), r3.status()), (first.next(), Status::Normal));
    assert_eq!(r3.last_executed(), Seq(2));
    let (r, _) = restart(&c, 3, ChainApp::default(), &c.stores[3]).expect("opens");
    assert_eq!(r.epoch(), 1);
    assert_eq!((r.view(), r.status()), (first.next(), Status::Normal));
}

/// A batch prepared in view 0 and again in view 1 (re-proposed by the new primary), committed
/// in neither: the restarted replica keeps the view-1 certificate, which its next view change
/// carries. cargo-mutants left the newest-view rule (`<` as `==` or `>`) and the restore of
/// prepared certificates above the stable checkpoint (`>` as `==` or `<`) unseen.
#[test]
fn a_restarted_replica_keeps_the_newest_prepared_certificate_of_each_seq() {
    let mut c = Cluster::new(4, 128);
    c.drop_kinds.insert(Kind::Commit);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    assert_eq!(c.replica(3).view(), View(1));
    assert_eq!(c.executed_requests(3), 0, "prepared twice, committed never");
    let prepared_views: Vec<View> = c.stores[3]
        .iter()
        .filter_map(|r| match r {
            Record::Prepared(p) => Some(p.pre_prepare.value().view),
            _ => None,
        })
        .collect();
    assert_eq!(prepared_views, vec![View(0), View(1)]);

    let (r, _) = restart(&c, 3, ChainApp::default(), &c.stores[3]).expect("opens");
    c.replicas[3] = Some(r);
    c.log[3].clear();
    c.input(3, Input::ReplacePrimary { view: View(1) });
    let vcs = c.sent(3, Kind::ViewChange);
    let Some(Message::ViewChange(vc)) = vcs.last().map(|m| m.value()) else {
        panic!("the restarted replica sent a view change");
    };
    let carried: Vec<(Seq, View)> = vc
        .prepared
        .iter()
        .map(|p| (p.pre_prepare.value().seq, p.pre_prepare.value().view))
        .collect();
    assert_eq!(carried, vec![(Seq(1), View(1))]);
}

/// A large state is persisted only every so often: at a stable checkpoint of 6 whose snapshot
/// was not persisted, a restart replays from the snapshot at 4 to 6, and must reach the
/// certificate's digest there. A replay that reaches another state (here: from the genesis,
/// with an application that executes differently) is refused, and one under another
/// checkpoint interval takes the checkpoint the certificate checks. cargo-mutants left the
/// replay (`stable_seq > 0`, its loop's `<`, the missing checkpoint's `!`) and the digest
/// check unseen; at 8c1a26e the `!` again, which needs the interval changed to matter.
#[test]
fn a_restart_replays_from_an_older_snapshot_to_the_stable_checkpoint_and_checks_it() {
    let mut c = Cluster::new_with(4, 2, |cfg| cfg.snapshot_persist_floor = 0);
    for i in 0..4 {
        c.replace_app(i, ChainApp::default().padded(4000));
    }
    for nonce in 1..=6 {
        c.input(0, Input::ClientRequest(c.request_sized(nonce, 1000)));
        c.run();
    }
    assert_eq!(c.replica(1).stable_checkpoint().seq, Seq(6));
    let snapshots: Vec<u64> = c.stores[1]
        .iter()
        .filter_map(|r| match r {
            Record::Snapshot(s) => Some(s.seq.0),
            _ => None,
        })
        .collect();
    assert_eq!(snapshots, vec![4], "the one at 6 was not persisted");

    let app = || ChainApp::default().padded(4000);
    let (r, _) = restart(&c, 1, app(), &c.stores[1]).expect("opens");
    assert_eq!(r.last_executed(), Seq(6));
    assert_eq!(r.stable_checkpoint().seq, Seq(6));
    assert_eq!(r.app().digest(), c.replica(1).app().digest());

    let no_snapshots: Vec<Record> = c.stores[1]
        .iter()
        .filter(|r| !matches!(r, Record::Snapshot(_)))
        .cloned()
        .collect();
    let (r, _) = restart(&c, 1, app(), &no_snapshots).expect("from the genesis, it opens too");
    assert_eq!(r.last_executed(), Seq(6));
    match restart(&c, 1, ChainApp::diverging().padded(4000), &no_snapshots) {
        Err(RestoreError::SnapshotMismatch(seq)) => assert_eq!(seq, Seq(6)),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a replay to another state was accepted"),
    }

    // The checkpoint rules changed since (every 4 batches now): replaying 5 and 6 takes no
    // checkpoint at 6 by itself, so the restart takes the one the certificate checks.
    let mut every_4 = c.config(1);
    every_4.checkpoint_interval = 4;
    every_4.window = 8;
    let (r, _) = Replica::restore(
        every_4,
        c.keys[1].clone(),
        Arc::new(ProtoCodec),
        app(),
        &c.stores[1],
    )
    .expect("opens under the new interval");
    assert_eq!(r.last_executed(), Seq(6));
    assert_eq!(r.stable_checkpoint().seq, Seq(6));
    assert_eq!(r.app().digest(), c.replica(1).app().digest());
}

/// What a replica restarted by replay keeps: the snapshot at its stable checkpoint (it serves
/// a peer far behind from it: here the only one that peer hears) and its own checkpoint vote
/// there (re-sent at its status tick). cargo-mutants left both prunings (`>=` as `<`) unseen.
#[test]
fn a_replica_restarted_by_replay_serves_its_stable_snapshot_and_resends_its_vote() {
    let mut c = Cluster::new_with(4, 2, |cfg| cfg.snapshot_persist_floor = 0);
    for i in 0..4 {
        c.replace_app(i, ChainApp::default().padded(4000));
    }
    c.isolate(3);
    for nonce in 1..=6 {
        c.input(0, Input::ClientRequest(c.request_sized(nonce, 1000)));
        c.run();
    }
    assert_eq!(c.replica(1).stable_checkpoint().seq, Seq(6));
    let (r, _) = restart(&c, 1, ChainApp::default().padded(4000), &c.stores[1]).expect("opens");
    c.replicas[1] = Some(r);
    c.log[1].clear();
    c.fire(1, TimerKind::Status);
    let votes: Vec<Seq> = c
        .sent(1, Kind::Checkpoint)
        .iter()
        .filter_map(|m| match m.value() {
            Message::Checkpoint(cp) => Some(cp.seq),
            _ => None,
        })
        .collect();
    assert_eq!(
        votes,
        vec![Seq(6)],
        "its own vote at the stable checkpoint, again"
    );

    // Replica 3, far behind, hears only replica 1.
    c.heal();
    for j in [0, 2] {
        c.cut.insert((j, 3));
    }
    c.replace_app(3, ChainApp::default().padded(4000));
    c.fire(3, TimerKind::Status);
    c.run();
    assert_eq!(
        c.replica(3).last_executed(),
        Seq(6),
        "served from the snapshot at 6"
    );
}

/// View 1's primary crashed after signing its new-view's pre-prepares (persisted: its vote
/// guard) and before persisting that it entered the view. Restarted, it is still changing
/// views; handed the same view changes again, it signs the same new-view again (the guard
/// holds the same digests, so nothing conflicts) and enters the view. cargo-mutants (this
/// session) left the guard's conflict test (`!=` as `==`) unseen: refusing there costs a
/// whole view, and no test restarted a primary at that instant.
#[test]
fn a_new_primary_restarted_before_entering_its_view_sends_the_same_new_view_again() {
    let mut c = Cluster::new(4, 128);
    // Request 1 prepared everywhere, committed nowhere: the new view re-proposes it.
    c.drop_kinds.insert(Kind::Commit);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    c.drop_kinds.clear();
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    c.run();
    assert_eq!(c.replica(1).view(), View(1));
    let store = &c.stores[1];
    let entered = store
        .iter()
        .position(|r| matches!(r, Record::EnteredView { view, .. } if *view == View(1)))
        .expect("replica 1 entered view 1");
    let prefix = &store[..entered];
    assert!(
        prefix.iter().any(|r| matches!(
            r,
            Record::Signed { pre_prepare: true, view, .. } if *view == View(1)
        )),
        "its new-view's pre-prepares were signed before"
    );
    let (mut r, _) = restart(&c, 1, ChainApp::default(), prefix).expect("opens");
    assert_eq!((r.view(), r.status()), (View(1), Status::ViewChanging));
    let mut actions = Vec::new();
    for j in [0, 2, 3] {
        for m in c.sent(j, Kind::ViewChange) {
            actions.extend(r.handle(Input::Message(m)));
        }
    }
    assert_eq!(
        broadcasts(&actions, Kind::NewView),
        1,
        "its new-view, again"
    );
    assert_eq!((r.view(), r.status()), (View(1), Status::Normal));
}
