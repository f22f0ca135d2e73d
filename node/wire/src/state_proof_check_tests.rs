//! `Audit.Prove` replies checked from the genesis alone: a real proof of a real ledger's
//! checkpoint passes, and each thing a lying validator could bend (the entry, the certificate's
//! signers, count or digest, the proof's bytes) is refused, naming what.

use scbe_core::consensus::{
    state_digest_of, CertError, Checkpoint, CheckpointCert, Digest, NoncePart, ReplicaId, Seq,
    StateMachine as _, ValidatorSet,
};
use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::checkpoint_prover::CheckpointProver;
use scbe_core::governance::ledger::state::ReleaseEntry;
use scbe_core::governance::ledger::state_proof::ProvenMap;
use scbe_core::governance::ledger_world::World;

use crate::state_proof_check::{check_proof, reply, ProofCheckError};
use crate::ProtoCodec;

/// One signer's nonce window in the checkpoint's table.
const NONCES: [NoncePart; 1] = [([3; 32], [4; 24])];

struct Checkpointed {
    world: World,
    prover: std::sync::Arc<CheckpointProver>,
    genesis: ValidatorSet,
}

fn checkpointed() -> Checkpointed {
    let mut world = World::new();
    for i in 0..12 {
        world.register(&format!("r{i}"));
    }
    let prover = world.checkpoint_prover();
    let genesis = ValidatorSet::genesis(
        &world
            .validators
            .iter()
            .map(Keypair::public)
            .collect::<Vec<_>>(),
    );
    Checkpointed {
        world,
        prover,
        genesis,
    }
}

/// A certificate at `seq` for `digest`, signed by `signers` (key, as validator id).
fn cert(seq: u64, digest: Digest, signers: &[(&Keypair, u32)]) -> CheckpointCert {
    let cp = Checkpoint {
        seq: Seq(seq),
        state_digest: digest,
        next_set: None,
    };
    CheckpointCert::signed_by(cp, &ProtoCodec, signers)
}

impl Checkpointed {
    fn quorum(&self) -> Vec<(&Keypair, u32)> {
        let v = &self.world.validators;
        vec![(&v[0], 0), (&v[2], 2), (&v[3], 3)]
    }

    /// The checkpoint's state digest: the ledger's, at seq 12, with one signer's nonces.
    fn digest(&self) -> Digest {
        state_digest_of(Seq(12), self.world.ledger.digest(), &NONCES)
    }

    fn signed(&self) -> CheckpointCert {
        cert(12, self.digest(), &self.quorum())
    }

    fn reply_for(&self, version: &str, cert: &CheckpointCert) -> scbe_proto::v1::ProveReply {
        let proof = self
            .prover
            .prove(ProvenMap::Releases, version)
            .expect("held");
        reply(&proof, cert, &NONCES, &[])
    }
}

#[test]
fn a_real_proof_checks_from_the_genesis_alone() {
    let c = checkpointed();
    let proven = check_proof(
        &c.genesis,
        ProvenMap::Releases,
        "r5",
        c.reply_for("r5", &c.signed()),
    )
    .expect("proven");
    assert_eq!(proven.seq, Seq(12));
    assert_eq!((proven.epoch, proven.n), (0, 4));
    assert_eq!(proven.signers, [ReplicaId(0), ReplicaId(2), ReplicaId(3)]);
    let entry: ReleaseEntry = proven.proof.value().expect("decodes");
    assert_eq!(&entry, &c.world.ledger.state().releases["r5"]);
}

