//! Fuzz targets for every decoder that takes outside bytes: the envelope and each consensus
//! message (peers), ledger snapshots (peers, in state transfer), stored records (disk), operation JSON (requesters), provider manifests and
//! releases (files), orders and agent-signed reports and acks (agents and validators), node and
//! agent configuration and the genesis (operators) and the audit log (anyone verifying one).
//!
//! Each target gets arbitrary bytes and mutations of valid inputs (bit flips, truncation,
//! insertion, splicing), and must return an error or a value, never panic. CI runs a bounded
//! number of cases (`PROPTEST_CASES`, default 256 per target); long runs set it higher (see
//! FUZZING.md for the figures).

use std::sync::Arc;

use proptest::prelude::*;
use prost::Message as _;

use scbe_core::consensus::{
    Codec as _, Directory, Kind, PrePrepare, Principal, Relay, Request, Seq, Signed, View, Vote,
};
use scbe_core::crypto::Keypair;
use scbe_core::governance::{parse_manifest, FusedRelease, Operation};
use scbe_core::rollout::evidence::{AckBody, AgentBody, AgentSigned, HealthBody};
use scbe_core::rollout::order::SignedOrder;
use scbe_proto::v1 as pb;
use scbe_wire::fleet_wire::agent_signed_from_proto;
use scbe_wire::{encode_envelope, open, ProtoCodec};

struct World {
    dir: Directory,
    agent: Keypair,
    /// Signs the mutated payloads of `consensus_payloads_behind_valid_signatures`.
    validator: Keypair,
    client: Keypair,
    seeds_envelopes: Vec<Vec<u8>>,
    /// A valid payload of every consensus message kind.
    seeds_payloads: Vec<KindPayload>,
    /// Stored records, encoded as the store writes them.
    seeds_records: Vec<Vec<u8>>,
}

fn world() -> Arc<World> {
    static W: std::sync::OnceLock<Arc<World>> = std::sync::OnceLock::new();
    Arc::clone(W.get_or_init(|| {
        let validators: Vec<Keypair> = (0..4)
            .map(|i| Keypair::from_label(&format!("fz{i}")))
            .collect();
        let client = Keypair::from_label("fz-client");
        let dir = Directory::new(
            validators.iter().map(Keypair::public).collect(),
            vec![client.public()],
        )
        .expect("directory");
        let request = Signed::seal(
            Request {
                nonce: 7,
                operation: Operation::Rollback {
                    target_version: "v0".into(),
                    reason: "fuzz".into(),
                }
                .to_bytes(),
            },
            Kind::Request,
            |r| ProtoCodec.encode_request(r),
            &client,
            Principal::Requester,
        );
        let batch = vec![request.clone()];
        let pp = Signed::seal(
            PrePrepare {
                view: View(0),
                seq: Seq(1),
                digest: scbe_core::consensus::batch_digest(&batch),
                batch,
            },
            Kind::PrePrepare,
            |v| ProtoCodec.encode_pre_prepare(v),
            &validators[0],
            Principal::Validator(scbe_core::consensus::ReplicaId(0)),
        );
        let vote = Signed::seal(
            Vote {
                view: View(0),
                seq: Seq(1),
                digest: pp.value().digest,
            },
            Kind::Prepare,
            |v| ProtoCodec.encode_vote(v),
            &validators[1],
            Principal::Validator(scbe_core::consensus::ReplicaId(1)),
        );
        let relay = Signed::seal(
            Relay {
                requests: vec![request.clone(), request.clone()],
            },
            Kind::Relay,
            |v| ProtoCodec.encode_relay(v),
            &validators[2],
            Principal::Validator(scbe_core::consensus::ReplicaId(2)),
        );
        let suspect = Signed::seal(
            scbe_core::consensus::Suspect {
                view: View(3),
                early: false,
            },
            Kind::Suspect,
            |v| ProtoCodec.encode_suspect(v),
            &validators[3],
            Principal::Validator(scbe_core::consensus::ReplicaId(3)),
        );
        let seeds_envelopes = vec![
            encode_envelope(request.envelope()),
            encode_envelope(suspect.envelope()),
            encode_envelope(relay.envelope()),
            encode_envelope(pp.envelope()),
            encode_envelope(vote.envelope()),
        ];
        let (seeds_payloads, seeds_records) = consensus_seeds(&validators, &pp, &vote);
        let seeds_payloads = seeds_payloads
            .into_iter()
            .chain([
                (Kind::Request, request.envelope().payload.clone()),
                (Kind::Relay, relay.envelope().payload.clone()),
                (Kind::Suspect, suspect.envelope().payload.clone()),
            ])
            .collect();
        Arc::new(World {
            dir,
            agent: Keypair::from_label("fz-agent"),
            validator: validators[0].clone(),
            client,
            seeds_envelopes,
            seeds_payloads,
            seeds_records,
        })
    }))
}

