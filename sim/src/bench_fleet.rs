//! `scbe-sim bench-fleet`: what rolling out costs and how fast a degraded canary is undone.
//!
//! 1. Rollback reaction, on a real process cluster (4 validators, 6 agents, one sample a
//!    second): from the first degraded sample (its signed report arriving on the agent's health
//!    stream) to every touched agent reporting the old version itself (`Describe`), for
//!    `breach_samples` 1 and 2.
//! 2. A production rollout across a large simulated fleet (`bench_large_fleet.rs`), in one process
//!    without gRPC: the real ledger (four copies, fed the same operations in the same order, as
//!    consensus would), the real watcher, the real agent core and synthetic model, real signatures
//!    everywhere, with the default 5-minute window and 10-second samples in virtual time. The wall
//!    time of the leader's executor work (order derivation, endorsements, ack checks, watcher ticks
//!    every 250 ms, progress operations), of one validator's monitor (checking every report of the
//!    agents at risk) and of one ledger applying the operations is measured separately and set
//!    against the monitoring windows' duration.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::delay_relay::{DelayRelay, LinkDelay};
use crate::local::{Launch, LocalCluster, LocalOptions};
use anyhow::{anyhow, bail};
use scbe_core::governance::ledger::RolloutStatus;
use scbe_core::governance::{Operation, Stage};
use scbe_core::rollout::health::HealthThresholds;
use scbe_wire::fleet_client;
use scbe_wire::governance_client::Client;

use crate::fleet::release;

const DEADLINE: Duration = Duration::from_secs(180);

pub fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// Rollback reaction times of `runs` degrading canaries with the given breach count. With a
/// non-zero `link`, every validator and every agent sits behind a delaying relay
/// (`delay_relay.rs`): each validator-to-validator and validator-to-agent link is delayed once
/// per direction, as if they were far apart; the requester and the observers reach them
/// directly.
pub async fn reaction(
    launch: &Launch,
    dir: &Path,
    runs: usize,
    breach: u32,
    link: LinkDelay,
) -> anyhow::Result<Vec<Duration>> {
    let mut opts = LocalOptions {
        request_timeout: Duration::from_millis(400),
        view_change_timeout: Duration::from_millis(800),
        status_interval: Duration::from_millis(200),
        agents: 6,
        degrade: Some("bad".into()),
        degrade_after: 3,
        window: Duration::from_secs(10),
        sample_interval: Duration::from_secs(1),
        deploy_deadline: Duration::from_secs(10),
        breach_samples: breach,
        ..LocalOptions::default()
    };
    let (peer_listeners, peer_relays) = DelayRelay::bind_all(link, 4).await?;
    let (agent_listeners, agent_relays) = DelayRelay::bind_all(link, opts.agents).await?;
    opts.peer_relays = peer_relays;
    opts.agent_relays = agent_relays;
    let mut cluster = LocalCluster::generate(launch, dir, 4, &opts)?;
    let _relays = (
        DelayRelay::serve_all(
            peer_listeners,
            cluster.nodes.iter().map(|n| n.addr),
            link,
            0,
        )?,
        DelayRelay::serve_all(
            agent_listeners,
            cluster.agents.iter().map(|a| a.addr),
            link,
            100,
        )?,
    );
    cluster.start_all()?;
    let key = scbe_wire::key_file::read_key_file(&cluster.requester_key)?;
    let start = Instant::now();
    let mut c = loop {
        match Client::connect(&cluster.dial(0), Some(key.clone())).await {
            Ok(c) => break c,
            Err(_) if start.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => bail!("validator 0 does not start: {e}"),
        }
    };
    loop {
        let s = c.summary().await.ok();
        if s.as_ref().map(|s| s.fleet.agents_reporting) == Some(6) {
            break;
        }
        if start.elapsed() > DEADLINE {
            bail!("the fleet did not come up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let thresholds = HealthThresholds {
        breach_samples: breach,
        ..HealthThresholds::default()
    };
    let mut out = Vec::new();
    for run in 0..runs {
        let version = format!("r{run}-bad");
        let r = c
            .submit(&Operation::RegisterRelease {
                release: release(&version),
            })
            .await?;
        if !r.accepted {
            bail!("register {version}: {:?}", r.reasons);
        }
        let r = c
            .submit(&Operation::Promote {
                version: version.clone(),
                to: Stage::Canary,
                rollback_to: "v0".into(),
                pause_before: None,
                steps: Vec::new(),
            })
            .await?;
        let p = r
            .proposal
            .ok_or_else(|| anyhow!("promotion of {version} refused: {:?}", r.reasons))?;
        let decided = c.wait_decision(p, DEADLINE, |_, _| {}).await?;
        let rollout = decided.rollout.ok_or_else(|| anyhow!("not approved"))?;
        // Which agents the canary touches.
        let batch: Vec<String> = loop {
            let s = c.summary().await?;
            if let Some(b) = s.rollout(rollout).and_then(|r| r.current_batch.clone()) {
                break b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let idx: Vec<usize> = batch
            .iter()
            .filter_map(|id| cluster.agents.iter().position(|a| a.id == *id))
            .collect();
        // The first degraded sample, as its signed report arrives.
        let (tx, mut first) = tokio::sync::mpsc::channel::<Instant>(16);
        let mut watchers = Vec::new();
        for &i in &idx {
            let a = &cluster.agents[i];
            let pk = scbe_wire::key_file::read_key_file(&dir.join(format!("keys/{}.key", a.id)))?
                .public();
            let (tx, v) = (tx.clone(), version.clone());
            let genesis = cluster.genesis;
            let ch = cluster
                .agent_channel(i, Duration::from_secs(600))
                .map_err(|e| anyhow!(e))?;
            watchers.push(tokio::spawn(async move {
                let Ok(mut s) = fleet_client::health_stream(ch, &genesis, &[]).await else {
                    return;
                };
                while let Ok(Some(u)) = fleet_client::next_update(&mut s).await {
                    let Some(Ok(rep)) = u.report else { continue };
                    let Ok(b) = rep.open(|_| Some(&pk)) else {
                        continue;
                    };
                    if b.version == v
                        && b.latest
                            .last()
                            .is_some_and(|x| thresholds.breach(x).is_some())
                    {
                        let _ = tx.send(Instant::now()).await;
                        return;
                    }
                }
            }));
        }
        let t0 = tokio::time::timeout(DEADLINE, first.recv())
            .await
            .map_err(|_| anyhow!("no degraded sample from the canary of {version}"))?
            .ok_or_else(|| anyhow!("health streams ended"))?;
        // Every touched agent says it runs v0 again.
        let t1 = loop {
            let mut back = 0;
            for &i in &idx {
                let ch = cluster
                    .agent_channel(i, Duration::from_secs(5))
                    .map_err(|e| anyhow!(e))?;
                if fleet_client::describe(ch)
                    .await
                    .map_err(|e| anyhow!(e))?
                    .current_version
                    == "v0"
                {
                    back += 1;
                }
            }
            if back == idx.len() {
                break Instant::now();
            }
            if t0.elapsed() > DEADLINE {
                bail!("the canary of {version} was not rolled back");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        for w in watchers {
            w.abort();
        }
        // The ledger must agree before the next run (one rollout at a time).
        loop {
            let s = c.summary().await?;
            let done = s
                .rollout(rollout)
                .is_some_and(|r| r.status == RolloutStatus::RolledBack);
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        out.push(t1.saturating_duration_since(t0));
    }
    Ok(out)
}
