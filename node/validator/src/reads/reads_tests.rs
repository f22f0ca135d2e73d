//! The read path holds with the core stalled: `Status` and `Watch` are answered from what the
//! core published while its queue is full and nobody reads it (before the read path they waited
//! in that queue, and a full queue refused them), and open `Watch` streams are capped.

use std::sync::Arc;
use std::time::Duration;

use scbe_core::consensus::{Digest, Directory, ReplicaConfig, ReplicaId};
use scbe_core::crypto::Keypair;
use scbe_core::governance::event::Event;
use scbe_core::governance::ledger::journal::Window;
use scbe_core::governance::ledger::LedgerConfig;
use scbe_core::governance::{Gates, Ledger, Tongue};
use scbe_core::rollout::health::HealthThresholds;
use scbe_core::rollout::watcher::WatchSettings;
use scbe_core::validator_step::ValidatorStep;
use scbe_proto::v1 as pb;
use scbe_proto::v1::governance_server::Governance as _;
use scbe_wire::status_summary::StatusSummary;
use scbe_wire::ProtoCodec;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;

use crate::inbound::Inbound;
use crate::reads::Published;
use crate::reads::Reads;
use crate::services::governance_service::GovernanceService;
use crate::services::quota::{QuotaLimits, Quotas};
use crate::storage::RecordStore;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_watch_are_answered_while_the_core_queue_is_full_and_unread() {
    let keys: Vec<Keypair> = (0..4)
        .map(|i| Keypair::from_label(&format!("r{i}")))
        .collect();
    let publics: Vec<_> = keys.iter().map(Keypair::public).collect();
    let directory = Directory::new(publics.clone(), vec![]).expect("directory");
    let cfg = ReplicaConfig::new(ReplicaId(1), directory.clone()).expect("config");
    let ledger = Ledger::new(LedgerConfig {
        validators: publics,
        known_good: vec!["v0".into()],
        known_good_units: Default::default(),
        gates: Gates::default(),
        vote_window_seqs: 100,
        agents: vec![],
        health: HealthThresholds::default(),
        analysis: Default::default(),
        notify_sinks: Vec::new(),
        state_digest: scbe_core::governance::ledger::StateDigest::Tree,
        requesters: Default::default(),
    });
    let watch = WatchSettings {
        step_deadline_ms: 1_000,
        resubmit_ms: 100,
        leader_grace_ms: 100,
        stall_ms: 100,
        max_op_bytes: 1 << 16,
    };
    let (step, _) = ValidatorStep::start(cfg, keys[1].clone(), Arc::new(ProtoCodec), ledger, watch)
        .expect("step");
    let (published, model) = Published::new(&step, Duration::from_millis(50));
    let mut journal: Window<Event, 16> = Window::default();
    for i in 0..3 {
        journal.push(Event {
            seq: i,
            tongue: Tongue::UM,
            kind: "release_registered".into(),
            subject: format!("r{i}"),
            detail: String::new(),
        });
    }
    published.events.catch_up(&journal);
    let dir = tempfile::tempdir().expect("tmp");
    let genesis = Digest::of_parts(&[b"reads"]);
    let store = RecordStore::open(
        &dir.path().join("records.redb"),
        &keys[1].public(),
        &genesis,
    )
    .expect("store");
    let reads = Reads {
        model,
        events: Arc::clone(&published.events),
        index: Arc::clone(&published.index),
        health: Arc::default(),
        store: store.reader(),
        links: Arc::default(),
        genesis,
        cluster: "reads".into(),
        stale_after: Duration::from_secs(3),
        cache: Arc::default(),
        digest_wanted: Arc::clone(&published.digest_wanted),
        pace: Arc::default(),
        summary_wanted: Arc::clone(&published.summary_wanted),
        proofs: Arc::clone(&published.proofs),
    };
    // The core's queue: full, and its receiver never reads.
    let (inbound, _never_read) = mpsc::channel(1);
    inbound
        .try_send(Inbound::FleetTick)
        .expect("fills the queue");
    let service = GovernanceService {
        inbound,
        directory: Arc::new(crate::edge_directory::EdgeDirectory::new(directory, [])),
        verified: Arc::new(scbe_wire::VerifiedCache::new(16)),
        reads,
        watch_slots: Arc::new(tokio::sync::Semaphore::new(2)),
        max_request_bytes: 1 << 20,
        quotas: Arc::new(Quotas::new(QuotaLimits {
            requests: 10,
            bytes: 1 << 20,
            window: Duration::from_secs(60),
        })),
        genesis,
    };

    let reply = tokio::time::timeout(
        WAIT,
        service.status(tonic::Request::new(pb::StatusRequest::default())),
    )
    .await
    .expect("answered with the core stalled")
    .expect("status")
    .into_inner();
    assert_eq!((reply.node, reply.cluster.as_str()), (1, "reads"));
    let summary: StatusSummary = serde_json::from_str(&reply.detail_json).expect("a summary");
    assert_eq!(summary.known_good.iter().collect::<Vec<_>>(), ["v0"]);
    let brief = service
        .status(tonic::Request::new(pb::StatusRequest {
            brief: true,
            ..Default::default()
        }))
        .await
        .expect("status")
        .into_inner();
    assert!(brief.detail_json.is_empty(), "brief: the position only");

    let mut streams = Vec::new();
    for _ in 0..2 {
        let s = tokio::time::timeout(
            WAIT,
            service.watch(tonic::Request::new(pb::WatchRequest { from_event: 1 })),
        )
        .await
        .expect("answered")
        .expect("watch")
        .into_inner();
        streams.push(s);
    }
    for s in &mut streams {
        let mut got = Vec::new();
        while got.len() < 2 {
            let e = tokio::time::timeout(WAIT, s.next())
                .await
                .expect("events arrive with the core stalled")
                .expect("open")
                .expect("an event");
            got.push((e.index, e.subject));
        }
        assert_eq!(got, [(1, "r1".to_string()), (2, "r2".to_string())]);
    }
    let refused = service
        .watch(tonic::Request::new(pb::WatchRequest { from_event: 0 }))
        .await
        .expect_err("a third stream is over the cap");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    drop(streams);
}