/// A consensus message kind and a payload for it.
type KindPayload = (Kind, Vec<u8>);

/// Valid payloads of the consensus kinds the world does not build inline (pre-prepare, prepare,
/// commit, checkpoint, view change, new view, state request and response, heartbeat), and
/// stored records of every kind, encoded as the store writes them.
fn consensus_seeds(
    validators: &[Keypair],
    pp: &Signed<PrePrepare>,
    vote: &Signed<Vote>,
) -> (Vec<KindPayload>, Vec<Vec<u8>>) {
    use scbe_core::consensus::{
        Checkpoint, CheckpointCert, CommitCert, EpochLink, Heartbeat, NewView, PreparedCert,
        Record, ReplicaId, StateRequest, StateResponse, ValidatorSet, ViewChange,
    };
    let c = ProtoCodec;
    let by = |i: usize| Principal::Validator(ReplicaId(i as u32));
    let commit = Signed::seal(
        *vote.value(),
        Kind::Commit,
        |v| c.encode_vote(v),
        &validators[2],
        by(2),
    );
    let genesis_set =
        ValidatorSet::genesis(&validators.iter().map(|k| k.public()).collect::<Vec<_>>());
    let mut next_set = genesis_set.clone();
    next_set.epoch = 1;
    next_set.start = Seq(1);
    next_set.members.pop();
    // A boundary checkpoint: the decoders also see the next set's digest and an epoch link.
    let checkpoint = Checkpoint {
        seq: Seq(1),
        state_digest: scbe_core::consensus::Digest::of_parts(&[b"fuzz"]),
        next_set: Some(next_set.digest()),
    };
    let signed_cp = Signed::seal(
        checkpoint,
        Kind::Checkpoint,
        |v| c.encode_checkpoint(v),
        &validators[1],
        by(1),
    );
    let stable = CheckpointCert {
        seq: Seq(1),
        state_digest: checkpoint.state_digest,
        next_set: checkpoint.next_set,
        proof: vec![signed_cp.clone()],
    };
    let link = EpochLink {
        previous: genesis_set,
        boundary: stable.clone(),
        set: next_set,
    };
    let prepared = PreparedCert {
        pre_prepare: pp.clone(),
        prepares: vec![vote.clone()],
    };
    let vc = ViewChange {
        new_view: View(1),
        stable: stable.clone(),
        prepared: vec![prepared.clone()],
    };
    let signed_vc = Signed::seal(
        vc.clone(),
        Kind::ViewChange,
        |v| c.encode_view_change(v),
        &validators[1],
        by(1),
    );
    let nv = NewView {
        view: View(1),
        view_changes: vec![signed_vc.clone()],
        pre_prepares: vec![pp.clone()],
    };
    let committed = CommitCert {
        pre_prepare: pp.clone(),
        commits: vec![commit.clone()],
    };
    let response = StateResponse {
        snapshot: None,
        decided: vec![committed.clone()],
        epochs: vec![link.clone()],
    };
    let payloads = vec![
        (Kind::PrePrepare, pp.envelope().payload.clone()),
        (Kind::Prepare, vote.envelope().payload.clone()),
        (Kind::Commit, commit.envelope().payload.clone()),
        (Kind::Checkpoint, c.encode_checkpoint(&checkpoint)),
        (Kind::ViewChange, c.encode_view_change(&vc)),
        (Kind::NewView, c.encode_new_view(&nv)),
        (
            Kind::StateRequest,
            c.encode_state_request(&StateRequest {
                after: Seq(3),
                snapshot_offset: 0,
                epoch: 1,
                needs_snapshot: true,
            }),
        ),
        (Kind::StateResponse, c.encode_state_response(&response)),
        (
            Kind::Heartbeat,
            c.encode_heartbeat(&Heartbeat {
                view: View(2),
                last_executed: Seq(9),
            }),
        ),
    ];
    let records = [
        Record::Signed {
            pre_prepare: false,
            view: View(0),
            seq: Seq(1),
            digest: pp.value().digest,
        },
        Record::Prepared(prepared),
        Record::Committed(committed),
        Record::Stable(stable),
        Record::ViewChange(signed_vc),
        Record::NonceReservation { up_to: 64 },
        Record::SignReserved {
            view: View(0),
            through: Seq(65),
        },
        Record::EpochLink(link),
    ]
    .iter()
    .map(scbe_wire::encode_record)
    .collect();
    (payloads, records)
}

