//! Everything a simulation run does, derived from one seed: cluster size and protocol sizes,
//! network behaviour, partitions, crashes, Byzantine behaviours and the client workload.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a Byzantine validator does to its outgoing traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misbehaviour {
    /// Sends nothing at all.
    Silent,
    /// As primary, proposes different batches to different backups; as backup, votes for random
    /// digests towards some peers.
    Equivocate,
    /// Sends envelopes that claim an honest signer but carry a bad signature, and slips forged
    /// requests into its own pre-prepares.
    Forge,
    /// Replays old envelopes it has seen (validly signed, stale) to random peers.
    Replay,
    /// Lies about the fleet: submits rollout progress with forged or premature agent evidence
    /// (reports signed by itself, edited reports, reports from before the window ended) and
    /// delivers no orders when it leads.
    FleetLie,
}

/// How a simulated fleet agent behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentBehaviour {
    /// Follows the synthetic model: healthy, or degrading on releases containing "bad".
    Honest,
    /// Sends nothing and answers nothing until the faults heal.
    Silent,
    /// Honest about deploys, but also sends garbage and validly signed reports for other
    /// rollouts.
    Byzantine,
}

/// The fleet part of a scenario.
#[derive(Clone, Debug)]
pub struct FleetScenario {
    /// (specialty, behaviour) per agent, agents named agent-00, agent-01, ...
    pub agents: Vec<(String, AgentBehaviour)>,
    /// Samples on a "bad" release before the synthetic model degrades (below the window).
    pub degrade_after: u32,
    /// The requester's releases, in order; names containing "bad" degrade.
    pub releases: Vec<String>,
    /// Whether healthy releases go on to production after canary.
    pub to_production: bool,
    /// Whether the requester changes the fleet between releases: removes its last agent and
    /// re-keys its first by proposal before the second release, admits the last again before
    /// the third.
    pub membership: bool,
}

/// A change of the validator set the release requester proposes while a rollout is in flight
/// (`Scenario::validator_change`). The ledger refuses validator changes until the rollout ends
/// (every validator checks it); the requester retries, so the change lands right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidatorShift {
    /// Validator `id` gets a new key; once its replica observes the new epoch, its operator
    /// restarts it with that key, `restart_after_ms` later. A Byzantine one keeps its old key
    /// too: what it forges, rewrites and replays goes on being signed with the retired key.
    Rotate { id: usize, restart_after_ms: u64 },
    /// Validator `id` leaves; it keeps running, and the others drop what it sends.
    Remove { id: usize },
    /// A validator the genesis does not list joins: its node (the last, id `n`) runs from the
    /// start with only the genesis and observes; the requester proposes adding its key, and
    /// once the change applies the others link to it and it catches up and takes part.
    Add,
}

/// Overrides from the command line; `None` means derive from the seed.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub validators: Option<usize>,
    pub byzantine: Option<usize>,
    /// Test hook: run every replica with this quorum (the honesty check uses q - 1).
    pub unsafe_quorum: Option<usize>,
    /// Test hook: agents obey orders with this many endorsements (the honesty check uses 1).
    pub unsafe_agent_quorum: Option<usize>,
    /// Test hook: the ledger calls an agent healthy after this many samples, fewer than the
    /// checkers demand (the honesty check uses 1).
    pub unsafe_min_samples: Option<u32>,
    /// Test hook: the replicas' stores drop the nonce windows of every snapshot they keep (a
    /// storage bug; the honesty check shows the recovery checker catches it).
    pub unsafe_store_forgets_nonces: bool,
    /// Every seed changes the validator set (a third do otherwise).
    pub validator_change: bool,
    /// No seed adds a validator or rotates a Byzantine one: each draws the removal or honest
    /// rotation it drew before those existed (regression seeds pinned then keep their
    /// scenario).
    pub no_additions: bool,
    /// Test hook: the primary's executor endorses orders with the genesis keys and quorum and
    /// sends no chain of validator sets (a stale executor; the honesty check shows the
    /// order-epoch checker catches agents obeying the old set).
    pub unsafe_stale_endorsers: bool,
}

