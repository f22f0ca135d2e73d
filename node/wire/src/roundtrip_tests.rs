//! Wire round trips and the edge's refusals: forged, nested-forged, unknown and oversize.

use std::sync::Arc;

use scbe_core::consensus::*;
use scbe_core::crypto::{CryptoError, Keypair};
use scbe_proto::v1 as pb;

use crate::*;

fn setup() -> (Vec<Keypair>, Keypair, Directory) {
    let vals: Vec<Keypair> = (0..4)
        .map(|i| Keypair::from_label(&format!("v{i}")))
        .collect();
    let client = Keypair::from_label("client");
    let dir = Directory::new(
        vals.iter().map(Keypair::public).collect(),
        vec![client.public()],
    )
    .expect("directory");
    (vals, client, dir)
}

fn request(client: &Keypair, nonce: u64) -> Signed<Request> {
    Signed::seal(
        Request {
            nonce,
            operation: b"op".to_vec(),
        },
        Kind::Request,
        |r| ProtoCodec.encode_request(r),
        client,
        Principal::Requester,
    )
}

/// A request whose signature was altered after signing.
fn forged_request(client: &Keypair, nonce: u64) -> Signed<Request> {
    let good = request(client, nonce);
    let mut forged = (**good.envelope()).clone();
    forged.signature.0[0] ^= 1;
    Signed::from_verified(good.value().clone(), Arc::new(forged), Principal::Requester)
}

fn pre_prepare(key: &Keypair, batch: Vec<Signed<Request>>) -> Signed<PrePrepare> {
    let pp = PrePrepare {
        view: View(0),
        seq: Seq(1),
        digest: batch_digest(&batch),
        batch,
    };
    Signed::seal(
        pp,
        Kind::PrePrepare,
        |v| ProtoCodec.encode_pre_prepare(v),
        key,
        Principal::Validator(ReplicaId(0)),
    )
}

#[test]
fn pre_prepare_roundtrips_with_nested_requests() {
    let (vals, client, dir) = setup();
    let pp = pre_prepare(&vals[0], vec![request(&client, 1), request(&client, 2)]);
    let bytes = encode_envelope(pp.envelope());
    let opened = open(&bytes, &dir).expect("opens");
    assert_eq!(opened.principal(), Principal::Validator(ReplicaId(0)));
    let Message::PrePrepare(got) = opened.value() else {
        panic!("wrong kind")
    };
    assert_eq!(got.batch.len(), 2);
    assert_eq!(got.digest, pp.value().digest);
    assert_eq!(batch_digest(&got.batch), pp.value().digest);
}

#[test]
fn forged_outer_signature_is_rejected_before_decoding() {
    let (vals, client, dir) = setup();
    let pp = pre_prepare(&vals[0], vec![request(&client, 1)]);
    let mut env = (**pp.envelope()).clone();
    env.signature.0[3] ^= 0x40;
    let err = open(&encode_envelope(&env), &dir).expect_err("must fail");
    assert_eq!(
        err,
        WireError::Crypto(CryptoError::BadSignature(vals[0].public()))
    );
}

#[test]
fn forged_nested_request_rejects_the_whole_pre_prepare() {
    let (vals, client, dir) = setup();
    let pp = pre_prepare(&vals[0], vec![forged_request(&client, 1)]);
    let err = open(&encode_envelope(pp.envelope()), &dir).expect_err("must fail");
    assert!(matches!(err, WireError::Crypto(_)), "{err}");
}

/// A batch may hold requests of keys the directory does not list (requesters admitted since
/// genesis); their signatures are checked like any other.
#[test]
fn a_pre_prepare_opens_with_a_requester_the_directory_does_not_list() {
    let (vals, _, dir) = setup();
    let stranger = Keypair::from_label("stranger");
    let pp = pre_prepare(&vals[0], vec![request(&stranger, 1)]);
    let opened = open(&encode_envelope(pp.envelope()), &dir).expect("opens");
    let Message::PrePrepare(got) = opened.value() else {
        panic!("wrong kind")
    };
    assert_eq!(got.batch[0].principal(), Principal::Requester);
    assert_eq!(got.batch[0].signer(), &stranger.public());
    let forged = pre_prepare(&vals[0], vec![forged_request(&stranger, 1)]);
    let err = open(&encode_envelope(forged.envelope()), &dir).expect_err("must fail");
    assert!(matches!(err, WireError::Crypto(_)), "{err}");
}

