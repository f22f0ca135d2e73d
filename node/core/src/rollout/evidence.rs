//! What agents sign: deploy acks and health reports, carried as the exact bytes the agent signed.
//!
//! An [`AgentSigned`] holds the agent id *outside* the signed payload, so a verifier looks up the
//! agent's key, checks the signature over `b"scbe/v1/" ++ kind ++ payload`, and only then parses
//! the payload (and checks it names the same agent). The payload is kept byte for byte (as a JSON
//! string inside the operation), so there is no re-encoding ambiguity: every validator checks the
//! same bytes the agent signed, and so can anyone auditing the ledger later.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::crypto::{self, Keypair, PublicKey, Signature};

/// Domain-separation name of a health report.
pub const HEALTH_KIND: &str = "health_report";
/// Domain-separation name of a deploy or rollback acknowledgement.
pub const ACK_KIND: &str = "deploy_ack";

/// Most samples a report carries raw (the latest ones): for the breach check, and for the
/// canary-against-baseline comparison, which needs the window's samples (a default window of
/// 5 minutes sampled every 10 s is 30). A report of this many samples with the longest figures
/// stays under [`MAX_EVIDENCE_PAYLOAD_BYTES`] (tested below).
pub const MAX_LATEST_SAMPLES: usize = 32;
/// Largest signed payload accepted from an agent; anything bigger is refused unparsed.
pub const MAX_EVIDENCE_PAYLOAD_BYTES: usize = 8 * 1024;
/// Longest agent id.
pub const MAX_AGENT_ID_BYTES: usize = 128;

/// One health sample an agent took from its health source.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Output coherence, 0..=1 (higher is better).
    pub coherence: f64,
    /// Share of failed tasks, 0..=1.
    pub error_rate: f64,
    /// p95 response time over the sample interval, milliseconds.
    pub response_ms: f64,
    /// Safety score, 0..=1.
    pub safety: f64,
    /// Tasks completed per minute.
    pub tasks_per_minute: f64,
}

/// What is inconsistent in an agent's sample, report or ack.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("{figure} must be a number in [0, 1], got {value}")]
    NotAShare { figure: &'static str, value: f64 },
    #[error("{figure} must be a finite number >= 0, got {value}")]
    NotAnAmount { figure: &'static str, value: f64 },
    #[error("window {window} exceeds the {samples} samples taken")]
    WindowBeyondSamples { window: u32, samples: u32 },
    #[error("{count} latest samples (at most {MAX_LATEST_SAMPLES} and at most the window)")]
    TooManyLatest { count: usize },
}

impl Sample {
    /// Every figure finite and in range; a source that reports otherwise produced no sample.
    pub fn check(&self) -> Result<(), BodyError> {
        let unit = [
            ("coherence", self.coherence),
            ("error_rate", self.error_rate),
            ("safety", self.safety),
        ];
        for (figure, value) in unit {
            if !value.is_finite() || !(0.0..=1.0).contains(&value) {
                return Err(BodyError::NotAShare { figure, value });
            }
        }
        for (figure, value) in [
            ("response_ms", self.response_ms),
            ("tasks_per_minute", self.tasks_per_minute),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(BodyError::NotAnAmount { figure, value });
            }
        }
        Ok(())
    }
}

/// An agent's health while it runs `version` for `rollout`: aggregates over its recent window and
/// the latest raw samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthBody {
    pub agent: String,
    pub rollout: u64,
    pub version: String,
    /// The agent's report counter (increases with every report it signs).
    pub report: u64,
    /// Samples taken since this version started serving this rollout.
    pub samples: u32,
    /// How many of the latest samples the aggregates below cover (at most `samples`).
    pub window: u32,
    pub coherence_mean: f64,
    pub error_rate_mean: f64,
    pub response_ms_p95: f64,
    pub safety_min: f64,
    pub tasks_per_minute: f64,
    /// The latest samples, oldest first (at most [`MAX_LATEST_SAMPLES`]).
    pub latest: Vec<Sample>,
}

