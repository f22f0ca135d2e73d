//! The certificate checks a replica applies to what peers send it (view changes, state
//! transfer, catch-up): real certificates from a running cluster pass, and each way a Byzantine
//! peer could bend one is refused with its own error. cargo-mutants found these checks reachable
//! only through the simulator's Byzantine runs: with `check_prepared_cert` returning `Ok(())`
//! every scenario test here still passed.
//!
//! Signatures are checked when a message is opened, before these checks; the tampered parts
//! below reuse real envelopes and change only the decoded value or the signer's role, which is
//! exactly what the checks must judge on their own.

use std::sync::Arc;

use scbe_core::consensus::certificate::{
    check_batch, check_checkpoint_cert, check_commit_cert, check_prepared_cert, check_view_change,
    NewViewPlan,
};
use scbe_core::consensus::message::retype;
use scbe_core::consensus::*;
use scbe_wire::testkit::Cluster;
use scbe_wire::ProtoCodec;

/// A cluster (checkpoint every 2) that decided three requests one at a time.
fn decided() -> Cluster {
    let mut c = Cluster::new(4, 2);
    c.decide_each(0, 1..=3);
    c
}

/// `s` with another value or signer, its envelope kept (as if it had been opened).
fn retagged<T: Clone>(s: &Signed<T>, value: T, principal: Principal) -> Signed<T> {
    Signed::from_verified(value, Arc::clone(s.envelope()), principal)
}