#[derive(Clone, Debug)]
pub struct Crash {
    pub node: usize,
    pub at_ms: u64,
    pub restart_after_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Partition {
    pub at_ms: u64,
    pub heal_after_ms: u64,
    /// One side of the cut; everyone else is on the other side.
    pub side: BTreeSet<usize>,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub n: usize,
    pub byzantine: Vec<(usize, BTreeSet<Misbehaviour>)>,
    pub unsafe_quorum: Option<usize>,
    pub unsafe_agent_quorum: Option<usize>,
    pub unsafe_min_samples: Option<u32>,
    pub unsafe_store_forgets_nonces: bool,
    pub checkpoint_interval: u64,
    pub window: u64,
    pub max_batch: usize,
    pub max_inflight_batches: u64,
    pub request_timeout_ms: u64,
    pub view_change_timeout_ms: u64,
    pub delay_min_ms: u64,
    pub delay_max_ms: u64,
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
    /// (replica, at_ms): an honest replica gives up on its view alone, as a replica restarted
    /// at the wrong moment does when its timer fires before it caught up. It ends up alone in a
    /// higher view and must still execute everything decided (the liveness invariant).
    pub lone_view_changes: Vec<(usize, u64)>,
    /// (replica, jitter_ms): an honest but slow replica; each of its messages waits up to
    /// `jitter_ms` more. As primary it must not be deposed in a loop (heartbeat silence is
    /// measured in gaps, not latency), and everything must still be decided.
    pub slow: Option<(usize, u64)>,
    /// (at_ms, count): bursts in which a Byzantine requester (a registered key) sends `count`
    /// requests of the largest admitted size to every validator at once. No message may exceed
    /// the peer cap, and the liveness invariant still requires every request decided that the
    /// nonce window still admits (two floods can exceed its 128 requests in flight).
    pub floods: Vec<(u64, u32)>,
    /// (replica, restart_after_ms): an honest replica crashes the first time its ledger shows a
    /// rollout in progress (while it is watching and submitting evidence) and restarts this
    /// much later; its requests after the restart must take effect (the own-nonces invariant).
    pub restart_mid_rollout: Option<(usize, u64)>,
    /// A validator rotated or removed by governance, proposed while a rollout is in flight
    /// (refused until it ends, then applied).
    pub validator_change: Option<ValidatorShift>,
    pub unsafe_stale_endorsers: bool,
    pub clients: usize,
    pub safety_requests_per_client: usize,
    pub liveness_requests_per_client: usize,
    pub client_retry_ms: u64,
    /// The safety phase (faults on) lasts this long; then faults heal.
    pub safety_ms: u64,
    /// Liveness must be reached within this long after healing.
    pub liveness_deadline_ms: u64,
    pub fleet: FleetScenario,
}

impl Scenario {
    pub fn derive(seed: u64, o: &Overrides) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = o.validators.unwrap_or_else(|| rng.random_range(4..=7));
        let f = (n - 1) / 3;
        let b = o.byzantine.unwrap_or_else(|| rng.random_range(0..=f));
        let mut ids: Vec<usize> = (0..n).collect();
        ids.shuffle(&mut rng);
        let byzantine = ids[..b]
            .iter()
            .map(|&id| {
                let mut m = BTreeSet::new();
                if rng.random_bool(0.2) {
                    m.insert(Misbehaviour::Silent);
                } else {
                    for (p, behaviour) in [
                        (0.7, Misbehaviour::Equivocate),
                        (0.5, Misbehaviour::Forge),
                        (0.5, Misbehaviour::Replay),
                    ] {
                        if rng.random_bool(p) {
                            m.insert(behaviour);
                        }
                    }
                    if m.is_empty() {
                        m.insert(Misbehaviour::Equivocate);
                    }
                }
                (id, m)
            })
            .collect::<Vec<_>>();
        let honest: Vec<usize> = ids[b..].to_vec();
        let checkpoint_interval = [2u64, 4, 8, 16][rng.random_range(0..4)];
        let window = checkpoint_interval * rng.random_range(2..=4);
        let delay_min_ms = rng.random_range(1..=5);
        let delay_max_ms = delay_min_ms + rng.random_range(1..=40);
        let safety_ms = rng.random_range(2_000..=6_000);
        let mut partitions = Vec::new();
        for _ in 0..rng.random_range(0..=2) {
            let size = rng.random_range(1..n);
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(&mut rng);
            partitions.push(Partition {
                at_ms: rng.random_range(0..safety_ms),
                heal_after_ms: rng.random_range(100..=2_000),
                side: all[..size].iter().copied().collect(),
            });
        }
        let mut crashes = Vec::new();
        for _ in 0..rng.random_range(0..=2) {
            let node = honest[rng.random_range(0..honest.len())];
            crashes.push(Crash {
                node,
                at_ms: rng.random_range(0..safety_ms),
                restart_after_ms: rng.random_range(50..=2_000),
            });
        }
        let mut fleet = derive_fleet(&mut rng);
        // From a separate stream, so older seeds keep their scenario otherwise.
        let mut lone = ChaCha8Rng::seed_from_u64(seed ^ 0x6c6f_6e65_7669_6577);
        let lone_view_changes = (0..lone.random_range(0..=2))
            .map(|_| {
                (
                    honest[lone.random_range(0..honest.len())],
                    lone.random_range(0..safety_ms),
                )
            })
            .collect();
        // Also its own stream: a third of the seeds have one slow honest replica.
        let mut slow_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x736c_6f77_7072_696d);
        let slow = slow_rng.random_bool(1.0 / 3.0).then(|| {
            (
                honest[slow_rng.random_range(0..honest.len())],
                slow_rng.random_range(20..=100),
            )
        });
        // Its own stream too: one seed in twenty has a flooding requester (big requests make
        // these seeds slow).
        let mut flood_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x666c_6f6f_6465_7221);
        let floods = if flood_rng.random_bool(0.05) {
            (0..flood_rng.random_range(1..=2))
                .map(|_| {
                    (
                        flood_rng.random_range(0..safety_ms),
                        flood_rng.random_range(64..=96),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        // Its own stream: a third of the seeds restart a validator mid-rollout.
        let mut restart_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d69_6472_6f6c_6c6f);
        let restart_mid_rollout = restart_rng.random_bool(1.0 / 3.0).then(|| {
            (
                honest[restart_rng.random_range(0..honest.len())],
                restart_rng.random_range(50..=1_500),
            )
        });
        // Its own stream: half the seeds change the fleet's membership between releases.
        let mut membership_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_6d62_6572_7321);
        fleet.membership = membership_rng.random_bool(0.5);
        // Its own stream: a third of the seeds rotate or remove a validator.
        let mut shift_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7661_6c69_6461_746f);
        let validator_change = (o.validator_change || shift_rng.random_bool(1.0 / 3.0))
            .then(|| derive_shift(&mut shift_rng, n, &byzantine, &honest));
        // Its own stream (seeds drawn before additions keep their change otherwise): a quarter
        // of the changes add a validator instead.
        let mut add_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6164_6465_645f_7661);
        let validator_change = validator_change.map(|shift| {
            if add_rng.random_bool(0.25) && !o.no_additions {
                ValidatorShift::Add
            } else {
                shift
            }
        });
        // Its own stream (as additions): a third of the rotations, where there is a Byzantine
        // validator, rotate its key instead of an honest one's.
        let mut byzantine_rotate_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6279_7a5f_726f_7461);
        let validator_change = validator_change.map(|shift| match (shift, byzantine.first()) {
            (
                ValidatorShift::Rotate {
                    restart_after_ms, ..
                },
                Some((id, _)),
            ) if byzantine_rotate_rng.random_bool(1.0 / 3.0) && !o.no_additions => {
                ValidatorShift::Rotate {
                    id: *id,
                    restart_after_ms,
                }
            }
            (shift, _) => shift,
        });
        let mut byzantine = byzantine;
        for (_, m) in &mut byzantine {
            if !m.contains(&Misbehaviour::Silent) && rng.random_bool(0.5) {
                m.insert(Misbehaviour::FleetLie);
            }
        }
        Scenario {
            seed,
            n,
            byzantine,
            unsafe_quorum: o.unsafe_quorum,
            unsafe_agent_quorum: o.unsafe_agent_quorum,
            unsafe_min_samples: o.unsafe_min_samples,
            unsafe_store_forgets_nonces: o.unsafe_store_forgets_nonces,
            checkpoint_interval,
            window,
            max_batch: rng.random_range(1..=8),
            max_inflight_batches: rng.random_range(1..=4),
            request_timeout_ms: rng.random_range(150..=400),
            view_change_timeout_ms: rng.random_range(200..=500),
            delay_min_ms,
            delay_max_ms,
            drop_rate: [0.0, 0.02, 0.05, 0.15][rng.random_range(0..4)],
            duplicate_rate: [0.0, 0.02, 0.1][rng.random_range(0..3)],
            partitions,
            crashes,
            lone_view_changes,
            slow,
            floods,
            restart_mid_rollout,
            validator_change,
            unsafe_stale_endorsers: o.unsafe_stale_endorsers,
            clients: rng.random_range(2..=6),
            safety_requests_per_client: rng.random_range(3..=10),
            liveness_requests_per_client: rng.random_range(2..=4),
            client_retry_ms: 600,
            safety_ms,
            liveness_deadline_ms: 120_000,
            fleet,
        }
    }

    /// Every simulated validator node: the genesis's `n`, and the one an addition brings (id
    /// `n`).
    pub fn nodes(&self) -> usize {
        self.n + usize::from(self.validator_change == Some(ValidatorShift::Add))
    }

    pub fn is_byzantine(&self, node: usize) -> bool {
        self.byzantine.iter().any(|(id, _)| *id == node)
    }

    pub fn misbehaviours(&self, node: usize) -> Option<&BTreeSet<Misbehaviour>> {
        self.byzantine
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, m)| m)
    }

    /// One line that says what the seed set up, for failure reports.
    pub fn fleet_summary(&self) -> String {
        let odd: Vec<String> = self
            .fleet
            .agents
            .iter()
            .enumerate()
            .filter(|(_, (_, b))| *b != AgentBehaviour::Honest)
            .map(|(i, (_, b))| format!("agent-{i:02}:{b:?}"))
            .collect();
        format!(
            "agents={} odd={odd:?} releases={:?} production={} membership={}",
            self.fleet.agents.len(),
            self.fleet.releases,
            self.fleet.to_production,
            self.fleet.membership
        )
    }

    pub fn summary(&self) -> String {
        format!(
            "n={} byzantine={:?} K={} L={} batch<={} inflight<={} delay={}..{}ms drop={} dup={} partitions={} crashes={} lone-view-changes={} slow={:?} floods={:?} restart-mid-rollout={:?} validator-change={:?} clients={} {}",
            self.n,
            self.byzantine,
            self.checkpoint_interval,
            self.window,
            self.max_batch,
            self.max_inflight_batches,
            self.delay_min_ms,
            self.delay_max_ms,
            self.drop_rate,
            self.duplicate_rate,
            self.partitions.len(),
            self.crashes.len(),
            self.lone_view_changes.len(),
            self.slow,
            self.floods,
            self.restart_mid_rollout,
            self.validator_change,
            self.clients,
            self.fleet_summary()
        )
    }
}

