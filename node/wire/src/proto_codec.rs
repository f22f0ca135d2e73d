//! The prost implementation of the core's [`Codec`]: the bytes a replica signs are the bytes
//! peers receive.

use prost::Message as _;
use scbe_core::consensus::{
    Checkpoint, Codec, Heartbeat, NewView, PrePrepare, Relay, Request, SnapshotPart, StateRequest,
    StateResponse, Suspect, ViewChange, Vote,
};
use scbe_proto::v1 as pb;

use crate::encode::{
    checkpoint_cert_to_proto, commit_cert_to_proto, digest_bytes, envelopes, epoch_link_to_proto,
    opt_digest_bytes, prepared_to_proto, snapshot_to_proto,
};

/// The prost implementation of the core's [`Codec`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ProtoCodec;

impl Codec for ProtoCodec {
    fn encode_request(&self, v: &Request) -> Vec<u8> {
        pb::Request {
            nonce: v.nonce,
            operation: v.operation.clone().into(),
        }
        .encode_to_vec()
    }

    fn encode_pre_prepare(&self, v: &PrePrepare) -> Vec<u8> {
        pb::PrePrepare {
            view: v.view.0,
            seq: v.seq.0,
            digest: digest_bytes(&v.digest),
            batch: envelopes(&v.batch),
        }
        .encode_to_vec()
    }

    fn encode_vote(&self, v: &Vote) -> Vec<u8> {
        pb::Vote {
            view: v.view.0,
            seq: v.seq.0,
            digest: digest_bytes(&v.digest),
        }
        .encode_to_vec()
    }

    fn encode_checkpoint(&self, v: &Checkpoint) -> Vec<u8> {
        pb::Checkpoint {
            seq: v.seq.0,
            state_digest: digest_bytes(&v.state_digest),
            next_set: opt_digest_bytes(&v.next_set),
        }
        .encode_to_vec()
    }

    fn encode_view_change(&self, v: &ViewChange) -> Vec<u8> {
        pb::ViewChange {
            new_view: v.new_view.0,
            stable: Some(checkpoint_cert_to_proto(&v.stable)),
            prepared: v.prepared.iter().map(prepared_to_proto).collect(),
        }
        .encode_to_vec()
    }

    fn encode_new_view(&self, v: &NewView) -> Vec<u8> {
        pb::NewView {
            view: v.view.0,
            view_changes: envelopes(&v.view_changes),
            pre_prepares: envelopes(&v.pre_prepares),
        }
        .encode_to_vec()
    }

    fn encode_state_request(&self, v: &StateRequest) -> Vec<u8> {
        pb::StateRequest {
            after_seq: v.after.0,
            snapshot_offset: v.snapshot_offset,
            epoch: v.epoch,
            needs_snapshot: v.needs_snapshot,
        }
        .encode_to_vec()
    }

    fn encode_heartbeat(&self, v: &Heartbeat) -> Vec<u8> {
        pb::Heartbeat {
            view: v.view.0,
            last_executed: v.last_executed.0,
        }
        .encode_to_vec()
    }

    fn encode_suspect(&self, v: &Suspect) -> Vec<u8> {
        pb::Suspect {
            view: v.view.0,
            early: v.early,
        }
        .encode_to_vec()
    }

    fn encode_relay(&self, v: &Relay) -> Vec<u8> {
        pb::Relay {
            requests: envelopes(&v.requests),
        }
        .encode_to_vec()
    }

    fn encode_state_response(&self, v: &StateResponse) -> Vec<u8> {
        let (checkpoint, snapshot, part) = match &v.snapshot {
            Some((c, s, part)) => (
                Some(checkpoint_cert_to_proto(c)),
                Some(snapshot_to_proto(s)),
                *part,
            ),
            None => (
                None,
                None,
                SnapshotPart {
                    offset: 0,
                    total: 0,
                },
            ),
        };
        pb::StateResponse {
            checkpoint,
            snapshot,
            decided: v.decided.iter().map(commit_cert_to_proto).collect(),
            snapshot_offset: part.offset,
            snapshot_total: part.total,
            epochs: v.epochs.iter().map(epoch_link_to_proto).collect(),
        }
        .encode_to_vec()
    }
}
