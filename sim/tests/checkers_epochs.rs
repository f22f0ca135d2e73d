//! The epoch checker catches what is planted in its input (and stays quiet on the honest input
//! first): a link whose boundary lacks a quorum or leads to another set, and a retired key
//! signing a certificate or an order after the change. The other checkers are in `checkers.rs`.

use scbe_core::consensus::{ReplicaId, Seq};
use scbe_sim::invariants::certificates::Certificates;
use scbe_wire::testkit::Cluster;

/// A cluster whose validator 3 was re-keyed by a decided change (epoch 1), restarted with the
/// new key, and that decided on; returns it with the old and the new key.
fn rotated() -> (
    Cluster,
    scbe_core::crypto::Keypair,
    scbe_core::crypto::Keypair,
) {
    let mut c = Cluster::new(4, 4);
    c.decide_each(0, 1..=2);
    let old = c.keys[3].clone();
    let new = scbe_core::crypto::Keypair::from_label("checkers rotated 3");
    let mut set: Vec<_> = c
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (ReplicaId(i as u32), k.public()))
        .collect();
    set[3].1 = new.public();
    c.input(
        0,
        scbe_core::consensus::Input::ClientRequest(c.set_request(3, &set)),
    );
    c.run();
    c.restart_with_key(3, new.clone()).expect("restores");
    c.decide_each(0, 4..=9);
    assert_eq!(c.replica(0).epoch(), 1);
    (c, old, new)
}

/// The epoch checker learns a certified link, refuses one whose boundary lacks a quorum or
/// leads to another set than the change proposed, and after the change counts certificates
/// and orders against the new set: a commit or an endorsement by the retired key is caught.
#[test]
fn epochs_catch_a_bad_link_and_the_retired_key_signing_after_the_change() {
    use scbe_core::rollout::order::{Endorsement, Order, SignedOrder};
    use scbe_sim::invariants::epochs::Epochs;
    let (c, old, new) = rotated();
    let requesters = Vec::new();
    let links = c.replica(0).epoch_links().clone();
    let link = links.get(&1).expect("the link to epoch 1").clone();
    let expected = Some((3, Some(new.public())));

    let mut epochs = Epochs::new(c.dir.validators(), requesters.clone(), expected);
    assert!(epochs.on_links(0, &links).is_empty());
    assert!(epochs.on_links(1, &links).is_empty(), "the same link");
    assert_eq!(epochs.changes(), 1);
    let boundary = link.set.start;
    assert_eq!(epochs.set_at(boundary).epoch, 0);
    assert_eq!(epochs.set_at(Seq(boundary.0 + 1)).epoch, 1);

    let mut other = Epochs::new(c.dir.validators(), requesters.clone(), Some((3, None)));
    assert!(
        !other.on_links(0, &links).is_empty(),
        "a rotation where a removal was proposed"
    );
    let mut short = link.clone();
    short.boundary.proof.truncate(2);
    let mut fresh = Epochs::new(c.dir.validators(), requesters.clone(), expected);
    assert!(
        !fresh
            .on_links(0, &[(1, short)].into_iter().collect())
            .is_empty(),
        "a boundary with two signers"
    );
    assert_eq!(fresh.changes(), 0);
    let mut entered = Epochs::new(c.dir.validators(), requesters.clone(), expected);
    assert_eq!(
        entered.on_epoch(0, &link.set),
        None,
        "entered before any link"
    );
    assert_eq!(entered.on_epoch(1, &link.set), None);
    let mut elsewhere = link.set.clone();
    elsewhere.members[1].1 = new.public();
    assert!(
        entered.on_epoch(2, &elsewhere).is_some(),
        "another replica entered epoch 1 with another set"
    );
    assert!(
        entered.on_links(0, &links).is_empty(),
        "the link certifies it"
    );
    let mut split = Epochs::new(c.dir.validators(), requesters, expected);
    assert!(split.on_links(0, &links).is_empty());
    let mut different = link.clone();
    different.set.members[0].1 = new.public();
    assert!(
        !split
            .on_links(2, &[(1, different)].into_iter().collect())
            .is_empty(),
        "another replica's link to epoch 1 differs"
    );

    // Certificates after the boundary verify against the new set; one with the retired key
    // standing in for validator 3's commit does not.
    let after: Vec<_> = c.delivered[0]
        .iter()
        .filter(|d| d.seq > boundary)
        .cloned()
        .collect();
    assert!(!after.is_empty());
    let check = Certificates;
    for d in &after {
        assert_eq!(check.on_deliver(0, d, epochs.set_at(d.seq)), None);
    }
    let d = &after[0];
    let mut retired = d.clone();
    let vote = *retired.certificate.commits[0].value();
    use scbe_core::consensus::Codec as _;
    let forged = scbe_core::consensus::Signed::seal(
        vote,
        scbe_core::consensus::Kind::Commit,
        |v| scbe_wire::ProtoCodec.encode_vote(v),
        &old,
        scbe_core::consensus::Principal::Validator(ReplicaId(3)),
    );
    retired.certificate.commits = retired
        .certificate
        .commits
        .iter()
        .filter(|v| *v.signer() != new.public())
        .cloned()
        .chain(std::iter::once(forged))
        .collect();
    assert!(check
        .on_deliver(0, &retired, epochs.set_at(retired.seq))
        .is_some());

    // An order issued after the change, endorsed by validators 0, 1 and 3's retired key: a
    // quorum of the genesis set only.
    let order = Order {
        rollout: 1,
        action: scbe_core::rollout::evidence::OrderAction::Deploy,
        version: "r1".into(),
        release_digest: String::new(),
        units: Vec::new(),
        agents: vec!["a".into()],
        batch: 1,
        issued_seq: boundary.0 + 1,
    };
    let bytes = order.to_bytes();
    let signed = |keys: &[&scbe_core::crypto::Keypair]| SignedOrder {
        order: bytes.clone(),
        endorsements: keys.iter().map(|k| Endorsement::sign(&bytes, k)).collect(),
        epochs: Vec::new(),
    };
    let (k0, k1) = (&c.keys[0], &c.keys[1]);
    assert_eq!(
        epochs.check_order("a", &signed(&[k0, k1, &new]), &order),
        None
    );
    assert!(epochs
        .check_order("a", &signed(&[k0, k1, &old]), &order)
        .is_some());
    let before = Order {
        issued_seq: boundary.0,
        ..order.clone()
    };
    let bytes = before.to_bytes();
    let old_set = SignedOrder {
        order: bytes.clone(),
        endorsements: [k0, k1, &old]
            .iter()
            .map(|k| Endorsement::sign(&bytes, k))
            .collect(),
        epochs: Vec::new(),
    };
    assert_eq!(
        epochs.check_order("a", &old_set, &before),
        None,
        "issued before the change, the genesis set's quorum counts"
    );
}