fn a_prepared_cert(c: &Cluster) -> PreparedCert {
    c.stores[1]
        .iter()
        .find_map(|r| match r {
            Record::Prepared(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a backup persisted a prepared certificate")
}

#[test]
fn a_prepared_certificate_needs_the_primary_and_q_minus_1_matching_backups() {
    let c = decided();
    let cfg = c.config(1);
    let cert = a_prepared_cert(&c);
    assert_eq!(check_prepared_cert(&cfg, &cert), Ok(()));
    let pp = cert.pre_prepare.value().clone();
    let primary = cfg.primary(pp.view);
    let backups: Vec<Signed<Vote>> = cert
        .prepares
        .iter()
        .filter(|v| v.validator() != Some(primary))
        .cloned()
        .collect();
    assert!(backups.len() >= cfg.quorum() - 1);

    // The pre-prepare signed by a backup, not the view's primary.
    let other = ReplicaId((primary.0 + 1) % 4);
    let signed = c.signed_by(
        other.0 as usize,
        Kind::PrePrepare,
        ProtoCodec.encode_pre_prepare(&pp),
    );
    let by_backup = PreparedCert {
        pre_prepare: retype(&signed, pp.clone()),
        prepares: cert.prepares.clone(),
    };
    assert!(matches!(
        check_prepared_cert(&cfg, &by_backup),
        Err(CertError::NotPrimary { .. })
    ));
    // The primary's signature passed off as a backup's: the key is not that backup's.
    let passed_off = PreparedCert {
        pre_prepare: retagged(&cert.pre_prepare, pp.clone(), Principal::Validator(other)),
        prepares: cert.prepares.clone(),
    };
    assert_eq!(
        check_prepared_cert(&cfg, &passed_off),
        Err(CertError::NotInForce {
            what: "prepared certificate",
            id: other
        })
    );

    // One backup short, or the same backup twice, or the primary standing in for a backup.
    let short = PreparedCert {
        pre_prepare: cert.pre_prepare.clone(),
        prepares: backups[..cfg.quorum() - 2].to_vec(),
    };
    let twice = PreparedCert {
        pre_prepare: cert.pre_prepare.clone(),
        prepares: vec![backups[0].clone(), backups[0].clone()],
    };
    let primary_vote = retype(
        &c.signed_by(
            primary.0 as usize,
            Kind::Prepare,
            ProtoCodec.encode_vote(backups[1].value()),
        ),
        *backups[1].value(),
    );
    let with_primary = PreparedCert {
        pre_prepare: cert.pre_prepare.clone(),
        prepares: vec![backups[0].clone(), primary_vote],
    };
    for (what, bad) in [
        ("one short", short),
        ("a backup twice", twice),
        ("the primary's own prepare", with_primary),
    ] {
        assert!(
            matches!(
                check_prepared_cert(&cfg, &bad),
                Err(CertError::NotEnoughVotes { .. })
            ),
            "{what}"
        );
    }

    // A prepare for anything else: each of view, seq and digest must match on its own.
    let v = *backups[0].value();
    for (what, vote) in [
        (
            "another seq and digest, same view",
            Vote {
                seq: Seq(v.seq.0 + 1),
                digest: Digest([9; 32]),
                ..v
            },
        ),
        (
            "another view and seq, same digest",
            Vote {
                view: View(v.view.0 + 1),
                seq: Seq(v.seq.0 + 1),
                ..v
            },
        ),
        (
            "another digest only",
            Vote {
                digest: Digest([9; 32]),
                ..v
            },
        ),
    ] {
        let mut prepares = backups.clone();
        prepares[0] = retagged(&backups[0], vote, backups[0].principal());
        let bad = PreparedCert {
            pre_prepare: cert.pre_prepare.clone(),
            prepares,
        };
        assert!(
            matches!(
                check_prepared_cert(&cfg, &bad),
                Err(CertError::Mismatch { .. })
            ),
            "{what}"
        );
    }

    // A batch that does not hash to the digest the votes are for.
    let mut forged = pp.clone();
    forged.batch.push(c.request(99));
    let forged = PreparedCert {
        pre_prepare: retagged(&cert.pre_prepare, forged, cert.pre_prepare.principal()),
        prepares: cert.prepares.clone(),
    };
    assert_eq!(
        check_prepared_cert(&cfg, &forged),
        Err(CertError::BatchDigest)
    );
}

#[test]
fn a_commit_certificate_needs_q_matching_commits_from_distinct_validators() {
    let c = decided();
    let cfg = c.config(2);
    let cert = c.delivered[2][0].certificate.clone();
    assert_eq!(check_commit_cert(&cfg, &cert), Ok(()));
    let short = CommitCert {
        pre_prepare: cert.pre_prepare.clone(),
        commits: cert.commits[..cfg.quorum() - 1].to_vec(),
    };
    assert!(matches!(
        check_commit_cert(&cfg, &short),
        Err(CertError::NotEnoughVotes { .. })
    ));
    let by_requester = CommitCert {
        pre_prepare: retagged(
            &cert.pre_prepare,
            cert.pre_prepare.value().clone(),
            Principal::Requester,
        ),
        commits: cert.commits.clone(),
    };
    assert!(matches!(
        check_commit_cert(&cfg, &by_requester),
        Err(CertError::NotValidator { .. })
    ));
}

#[test]
fn a_checkpoint_certificate_needs_q_matching_checkpoints() {
    let c = decided();
    let cfg = c.config(1);
    let cert = c.stores[1]
        .iter()
        .find_map(|r| match r {
            Record::Stable(s) if s.seq > Seq(0) => Some(s.clone()),
            _ => None,
        })
        .expect("a stable checkpoint");
    let genesis = c.replica(1).stable_checkpoint().state_digest;
    assert_eq!(check_checkpoint_cert(&cfg, &cert, genesis), Ok(()));
    let short = CheckpointCert {
        proof: cert.proof[..cfg.quorum() - 1].to_vec(),
        ..cert.clone()
    };
    assert!(matches!(
        check_checkpoint_cert(&cfg, &short, genesis),
        Err(CertError::NotEnoughVotes { .. })
    ));
    let other_digest = CheckpointCert {
        state_digest: Digest([3; 32]),
        ..cert.clone()
    };
    assert!(matches!(
        check_checkpoint_cert(&cfg, &other_digest, genesis),
        Err(CertError::Mismatch { .. })
    ));
    // Genesis needs no proof, but must be genesis.
    let fake_genesis = CheckpointCert {
        seq: Seq(0),
        state_digest: Digest([3; 32]),
        next_set: None,
        proof: Vec::new(),
    };
    assert_eq!(
        check_checkpoint_cert(&cfg, &fake_genesis, genesis),
        Err(CertError::Genesis)
    );
}

/// Every limit on a batch holds at its bound exactly: one request, or one byte, more is refused.
#[test]
fn a_batch_is_refused_one_request_or_one_byte_past_each_limit() {
    let c = decided();
    let batch = vec![c.request_sized(20, 100), c.request_sized(21, 300)];
    let pp = PrePrepare {
        view: View(0),
        seq: Seq(9),
        digest: batch_digest(&batch),
        batch: batch.clone(),
    };
    let sizes: Vec<usize> = batch.iter().map(limits::request_bytes).collect();
    let (largest, total) = (sizes[1], sizes.iter().sum::<usize>());
    let at = |tweak: &dyn Fn(&mut ReplicaConfig)| {
        let mut cfg = c.config(0);
        tweak(&mut cfg);
        check_batch(&cfg, &pp)
    };
    assert_eq!(
        at(&|cfg| {
            cfg.max_batch = 2;
            cfg.max_request_bytes = largest;
            cfg.max_batch_bytes = total;
        }),
        Ok(()),
        "at every bound"
    );
    assert!(matches!(
        at(&|cfg| cfg.max_batch = 1),
        Err(CertError::BatchTooLarge { .. })
    ));
    assert!(matches!(
        at(&|cfg| cfg.max_request_bytes = largest - 1),
        Err(CertError::RequestTooLarge { .. })
    ));
    assert!(matches!(
        at(&|cfg| cfg.max_batch_bytes = total - 1),
        Err(CertError::BatchBytes { .. })
    ));
    // The same request twice, and a digest that is not the batch's.
    let twice = PrePrepare {
        digest: batch_digest(&[batch[0].clone(), batch[0].clone()]),
        batch: vec![batch[0].clone(), batch[0].clone()],
        ..pp.clone()
    };
    assert!(matches!(
        check_batch(&c.config(0), &twice),
        Err(CertError::DuplicateRequest(..))
    ));
    let wrong = PrePrepare {
        digest: Digest([1; 32]),
        ..pp
    };
    assert_eq!(
        check_batch(&c.config(0), &wrong),
        Err(CertError::BatchDigest)
    );
}

/// A view change carries a valid checkpoint proof and valid prepared certificates from earlier
/// views, inside the window above its checkpoint, one per sequence number.
#[test]
fn a_view_change_is_refused_for_each_thing_a_byzantine_sender_could_bend() {
    let c = decided();
    let cfg = c.config(1);
    let prepared = |seq: u64| {
        c.stores[1]
            .iter()
            .find_map(|r| match r {
                Record::Prepared(p) if p.pre_prepare.value().seq == Seq(seq) => Some(p.clone()),
                _ => None,
            })
            .expect("prepared at seq")
    };
    let stable = c.stores[1]
        .iter()
        .find_map(|r| match r {
            Record::Stable(s) if s.seq == Seq(2) => Some(s.clone()),
            _ => None,
        })
        .expect("stable at 2");
    let genesis = Digest([5; 32]);
    let vc = ViewChange {
        new_view: View(1),
        stable: stable.clone(),
        prepared: vec![prepared(3)],
    };
    assert_eq!(check_view_change(&cfg, &vc, genesis), Ok(()));

    let future = ViewChange {
        new_view: View(0),
        ..vc.clone()
    };
    assert!(matches!(
        check_view_change(&cfg, &future, genesis),
        Err(CertError::FutureCertificate { .. })
    ));
    let below = ViewChange {
        prepared: vec![prepared(2)],
        ..vc.clone()
    };
    assert!(matches!(
        check_view_change(&cfg, &below, genesis),
        Err(CertError::OutsideWindow { .. })
    ));
    // Above the window: from genesis with a window of 2, seq 3 is out.
    let mut narrow = cfg.clone();
    narrow.window = 2;
    let above = ViewChange {
        stable: CheckpointCert {
            seq: Seq(0),
            state_digest: genesis,
            next_set: None,
            proof: Vec::new(),
        },
        ..vc.clone()
    };
    assert!(matches!(
        check_view_change(&narrow, &above, genesis),
        Err(CertError::OutsideWindow { .. })
    ));
    narrow.window = 3;
    assert_eq!(
        check_view_change(&narrow, &above, genesis),
        Ok(()),
        "the window's last seq is in it"
    );
    // A view change from genesis needs no proof, but its checkpoint must be the genesis: one
    // claiming another state at seq 0 would let its sender re-base the new view on that state.
    // (cargo-mutants at 8c1a26e: the proof check's `||` as `&&` skipped this check.)
    let fake_genesis = ViewChange {
        stable: CheckpointCert {
            state_digest: Digest([6; 32]),
            ..above.stable.clone()
        },
        ..above.clone()
    };
    assert_eq!(
        check_view_change(&narrow, &fake_genesis, genesis),
        Err(CertError::Genesis)
    );
    // The prepared batches' bytes, bounded by twice the window's budget: at the bound exactly,
    // and one byte under it.
    let two = ViewChange {
        prepared: vec![prepared(2), prepared(3)],
        ..above.clone()
    };
    let bytes: usize = two
        .prepared
        .iter()
        .map(|p| limits::batch_bytes(&p.pre_prepare.value().batch))
        .sum();
    assert_eq!(bytes % limits::VIEW_CHANGE_SLACK, 0, "two equal batches");
    let mut budget = cfg.clone();
    budget.max_window_bytes = bytes / limits::VIEW_CHANGE_SLACK;
    assert_eq!(check_view_change(&budget, &two, genesis), Ok(()));
    budget.max_window_bytes -= 1;
    assert!(matches!(
        check_view_change(&budget, &two, genesis),
        Err(CertError::ViewChangeBytes { .. })
    ));
    let twice = ViewChange {
        prepared: vec![prepared(3), prepared(3)],
        ..vc.clone()
    };
    assert_eq!(
        check_view_change(&cfg, &twice, genesis),
        Err(CertError::DuplicateSeq(Seq(3)))
    );
    let weak_stable = ViewChange {
        stable: CheckpointCert {
            proof: stable.proof[..1].to_vec(),
            ..stable.clone()
        },
        ..vc.clone()
    };
    assert!(matches!(
        check_view_change(&cfg, &weak_stable, genesis),
        Err(CertError::NotEnoughVotes { .. })
    ));
    let p = prepared(3);
    let weak_prepared = ViewChange {
        prepared: vec![PreparedCert {
            pre_prepare: p.pre_prepare.clone(),
            prepares: p.prepares[..1].to_vec(),
        }],
        ..vc
    };
    assert!(matches!(
        check_view_change(&cfg, &weak_prepared, genesis),
        Err(CertError::NotEnoughVotes { .. })
    ));
}

/// A new primary's plan (PBFT §4.4): from the highest stable checkpoint among the view changes,
/// every seq up to the highest prepared one, each with the batch prepared in the highest view
/// (whichever view change reports it first), the null batch where none was prepared, and
/// nothing at or below the checkpoint. cargo-mutants (consensus shard 0) found `compute` bent
/// five ways with every test passing: the checkpoint's `<=` as `>`, the view comparison as `==`
/// or `<`, and the first slot `min_s + 1` as `min_s * 1`.
#[test]
fn a_new_view_plan_keeps_the_highest_view_batch_per_seq_and_nulls_the_gaps() {
    let c = decided();
    let cert = a_prepared_cert(&c);
    let envelope = Arc::clone(cert.pre_prepare.envelope());
    let pre_prepare = |view: u64, seq: u64, nonce: u64| PreparedCert {
        pre_prepare: retagged(
            &cert.pre_prepare,
            PrePrepare {
                view: View(view),
                seq: Seq(seq),
                digest: Digest([nonce as u8; 32]),
                batch: vec![c.request(nonce)],
            },
            Principal::Validator(ReplicaId(0)),
        ),
        prepares: vec![],
    };
    let checkpoint = |seq: u64| CheckpointCert {
        seq: Seq(seq),
        state_digest: Digest([0; 32]),
        next_set: None,
        proof: vec![],
    };
    let view_change = |stable: u64, prepared: Vec<PreparedCert>| {
        Signed::from_verified(
            ViewChange {
                new_view: View(3),
                stable: checkpoint(stable),
                prepared,
            },
            Arc::clone(&envelope),
            Principal::Validator(ReplicaId(1)),
        )
    };
    // Seq 3 is below the best checkpoint (4); seq 5 was prepared in view 1 and view 2; seq 6
    // nowhere; seq 7 in view 1.
    let low = view_change(
        2,
        vec![
            pre_prepare(1, 3, 10),
            pre_prepare(1, 5, 11),
            pre_prepare(1, 7, 12),
        ],
    );
    let high = view_change(4, vec![pre_prepare(2, 5, 13)]);
    let nonces = |plan: &NewViewPlan| -> Vec<(u64, Vec<u64>)> {
        plan.slots
            .iter()
            .map(|(s, b)| (s.0, b.iter().map(|r| r.value().nonce).collect()))
            .collect()
    };
    for order in [vec![low.clone(), high.clone()], vec![high, low]] {
        let plan = NewViewPlan::compute(&order).expect("a plan from two view changes");
        assert_eq!(plan.min_s, Seq(4));
        assert_eq!(
            plan.checkpoint.seq,
            Seq(4),
            "the best checkpoint's proof is reused"
        );
        assert_eq!(
            nonces(&plan),
            vec![(5, vec![13]), (6, vec![]), (7, vec![12])],
            "view 2's batch at 5, a null batch at 6, view 1's at 7; nothing at or below 4"
        );
    }
    assert!(NewViewPlan::compute(&[]).is_none());
}
