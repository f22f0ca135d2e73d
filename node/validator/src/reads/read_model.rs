//! What the core publishes after a turn for readers ([`ReadModel`]), and the handle every
//! reader holds ([`Reads`]): it answers `Status` from the model, the index and the health
//! monitor, and events from the feed or the store, without the core.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scbe_core::consensus::{Digest, Status};
use scbe_core::crypto::PublicKey;
use scbe_core::governance::event::Event;
use scbe_core::governance::ledger::Proposal;
use scbe_core::rollout::health::HealthThresholds;
use scbe_wire::status_summary::{LatestReport, StatusSummary};
use tokio::sync::watch;

use super::{EventFeed, ReadIndex};
use crate::fleet::monitor::FleetHealth;
use crate::links::{Links, PeerLinkState, RefusedCaller};
use crate::storage::StoreReader;

/// Events handed to a reader per chunk.
pub const EVENTS_CHUNK: usize = 512;

/// This validator's consensus position after a turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub node: u32,
    pub view: u64,
    pub status: Status,
    pub last_executed: u64,
    pub stable_checkpoint: u64,
    pub stable_digest: Digest,
    /// The state digest after `last_executed`, once computed: it hashes the whole ledger, so
    /// the core computes it only when a reader asked and its queue is empty.
    pub state_digest: Option<Digest>,
    /// A quorum's checkpoint at this seq differed from this validator's state.
    pub diverged_at: Option<u64>,
    /// The validator-set epoch in force, and whether this validator's key is out of it.
    pub epoch: u64,
    pub observing: bool,
    /// Whether the validator holds the proof of that set (`Replica::epoch_proven`).
    pub epoch_proven: bool,
    /// How long this validator tolerates its primary's silence now (the silence it tolerates
    /// in heartbeat intervals, times the interval).
    pub silence_tolerated: std::time::Duration,
    /// The set in force and its links from the genesis (shared with the step).
    pub chain: std::sync::Arc<scbe_core::consensus::EpochChain>,
}

/// What readers see of the core, published after every turn that changed it.
#[derive(Clone, Debug)]
pub struct ReadModel {
    /// Bumped with every publication (a cache key).
    pub generation: u64,
    pub position: Position,
    /// The ledger's part of the summary (health is added at read time), as last built.
    pub summary: Arc<StatusSummary>,
    /// Whether `summary` is of the ledger as it is now. The core rebuilds it only when a reader
    /// asks (`Reads::summary_wanted`), at most once per loop turn, so batches nobody reads
    /// about cost it nothing.
    pub summary_current: bool,
    /// What agents' reports are judged by.
    pub thresholds: HealthThresholds,
}

/// What a `Status` call asks for.
pub struct StatusQuery {
    /// One proposal as the ledger holds it, instead of the summary.
    pub proposal: Option<u64>,
    /// A requester asking for the highest nonce executed for its key.
    pub signer: Option<PublicKey>,
    /// The position only, no summary.
    pub brief: bool,
}

/// This validator's position and the ledger detail asked for.
pub struct StatusReport {
    pub position: Position,
    /// The highest nonce executed for the asking signer (0 if none asked).
    pub last_nonce: u64,
    pub genesis: Digest,
    pub cluster: String,
    pub peers: BTreeMap<u32, PeerLinkState>,
    pub refused: Vec<RefusedCaller>,
    pub detail: StatusDetail,
}

pub enum StatusDetail {
    /// None asked for (a brief status).
    Nothing,
    /// The summary as JSON (shared: many readers of one model get the same bytes).
    Summary(Arc<String>),
    /// The proposal asked for (`None`: the ledger has no such proposal).
    Proposal(Option<Arc<Proposal>>),
}

