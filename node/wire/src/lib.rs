//! SCBE Fleet's edge: everything between the pure core and the bytes on a wire or a disk.
//!
//! - The door ([`open`]): peer and client envelopes are size-capped, their signer resolved and
//!   their signature verified before any payload is decoded; [`decode`] then checks every field a
//!   peer sent, nested envelopes included ([`WireError`] says what was wrong).
//! - [`ProtoCodec`]: the core's `Codec`, so the bytes a replica signs are the bytes peers get;
//!   [`encode`] for envelopes and certificates; [`records`] for what the store persists.
//! - [`fleet_wire`]: agent-signed evidence and quorum-signed orders on the wire.
//! - Clients: [`governance_client`] (release requesters), [`fleet_client`] (orders,
//!   endorsements and health streams between validators and agents).
//! - [`key_file`]: secret key files and hex public keys, for every binary; [`daemon`]: what
//!   the two daemons share as processes (logging, runtime, keygen); [`config_error`]: their
//!   configuration errors; [`supervisor`]: their long-lived tasks, watched.
//! - [`genesis`]: the one file everything validators must agree on, its digest and its checks
//!   ([`genesis_file`]: its sections).
//! - [`status_summary`]: the typed summary `Status` returns, built by validators and read by the
//!   CLI, the simulator's demo and the tests.
//!
//! Protobuf types (`scbe_proto`) appear in the crates above only where they serve or call gRPC.

pub mod audit_log;
pub mod chain_ask;
pub mod config_error;
pub mod daemon;
pub mod decode;
pub mod encode;
pub mod fleet_client;
pub mod fleet_wire;
pub mod genesis;
pub mod genesis_file;
pub mod governance_client;
pub mod health_probe;
#[cfg(feature = "testkit")]
pub mod http_sink;
pub mod key_file;
pub mod metrics_http;
pub mod notify_entry;
pub mod open;
pub mod proto_codec;
pub mod records;
pub mod state_proof_check;
pub mod status_summary;
pub mod supervisor;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;
pub mod verified_cache;
pub mod wire_error;

pub use encode::{commit_cert_to_proto, encode_envelope, envelope_to_proto};

/// The chain of epoch links as a status reply carries it.
pub fn epoch_links_to_proto(
    links: &[scbe_core::consensus::EpochLink],
) -> Vec<scbe_proto::v1::EpochLink> {
    links.iter().map(encode::epoch_link_to_proto).collect()
}

/// Opens the links of a chain a caller sent that lead past `trusted` (the newest set the
/// receiver can check), for an agent or a client that runs no consensus. Links the receiver is
/// past cost nothing but reading their epoch; each later link must start from the set the one
/// before it proved (the first from `trusted`), checked before its signatures are: a chain
/// that cannot lead anywhere from `trusted` costs no signature check, and no signature is
/// ever checked against a set nobody certified. What the links prove is then
/// [`scbe_core::consensus::EpochLink::advance`]'s to check.
pub fn epoch_links_beyond(
    trusted: &scbe_core::consensus::ValidatorSet,
    links: &[scbe_proto::v1::EpochLink],
) -> Result<Vec<scbe_core::consensus::EpochLink>, WireError> {
    const W: &str = "epoch_link";
    let mut tip = trusted.clone();
    let mut opened = Vec::new();
    for l in links {
        if l.set.as_ref().map_or(0, |s| s.epoch) <= trusted.epoch {
            continue;
        }
        if decode::validator_set_from_proto(W, l.previous.clone())? != tip {
            return Err(WireError::BadField {
                what: W,
                field: "previous",
                reason: "not the validator set the receiver trusts, nor one a link before proved",
            });
        }
        let link = decode::epoch_link_from_proto(None, l.clone())?;
        tip = link.set.clone();
        opened.push(link);
    }
    Ok(opened)
}
pub use open::{open, open_many_cached, open_proto, open_proto_cached};
pub use proto_codec::ProtoCodec;
pub use records::{
    decode_commit_cert, decode_record, decode_stored_epoch_link, encode_checkpoint_cert,
    encode_commit_cert, encode_record, open_checkpoint_cert, open_commit_cert, record_key,
    stored_record_key, StoredKind,
};
pub use verified_cache::VerifiedCache;
pub use wire_error::{WireError, MAX_ENVELOPE_BYTES};

#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
mod state_proof_check_tests;