#[test]
fn a_bent_reply_is_refused_naming_what() {
    let c = checkpointed();
    let v = &c.world.validators;
    let good = c.reply_for("r5", &c.signed());
    let check = |key: &str, r: scbe_proto::v1::ProveReply| {
        check_proof(&c.genesis, ProvenMap::Releases, key, r).expect_err("refused")
    };

    // Another entry than the one asked for, even a true one.
    let e = check("r6", good.clone());
    assert!(matches!(e, ProofCheckError::OtherEntry { .. }), "{e}");
    let e = check_proof(&c.genesis, ProvenMap::Rollouts, "5", good.clone()).expect_err("map");
    assert!(matches!(e, ProofCheckError::OtherEntry { .. }), "{e}");

    // Too few signers, or one twice.
    let short = cert(12, c.digest(), &[(&v[0], 0), (&v[1], 1)]);
    let e = check("r5", c.reply_for("r5", &short));
    assert!(
        matches!(
            e,
            ProofCheckError::Cert(CertError::NotEnoughVotes { got: 2, .. })
        ),
        "{e}"
    );
    let twice = cert(12, c.digest(), &[(&v[0], 0), (&v[1], 1), (&v[1], 1)]);
    let e = check("r5", c.reply_for("r5", &twice));
    assert!(
        matches!(
            e,
            ProofCheckError::Cert(CertError::NotEnoughVotes { got: 2, .. })
        ),
        "{e}"
    );
    // A key outside the set, signing as a member.
    let stranger = Keypair::from_label("not a validator");
    let forged = cert(12, c.digest(), &[(&v[0], 0), (&v[1], 1), (&stranger, 2)]);
    let e = check("r5", c.reply_for("r5", &forged));
    assert!(matches!(e, ProofCheckError::Wire(_)), "{e}");
    // A quorum that signed another state.
    let other = cert(12, Digest([9; 32]), &c.quorum());
    let e = check("r5", c.reply_for("r5", &other));
    assert!(matches!(e, ProofCheckError::Digest { .. }), "{e}");
    // The genesis, or no certificate.
    let e = check("r5", c.reply_for("r5", &cert(0, c.digest(), &[])));
    assert!(matches!(e, ProofCheckError::Genesis), "{e}");
    let mut none = good.clone();
    none.checkpoint = None;
    assert!(matches!(check("r5", none), ProofCheckError::NoCheckpoint));
    // The proof's bytes: not JSON, or the entry changed under its path.
    let mut garbage = good.clone();
    garbage.proof_json = b"{not json".to_vec().into();
    assert!(matches!(check("r5", garbage), ProofCheckError::Json(_)));
    let mut changed = good.clone();
    let text = String::from_utf8(changed.proof_json.to_vec()).expect("utf-8");
    let text = text.replacen("staging", "production", 1);
    assert_ne!(
        text.as_bytes(),
        &good.proof_json[..],
        "the entry names its stage"
    );
    changed.proof_json = text.into_bytes().into();
    let e = check("r5", changed);
    assert!(
        matches!(
            e,
            ProofCheckError::Proof(_) | ProofCheckError::Digest { .. }
        ),
        "{e}"
    );
    // Another nonce table than the checkpoint's, or one that is not 56-byte parts.
    let mut nonces = good.clone();
    nonces.nonces[0] = [[3u8; 32].as_slice(), &[5; 24]].concat().into();
    assert!(matches!(
        check("r5", nonces),
        ProofCheckError::Digest { .. }
    ));
    let mut nonces = good.clone();
    nonces.nonces.clear();
    assert!(matches!(
        check("r5", nonces),
        ProofCheckError::Digest { .. }
    ));
    let mut nonces = good.clone();
    nonces.nonces[0] = vec![3u8; 55].into();
    assert!(matches!(check("r5", nonces), ProofCheckError::Wire(_)));
    // And the good one still holds.
    assert!(check_proof(&c.genesis, ProvenMap::Releases, "r5", good).is_ok());
}

/// An id asked for with a leading zero ("07") is the number it names, as the validator reads
/// it: proven, not refused as another entry.
#[test]
fn an_id_is_the_number_it_names() {
    let mut c = checkpointed();
    let rollout = c.world.promote_to_canary("c1");
    c.prover = c.world.checkpoint_prover();
    let digest = state_digest_of(Seq(12), c.world.ledger.digest(), &NONCES);
    let signed = cert(12, digest, &c.quorum());
    let proposal = *c.world.ledger.state().proposals.keys().next().expect("one");
    for (map, asked) in [
        (ProvenMap::Proposals, format!("0{proposal}")),
        (ProvenMap::Rollouts, format!("0{rollout}")),
    ] {
        let proof = c.prover.prove(map, &asked).expect("held");
        let r = reply(&proof, &signed, &NONCES, &[]);
        let proven = check_proof(&c.genesis, map, &asked, r).expect("proven");
        assert_eq!(proven.proof.map, map);
    }
}