/// Arbitrary bytes, or a valid input with a few mutations.
fn bytes_from(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let arbitrary = proptest::collection::vec(any::<u8>(), 0..2048);
    let n = seeds.len();
    let mutated = (
        0..n.max(1),
        proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let mut b = seeds.get(i).cloned().unwrap_or_default();
            for (op, at, v) in edits {
                let at = if b.is_empty() {
                    0
                } else {
                    at as usize % b.len()
                };
                match op % 4 {
                    0 if !b.is_empty() => b[at] ^= 1 << (v % 8),
                    1 => b.truncate(at),
                    2 => b.insert(at.min(b.len()), v),
                    _ if !b.is_empty() => b[at] = v,
                    _ => b.push(v),
                }
            }
            b
        });
    prop_oneof![arbitrary, mutated]
}

fn text_from(seeds: Vec<String>) -> impl Strategy<Value = String> {
    bytes_from(seeds.into_iter().map(String::into_bytes).collect())
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn example(name: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(name)).unwrap_or_default()
}

/// An agent-signed payload with a valid signature, so the JSON behind it gets parsed.
fn open_signed<T: AgentBody>(agent: &Keypair, payload: String) {
    let sig = agent.sign(T::KIND, payload.as_bytes());
    let signed = AgentSigned::<T>::from_parts(
        "agent-00".into(),
        payload,
        scbe_core::rollout::evidence::hex(sig.as_bytes()),
    );
    let key = agent.public();
    let _ = signed.open(|_| Some(&key));
}

/// `payload` as an envelope of `kind` with a valid signature: a requester's for a request, a
/// validator's for everything else.
fn signed_again(kind: Kind, payload: Vec<u8>) -> Vec<u8> {
    let w = world();
    let key = if kind == Kind::Request {
        &w.client
    } else {
        &w.validator
    };
    encode_envelope(&scbe_core::consensus::Envelope::seal(kind, payload, key))
}

/// The re-signing target reaches the decoders: every kind has a seed, and each unmutated seed,
/// signed again as the target signs it, opens; so do the stored-record seeds.
#[test]
fn every_seed_opens_when_signed_again() {
    let w = world();
    for kind in Kind::ALL {
        let seeds: Vec<&Vec<u8>> = w
            .seeds_payloads
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, p)| p)
            .collect();
        assert!(!seeds.is_empty(), "no seed for {kind:?}");
        for p in seeds {
            if let Err(e) = open(&signed_again(kind, p.clone()), &w.dir) {
                panic!("{kind:?}: {e}");
            }
        }
    }
    for r in &w.seeds_records {
        scbe_wire::decode_record(r, &w.dir).expect("a stored-record seed loads");
    }
}

