//! Building a run from its scenario: every node's keys, the genesis directory and ledger, the
//! validator change the requester will propose, the agents and the clients; and each
//! replica's configuration (the genesis's validators, or an added validator joining).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scbe_core::consensus::{Directory, ReplicaConfig, ReplicaId, Seq};
use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::ValidatorChange;
use scbe_wire::ProtoCodec;
use sha2::{Digest as _, Sha256};

use super::{Node, Phase, Simulation, Stats};
use crate::byzantine::Byzantine;
use crate::clients::Client;
use crate::fleet::{NodeFleet, SimAgent};
use crate::invariants::agreement::Agreement;
use crate::invariants::certificates::Certificates;
use crate::invariants::double_sign::DoubleSign;
use crate::invariants::epochs::Epochs;
use crate::invariants::integrity::Integrity;
use crate::invariants::own_nonces::OwnNonces;
use crate::invariants::validity::Validity;
use crate::network::Network;
use crate::release_script::ReleaseScript;
use crate::scenario::{Scenario, ValidatorShift};
use crate::store::MemoryStore;

impl Simulation {
    pub fn new(sc: Scenario) -> Self {
        let seed = sc.seed;
        // Every node's key; the genesis lists the first `n` (an added validator's is the last).
        let keys: Vec<Keypair> = (0..sc.nodes())
            .map(|i| Keypair::from_label(&format!("sim/{seed}/validator/{i}")))
            .collect();
        let client_keys: Vec<Keypair> = (0..sc.clients)
            .map(|i| Keypair::from_label(&format!("sim/{seed}/client/{i}")))
            .collect();
        let flooder = Keypair::from_label(&format!("sim/{seed}/flooder"));
        let directory = Directory::new(
            keys[..sc.n].iter().map(Keypair::public).collect(),
            client_keys
                .iter()
                .map(Keypair::public)
                .chain(std::iter::once(flooder.public()))
                .collect(),
        )
        .expect("simulated keys are distinct");
        let true_quorum = scbe_core::consensus::config::quorum_for(sc.n);
        let validator_change = sc.validator_change.as_ref().map(|c| match c {
            ValidatorShift::Rotate { id, .. } => ValidatorChange::Rotate {
                id: *id as u32,
                public_key: rotated_key(seed, *id).public(),
            },
            ValidatorShift::Remove { id } => ValidatorChange::Remove { id: *id as u32 },
            ValidatorShift::Add => ValidatorChange::Add {
                public_key: keys[sc.n].public(),
                address: format!("validator-{}.sim:7000", sc.n),
            },
        });
        let epochs = Epochs::new(
            directory.validators(),
            client_keys
                .iter()
                .map(Keypair::public)
                .chain(std::iter::once(flooder.public()))
                .collect(),
            validator_change.as_ref().map(|c| match c {
                ValidatorChange::Rotate { id, public_key } => (*id, Some(*public_key)),
                ValidatorChange::Remove { id } => (*id, None),
                // The next id never used: the first past the genesis's.
                ValidatorChange::Add { public_key, .. } => (sc.n as u32, Some(*public_key)),
            }),
        );
        let genesis_keys = keys[..sc.n].to_vec();
        let agents = SimAgent::fleet(
            seed,
            &sc.fleet,
            &genesis_keys,
            sc.unsafe_agent_quorum.unwrap_or(true_quorum),
        );
        let min_samples = sc.unsafe_min_samples.unwrap_or(crate::fleet::MIN_SAMPLES);
        let ledger_cfg = crate::fleet::ledger_config(
            genesis_keys.iter().map(Keypair::public).collect(),
            &agents,
            min_samples,
            if sc.fleet.membership {
                scbe_core::governance::ledger::StateDigest::Walk
            } else {
                scbe_core::governance::ledger::StateDigest::Tree
            },
            client_keys
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("client-{i}"), k.public()))
                .chain(std::iter::once(("flooder".to_string(), flooder.public())))
                .collect(),
        );
        let nodes: Vec<Node> = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Node {
                byzantine: sc.misbehaviours(i).map(|m| {
                    Byzantine::new(
                        i,
                        key.clone(),
                        m.clone(),
                        &directory,
                        client_keys.iter().map(Keypair::public).collect(),
                    )
                }),
                fleet_liar: sc
                    .misbehaviours(i)
                    .is_some_and(|m| m.contains(&crate::scenario::Misbehaviour::FleetLie)),
                bodies: (i % 2 == 1).then(Default::default),
                key,
                step: None,
                store: MemoryStore::new(sc.unsafe_store_forgets_nonces),
                incarnation: 0,
                armed: BTreeMap::new(),
                fleet: NodeFleet::default(),
                fresh_restart: false,
                edge: Default::default(),
            })
            .collect();
        let honest_keys = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !sc.is_byzantine(*i))
            .map(|(i, n): (usize, &Node)| (n.key.public(), i))
            .collect();
        // Client 0 is the release requester: its requests come from the script.
        let clients = client_keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Client {
                key,
                nonce: 0,
                outstanding: None,
                safety_left: if i == 0 {
                    0
                } else {
                    sc.safety_requests_per_client
                },
                liveness_left: if i == 0 {
                    0
                } else {
                    sc.liveness_requests_per_client
                },
            })
            .collect();
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed),
            now: 0,
            queue: BTreeMap::new(),
            next_event: 0,
            codec: Arc::new(ProtoCodec),
            nodes,
            clients,
            flooder,
            flooder_nonce: 0,
            net: Network::new(&sc),
            phase: Phase::Safety,
            agents,
            ledger_cfg,
            script: ReleaseScript::new(&sc.fleet, validator_change),
            checked: BTreeSet::new(),
            ticks: 0,
            leaked: Vec::new(),
            target: Seq(0),
            agreement: Agreement::default(),
            validity: Validity::default(),
            integrity: Integrity::default(),
            certificates: Certificates,
            epochs,
            rekeying: false,
            genesis_keys,
            double_sign: DoubleSign::default(),
            own_nonces: OwnNonces::new(honest_keys),
            state_proofs: Default::default(),
            violations: Vec::new(),
            trace: Sha256::new(),
            stats: Stats::default(),
            directory,
            sc,
        }
    }

    pub(super) fn config(&self, node: usize) -> ReplicaConfig {
        let id = ReplicaId(node as u32);
        // The added validator's node is configured like the runtime's `node.added`.
        let mut cfg = if node < self.sc.n {
            ReplicaConfig::new(id, self.directory.clone())
        } else {
            ReplicaConfig::joining(id, self.directory.clone())
        }
        .expect("simulated cluster has n >= 4");
        cfg.checkpoint_interval = self.sc.checkpoint_interval;
        cfg.window = self.sc.window;
        // Byte limits follow the window, as in the node's configuration.
        cfg.derive_byte_limits();
        cfg.max_batch = self.sc.max_batch;
        cfg.max_inflight_batches = self.sc.max_inflight_batches;
        // The simulated ledgers are small; with no floor a snapshot is persisted only once the
        // batches executed since the last one reach its size, so restarts re-execute decided
        // batches below the stable checkpoint (the path large states take in a node).
        cfg.snapshot_persist_floor = 0;
        match self.sc.unsafe_quorum {
            Some(q) => cfg.with_unsafe_quorum(q),
            None => cfg,
        }
    }
}

/// The key validator `id` is rotated to (`ValidatorShift::Rotate`).
pub(super) fn rotated_key(seed: u64, id: usize) -> Keypair {
    Keypair::from_label(&format!("sim/{seed}/validator/{id}/rotated"))
}
