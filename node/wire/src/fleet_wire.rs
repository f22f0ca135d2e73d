//! Protobuf <-> domain conversion for the fleet: agent-signed acks and reports, orders and their
//! endorsements. Every conversion from the wire is fallible with a typed error and checks sizes
//! before copying anything; signatures are checked by the domain (`AgentSigned::open`,
//! `SignedOrder::verify`) before any payload is parsed.

use scbe_proto::v1 as pb;

use scbe_core::consensus::{EpochLink, ValidatorSet};
use scbe_core::crypto::{PublicKey, Signature};
use scbe_core::rollout::evidence::{
    hex, parse_hex_signature, AgentBody, AgentSigned, MAX_AGENT_ID_BYTES,
    MAX_EVIDENCE_PAYLOAD_BYTES,
};
use scbe_core::rollout::order::{Endorsement, SignedOrder, MAX_ORDER_BYTES};

use crate::encode::epoch_link_to_proto;

/// Most endorsements an order may carry (a validator set is far smaller).
pub const MAX_ENDORSEMENTS: usize = 1024;
/// Links of the validator-set chain an order may carry (every change since the genesis).
pub const MAX_ORDER_LINKS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetWireError {
    #[error("{what} is {len} bytes (limit {max})")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: {reason}")]
    Bad {
        what: &'static str,
        reason: &'static str,
    },
    #[error("an epoch link of the order: {0}")]
    Link(String),
}

fn cap(what: &'static str, len: usize, max: usize) -> Result<(), FleetWireError> {
    if len > max {
        return Err(FleetWireError::TooLarge { what, len, max });
    }
    Ok(())
}

pub fn agent_signed_to_proto<T>(s: &AgentSigned<T>) -> pb::AgentSigned {
    pb::AgentSigned {
        agent: s.agent.clone(),
        payload: s.payload.clone().into_bytes().into(),
        signature: parse_hex_signature(&s.signature)
            .map(|sig| sig.as_bytes().to_vec())
            .unwrap_or_default()
            .into(),
    }
}

pub fn agent_signed_from_proto<T: AgentBody>(
    p: pb::AgentSigned,
) -> Result<AgentSigned<T>, FleetWireError> {
    cap("agent id", p.agent.len(), MAX_AGENT_ID_BYTES)?;
    cap("agent payload", p.payload.len(), MAX_EVIDENCE_PAYLOAD_BYTES)?;
    let sig = Signature::from_slice(&p.signature).map_err(|_| FleetWireError::Bad {
        what: "agent signature",
        reason: "must be 64 bytes",
    })?;
    let payload = String::from_utf8(p.payload.to_vec()).map_err(|_| FleetWireError::Bad {
        what: "agent payload",
        reason: "must be UTF-8 JSON",
    })?;
    Ok(AgentSigned::from_parts(
        p.agent,
        payload,
        hex(sig.as_bytes()),
    ))
}

pub fn endorsement_to_proto(e: &Endorsement) -> pb::Endorsement {
    pb::Endorsement {
        signer: e.signer.as_bytes().to_vec().into(),
        signature: e.signature.as_bytes().to_vec().into(),
    }
}

pub fn endorsement_from_proto(p: &pb::Endorsement) -> Result<Endorsement, FleetWireError> {
    Ok(Endorsement {
        signer: PublicKey::from_slice(&p.signer).map_err(|_| FleetWireError::Bad {
            what: "endorsement signer",
            reason: "must be 32 bytes",
        })?,
        signature: Signature::from_slice(&p.signature).map_err(|_| FleetWireError::Bad {
            what: "endorsement signature",
            reason: "must be 64 bytes",
        })?,
    })
}

pub fn signed_order_to_proto(o: &SignedOrder) -> pb::SignedOrder {
    pb::SignedOrder {
        order: o.order.clone().into(),
        endorsements: o.endorsements.iter().map(endorsement_to_proto).collect(),
        epochs: o.epochs.iter().map(epoch_link_to_proto).collect(),
    }
}

/// An order as an agent trusting `trusted` receives it: of the chain it carries, only the links
/// past `trusted` are opened ([`crate::epoch_links_beyond`]: the agent checks them from there).
pub fn signed_order_from_proto(
    p: &pb::SignedOrder,
    trusted: &ValidatorSet,
) -> Result<SignedOrder, FleetWireError> {
    cap("order", p.order.len(), MAX_ORDER_BYTES)?;
    cap("endorsements", p.endorsements.len(), MAX_ENDORSEMENTS)?;
    Ok(SignedOrder {
        order: p.order.to_vec(),
        endorsements: p
            .endorsements
            .iter()
            .map(endorsement_from_proto)
            .collect::<Result<_, _>>()?,
        epochs: epoch_links_from_caller(&p.epochs, trusted)?,
    })
}

/// The links past `trusted` of a chain a caller sent (an order, a health watch), within
/// [`MAX_ORDER_LINKS`].
pub fn epoch_links_from_caller(
    links: &[pb::EpochLink],
    trusted: &ValidatorSet,
) -> Result<Vec<EpochLink>, FleetWireError> {
    cap("epoch links", links.len(), MAX_ORDER_LINKS)?;
    crate::epoch_links_beyond(trusted, links).map_err(|e| FleetWireError::Link(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::crypto::Keypair;
    use scbe_core::rollout::evidence::{AckBody, AckOutcome, DeployAck, OrderAction};

    #[test]
    fn acks_survive_the_wire_byte_for_byte() {
        let k = Keypair::from_label("a");
        let ack = DeployAck::sign(
            &AckBody {
                agent: "a".into(),
                rollout: 1,
                action: OrderAction::Deploy,
                issued_seq: 3,
                version: "v1".into(),
                outcome: AckOutcome::Done,
                detail: "ünïcode".into(),
                refusal: None,
            },
            &k,
        );
        let back: DeployAck =
            agent_signed_from_proto(agent_signed_to_proto(&ack)).expect("converts");
        assert_eq!(back, ack);
        let pk = k.public();
        assert!(back.open(|_| Some(&pk)).is_ok());
    }

    #[test]
    fn malformed_wire_input_is_a_typed_error() {
        let bad_sig = pb::AgentSigned {
            agent: "a".into(),
            payload: b"{}".to_vec().into(),
            signature: vec![0; 63].into(),
        };
        assert!(agent_signed_from_proto::<AckBody>(bad_sig).is_err());
        let not_utf8 = pb::AgentSigned {
            agent: "a".into(),
            payload: vec![0xff, 0xfe].into(),
            signature: vec![0; 64].into(),
        };
        assert!(agent_signed_from_proto::<AckBody>(not_utf8).is_err());
        let huge = pb::SignedOrder {
            order: vec![b' '; MAX_ORDER_BYTES + 1].into(),
            endorsements: vec![],
            epochs: Vec::new(),
        };
        assert!(matches!(
            signed_order_from_proto(&huge, &ValidatorSet::default()),
            Err(FleetWireError::TooLarge { .. })
        ));
        let short_key = pb::SignedOrder {
            order: b"{}".to_vec().into(),
            endorsements: vec![pb::Endorsement {
                signer: vec![1; 31].into(),
                signature: vec![0; 64].into(),
            }],
            epochs: Vec::new(),
        };
        assert!(signed_order_from_proto(&short_key, &ValidatorSet::default()).is_err());
    }
}
