//! Messages of a view a replica has not entered yet are kept and handled once it enters it:
//! a backup whose new-view is late still prepares, commits and executes what the new primary
//! proposed meanwhile, from what it kept, with nothing sent again. cargo-mutants (consensus
//! shard 3) found the buffering (`buffer_future`), its replay (`replay_future`) and the
//! pre-prepare's view in `on_message` removable with every core test passing; the simulator
//! was their only test.

use scbe_core::consensus::replica::Status;
use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;
use scbe_wire::{open, ProtoCodec};

/// Delivers queued messages until none are left, holding back those `hold` picks.
fn run_holding(c: &mut Cluster, hold: impl Fn(usize, Kind) -> bool) -> Vec<(usize, Vec<u8>)> {
    let mut held = Vec::new();
    while let Some((_, to, bytes)) = c.next_queued() {
        let m = open(&bytes, &c.dir).expect("honest messages open");
        if hold(to, m.envelope().kind) {
            held.push((to, bytes));
            continue;
        }
        c.input(to, Input::Message(m));
    }
    held
}

#[test]
fn a_backup_whose_new_view_is_late_executes_what_it_kept_for_that_view() {
    let mut c = Cluster::new(4, 8);
    c.input(0, Input::ClientRequest(c.request(1)));
    c.run();
    assert!((0..4).all(|i| c.replica(i).last_executed() == Seq(1)));

    // Everyone gives up on replica 0; replica 3 never sees the new-view of view 1.
    for i in 0..4 {
        c.input(i, Input::ReplacePrimary { view: View(0) });
    }
    let late = |to: usize, kind: Kind| to == 3 && kind == Kind::NewView;
    let held = run_holding(&mut c, late);
    assert!(
        !held.is_empty(),
        "the new-view (and its forwards) held back"
    );
    assert_eq!(c.replica(1).view(), View(1));
    assert_eq!(c.replica(1).status(), Status::Normal);
    assert_eq!(c.replica(3).status(), Status::ViewChanging);

    // The new primary orders a request; replica 3 keeps its pre-prepare, prepares and
    // commits, and executes nothing yet.
    c.input(1, Input::ClientRequest(c.request(2)));
    assert!(run_holding(&mut c, late).is_empty());
    assert!((0..3).all(|i| c.replica(i).last_executed() == Seq(2)));
    assert_eq!(c.replica(3).last_executed(), Seq(1));

    // The new-view arrives: replica 3 enters view 1 and handles what it kept, with nothing
    // delivered to it but the new-views held back.
    for (to, bytes) in held {
        let m = open(&bytes, &c.dir).expect("opens");
        c.input(to, Input::Message(m));
    }
    while let Some((_, to, bytes)) = c.next_queued() {
        if to == 3 {
            continue;
        }
        let m = open(&bytes, &c.dir).expect("opens");
        c.input(to, Input::Message(m));
    }
    assert_eq!(c.replica(3).view(), View(1));
    assert_eq!(c.replica(3).status(), Status::Normal);
    assert_eq!(
        c.replica(3).last_executed(),
        Seq(2),
        "executed from what it kept"
    );
    assert_eq!(c.executed_requests(3), 2);
}

/// A replace-primary acts only while the replica is normal: a second one while the view
/// change is under way changes nothing and is counted (a late one for a view already left:
/// `paper.rs`). cargo-mutants (consensus shard 3) left the guard's `&&` as `||` unseen.
#[test]
fn replace_primary_acts_only_on_the_view_a_replica_is_in_while_normal() {
    let mut c = Cluster::new(4, 8);
    c.input(0, Input::ReplacePrimary { view: View(0) });
    assert_eq!(c.replica(0).view(), View(1));
    assert_eq!(c.replica(0).status(), Status::ViewChanging);
    c.input(0, Input::ReplacePrimary { view: View(1) });
    assert_eq!(c.replica(0).view(), View(1), "no second view change");
    let reason = "replace-primary for a view already left";
    assert_eq!(c.replica(0).dropped().get(reason), Some(&1));
}

/// A prepare from validator `from` for (`view`, `seq`), signed and opened as the wire would.
fn prepare(c: &Cluster, from: usize, view: u64, seq: u64) -> Signed<Message> {
    let vote = Vote {
        view: View(view),
        seq: Seq(seq),
        digest: Digest([7; 32]),
    };
    c.signed_by(from, Kind::Prepare, ProtoCodec.encode_vote(&vote))
}

/// What a replica keeps for views it has not entered is bounded: nothing more than 16 views
/// ahead, and at most `max_future_per_peer` messages per sender, so one peer filling its share
/// leaves the others theirs. cargo-mutants (consensus shard 3) left both bounds unseen.
#[test]
fn the_future_view_buffer_is_bounded_by_view_and_per_sender() {
    let far = "message for a view too far ahead";
    let full = "future-view buffer full";
    let mut c = Cluster::new_with(4, 8, |cfg| cfg.max_future_per_peer = 3);
    c.input(3, Input::Message(prepare(&c, 1, 16, 1)));
    assert_eq!(
        c.replica(3).dropped().get(far),
        None,
        "16 views ahead is kept"
    );
    c.input(3, Input::Message(prepare(&c, 1, 17, 1)));
    assert_eq!(c.replica(3).dropped().get(far), Some(&1));

    for view in [2, 3] {
        c.input(3, Input::Message(prepare(&c, 1, view, 1)));
    }
    assert_eq!(
        c.replica(3).dropped().get(full),
        None,
        "three kept from replica 1"
    );
    c.input(3, Input::Message(prepare(&c, 1, 4, 1)));
    assert_eq!(
        c.replica(3).dropped().get(full),
        Some(&1),
        "the fourth is not"
    );
    c.input(3, Input::Message(prepare(&c, 2, 4, 1)));
    assert_eq!(
        c.replica(3).dropped().get(full),
        Some(&1),
        "replica 2 still has its share"
    );
}
