//! Domain -> protobuf: envelopes, certificates and snapshots in the form they are sent and
//! stored. Infallible (the domain values are already valid).

use prost::Message as _;
use scbe_core::consensus::{
    CheckpointCert, CommitCert, Digest, Envelope, EpochLink, Kind, PreparedCert, Signed, Snapshot,
    ValidatorSet,
};
use scbe_proto::v1 as pb;

pub(crate) fn kind_to_proto(kind: Kind) -> pb::Kind {
    match kind {
        Kind::Request => pb::Kind::Request,
        Kind::PrePrepare => pb::Kind::PrePrepare,
        Kind::Prepare => pb::Kind::Prepare,
        Kind::Commit => pb::Kind::Commit,
        Kind::Checkpoint => pb::Kind::Checkpoint,
        Kind::ViewChange => pb::Kind::ViewChange,
        Kind::NewView => pb::Kind::NewView,
        Kind::StateRequest => pb::Kind::StateRequest,
        Kind::StateResponse => pb::Kind::StateResponse,
        Kind::Heartbeat => pb::Kind::Heartbeat,
        Kind::Relay => pb::Kind::Relay,
        Kind::Suspect => pb::Kind::Suspect,
    }
}

/// Domain envelope to its protobuf form, for sending.
pub fn envelope_to_proto(env: &Envelope) -> pb::Envelope {
    pb::Envelope {
        kind: kind_to_proto(env.kind) as i32,
        payload: env.payload.clone().into(),
        signer: env.signer.as_bytes().to_vec().into(),
        signature: env.signature.as_bytes().to_vec().into(),
    }
}

pub(crate) fn envelopes<T>(items: &[Signed<T>]) -> Vec<pb::Envelope> {
    items
        .iter()
        .map(|s| envelope_to_proto(s.envelope()))
        .collect()
}

pub(crate) fn digest_bytes(d: &Digest) -> prost::bytes::Bytes {
    d.as_bytes().to_vec().into()
}

/// An optional digest: empty bytes when absent.
pub(crate) fn opt_digest_bytes(d: &Option<Digest>) -> prost::bytes::Bytes {
    d.as_ref().map(digest_bytes).unwrap_or_default()
}

pub(crate) fn checkpoint_cert_to_proto(c: &CheckpointCert) -> pb::CheckpointCertificate {
    pb::CheckpointCertificate {
        seq: c.seq.0,
        state_digest: digest_bytes(&c.state_digest),
        checkpoints: envelopes(&c.proof),
        next_set: opt_digest_bytes(&c.next_set),
    }
}

pub(crate) fn validator_set_to_proto(s: &ValidatorSet) -> pb::ValidatorSet {
    pb::ValidatorSet {
        epoch: s.epoch,
        start: s.start.0,
        members: s
            .members
            .iter()
            .map(|(id, key)| pb::ValidatorMember {
                id: id.0,
                public_key: key.as_bytes().to_vec().into(),
            })
            .collect(),
    }
}

pub(crate) fn epoch_link_to_proto(l: &EpochLink) -> pb::EpochLink {
    pb::EpochLink {
        previous: Some(validator_set_to_proto(&l.previous)),
        boundary: Some(checkpoint_cert_to_proto(&l.boundary)),
        set: Some(validator_set_to_proto(&l.set)),
    }
}

pub(crate) fn prepared_to_proto(c: &PreparedCert) -> pb::PreparedCertificate {
    pb::PreparedCertificate {
        pre_prepare: Some(envelope_to_proto(c.pre_prepare.envelope())),
        prepares: envelopes(&c.prepares),
    }
}

/// A commit certificate in its protobuf form (audit export).
pub fn commit_cert_to_proto(c: &CommitCert) -> pb::CommitCertificate {
    pb::CommitCertificate {
        pre_prepare: Some(envelope_to_proto(c.pre_prepare.envelope())),
        commits: envelopes(&c.commits),
    }
}

/// A snapshot as peers read it (its whole bytes).
pub(crate) fn snapshot_to_proto(s: &Snapshot) -> pb::Snapshot {
    snapshot_with_bytes(s, s.app_state.to_vec())
}

/// A snapshot as the replica's own store keeps it: the application's store form, when it has
/// one (`AppState::bytes_for_store`).
pub(crate) fn snapshot_to_stored_proto(s: &Snapshot) -> pb::Snapshot {
    snapshot_with_bytes(s, s.app_state.bytes_for_store().into_owned())
}

fn snapshot_with_bytes(s: &Snapshot, app_state: Vec<u8>) -> pb::Snapshot {
    pb::Snapshot {
        seq: s.seq.0,
        app_state: app_state.into(),
        nonces: s
            .nonces
            .iter()
            .map(|(k, n)| pb::NonceEntry {
                signer: k.as_bytes().to_vec().into(),
                nonce: n.highest,
                below: n.below.to_be_bytes().to_vec().into(),
            })
            .collect(),
    }
}

/// Encodes an envelope for the network.
pub fn encode_envelope(env: &Envelope) -> Vec<u8> {
    envelope_to_proto(env).encode_to_vec()
}