/// Everything a reader needs, cheap to clone: one per service and dashboard connection.
#[derive(Clone)]
pub struct Reads {
    pub model: watch::Receiver<Arc<ReadModel>>,
    pub events: Arc<EventFeed>,
    pub index: Arc<ReadIndex>,
    pub health: Arc<FleetHealth>,
    pub store: StoreReader,
    pub links: Arc<Links>,
    pub genesis: Digest,
    pub cluster: String,
    /// An agent's latest report older than this reads "stale".
    pub stale_after: Duration,
    pub cache: Arc<super::status_cache::StatusCache>,
    /// Set when a reader finds no state digest: the core computes one when it is next idle.
    pub digest_wanted: Arc<std::sync::atomic::AtomicBool>,
    /// The budget every anonymous read's bytes are sent within.
    pub pace: Arc<super::ReadPace>,
    /// Wakes the core to rebuild the summary (coalesced: one wake however many readers ask).
    pub summary_wanted: Arc<tokio::sync::Notify>,
    /// The stable checkpoint `Audit.Prove` proves from.
    pub proofs: Arc<super::StableProofs>,
}

/// How long a reader waits for the core to rebuild the summary before it takes the last one
/// built (a core stuck in a long turn does not hold readers).
pub const SUMMARY_WAIT: Duration = Duration::from_secs(2);

impl Reads {
    /// The latest model the core published.
    pub fn model(&self) -> Arc<ReadModel> {
        Arc::clone(&self.model.borrow())
    }

    /// The latest model, with its summary current: asks the core for it if the ledger moved
    /// since it was last built, and waits for it (at most [`SUMMARY_WAIT`]).
    pub async fn current_model(&self) -> Arc<ReadModel> {
        let mut rx = self.model.clone();
        let deadline = tokio::time::Instant::now() + SUMMARY_WAIT;
        loop {
            let model = Arc::clone(&rx.borrow_and_update());
            if model.summary_current {
                return model;
            }
            self.summary_wanted.notify_one();
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return model,
            }
        }
    }

    /// The summary with the health this validator monitors.
    pub async fn summary(&self) -> StatusSummary {
        let model = self.current_model().await;
        self.summary_of(&model)
    }

    fn summary_of(&self, model: &ReadModel) -> StatusSummary {
        let now = Instant::now();
        let health: BTreeMap<String, LatestReport> = self
            .health
            .latest()
            .into_iter()
            .map(|(agent, h)| {
                let age_ms = now.saturating_duration_since(h.received).as_millis() as u64;
                (
                    agent,
                    LatestReport {
                        body: h.body,
                        age_ms,
                    },
                )
            })
            .collect();
        let mut summary = StatusSummary::clone(&model.summary);
        summary.add_health(
            &model.thresholds,
            &health,
            &self.health.warnings(),
            self.stale_after.as_millis() as u64,
        );
        summary
    }

    /// What `Status` answers.
    pub async fn status(&self, query: StatusQuery) -> StatusReport {
        let model = if query.proposal.is_none() && !query.brief {
            self.current_model().await
        } else {
            self.model()
        };
        if model.position.state_digest.is_none() {
            self.digest_wanted
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let detail = match query.proposal {
            Some(p) => StatusDetail::Proposal(self.index.proposal(p)),
            None if query.brief => StatusDetail::Nothing,
            None => StatusDetail::Summary(self.cache.get_or_build(model.generation, || {
                serde_json::to_string(&self.summary_of(&model)).unwrap_or_default()
            })),
        };
        StatusReport {
            position: model.position.clone(),
            last_nonce: query.signer.map_or(0, |k| self.index.last_nonce(&k)),
            genesis: self.genesis,
            cluster: self.cluster.clone(),
            peers: self.links.peers(),
            refused: self.links.refused_callers(),
            detail,
        }
    }

    /// At most one chunk of events from position `from` on: from the feed while it holds them,
    /// older ones from the store on a blocking thread. Empty when `from` is not produced yet.
    pub async fn events_from(&self, from: u64) -> Vec<(u64, Event)> {
        if let Some(chunk) = self.events.read(from, EVENTS_CHUNK) {
            return chunk;
        }
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || store.events_from(from, EVENTS_CHUNK)).await;
        match read {
            Ok(Ok(chunk)) if !chunk.is_empty() => chunk,
            Ok(Ok(_)) => {
                // Not in the store either: this replica was restored from a peer's snapshot
                // past `from`; what it has starts at the feed.
                self.events
                    .read(self.events.first(), EVENTS_CHUNK)
                    .unwrap_or_default()
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read stored events");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }
}
