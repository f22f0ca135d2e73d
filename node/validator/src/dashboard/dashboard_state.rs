//! What the dashboard page shows, as one JSON document: the status summary (stages, releases,
//! proposals with every vote, rollouts with their batches and canary comparison, agents with
//! their latest health), each agent's recent figures for sparklines, the newest events with
//! their Sacred Tongue tags, and the validators as this one sees them.

use scbe_core::consensus::View;
use std::collections::BTreeMap;

use serde::Serialize;

use scbe_core::governance::event::Event;
use scbe_wire::key_file::encode_hex;
use scbe_wire::status_summary::StatusSummary;

use super::PeerPositions;
use crate::fleet::monitor::HealthPoint;
use crate::reads::Reads;

/// Events the page lists (the newest).
pub const EVENTS_SHOWN: usize = 60;

#[derive(Debug, Serialize)]
pub struct DashboardState {
    pub cluster: String,
    /// The genesis digest (hex).
    pub genesis: String,
    /// The validator serving the page.
    pub node: u32,
    pub summary: StatusSummary,
    /// Each agent's recent figures, oldest first.
    pub history: BTreeMap<String, Vec<HealthPoint>>,
    /// The newest events, newest first.
    pub events: Vec<EventView>,
    pub validators: Vec<ValidatorView>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub index: u64,
    pub seq: u64,
    /// The Sacred Tongue tag (KO, AV, RU, CA, UM, DR), its name and its phase.
    pub tag: String,
    pub tongue: &'static str,
    pub phase: &'static str,
    pub kind: String,
    pub subject: String,
    pub detail: String,
}

/// A validator as the serving one knows it: itself in full, its peers by their links.
#[derive(Debug, Serialize)]
pub struct ValidatorView {
    pub id: u32,
    /// Whether this is the validator serving the page.
    pub serving: bool,
    pub address: String,
    /// Reachable from the serving validator (itself: always).
    pub reachable: bool,
    /// Why it is not reachable, or refused this cluster's genesis.
    pub problem: Option<String>,
    /// The position: the serving validator's own, a peer's as it last answered. The view is
    /// counted within the validator-set epoch.
    pub epoch: Option<u64>,
    pub view: Option<u64>,
    pub status: Option<String>,
    pub executed: Option<u64>,
    pub stable_checkpoint: Option<u64>,
    /// A quorum's checkpoint at this seq differed from this validator's state.
    pub diverged_at: Option<u64>,
    /// How old a peer's position is, in milliseconds (0 for the serving validator).
    pub position_age_ms: Option<u64>,
}

impl DashboardState {
    pub async fn of(reads: &Reads, peers: &PeerPositions) -> Self {
        let model = reads.model();
        let at = &model.position;
        let mut validators = vec![ValidatorView {
            id: at.node,
            serving: true,
            address: String::new(),
            reachable: true,
            problem: None,
            epoch: Some(at.epoch),
            view: Some(View(at.view).in_epoch()),
            status: Some(format!("{:?}", at.status)),
            executed: Some(at.last_executed),
            stable_checkpoint: Some(at.stable_checkpoint),
            diverged_at: at.diverged_at,
            position_age_ms: Some(0),
        }];
        let positions = peers.latest();
        validators.extend(reads.links.peers().into_iter().map(|(id, link)| {
            let refused = link.refused_genesis.map(|g| {
                format!(
                    "refused this cluster's genesis; it runs {}",
                    encode_hex(g.as_bytes())
                )
            });
            let p = positions.get(&id);
            ValidatorView {
                id,
                serving: false,
                address: link.address,
                reachable: link.connected && refused.is_none(),
                problem: refused.or(link.problem),
                epoch: p.map(|p| View(p.view).epoch()),
                view: p.map(|p| View(p.view).in_epoch()),
                status: p.map(|p| p.status.clone()),
                executed: p.map(|p| p.executed),
                stable_checkpoint: p.map(|p| p.stable_checkpoint),
                diverged_at: p.and_then(|p| p.diverged_at),
                position_age_ms: p.map(|p| p.at.elapsed().as_millis() as u64),
            }
        }));
        validators.sort_by_key(|v| v.id);
        let mut events: Vec<EventView> = reads
            .events
            .newest(EVENTS_SHOWN)
            .into_iter()
            .map(|(index, e)| event_view(index, e))
            .collect();
        events.reverse();
        DashboardState {
            cluster: reads.cluster.clone(),
            genesis: encode_hex(reads.genesis.as_bytes()),
            node: at.node,
            summary: reads.summary().await,
            history: reads.health.history(),
            events,
            validators,
        }
    }
}

fn event_view(index: u64, e: Event) -> EventView {
    EventView {
        index,
        seq: e.seq,
        tag: format!("{:?}", e.tongue),
        tongue: e.tongue.tongue(),
        phase: e.tongue.phase(),
        kind: e.kind,
        subject: e.subject,
        detail: e.detail,
    }
}
