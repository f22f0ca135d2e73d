//! `scbe status` (the ledger summary, readable or `--json`, or one proposal with its votes) and
//! `scbe watch` (the ledger's events as they happen, agents' health changes, and a followed
//! rollout as live progress bars).

use scbe_wire::tls::Dial;
use std::process::ExitCode;
use std::time::Duration;

use super::{client, follow_chain, out, runtime, Unusable};
use crate::cluster_view::{Answer, ClusterView};
use crate::render;

/// `genesis`: the cluster's genesis file, if given: the chain of validator sets the asked
/// validator reports is checked from it, and the peers are then dialled pinned to every key the
/// chain proves (a validator re-keyed since the genesis is reached under its new key).
pub fn run_status(
    node: &Dial,
    genesis: Option<&std::path::Path>,
    proposal: Option<u64>,
    json: bool,
) -> Result<ExitCode, Unusable> {
    runtime()?.block_on(async {
        let mut c = client(node, &None).await?;
        if let Some(p) = proposal {
            let p = c.proposal(p).await.map_err(|e| Unusable(e.into()))?;
            if json {
                out(&serde_json::to_string(&p).map_err(|e| Unusable(e.into()))?);
            } else {
                out(&render::decision_text(&p).0);
                for (id, vote) in &p.votes {
                    out(&format!("  {}", render::vote_line(*id, vote)));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let (reply, summary) = c.status_summary().await.map_err(|e| Unusable(e.into()))?;
        if json {
            out(&serde_json::to_string(&summary).map_err(|e| Unusable(e.into()))?);
        } else {
            out(render::status_text(&reply, &summary).trim_end());
            if let Some(g) = genesis {
                let followed = scbe_wire::genesis::Genesis::load(g)
                    .map_err(anyhow::Error::from)
                    .and_then(|g| follow_chain(node, &g, &reply));
                if let Err(e) = followed {
                    out(&format!(
                        "validator sets: the chain the validator reports does not check from the genesis ({e}); peers are dialled with the genesis keys"
                    ));
                }
            }
            out(cluster_view(node, reply).await.text().trim_end());
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// How long `scbe status` waits for each peer of the validator asked.
const PEER_DEADLINE: Duration = Duration::from_secs(3);

/// Asks every peer the validator `asked` links to (at the address it uses), all at once.
async fn cluster_view(node: &Dial, asked: scbe_proto::v1::StatusReply) -> ClusterView {
    let asks = asked.peers.iter().map(|l| {
        let (id, address) = (l.id, l.address.clone());
        let peer = node.to(&address);
        async move {
            let ask = async {
                let mut c = scbe_wire::governance_client::Client::connect(&peer, None)
                    .await
                    .map_err(|e| e.to_string())?;
                c.status(None).await.map_err(|e| e.to_string())
            };
            let reply = tokio::time::timeout(PEER_DEADLINE, ask)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {PEER_DEADLINE:?}")));
            Answer { id, address, reply }
        }
    });
    let peers = futures_util::future::join_all(asks).await;
    ClusterView { asked, peers }
}

pub fn event_line(e: &scbe_proto::v1::LedgerEvent) -> String {
    format!(
        "#{:<5} seq {:<6} {} {:<9} {:<8} {:<20} {} {}",
        e.index, e.seq, e.tag, e.tongue, e.phase, e.kind, e.subject, e.detail
    )
}

pub fn run_watch(node: &Dial, from: u64, follow: Option<u64>) -> Result<ExitCode, Unusable> {
    use crate::progress::{Ended, RolloutProgress};
    runtime()?.block_on(async {
        let mut c = client(node, &None).await?;
        let mut poll = client(node, &None).await?;
        let mut stream = c.watch(from).await.map_err(|e| Unusable(e.into()))?;
        let mut progress: Option<RolloutProgress> = follow.map(RolloutProgress::new);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut health = render::HealthChanges::default();
        loop {
            tokio::select! {
                e = stream.message() => {
                    let Some(e) = e.map_err(|s| Unusable(anyhow::anyhow!("{:?}: {}", s.code(), s.message())))? else {
                        return Ok(ExitCode::SUCCESS);
                    };
                    if let Some(r) = follow {
                        if e.subject != format!("rollout:{r}") {
                            continue;
                        }
                    }
                    if e.kind == "rollout_planned" && follow.is_none() {
                        if let Some(id) = e.subject.strip_prefix("rollout:").and_then(|x| x.parse().ok()) {
                            progress = Some(RolloutProgress::new(id));
                        }
                    }
                    let line = event_line(&e);
                    match &progress {
                        Some(p) => p.println(&line),
                        None => {
                            if !out(&line) {
                                return Ok(ExitCode::SUCCESS); // stdout closed
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    let summary = poll.summary().await.map_err(|e| Unusable(e.into()))?;
                    // Fleet health as AV-tagged lines: every change of an agent's verdict.
                    for line in health.changes(&summary) {
                        match &progress {
                            Some(p) => p.println(&line),
                            None => {
                                if !out(&line) {
                                    return Ok(ExitCode::SUCCESS);
                                }
                            }
                        }
                    }
                    let Some(p) = progress.as_mut() else { continue };
                    let Some(ended) = p.update(&summary) else { continue };
                    let line = match &ended {
                        Ended::Completed => "rollout completed".to_string(),
                        Ended::RolledBack(why) => format!("rollout rolled back: {why}"),
                        Ended::Failed(why) => format!("rollout failed: {why}"),
                    };
                    out(&line);
                    if follow.is_some() {
                        return Ok(if ended == Ended::Completed { ExitCode::SUCCESS } else { ExitCode::from(1) });
                    }
                    progress = None;
                }
            }
        }
    })
}
