//! A codec for the core's own tests: each message body's `Debug` text as its payload. Distinct
//! values give distinct bytes, which is all signing needs; nothing decodes them (tests that
//! carry messages between replicas go through the real wire encoding, in the wire crate).

use super::codec::Codec;
use super::message::{
    Checkpoint, Heartbeat, NewView, PrePrepare, Relay, Request, StateRequest, StateResponse,
    Suspect, ViewChange, Vote,
};

pub struct DebugCodec;

fn text(value: &impl std::fmt::Debug) -> Vec<u8> {
    format!("{value:?}").into_bytes()
}

impl Codec for DebugCodec {
    fn encode_request(&self, value: &Request) -> Vec<u8> {
        text(value)
    }
    fn encode_pre_prepare(&self, value: &PrePrepare) -> Vec<u8> {
        text(value)
    }
    fn encode_vote(&self, value: &Vote) -> Vec<u8> {
        text(value)
    }
    fn encode_checkpoint(&self, value: &Checkpoint) -> Vec<u8> {
        text(value)
    }
    fn encode_view_change(&self, value: &ViewChange) -> Vec<u8> {
        text(value)
    }
    fn encode_new_view(&self, value: &NewView) -> Vec<u8> {
        text(value)
    }
    fn encode_state_request(&self, value: &StateRequest) -> Vec<u8> {
        text(value)
    }
    fn encode_state_response(&self, value: &StateResponse) -> Vec<u8> {
        text(value)
    }
    fn encode_heartbeat(&self, value: &Heartbeat) -> Vec<u8> {
        text(value)
    }
    fn encode_relay(&self, value: &Relay) -> Vec<u8> {
        text(value)
    }
    fn encode_suspect(&self, value: &Suspect) -> Vec<u8> {
        text(value)
    }
}
