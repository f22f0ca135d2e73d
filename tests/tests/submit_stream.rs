//! `SubmitStream`: many requests on one call, each answered once by its position in the stream,
//! with the same checks as unary `Submit` (a refused one gets its error, the stream goes on).

use scbe_core::crypto::Keypair;
use scbe_core::governance::Operation;
use scbe_proto::v1 as pb;
use scbe_tests::{fast, release, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_streamed_request_is_answered_once_by_its_position() {
    let mut h = Harness::start(fast()).await;
    let key = h.requester.clone();
    // Wait until the cluster decides; streamed requests then go through without retries.
    let first = h
        .submit(
            0,
            Operation::RegisterRelease {
                release: release("warm-up"),
            },
        )
        .await;

    let mut sent: Vec<pb::Envelope> = (0..40)
        .map(|i| {
            h.request(
                &key,
                &Operation::RegisterRelease {
                    release: release(&format!("streamed-{i}")),
                },
            )
        })
        .collect();
    // Position 40: a key the cluster does not know. 41: not a request envelope. 42: the request
    // at position 0 again (its nonce is taken by then or pending: never decided twice).
    let stranger = Keypair::from_label("a key no validator lists");
    sent.push(h.request(
        &stranger,
        &Operation::RegisterRelease {
            release: release("stranger"),
        },
    ));
    let mut wrong_kind = sent[1].clone();
    wrong_kind.kind = pb::Kind::Prepare as i32;
    sent.push(wrong_kind);
    sent.push(sent[0].clone());

    let mut c = h.client(1).await;
    let mut answers = c
        .submit_stream(tokio_stream::iter(sent.clone()))
        .await
        .expect("stream accepted")
        .into_inner();
    let mut by_index = std::collections::BTreeMap::new();
    while let Some(a) = answers.message().await.expect("stream stays up") {
        assert!(
            by_index.insert(a.index, a.clone()).is_none(),
            "index {} answered twice",
            a.index
        );
    }
    assert_eq!(
        by_index.len(),
        sent.len(),
        "one answer per envelope: {by_index:?}"
    );

    for i in 0..40u64 {
        let a = &by_index[&i];
        let reply = a
            .reply
            .as_ref()
            .unwrap_or_else(|| panic!("request {i} decided: {a:?}"));
        assert!(reply.accepted, "request {i}: {:?}", reply.reasons);
        assert!(
            reply.seq > first.seq,
            "request {i} ordered after the warm-up"
        );
    }
    assert_eq!(
        by_index[&40].code,
        tonic::Code::PermissionDenied as i32,
        "{:?}",
        by_index[&40]
    );
    assert!(
        by_index[&40]
            .message
            .contains("is not a requester of this cluster"),
        "{:?}",
        by_index[&40]
    );
    assert_eq!(
        by_index[&41].code,
        tonic::Code::InvalidArgument as i32,
        "{:?}",
        by_index[&41]
    );
    // The duplicate is the same request, not a second one: it is answered with the first
    // one's decision (already decided, or waiting with it for the same batch), never decided
    // twice and never refused.
    let dup = &by_index[&42];
    let first_reply = by_index[&0].reply.as_ref().expect("decided");
    let r = dup
        .reply
        .as_ref()
        .unwrap_or_else(|| panic!("the duplicate was refused: {dup:?}"));
    assert_eq!(r.seq, first_reply.seq, "{dup:?}");
    assert_eq!(r.accepted, first_reply.accepted, "{dup:?}");

    // Every streamed release is in the ledger, once.
    let s = h.summary(1).await;
    for i in 0..40 {
        assert!(
            s.releases.contains_key(&format!("streamed-{i}")),
            "streamed-{i}: {s:?}"
        );
    }
    assert!(!s.releases.contains_key("stranger"), "{s:?}");
}