proptest! {
    #[test]
    fn envelopes_and_consensus_messages(b in bytes_from(world().seeds_envelopes.clone())) {
        let _ = open(&b, &world().dir);
    }

    #[test]
    fn stored_records(b in bytes_from(world().seeds_records.clone())) {
        let _ = scbe_wire::decode_record(&b, &world().dir);
    }

    /// Mutated payloads of every consensus kind, signed again after the mutation, so they pass
    /// the signature check and reach the message decoders (a mutated signed envelope never
    /// does). Requests are signed by the registered requester, everything else by a validator.
    #[test]
    fn consensus_payloads_behind_valid_signatures(
        (kind, payload) in (0..Kind::ALL.len()).prop_flat_map(|k| {
            let kind = Kind::ALL[k];
            let seeds = world()
                .seeds_payloads
                .iter()
                .filter(|(s, _)| *s == kind)
                .map(|(_, p)| p.clone())
                .collect();
            bytes_from(seeds).prop_map(move |p| (kind, p))
        })
    ) {
        let _ = open(&signed_again(kind, payload), &world().dir);
    }

    #[test]
    fn audit_logs(b in bytes_from(vec![])) {
        if let Ok(log) = pb::AuditLog::decode(b.as_slice()) {
            for c in log.decided {
                let _ = scbe_wire::open_commit_cert(c, &world().dir);
            }
            for c in log.checkpoints {
                let _ = scbe_wire::open_checkpoint_cert(c, &world().dir);
            }
        }
    }

    #[test]
    fn ledger_snapshots(b in bytes_from(vec![ledger_snapshot()])) {
        use scbe_core::consensus::StateMachine as _;
        let mut ledger = empty_ledger();
        let _ = ledger.snapshot_digest(&b);
        let _ = ledger.restore(&b);
    }

    #[test]
    fn operations(b in bytes_from(vec![
        Operation::Rollback { target_version: "v0".into(), reason: "r".into() }.to_bytes(),
        Operation::RegisterRelease { release: placeholder_release() }.to_bytes(),
        Operation::Notified { sink: "ops".into(), through: 7 }.to_bytes(),
    ])) {
        let _ = Operation::from_bytes(&b);
    }

    #[test]
    fn manifests_and_releases(t in text_from(vec![
        example("configs/examples/manifests/hf_manifest.json"),
        example("configs/examples/manifests/gcp_manifest.json"),
        example("configs/examples/manifests/aws_manifest.json"),
        placeholder_release().to_json_pretty(),
    ])) {
        let _ = parse_manifest("fuzz.json", &t);
        let _ = FusedRelease::parse(&t);
    }

    #[test]
    fn orders(b in bytes_from(vec![])) {
        if let Ok(p) = pb::SignedOrder::decode(b.as_slice()) {
            let _ = scbe_wire::fleet_wire::signed_order_from_proto(&p, &Default::default())
                .map(|o: SignedOrder| scbe_core::rollout::order::Order::parse(&o.order));
        }
        let _ = scbe_core::rollout::order::Order::parse(&b);
    }

    #[test]
    fn agent_reports_and_acks(t in text_from(vec![
        r#"{"agent":"agent-00","rollout":1,"version":"r1","samples":[]}"#.into(),
    ])) {
        let w = world();
        open_signed::<HealthBody>(&w.agent, t.clone());
        open_signed::<AckBody>(&w.agent, t.clone());
        let p = pb::AgentSigned {
            agent: "agent-00".into(),
            payload: t.into_bytes().into(),
            signature: vec![0u8; 64].into(),
        };
        let _ = agent_signed_from_proto::<HealthBody>(p);
    }

    #[test]
    fn configurations(t in text_from(vec![
        example("configs/node.toml"),
        example("configs/agent.toml"),
        example("configs/genesis.toml"),
    ])) {
        let path = std::path::Path::new("/nonexistent/fuzz.toml");
        let _ = scbe_validator::config::NodeConfig::parse(path, &t);
        let _ = scbe_agent::config::AgentConfig::parse(path, &t);
        let _ = scbe_wire::genesis::Genesis::from_bytes(path, t.as_bytes());
    }
}

fn empty_ledger() -> scbe_core::governance::Ledger {
    scbe_core::governance::Ledger::new(scbe_core::governance::LedgerConfig {
        validators: (0..4)
            .map(|i| Keypair::from_label(&format!("fz{i}")).public())
            .collect(),
        known_good: vec!["v0".into()],
        known_good_units: Default::default(),
        gates: Default::default(),
        vote_window_seqs: 100,
        agents: Vec::new(),
        health: Default::default(),
        analysis: Default::default(),
        notify_sinks: vec!["ops".into()],
        state_digest: scbe_core::governance::ledger::StateDigest::Tree,
        requesters: [("fz".to_string(), Keypair::from_label("fz-client").public())].into(),
    })
}

/// A real snapshot with events and outcomes in its journal, as a seed for mutations.
fn ledger_snapshot() -> Vec<u8> {
    use scbe_core::consensus::StateMachine as _;
    use scbe_core::governance::ledger::Signer;
    let mut ledger = empty_ledger();
    let client = Keypair::from_label("fz-client").public();
    for nonce in 1..4 {
        let op = Operation::Rollback {
            target_version: "nope".into(),
            reason: "fuzz".into(),
        };
        ledger.apply_operation(
            nonce,
            Signer::Requester(client),
            &client,
            nonce,
            &op.to_bytes(),
        );
    }
    // A notification record, so the state's `notified` map is among the mutated bytes.
    let validator = Keypair::from_label("fz0").public();
    let op = Operation::Notified {
        sink: "ops".into(),
        through: 2,
    };
    let o = ledger.apply_operation(4, Signer::Validator(0), &validator, 1, &op.to_bytes());
    assert!(o.accepted, "{o:?}");
    ledger.snapshot().to_vec()
}

fn placeholder_release() -> FusedRelease {
    FusedRelease::new(
        std::collections::BTreeMap::new(),
        scbe_core::governance::Gates::default(),
        Some("r1".into()),
        "t".into(),
    )
}