impl HealthBody {
    /// Consistency of what the agent claims (not whether it is healthy).
    pub fn check(&self) -> Result<(), BodyError> {
        if self.window > self.samples {
            return Err(BodyError::WindowBeyondSamples {
                window: self.window,
                samples: self.samples,
            });
        }
        if self.latest.len() > MAX_LATEST_SAMPLES || self.latest.len() as u32 > self.window {
            return Err(BodyError::TooManyLatest {
                count: self.latest.len(),
            });
        }
        let aggregate = Sample {
            coherence: self.coherence_mean,
            error_rate: self.error_rate_mean,
            response_ms: self.response_ms_p95,
            safety: self.safety_min,
            tasks_per_minute: self.tasks_per_minute,
        };
        aggregate.check()?;
        for s in &self.latest {
            s.check()?;
        }
        Ok(())
    }
}

/// What an order asked the agent to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    Deploy,
    Rollback,
}

/// How the agent's hook went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckOutcome {
    /// The agent now runs the ordered version (deployed now, or already running it).
    Done,
    /// The hook failed or timed out; `detail` says how.
    Failed,
    /// The order was not authorised (too few valid validator signatures, stale, not for this
    /// agent); nothing ran.
    Refused,
}

/// An agent's answer to a deploy or rollback order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub agent: String,
    pub rollout: u64,
    pub action: OrderAction,
    /// Ledger sequence number the order was issued at (identifies the step).
    pub issued_seq: u64,
    pub version: String,
    pub outcome: AckOutcome,
    pub detail: String,
    /// Why the order was refused (with [`AckOutcome::Refused`] only): what a validator acts on,
    /// never the wording of `detail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
}

/// Why an agent refused an order, as it says in its signed ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Too few valid signatures of distinct validators of the agent's set.
    NotEnoughEndorsements,
    /// The order was too large or did not parse.
    Malformed,
    /// A deploy order on the rollback call, or the reverse.
    WrongCall,
    /// The order does not name this agent.
    NotForThisAgent,
    /// Older than an order the agent already obeyed (it will never obey this one).
    Stale,
}

/// A body signed by an agent, with the exact signed bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSigned<T> {
    /// The agent that signed (its key is looked up by this id before anything is parsed).
    pub agent: String,
    /// The signed JSON body, exactly as signed.
    pub payload: String,
    /// Hex ed25519 signature over `b"scbe/v1/" ++ kind ++ payload`.
    pub signature: String,
    #[serde(skip)]
    _body: PhantomData<T>,
}

pub type HealthReport = AgentSigned<HealthBody>;
pub type DeployAck = AgentSigned<AckBody>;

/// Why a piece of agent evidence was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvidenceError {
    #[error("{agent} is not a registered agent")]
    UnknownAgent { agent: String },
    #[error("evidence from {agent} is {len} bytes (limit {MAX_EVIDENCE_PAYLOAD_BYTES})")]
    TooLarge { agent: String, len: usize },
    #[error("evidence from {agent} is not signed by that agent")]
    BadSignature { agent: String },
    #[error("evidence from {agent} does not parse: {detail}")]
    Malformed { agent: String, detail: String },
    #[error("evidence signed by {signer} names agent {named}")]
    AgentMismatch { signer: String, named: String },
    #[error("evidence from {agent} is inconsistent: {detail}")]
    Inconsistent { agent: String, detail: BodyError },
}

/// Bodies that name the agent they are about.
pub trait AgentBody: Serialize + DeserializeOwned {
    const KIND: &'static str;
    fn agent(&self) -> &str;
    fn check(&self) -> Result<(), BodyError>;
}

impl AgentBody for HealthBody {
    const KIND: &'static str = HEALTH_KIND;
    fn agent(&self) -> &str {
        &self.agent
    }
    fn check(&self) -> Result<(), BodyError> {
        HealthBody::check(self)
    }
}

