//! End to end: requests that are each within the limits must not halt the cluster, and one
//! over them is refused before it is ordered (hardening issue, points 1 and 2).

use std::time::{Duration, Instant};

use scbe_node::governance::operation::MAX_OPERATION_BYTES;
use scbe_node::governance::Operation;
use scbe_proto::v1 as pb;
use scbe_tests::{fast, release, Harness};

/// Generous: two cores shared with the test's own clients.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_maximum_size_requests_does_not_halt_the_cluster() {
    let mut h = Harness::start(fast()).await;
    let key = h.requester.clone();

    // One request just under the envelope cap: refused by Submit, nothing ordered.
    let huge = h.raw_request(&key, vec![b'x'; 15 * 1024 * 1024]);
    let mut c = h.client(0).await;
    let before = h.status(0, None).await.last_executed;
    let err = c.submit(huge).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("nothing was ordered"), "{err}");

    // About a hundred concurrent submits of maximum-size operations to the primary. Each is
    // admitted and ordered (the ledger then refuses the bytes as an operation, which is fine:
    // ordering them is the load).
    let burst: Vec<pb::Envelope> = (0..100)
        .map(|_| h.raw_request(&key, vec![b'x'; MAX_OPERATION_BYTES]))
        .collect();
    let url = h.cluster.url(0);
    let mut tasks = Vec::new();
    for env in burst {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            loop {
                let attempt = async {
                    let mut c = pb::governance_client::GovernanceClient::connect(url.clone())
                        .await?
                        .max_decoding_message_size(scbe_node::net::MAX_ENVELOPE_BYTES)
                        .max_encoding_message_size(scbe_node::net::MAX_ENVELOPE_BYTES);
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                        c.submit(env.clone()).await?.into_inner(),
                    )
                };
                match attempt.await {
                    Ok(r) => return r,
                    Err(e) if start.elapsed() < DEADLINE => {
                        eprintln!("burst submit not decided yet: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("a burst request was never decided: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert!(r.seq > before, "ordered after the refused request");
    }
    // A fresh request is decided, on every validator.
    let r = h
        .submit(
            0,
            Operation::RegisterRelease {
                release: release("after-burst"),
            },
        )
        .await;
    assert!(r.accepted, "{:?}", r.reasons);
    for i in 0..4 {
        h.wait_status(i, None, "the fresh request executed", |s| {
            s.last_executed >= r.seq
        })
        .await;
    }
}
