//! How the core turns the messages it signs into bytes. The core never sees protobuf types: the
//! network edge (`scbe_wire::ProtoCodec`) implements this trait with prost and hands it to the replica, so the
//! bytes signed here are exactly the bytes peers receive.

use super::message::{
    Checkpoint, Heartbeat, NewView, PrePrepare, Relay, Request, StateRequest, StateResponse,
    Suspect, ViewChange, Vote,
};

/// Encodes message bodies into the payload bytes that are signed and sent.
pub trait Codec: Send + Sync {
    fn encode_request(&self, value: &Request) -> Vec<u8>;
    fn encode_pre_prepare(&self, value: &PrePrepare) -> Vec<u8>;
    fn encode_vote(&self, value: &Vote) -> Vec<u8>;
    fn encode_checkpoint(&self, value: &Checkpoint) -> Vec<u8>;
    fn encode_view_change(&self, value: &ViewChange) -> Vec<u8>;
    fn encode_new_view(&self, value: &NewView) -> Vec<u8>;
    fn encode_state_request(&self, value: &StateRequest) -> Vec<u8>;
    fn encode_state_response(&self, value: &StateResponse) -> Vec<u8>;
    fn encode_heartbeat(&self, value: &Heartbeat) -> Vec<u8>;
    fn encode_relay(&self, value: &Relay) -> Vec<u8>;
    fn encode_suspect(&self, value: &Suspect) -> Vec<u8>;
}