impl AgentBody for AckBody {
    const KIND: &'static str = ACK_KIND;
    fn agent(&self) -> &str {
        &self.agent
    }
    fn check(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

pub use crate::governance::release::hex;

pub fn parse_hex_signature(s: &str) -> Option<Signature> {
    if s.len() != 128 {
        return None;
    }
    let mut out = [0u8; 64];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Signature(out))
}

impl<T: AgentBody> AgentSigned<T> {
    /// Signs `body` with the agent's key.
    pub fn sign(body: &T, key: &Keypair) -> Self {
        let payload = serde_json::to_string(body).unwrap_or_default();
        let sig = key.sign(T::KIND, payload.as_bytes());
        Self::from_parts(body.agent().to_string(), payload, hex(sig.as_bytes()))
    }

    pub fn from_parts(agent: String, payload: String, signature: String) -> Self {
        AgentSigned {
            agent,
            payload,
            signature,
            _body: PhantomData,
        }
    }

    /// Size cap, then signature, then parsing: nothing an unauthenticated sender wrote is decoded.
    /// `key_of` resolves the agent id to its registered key.
    pub fn open<'k>(
        &self,
        key_of: impl FnOnce(&str) -> Option<&'k PublicKey>,
    ) -> Result<T, EvidenceError> {
        let agent = || self.agent.clone();
        if self.payload.len() > MAX_EVIDENCE_PAYLOAD_BYTES {
            return Err(EvidenceError::TooLarge {
                agent: agent(),
                len: self.payload.len(),
            });
        }
        let key =
            key_of(&self.agent).ok_or_else(|| EvidenceError::UnknownAgent { agent: agent() })?;
        let signed = parse_hex_signature(&self.signature)
            .is_some_and(|sig| crypto::verify(key, T::KIND, self.payload.as_bytes(), &sig).is_ok());
        if !signed {
            return Err(EvidenceError::BadSignature { agent: agent() });
        }
        let body: T =
            serde_json::from_str(&self.payload).map_err(|e| EvidenceError::Malformed {
                agent: agent(),
                detail: e.to_string(),
            })?;
        if body.agent() != self.agent {
            return Err(EvidenceError::AgentMismatch {
                signer: agent(),
                named: body.agent().to_string(),
            });
        }
        body.check().map_err(|detail| EvidenceError::Inconsistent {
            agent: agent(),
            detail,
        })?;
        Ok(body)
    }

