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

/// Replica 3 was cut off while the others moved to view 1; when it gives up on view 0 itself,
/// its view change reaches replicas already in view 1, which answer with the new-view that
/// started it, and it joins them.
#[test]
fn a_replica_that_leaves_a_view_late_is_sent_the_new_view_its_peers_installed() {
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
