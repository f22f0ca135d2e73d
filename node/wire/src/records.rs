//! How the validator's store encodes the core's records and the audit trail's commit
//! certificates: the same protobuf types as the wire and the same rule, every signature
//! re-verified when read back.

use prost::Message as _;
use scbe_core::consensus::{
    CheckpointCert, CommitCert, Directory, EpochLink, Kind, NewView, Record, Seq, Signed, View,
};
use scbe_proto::v1 as pb;

use crate::decode::{
    checkpoint_cert_from_proto, commit_cert_from_proto, decode, decode_new_view,
    decode_view_change, digest, epoch_link_from_proto, open_one, prepared_from_proto,
    snapshot_from_proto, Cx,
};
use crate::encode::{
    checkpoint_cert_to_proto, commit_cert_to_proto, digest_bytes, envelope_to_proto,
    epoch_link_to_proto, prepared_to_proto, snapshot_to_stored_proto,
};
use crate::wire_error::WireError;

/// Encodes a record the core asked to persist, for the node's storage (a snapshot in its store
/// form, `AppState::bytes_for_store`).
pub fn encode_record(record: &Record) -> Vec<u8> {
    use pb::stored_record::Record as R;
    let r = match record {
        Record::Signed {
            pre_prepare,
            view,
            seq,
            digest,
        } => R::Signed(pb::SignedGuard {
            pre_prepare: *pre_prepare,
            view: view.0,
            seq: seq.0,
            digest: digest_bytes(digest),
        }),
        Record::Prepared(c) => R::Prepared(prepared_to_proto(c)),
        Record::Committed(c) => R::Committed(commit_cert_to_proto(c)),
        Record::Snapshot(s) => R::Snapshot(snapshot_to_stored_proto(s)),
        Record::Stable(c) => R::Stable(checkpoint_cert_to_proto(c)),
        Record::ViewChange(vc) => R::ViewChange(envelope_to_proto(vc.envelope())),
        Record::EnteredView { view, new_view } => match new_view {
            Some(nv) => R::EnteredNewView(envelope_to_proto(nv.envelope())),
            None => R::EnteredView(view.0),
        },
        Record::NonceReservation { up_to } => R::NonceReservation(*up_to),
        Record::EpochLink(l) => R::EpochLink(epoch_link_to_proto(l)),
        Record::SignReserved { view, through } => R::SignReserved(pb::SignReservation {
            view: view.0,
            through: through.0,
        }),
    };
    pb::StoredRecord { record: Some(r) }.encode_to_vec()
}

/// The kind of a stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredKind {
    Signed,
    SignReserved,
    Prepared,
    Committed,
    Snapshot,
    Stable,
    ViewChange,
    EnteredView,
    NonceReservation,
    EpochLink,
}

/// What a record is about (kind and sequence number), as [`stored_record_key`] reads it back
/// from the record's encoding: the store keeps these in memory so compaction never has to read
/// (and decode) records, snapshots included, to find what to drop.
pub fn record_key(r: &Record) -> (StoredKind, Option<u64>) {
    use Record as R;
    match r {
        R::Signed { seq, .. } => (StoredKind::Signed, Some(seq.0)),
        R::SignReserved { through, .. } => (StoredKind::SignReserved, Some(through.0)),
        R::Prepared(c) => (StoredKind::Prepared, Some(c.pre_prepare.value().seq.0)),
        R::Committed(c) => (StoredKind::Committed, Some(c.seq().0)),
        R::Snapshot(s) => (StoredKind::Snapshot, Some(s.seq.0)),
        R::Stable(c) => (StoredKind::Stable, Some(c.seq.0)),
        R::ViewChange(_) => (StoredKind::ViewChange, None),
        R::EnteredView { .. } => (StoredKind::EnteredView, None),
        R::NonceReservation { .. } => (StoredKind::NonceReservation, None),
        R::EpochLink(l) => (StoredKind::EpochLink, Some(l.boundary.seq.0)),
    }
}

/// What a stored record is about (kind and sequence number), read without checking signatures:
/// enough to garbage-collect, never used to act.
pub fn stored_record_key(bytes: &[u8]) -> Option<(StoredKind, Option<u64>)> {
    use pb::stored_record::Record as R;
    let pp_seq = |e: &Option<pb::Envelope>| {
        e.as_ref()
            .and_then(|e| pb::PrePrepare::decode(e.payload.as_ref()).ok())
            .map(|p| p.seq)
    };
    let p = pb::StoredRecord::decode(bytes).ok()?;
    Some(match p.record? {
        R::Signed(g) => (StoredKind::Signed, Some(g.seq)),
        R::SignReserved(g) => (StoredKind::SignReserved, Some(g.through)),
        R::Prepared(c) => (StoredKind::Prepared, pp_seq(&c.pre_prepare)),
        R::Committed(c) => (StoredKind::Committed, pp_seq(&c.pre_prepare)),
        R::Snapshot(s) => (StoredKind::Snapshot, Some(s.seq)),
        R::Stable(c) => (StoredKind::Stable, Some(c.seq)),
        R::ViewChange(_) => (StoredKind::ViewChange, None),
        R::EnteredView(_) | R::EnteredNewView(_) => (StoredKind::EnteredView, None),
        R::NonceReservation(_) => (StoredKind::NonceReservation, None),
        R::EpochLink(l) => (StoredKind::EpochLink, l.boundary.map(|b| b.seq)),
    })
}

