//! `scbe-sim bench-core`: the consensus core's cost per decision with real signatures and no
//! network.
//!
//! Method. `n` replicas live in one thread. Client requests are signed up front (client work is
//! not counted) and handed to the primary a pipeline at a time (`batch` x `max_inflight_batches`),
//! which relays them to the backups and orders them as usual. Every
//! message is encoded, queued, opened by the real edge (`scbe_wire::open`: signature checks, then
//! decode) and handled by the real `Replica`, until all requests are executed everywhere. The
//! wall time of that loop is the cluster's CPU time (one thread, nothing else running in it).
//!
//! Signature work is measured in the run itself: with the `timing` feature, `crypto` adds the time
//! of every signing and verification call (single and batch) to a per-thread counter. Protocol
//! work is everything else: total minus that counter (decoding, encoding, hashing, the state
//! machine, allocation).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scbe_core::consensus::{
    Action, Codec, Directory, Input, Kind, Principal, Replica, ReplicaConfig, ReplicaId, Request,
    Signed,
};
use scbe_core::crypto::{self, Keypair};
use scbe_wire::{encode_envelope, open, ProtoCodec};

use crate::app::HashChainApp;

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub decisions: u64,
    pub requests: u64,
    pub total: Duration,
    pub signature: Duration,
}

impl Sample {
    pub fn protocol(&self) -> Duration {
        self.total.saturating_sub(self.signature)
    }
}

/// Runs one measurement: `requests` requests in batches of at most `batch` on `n` replicas.
pub fn measure(n: usize, requests: u64, batch: usize) -> Sample {
    let keys: Vec<Keypair> = (0..n)
        .map(|i| Keypair::from_label(&format!("bench/validator/{i}")))
        .collect();
    let client = Keypair::from_label("bench/client");
    let dir = Directory::new(
        keys.iter().map(Keypair::public).collect(),
        vec![client.public()],
    )
    .expect("distinct keys");
    let codec: Arc<dyn Codec> = Arc::new(ProtoCodec);
    let mut replicas: Vec<Replica<HashChainApp>> = (0..n)
        .map(|i| {
            let mut cfg =
                ReplicaConfig::new(ReplicaId(i as u32), dir.clone()).expect("n >= 4 validators");
            cfg.max_batch = batch;
            cfg.max_pending = requests as usize + 1;
            Replica::new(cfg, keys[i].clone(), codec.clone(), HashChainApp::new())
                .expect("valid config")
        })
        .collect();
    let reqs: Vec<Signed<Request>> = (1..=requests)
        .map(|nonce| {
            Signed::seal(
                Request {
                    nonce,
                    operation: nonce.to_be_bytes().to_vec(),
                },
                Kind::Request,
                |r| ProtoCodec.encode_request(r),
                &client,
                Principal::Requester,
            )
        })
        .collect();

    let mut queue: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
    let mut decisions = 0u64;
    let mut executed = 0u64;
    crypto::timing::take_nanos();
    let start = Instant::now();
    let route = |from: usize,
                 actions: Vec<Action>,
                 queue: &mut VecDeque<(usize, Vec<u8>)>,
                 decisions: &mut u64,
                 executed: &mut u64| {
        for a in actions {
            match a {
                Action::Broadcast(env) => {
                    let bytes = encode_envelope(&env);
                    for to in (0..n).filter(|j| *j != from) {
                        queue.push_back((to, bytes.clone()));
                    }
                }
                Action::Send { to, envelope } => {
                    queue.push_back((to.0 as usize, encode_envelope(&envelope)));
                }
                Action::Deliver(d) if from == 0 => {
                    *decisions += 1;
                    *executed += d.executed.len() as u64;
                }
                _ => {}
            }
        }
    };
    // Offer a pipeline's worth of requests at a time (max_inflight_batches full batches), then
    // let the cluster work: batches fill up to `batch` as they would under steady load.
    let chunk = batch * replicas[0].config().max_inflight_batches as usize;
    for group in reqs.chunks(chunk) {
        for r in group {
            let actions = replicas[0].handle(Input::ClientRequest(r.clone()));
            route(0, actions, &mut queue, &mut decisions, &mut executed);
        }
        while let Some((to, bytes)) = queue.pop_front() {
            let m = open(&bytes, &dir).expect("honest envelopes open");
            let actions = replicas[to].handle(Input::Message(m));
            route(to, actions, &mut queue, &mut decisions, &mut executed);
        }
    }
    let total = start.elapsed();
    assert_eq!(executed, requests, "every request executed");
    for r in &replicas {
        assert_eq!(
            r.last_executed().0,
            decisions,
            "every replica executed every batch"
        );
    }

    let signature = Duration::from_nanos(crypto::timing::take_nanos());
    Sample {
        decisions,
        requests,
        total,
        signature,
    }
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by_key(|s| s.total);
    v[v.len() / 2]
}

/// Runs `runs` measurements per cluster size and prints the medians as a Markdown table.
pub fn run_and_print(sizes: &[usize], requests: u64, batch: usize, runs: usize) {
    println!(
        "bench-core: {requests} requests, batch <= {batch}, median of {runs} runs, one thread\n"
    );
    println!("| n | decisions/s | requests/s | CPU/decision (cluster) | signature | protocol | protocol share |");
    println!("|---|---|---|---|---|---|---|");
    for &n in sizes {
        let samples: Vec<Sample> = (0..runs.max(1))
            .map(|_| measure(n, requests, batch))
            .collect();
        let s = median(samples);
        let secs = s.total.as_secs_f64();
        let per = |d: Duration| d.as_secs_f64() * 1e6 / s.decisions as f64;
        println!(
            "| {n} | {:.0} | {:.0} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1}% |",
            s.decisions as f64 / secs,
            s.requests as f64 / secs,
            per(s.total),
            per(s.signature),
            per(s.protocol()),
            100.0 * s.protocol().as_secs_f64() / secs
        );
    }
}
