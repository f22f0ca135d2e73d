//! Checking an `Audit.Prove` reply with nothing but the genesis's validator set: the links
//! lead from the genesis to the set that signed the checkpoint (each checked from the one
//! before), the checkpoint's signatures are verified against that set's keys and counted (a
//! quorum of distinct members), and the proof must be of the entry asked for and lead, with
//! the checkpoint's seq and nonce table, to the state digest the checkpoint names. The validator that answered is trusted for nothing: a
//! reply it bent fails one of these checks. [`reply`] is the validator's side.

use scbe_core::consensus::{
    check_checkpoint_cert_by, state_digest_of, CertError, CheckpointCert, Directory, EpochLink,
    LinkError, NoncePart, ReplicaId, Seq, ValidatorSet,
};
use scbe_core::governance::ledger::state_proof::{ProofError, ProvenMap, StateProof};
use scbe_proto::v1 as pb;

use crate::decode::{checkpoint_cert_from_proto, Cx};
use crate::WireError;

/// An entry proven at a checkpoint.
#[derive(Debug, Clone)]
pub struct ProvenEntry {
    pub proof: StateProof,
    /// The checkpoint it was proven at.
    pub seq: Seq,
    /// The validator set that signed the checkpoint (its epoch and size).
    pub epoch: u64,
    pub n: usize,
    /// The members whose signatures make the certificate, ascending.
    pub signers: Vec<ReplicaId>,
}

/// Why a reply proves nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProofCheckError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("the validator-set chain: {0}")]
    Link(#[from] LinkError),
    #[error("the checkpoint certificate: {0}")]
    Cert(#[from] CertError),
    #[error("the reply carries no checkpoint certificate")]
    NoCheckpoint,
    #[error("the certificate is of the genesis (seq 0): there is no checkpoint to prove from")]
    Genesis,
    #[error("the validator set that signed seq {seq} cannot be checked: {reason}")]
    Set { seq: Seq, reason: String },
    #[error("the proof is not a state proof: {0}")]
    Json(String),
    #[error("the proof is of {got}, not of the entry asked for ({asked})")]
    OtherEntry { asked: String, got: String },
    #[error("the proof: {0}")]
    Proof(#[from] ProofError),
    #[error(
        "the proof leads to state digest {got}, but the checkpoint at seq {seq} names {signed}"
    )]
    Digest {
        seq: Seq,
        got: String,
        signed: String,
    },
}

/// The request for the entry `key` of `map`.
pub fn request(map: ProvenMap, key: &str) -> pb::ProveRequest {
    pb::ProveRequest {
        map: map.name().to_string(),
        key: key.to_string(),
    }
}

/// What a validator answers: `proof`, the certificate of the checkpoint it leads to, and the
/// links from the genesis to the set in force.
pub fn reply(
    proof: &StateProof,
    cert: &CheckpointCert,
    nonces: &[NoncePart],
    links: &[EpochLink],
) -> pb::ProveReply {
    pb::ProveReply {
        proof_json: serde_json::to_vec(proof).unwrap_or_default().into(),
        checkpoint: Some(crate::encode::checkpoint_cert_to_proto(cert)),
        epochs: crate::epoch_links_to_proto(links),
        nonces: nonces
            .iter()
            .map(|(k, w)| [k.as_slice(), w.as_slice()].concat().into())
            .collect(),
    }
}

fn nonce_part(bytes: &[u8]) -> Option<NoncePart> {
    let (k, w) = (bytes.get(..32)?, bytes.get(32..)?);
    Some((k.try_into().ok()?, w.try_into().ok()?))
}

/// Checks `reply` to a request for `key` of `map`, trusting `genesis` alone.
pub fn check_proof(
    genesis: &ValidatorSet,
    map: ProvenMap,
    key: &str,
    reply: pb::ProveReply,
) -> Result<ProvenEntry, ProofCheckError> {
    let cert = reply.checkpoint.ok_or(ProofCheckError::NoCheckpoint)?;
    let seq = Seq(cert.seq);
    if seq == Seq(0) {
        return Err(ProofCheckError::Genesis);
    }
    let links = crate::epoch_links_beyond(genesis, &reply.epochs)?;
    let set = EpochLink::set_signing(genesis, &links, seq)?;
    let dir = Directory::of_set(&set, Vec::new()).map_err(|e| ProofCheckError::Set {
        seq,
        reason: e.to_string(),
    })?;
    // Signatures are verified here, against the set's keys, before anything is counted.
    let cert = checkpoint_cert_from_proto(
        &Cx {
            dir: &dir,
            cache: None,
        },
        cert,
    )?;
    check_checkpoint_cert_by(&set, &cert, "checkpoint certificate")?;
    let proof: StateProof = serde_json::from_slice(&reply.proof_json)
        .map_err(|e| ProofCheckError::Json(e.to_string()))?;
    // As the validator reads it: "07" is proposal 7. (A key that names no entry is refused
    // by the validator; if it answers anyway, the answer is of another entry.)
    let asked = map.key_json(key).unwrap_or_else(|| key.to_string());
    if proof.map != map || proof.entry.key != asked {
        return Err(ProofCheckError::OtherEntry {
            asked: format!("{} {asked}", map.name()),
            got: format!("{} {}", proof.map.name(), proof.entry.key),
        });
    }
    let nonces = reply
        .nonces
        .iter()
        .map(|b| nonce_part(b))
        .collect::<Option<Vec<_>>>()
        .ok_or(WireError::BadField {
            what: "prove reply",
            field: "nonces",
            reason: "each must be 56 bytes",
        })?;
    let got = state_digest_of(seq, proof.state_digest()?, &nonces);
    if got != cert.state_digest {
        return Err(ProofCheckError::Digest {
            seq,
            got: got.to_string(),
            signed: cert.state_digest.to_string(),
        });
    }
    let mut signers: Vec<ReplicaId> = cert.proof.iter().filter_map(|v| v.validator()).collect();
    signers.sort();
    signers.dedup();
    Ok(ProvenEntry {
        proof,
        seq,
        epoch: set.epoch,
        n: set.n(),
        signers,
    })
}