    /// Bytes this evidence adds to an operation (for chunking under the operation cap).
    pub fn encoded_len(&self) -> usize {
        // JSON string escaping roughly doubles quotes; count generously.
        self.agent.len() + self.payload.len() * 5 / 4 + self.signature.len() + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(agent: &str) -> AckBody {
        AckBody {
            agent: agent.into(),
            rollout: 3,
            action: OrderAction::Deploy,
            issued_seq: 9,
            version: "v1".into(),
            outcome: AckOutcome::Done,
            detail: String::new(),
            refusal: None,
        }
    }

    /// The longest report an honest agent can sign (every figure at its longest JSON
    /// spelling, the longest id, a long version) is not refused for its size.
    #[test]
    fn the_longest_honest_report_fits_the_payload_cap() {
        let tiny = 2.225_073_858_507_201_4e-308; // in 0..=1, 23 characters in JSON
        let huge = f64::MAX; // 1.7976931348623157e308
        let s = Sample {
            coherence: tiny,
            error_rate: tiny,
            response_ms: huge,
            safety: tiny,
            tasks_per_minute: huge,
        };
        s.check().expect("a valid sample");
        let body = HealthBody {
            agent: "a".repeat(MAX_AGENT_ID_BYTES),
            rollout: u64::MAX,
            version: "v".repeat(128),
            report: u64::MAX,
            samples: u32::MAX,
            window: u32::MAX,
            coherence_mean: tiny,
            error_rate_mean: tiny,
            response_ms_p95: huge,
            safety_min: tiny,
            tasks_per_minute: huge,
            latest: vec![s; MAX_LATEST_SAMPLES],
        };
        body.check().expect("consistent");
        let signed = HealthReport::sign(&body, &Keypair::from_label("a"));
        assert!(
            signed.payload.len() <= MAX_EVIDENCE_PAYLOAD_BYTES,
            "{} bytes",
            signed.payload.len()
        );
    }

    #[test]
    fn signed_evidence_opens_only_with_the_agents_key() {
        let k = Keypair::from_label("agent-a");
        let other = Keypair::from_label("agent-b").public();
        let ack = DeployAck::sign(&body("a"), &k);
        let pk = k.public();
        assert_eq!(ack.open(|id| (id == "a").then_some(&pk)), Ok(body("a")));
        assert!(matches!(
            ack.open(|_| Some(&other)),
            Err(EvidenceError::BadSignature { .. })
        ));
        assert!(matches!(
            ack.open(|_| None),
            Err(EvidenceError::UnknownAgent { .. })
        ));
        // The same bytes under the other kind do not verify (domain separation).
        let as_report: HealthReport = AgentSigned::from_parts(
            ack.agent.clone(),
            ack.payload.clone(),
            ack.signature.clone(),
        );
        assert!(matches!(
            as_report.open(|_| Some(&pk)),
            Err(EvidenceError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_tampered_payload_or_a_claim_for_another_agent_is_refused() {
        let k = Keypair::from_label("agent-a");
        let pk = k.public();
        let mut ack = DeployAck::sign(&body("a"), &k);
        ack.payload = ack.payload.replace("\"v1\"", "\"v2\"");
        assert!(matches!(
            ack.open(|_| Some(&pk)),
            Err(EvidenceError::BadSignature { .. })
        ));
        // Signed honestly by a's key, but the body names b.
        let lying = DeployAck::sign(&body("b"), &k);
        let relabelled: DeployAck =
            AgentSigned::from_parts("a".into(), lying.payload, lying.signature);
        assert!(matches!(
            relabelled.open(|_| Some(&pk)),
            Err(EvidenceError::AgentMismatch { .. })
        ));
        let huge: DeployAck = AgentSigned::from_parts(
            "a".into(),
            "x".repeat(MAX_EVIDENCE_PAYLOAD_BYTES + 1),
            String::new(),
        );
        assert!(matches!(
            huge.open(|_| Some(&pk)),
            Err(EvidenceError::TooLarge { .. })
        ));
    }

    #[test]
    fn out_of_range_figures_make_a_report_malformed() {
        let k = Keypair::from_label("agent-a");
        let pk = k.public();
        let s = Sample {
            coherence: 0.9,
            error_rate: 0.01,
            response_ms: 80.0,
            safety: 0.99,
            tasks_per_minute: 10.0,
        };
        let mut b = HealthBody {
            agent: "a".into(),
            rollout: 1,
            version: "v1".into(),
            report: 1,
            samples: 3,
            window: 3,
            coherence_mean: 0.9,
            error_rate_mean: 0.01,
            response_ms_p95: 80.0,
            safety_min: 1.5,
            tasks_per_minute: 10.0,
            latest: vec![s],
        };
        let r = HealthReport::sign(&b, &k);
        assert!(matches!(
            r.open(|_| Some(&pk)),
            Err(EvidenceError::Inconsistent {
                detail: BodyError::NotAShare {
                    figure: "safety",
                    ..
                },
                ..
            })
        ));
        b.safety_min = 0.99;
        b.window = 4;
        let r = HealthReport::sign(&b, &k);
        assert!(
            matches!(
                r.open(|_| Some(&pk)),
                Err(EvidenceError::Inconsistent {
                    detail: BodyError::WindowBeyondSamples { .. },
                    ..
                })
            ),
            "window beyond samples"
        );
        b.window = 3;
        assert_eq!(HealthReport::sign(&b, &k).open(|_| Some(&pk)), Ok(b));
    }
}