/// Opens a commit certificate from an audit log or the store, verifying every signature.
pub fn open_commit_cert(
    p: pb::CommitCertificate,
    dir: &Directory,
) -> Result<CommitCert, WireError> {
    commit_cert_from_proto(&Cx { dir, cache: None }, p)
}

/// Encodes a commit certificate as the audit trail keeps it.
pub fn encode_commit_cert(c: &CommitCert) -> Vec<u8> {
    commit_cert_to_proto(c).encode_to_vec()
}

/// Decodes and opens an encoded commit certificate (an audit-trail entry), verifying every
/// signature.
pub fn decode_commit_cert(bytes: &[u8], dir: &Directory) -> Result<CommitCert, WireError> {
    open_commit_cert(decode("commit_certificate", bytes)?, dir)
}

/// Opens a stable checkpoint's certificate from an audit log or the store, verifying every
/// signature.
pub fn open_checkpoint_cert(
    p: pb::CheckpointCertificate,
    dir: &Directory,
) -> Result<CheckpointCert, WireError> {
    checkpoint_cert_from_proto(&Cx { dir, cache: None }, p)
}

/// Encodes a stable checkpoint's certificate as the audit trail keeps it.
pub fn encode_checkpoint_cert(c: &CheckpointCert) -> Vec<u8> {
    checkpoint_cert_to_proto(c).encode_to_vec()
}

/// The link of the validator-set chain a stored record holds (`None` for any other record),
/// signatures verified against the set the link says signed it: readable before the store
/// knows which keys its other records are signed with, which the links tell.
pub fn decode_stored_epoch_link(bytes: &[u8]) -> Result<Option<EpochLink>, WireError> {
    use pb::stored_record::Record as R;
    let p: pb::StoredRecord = decode("stored_record", bytes)?;
    match p.record {
        // The link opens its boundary with its own `previous` set: no directory needed.
        Some(R::EpochLink(l)) => epoch_link_from_proto(None, l).map(Some),
        _ => Ok(None),
    }
}

/// Decodes a stored record, re-verifying every signature in it: a record that was tampered with
/// on disk is an error, never a reason to sign something new.
pub fn decode_record(bytes: &[u8], dir: &Directory) -> Result<Record, WireError> {
    use pb::stored_record::Record as R;
    let cx = &Cx { dir, cache: None };
    const W: &str = "stored_record";
    let p: pb::StoredRecord = decode(W, bytes)?;
    let r = p.record.ok_or(WireError::BadField {
        what: W,
        field: "record",
        reason: "missing",
    })?;
    Ok(match r {
        R::Signed(g) => Record::Signed {
            pre_prepare: g.pre_prepare,
            view: View(g.view),
            seq: Seq(g.seq),
            digest: digest(W, "digest", &g.digest)?,
        },
        R::Prepared(c) => Record::Prepared(prepared_from_proto(cx, c)?),
        R::Committed(c) => Record::Committed(commit_cert_from_proto(cx, c)?),
        R::Snapshot(s) => Record::Snapshot(snapshot_from_proto(s)?),
        R::Stable(c) => Record::Stable(checkpoint_cert_from_proto(cx, c)?),
        R::ViewChange(e) => Record::ViewChange(open_one(
            cx,
            W,
            "view_change",
            Kind::ViewChange,
            Some(e),
            decode_view_change,
        )?),
        R::EnteredView(v) => Record::EnteredView {
            view: View(v),
            new_view: None,
        },
        R::EnteredNewView(e) => {
            let nv: Signed<NewView> = open_one(
                cx,
                W,
                "entered_new_view",
                Kind::NewView,
                Some(e),
                decode_new_view,
            )?;
            Record::EnteredView {
                view: nv.value().view,
                new_view: Some(nv),
            }
        }
        R::NonceReservation(up_to) => Record::NonceReservation { up_to },
        R::SignReserved(g) => Record::SignReserved {
            view: View(g.view),
            through: Seq(g.through),
        },
        R::EpochLink(l) => Record::EpochLink(epoch_link_from_proto(None, l)?),
    })
}