#[test]
fn unknown_signer_oversize_and_garbage_are_typed_errors() {
    let (_, _, dir) = setup();
    let stranger = Keypair::from_label("stranger");
    let env = Envelope::seal(Kind::Prepare, vec![], &stranger);
    assert!(matches!(
        open(&encode_envelope(&env), &dir),
        Err(WireError::UnknownSigner(k)) if k == stranger.public()
    ));
    let big = vec![0u8; MAX_ENVELOPE_BYTES + 1];
    assert!(matches!(open(&big, &dir), Err(WireError::TooLarge { .. })));
    assert!(matches!(
        open(&[0xff, 0xff, 0xff], &dir),
        Err(WireError::Decode { .. })
    ));
}

fn relay(key: &Keypair, requests: Vec<Signed<Request>>) -> Signed<Relay> {
    Signed::seal(
        Relay { requests },
        Kind::Relay,
        |v| ProtoCodec.encode_relay(v),
        key,
        Principal::Validator(ReplicaId(1)),
    )
}

#[test]
fn relay_roundtrips_and_a_forged_request_in_it_rejects_the_whole_relay() {
    let (vals, client, dir) = setup();
    let r = relay(&vals[1], vec![request(&client, 1), request(&client, 2)]);
    let opened = open(&encode_envelope(r.envelope()), &dir).expect("opens");
    let Message::Relay(got) = opened.value() else {
        panic!("wrong kind")
    };
    let nonces: Vec<u64> = got.requests.iter().map(|r| r.value().nonce).collect();
    assert_eq!(nonces, vec![1, 2]);

    let r = relay(
        &vals[1],
        vec![request(&client, 4), forged_request(&client, 3)],
    );
    let err = open(&encode_envelope(r.envelope()), &dir).expect_err("must fail");
    assert!(matches!(err, WireError::Crypto(_)), "{err}");
}

#[test]
fn suspect_roundtrips_and_carries_its_signer() {
    let (vals, _, dir) = setup();
    let s = Signed::seal(
        Suspect {
            view: View(7),
            early: true,
        },
        Kind::Suspect,
        |v| ProtoCodec.encode_suspect(v),
        &vals[3],
        Principal::Validator(ReplicaId(3)),
    );
    let opened = open(&encode_envelope(s.envelope()), &dir).expect("opens");
    assert_eq!(opened.validator(), Some(ReplicaId(3)));
    let Message::Suspect(got) = opened.value() else {
        panic!("wrong kind")
    };
    assert_eq!(got.view, View(7));
    assert!(got.early, "a warning stays a warning");
}

/// A client stream's requests opened together: each gets the answer it would get alone, a
/// forged one fails by itself (the batch falls back to single checks), and what passed is in
/// the cache afterwards. A key the directory does not list opens as a requester (requesters
/// change by proposal; the ledger decides whether it is one in force); a key that is no usable
/// public key does not.
#[test]
fn requests_opened_together_fail_one_by_one() {
    let (_, client, dir) = setup();
    let stranger = Keypair::from_label("stranger");
    let cache = VerifiedCache::new(64);
    let good: Vec<Signed<Request>> = (1..=6).map(|n| request(&client, n)).collect();
    let mut envs: Vec<pb::Envelope> = good
        .iter()
        .map(|r| envelope_to_proto(r.envelope()))
        .collect();
    envs[2] = envelope_to_proto(forged_request(&client, 3).envelope());
    envs.push(envelope_to_proto(request(&stranger, 7).envelope()));
    let mut unusable = (**request(&stranger, 8).envelope()).clone();
    unusable.signer = scbe_core::crypto::PublicKey([0; 32]);
    envs.push(envelope_to_proto(&unusable));
    envs.push(envelope_to_proto(forged_request(&stranger, 9).envelope()));
    let opened = open_many_cached(envs, &dir, &cache);
    assert_eq!(opened.len(), 9, "one answer per envelope, in order");
    for (i, o) in opened.iter().enumerate() {
        match i {
            2 | 8 => assert!(matches!(o, Err(WireError::Crypto(_))), "forged: {o:?}"),
            6 => {
                let m = o.as_ref().expect("a stranger's request opens");
                assert_eq!(m.principal(), Principal::Requester);
                assert_eq!(m.signer(), &stranger.public());
            }
            7 => assert!(
                matches!(o, Err(WireError::UnknownSigner(_))),
                "unusable key: {o:?}"
            ),
            _ => {
                let m = o.as_ref().expect("a good request opens");
                assert_eq!(m.envelope(), good[i].envelope());
                assert!(cache.contains(&good[i].envelope().digest()));
            }
        }
    }
    assert!(!cache.contains(&forged_request(&client, 3).envelope().digest()));
    // All good (and all in the cache now): every request opens.
    let again: Vec<pb::Envelope> = good
        .iter()
        .map(|r| envelope_to_proto(r.envelope()))
        .collect();
    assert!(open_many_cached(again, &dir, &cache)
        .iter()
        .all(Result::is_ok));
}