/// Which validator changes how. A removal keeps the set at 4 or more and within what it
/// tolerates (the Byzantine validators stay at most f of the smaller set; a Byzantine one is
/// removed first when there is one); a rotation re-keys an honest validator (its operator
/// restarts it, which a Byzantine node's would not need to).
fn derive_shift(
    rng: &mut ChaCha8Rng,
    n: usize,
    byzantine: &[(usize, BTreeSet<Misbehaviour>)],
    honest: &[usize],
) -> ValidatorShift {
    let b = byzantine.len();
    let removable = n > 4 && rng.random_bool(0.5);
    match (removable, byzantine.first()) {
        (true, Some((id, _))) if rng.random_bool(0.5) => ValidatorShift::Remove { id: *id },
        (true, _) if b <= (n - 2) / 3 => ValidatorShift::Remove {
            id: honest[rng.random_range(0..honest.len())],
        },
        _ => ValidatorShift::Rotate {
            id: honest[rng.random_range(0..honest.len())],
            restart_after_ms: rng.random_range(50..=1_500),
        },
    }
}

/// Agents, their behaviours and the requester's script, from the seed. Drawn after everything
/// else so adding the fleet left the consensus part of older seeds unchanged.
fn derive_fleet(rng: &mut ChaCha8Rng) -> FleetScenario {
    const SPECIALTIES: [&str; 3] = ["code_execute", "doc_plan", "memory_storage"];
    let count = rng.random_range(3..=9);
    let agents = (0..count)
        .map(|i| {
            let b = match rng.random_range(0..10) {
                0 => AgentBehaviour::Silent,
                1 => AgentBehaviour::Byzantine,
                _ => AgentBehaviour::Honest,
            };
            (SPECIALTIES[i % 3].to_string(), b)
        })
        .collect();
    let releases = (1..=rng.random_range(1..=3))
        .map(|i| {
            if rng.random_bool(0.4) {
                format!("r{i}-bad")
            } else {
                format!("r{i}")
            }
        })
        .collect();
    FleetScenario {
        agents,
        degrade_after: rng.random_range(1..=2),
        releases,
        to_production: rng.random_bool(0.6),
        membership: false,
    }
}
