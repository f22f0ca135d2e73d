//! Slots the old validator set had started above an epoch's boundary: nobody executes them.
//! Each replica voids them when it executes the boundary (or takes a snapshot past it), the
//! requests they carried wait to be ordered by the new set, and neither a restart nor a peer's
//! state response brings an old-set certificate for those seqs back. Split from
//! `epoch_tests.rs`, whose helpers these use.

use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;
use scbe_wire::ProtoCodec;

use super::epoch_tests::{dropped, members};

#[test]
fn slots_the_old_set_started_above_the_boundary_are_voided_and_their_requests_ordered_again() {
    let mut c = Cluster::new_with(4, 8, |cfg| cfg.max_inflight_batches = 4);
    // The primary proposes all three at once: the change at seq 1, then 2 and 3 pipelined.
    let same = members(&c);
    c.input(0, Input::ClientRequest(c.set_request(1, &same)));
    c.input(0, Input::ClientRequest(c.request(2)));
    c.input(0, Input::ClientRequest(c.request(3)));
    let proposed: Vec<View> = c
        .sent(0, Kind::PrePrepare)
        .iter()
        .filter_map(|m| match m.value() {
            Message::PrePrepare(pp) => Some(pp.view),
            _ => None,
        })
        .collect();
    assert_eq!(proposed, vec![View(0); 3], "proposed in epoch 0");
    c.run();
    for i in 0..4 {
        let r = c.replica(i);
        assert_eq!(r.epoch(), 1);
        assert_eq!(c.executed_requests(i), 3, "replica {i}: each request once");
        let views: Vec<(u64, u64)> = c.delivered[i]
            .iter()
            .map(|d| (d.seq.0, d.certificate.pre_prepare.value().view.epoch()))
            .collect();
        // Requests 2 and 3 wait again and the new primary batches them together.
        assert_eq!(
            views,
            vec![(1, 0), (2, 1)],
            "replica {i}: above the boundary, only the new set's batches"
        );
        assert!(
            r.dropped().get("message from an earlier epoch").is_some(),
            "replica {i}: the old set's votes above the boundary arrived and were refused"
        );
    }
}

/// Requests of voided slots wait again on every replica that held them, not only where they
/// arrived: with the old primary removed by the change and its relays lost, the new primary,
/// which saw them only in the old primary's pre-prepares, orders them. (cargo-mutants at 8c1a26e: `requeue` as
/// `()`, its nonce test negated, or its queue bound inverted went unseen: in the test above
/// the primary stays, and it holds them waiting anyway.)
#[test]
fn requests_of_voided_slots_are_ordered_by_a_new_primary_that_only_saw_them_proposed() {
    let mut c = Cluster::new_with(5, 8, |cfg| cfg.max_inflight_batches = 4);
    let without_0: Vec<_> = members(&c).into_iter().skip(1).collect();
    // The primary's relays of the requests are lost: the others see them only proposed.
    c.drop_kinds.insert(Kind::Relay);
    c.drop_kinds.insert(Kind::Request);
    c.input(0, Input::ClientRequest(c.set_request(1, &without_0)));
    c.input(0, Input::ClientRequest(c.request(2)));
    c.input(0, Input::ClientRequest(c.request(3)));
    assert_eq!(
        c.sent(0, Kind::PrePrepare).len(),
        3,
        "all three proposed at once"
    );
    c.run();
    c.drop_kinds.clear();
    for i in 1..5 {
        let r = c.replica(i);
        assert_eq!(r.epoch(), 1, "replica {i}");
        assert!(!r.observing(), "replica {i}");
        assert_eq!(c.executed_requests(i), 3, "replica {i}: each request once");
    }
    assert_eq!(c.replica(1).view(), View::first_of_epoch(1));
    assert!(c.replica(1).is_primary(), "the new set's first primary");
}

/// A replica that committed the old set's pipelined slots above the boundary before it
/// executed the boundary (it missed the boundary's pre-prepare) voids them when it gets
/// there, and executes the new set's batches instead: without that it would execute batches
/// at seqs the others gave to other batches.
#[test]
fn a_replica_that_committed_old_slots_above_the_boundary_voids_them() {
    let mut c = Cluster::new_with(4, 8, |cfg| cfg.max_inflight_batches = 4);
    let same = members(&c);
    c.input(0, Input::ClientRequest(c.set_request(1, &same)));
    c.input(0, Input::ClientRequest(c.request(2)));
    c.input(0, Input::ClientRequest(c.request(3)));
    // Replica 3 never hears the boundary's pre-prepare.
    let dir = c.dir.clone();
    c.queue.retain(|(_, to, bytes)| {
        let m = scbe_wire::open(bytes, &dir).expect("opens");
        !(*to == 3 && matches!(m.value(), Message::PrePrepare(pp) if pp.seq == Seq(1)))
    });
    c.run();
    assert_eq!(c.replica(0).last_executed(), Seq(2));
    c.fire(3, TimerKind::Status);
    let r3 = c.replica(3);
    assert_eq!(r3.epoch(), 1);
    assert_eq!(r3.last_executed(), Seq(2));
    assert_eq!(r3.app().digest(), c.replica(0).app().digest());
    let views: Vec<(u64, u64)> = c.delivered[3]
        .iter()
        .map(|d| (d.seq.0, d.certificate.pre_prepare.value().view.epoch()))
        .collect();
    assert_eq!(
        views,
        vec![(2, 1)],
        "the boundary by snapshot, then the new set's batch"
    );

    // Its store still holds the old set's commit certificate at seq 3: a restart must not
    // execute it above the boundary.
    let old_3 = c.stores[3]
        .iter()
        .find_map(|r| match r {
            Record::Committed(cert)
                if cert.seq() == Seq(3) && cert.pre_prepare.value().view.epoch() == 0 =>
            {
                Some(cert.clone())
            }
            _ => None,
        })
        .expect("replica 3 committed the old set's seq 3 before the boundary");
    c.restart_with_key(3, c.keys[3].clone()).expect("restores");
    assert_eq!(c.replica(3).last_executed(), Seq(2));
    assert_eq!(c.replica(3).app().digest(), c.replica(0).app().digest());

    // Nor does a replica take it from a peer's state response: it is a valid certificate of
    // the old set, for a seq the old set no longer orders.
    let resp = StateResponse {
        snapshot: None,
        decided: vec![old_3],
        epochs: Vec::new(),
    };
    let before = dropped(&c, 0, "state transfer with an invalid commit certificate");
    let m = c.signed_by(
        3,
        Kind::StateResponse,
        ProtoCodec.encode_state_response(&resp),
    );
    c.input(0, Input::Message(m));
    assert_eq!(c.replica(0).last_executed(), Seq(2));
    assert_eq!(
        dropped(&c, 0, "state transfer with an invalid commit certificate"),
        before + 1
    );
}
