//! The genesis: one file holding everything the validators of a cluster must agree on, read
//! and checked once. Its digest is the SHA-256 of the file's exact bytes; every peer link and
//! every agent connection presents it (the [`GENESIS_HEADER`] gRPC header), a validator refuses
//! a data directory written under another one, and nothing that must agree is ever copied into
//! a node's own config. `scbe-node testnet` and `scbe-sim up` write it; operators copy it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use scbe_core::consensus::{Digest, Directory, ReplicaConfig, ReplicaId};
use scbe_core::crypto::PublicKey;
use scbe_core::governance::{LedgerConfig, Provider};
use scbe_core::rollout::evidence::MAX_AGENT_ID_BYTES;
use scbe_core::rollout::health::HealthThresholds;
use scbe_core::rollout::plan::FleetAgent;

use crate::genesis_file::{GenesisFile, LedgerSection, SampleSupply};
use crate::key_file::parse_public_key;

/// The gRPC metadata key a caller presents its genesis digest in (lower-case hex).
pub const GENESIS_HEADER: &str = "scbe-genesis";

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("genesis {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("genesis {path}: key `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// A checked genesis and its digest.
#[derive(Debug, Clone)]
pub struct Genesis {
    file: GenesisFile,
    digest: Digest,
    path: PathBuf,
    directory: Directory,
    ledger: LedgerConfig,
}

impl Genesis {
    /// Reads, digests and checks the genesis at `path`.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let bytes = std::fs::read(path).map_err(|e| GenesisError::Read {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Digests and checks genesis text (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, GenesisError> {
        let parse = |detail: String| GenesisError::Parse {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| parse(e.to_string()))?;
        let file: GenesisFile = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        let digest = sha256(bytes);
        Self::check(path, file, digest)
    }

    /// The text of a genesis for `file` (what `scbe-node testnet` writes).
    pub fn render(file: &GenesisFile) -> String {
        let body = toml::to_string(file).unwrap_or_default();
        format!(
            "# The genesis of cluster {:?}: everything its validators must agree on. Every\n\
             # validator and agent of the cluster uses this exact file (its SHA-256 is compared on\n\
             # every link); change the cluster through governance (`scbe propose ...`), never by\n\
             # editing a copy. Every key is documented in configs/genesis.toml.\n\n{body}",
            file.cluster
        )
    }

    fn check(path: &Path, file: GenesisFile, digest: Digest) -> Result<Self, GenesisError> {
        let invalid = |key: String, problem: String| GenesisError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        let n = file.validators.len();
        if n < 4 {
            return Err(invalid(
                "validators".into(),
                format!("need at least 4 validators, got {n}"),
            ));
        }
        let key = |k: &str, field: String| {
            parse_public_key(k).ok_or_else(|| invalid(field, "must be 64 hex characters".into()))
        };
        let mut validators = Vec::with_capacity(n);
        for (i, v) in file.validators.iter().enumerate() {
            if v.id as usize != i {
                return Err(invalid(
                    format!("validators[{i}].id"),
                    format!("must be {i} (ids are 0..n in order), got {}", v.id),
                ));
            }
            check_address(&v.address)
                .map_err(|p| invalid(format!("validators[{i}].address"), p))?;
            validators.push(key(&v.public_key, format!("validators[{i}].public_key"))?);
        }
        let mut requesters = BTreeMap::new();
        for (i, r) in file.requesters.iter().enumerate() {
            if requesters.contains_key(&r.name) {
                return Err(invalid(
                    format!("requesters[{i}].name"),
                    format!("duplicate name {:?}", r.name),
                ));
            }
            let k = key(&r.public_key, format!("requesters[{i}].public_key"))?;
            requesters.insert(r.name.clone(), k);
        }
        let directory = Directory::new(validators.clone(), requesters.values().copied().collect())
            .map_err(|e| invalid("validators/requesters".into(), e.to_string()))?;
        let mut agents = Vec::new();
        let mut ids = BTreeSet::new();
        for (i, a) in file.agents.iter().enumerate() {
            let id_ok = !a.id.is_empty()
                && a.id.len() <= MAX_AGENT_ID_BYTES
                && a.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !id_ok {
                return Err(invalid(
                    format!("agents[{i}].id"),
                    "must be 1 to 128 letters, digits, '-', '_' or '.'".into(),
                ));
            }
            if !ids.insert(a.id.clone()) {
                return Err(invalid(
                    format!("agents[{i}].id"),
                    format!("duplicate agent id {:?}", a.id),
                ));
            }
            if let Some(addr) = &a.address {
                check_address(addr).map_err(|p| invalid(format!("agents[{i}].address"), p))?;
            }
            agents.push(FleetAgent {
                id: a.id.clone(),
                specialty: a.specialty.clone(),
                key: key(&a.public_key, format!("agents[{i}].public_key"))?,
                address: a.address.clone().unwrap_or_default(),
            });
        }
        file.gates
            .validate()
            .map_err(|e| invalid(format!("gates.{}", e.setting), e.problem))?;
        if file.ledger.known_good.is_empty() {
            return Err(invalid(
                "ledger.known_good".into(),
                "needs at least one version the fleet runs today".into(),
            ));
        }
        check_known_good_units(&file.ledger).map_err(|(k, p)| invalid(k, p))?;
        let ro = &file.rollout;
        for (k, d) in [
            ("rollout.window", ro.window),
            ("rollout.sample_interval", ro.sample_interval),
            ("rollout.deploy_deadline", ro.deploy_deadline),
            ("rollout.agent_call_timeout", ro.agent_call_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(k.into(), "must be greater than zero".into()));
            }
        }
        if ro.sample_interval > ro.window {
            return Err(invalid(
                "rollout.sample_interval".into(),
                "must not be longer than rollout.window (a window needs at least one sample)"
                    .into(),
            ));
        }
        if let Some(d) = ro.progress_deadline {
            let shortest = ro.shortest_progress_deadline();
            if d < shortest {
                return Err(invalid(
                    "rollout.progress_deadline".into(),
                    format!(
                        "{} is shorter than a monitoring window plus two samples ({}): every \
                         batch would be rolled back before it could be healthy",
                        humantime::format_duration(d),
                        humantime::format_duration(shortest)
                    ),
                ));
            }
        }
        let h = &file.health;
        let health = HealthThresholds {
            min_coherence: h.min_coherence,
            max_error_rate: h.max_error_rate,
            max_response_ms_p95: file.gates.max_latency_ms_p95,
            min_safety: h.min_safety,
            min_samples: ro.min_samples(),
            breach_samples: h.breach_samples,
        };
        health.validate().map_err(|e| {
            // The response-time bound is the latency gate; the sample count comes from
            // [rollout] (window / sample_interval).
            let key = match e.setting {
                "max_response_ms_p95" => "gates.max_latency_ms_p95".to_string(),
                "min_samples" => "rollout.window".to_string(),
                other => format!("health.{other}"),
            };
            invalid(key, e.problem)
        })?;
        let analysis = file
            .analysis
            .settings(SampleSupply::of(ro, &file.agents))
            .map_err(|(k, p)| invalid(k, p))?;
        crate::notify_entry::check_notify(&file.notify).map_err(|(k, p)| invalid(k, p))?;
        let ledger = LedgerConfig {
            validators,
            known_good: file.ledger.known_good.clone(),
            known_good_units: file.ledger.known_good_units.clone(),
            gates: file.gates,
            vote_window_seqs: file.ledger.vote_window_seqs,
            agents,
            health,
            analysis,
            notify_sinks: file.notify.iter().map(|n| n.name.clone()).collect(),
            state_digest: file.ledger.state_digest,
            requesters,
        };
        let genesis = Genesis {
            digest,
            path: path.to_path_buf(),
            directory,
            ledger,
            file,
        };
        // The consensus sizes, checked as a replica will check them.
        genesis
            .replica_config(ReplicaId(0))
            .and_then(|r| r.validate().map(|()| r))
            .map_err(|e| invalid("consensus".into(), e.to_string()))?;
        Ok(genesis)
    }

    /// SHA-256 of the file's exact bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The digest as it is presented and printed (lower-case hex).
    pub fn digest_hex(&self) -> String {
        crate::key_file::encode_hex(self.digest.as_bytes())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &GenesisFile {
        &self.file
    }

    pub fn cluster(&self) -> &str {
        &self.file.cluster
    }

    /// Who may sign: the validators by id, and the requesters.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// What the ledger starts from.
    pub fn ledger_config(&self) -> &LedgerConfig {
        &self.ledger
    }

    /// Validator `id`'s key.
    pub fn validator_key(&self, id: u32) -> Option<&PublicKey> {
        self.directory.validator_key(ReplicaId(id))
    }

    /// Validator `id`'s address as the genesis lists it.
    pub fn validator_address(&self, id: u32) -> Option<&str> {
        self.file
            .validators
            .get(id as usize)
            .map(|v| v.address.as_str())
    }

    /// The consensus configuration of validator `id`: the validator set and the sizes every
    /// replica shares (node-local pacing is set by the caller).
    pub fn replica_config(
        &self,
        id: ReplicaId,
    ) -> Result<ReplicaConfig, scbe_core::consensus::ConfigError> {
        let r = ReplicaConfig::new(id, self.directory.clone())?;
        Ok(self.with_settings(r))
    }

    /// The consensus configuration of validator `id`, which the quorum added after the genesis
    /// (`ReplicaConfig::joining`).
    pub fn joining_replica_config(
        &self,
        id: ReplicaId,
    ) -> Result<ReplicaConfig, scbe_core::consensus::ConfigError> {
        let r = ReplicaConfig::joining(id, self.directory.clone())?;
        Ok(self.with_settings(r))
    }

    fn with_settings(&self, mut r: ReplicaConfig) -> ReplicaConfig {
        let c = &self.file.consensus;
        r.checkpoint_interval = c.checkpoint_interval;
        r.window = c.window;
        r.derive_byte_limits();
        r.max_batch = c.max_batch;
        r
    }
}

/// The gRPC metadata key a refusing server answers with when the caller's genesis differs: its
/// own digest (the caller names both in its error).
pub const REFUSAL_HEADER: &str = "scbe-refused-genesis";

/// Adds `digest` to a call as [`GENESIS_HEADER`].
pub fn present<T>(request: &mut tonic::Request<T>, digest: &Digest) {
    if let Ok(v) = crate::key_file::encode_hex(digest.as_bytes()).parse() {
        request.metadata_mut().insert(GENESIS_HEADER, v);
    }
}

/// The gRPC metadata key a validator names itself by on its peer links ("validator 3"), so a
/// peer that refuses it can say whom it refused. A claim, not a proof: it only labels a
/// refusal.
pub const CALLER_HEADER: &str = "scbe-caller";

/// Adds `who` to a call as [`CALLER_HEADER`].
pub fn present_caller<T>(request: &mut tonic::Request<T>, who: &str) {
    if let Ok(v) = who.parse() {
        request.metadata_mut().insert(CALLER_HEADER, v);
    }
}

/// Who the caller says it is ([`CALLER_HEADER`]), if it said, at most 64 characters.
pub fn caller_name<T>(request: &tonic::Request<T>) -> Option<String> {
    let v = request.metadata().get(CALLER_HEADER)?.to_str().ok()?;
    Some(v.chars().take(64).collect())
}

/// A call made under another genesis than the server's (or under none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("genesis mismatch: this side runs genesis {}, the caller presented {}", hex(.mine), .theirs.as_ref().map_or("none".to_string(), hex))]
pub struct GenesisMismatch {
    pub mine: Digest,
    pub theirs: Option<Digest>,
}

fn hex(d: &Digest) -> String {
    crate::key_file::encode_hex(d.as_bytes())
}

impl GenesisMismatch {
    /// The status a server answers with: FAILED_PRECONDITION, both digests in the message and
    /// its own in [`REFUSAL_HEADER`].
    pub fn to_status(&self) -> tonic::Status {
        let mut s = tonic::Status::failed_precondition(self.to_string());
        if let Ok(v) = hex(&self.mine).parse() {
            s.metadata_mut().insert(REFUSAL_HEADER, v);
        }
        s
    }
}

/// The genesis a caller presented, checked against `mine`.
pub fn check_presented<T>(
    request: &tonic::Request<T>,
    mine: &Digest,
) -> Result<(), GenesisMismatch> {
    let theirs = request
        .metadata()
        .get(GENESIS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::key_file::decode_hex)
        .and_then(|b| Digest::from_slice(&b));
    if theirs.as_ref() == Some(mine) {
        Ok(())
    } else {
        Err(GenesisMismatch {
            mine: *mine,
            theirs,
        })
    }
}

/// [`check_presented`] for callers that may present no genesis (a requester's CLI without
/// one): only a genesis that is presented and differs is refused.
pub fn check_if_presented<T>(
    request: &tonic::Request<T>,
    mine: &Digest,
) -> Result<(), GenesisMismatch> {
    if request.metadata().get(GENESIS_HEADER).is_none() {
        return Ok(());
    }
    check_presented(request, mine)
}

/// The server's genesis, if `status` is a refusal for a genesis mismatch.
pub fn refused_genesis(status: &tonic::Status) -> Option<Digest> {
    status
        .metadata()
        .get(REFUSAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::key_file::decode_hex)
        .and_then(|b| Digest::from_slice(&b))
}

/// Plain SHA-256 of the file, so an operator can compare it with `sha256sum genesis.toml`.
fn sha256(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest(sha2::Sha256::digest(bytes).into())
}

/// `host:port` with a port, and a host that is an IP address or a DNS name.
/// Units may be listed only for known-good versions, one per provider the ledger knows.
/// Errors are (key, problem).
fn check_known_good_units(ledger: &LedgerSection) -> Result<(), (String, String)> {
    for (version, units) in &ledger.known_good_units {
        let key = || format!("ledger.known_good_units.{version}");
        if !ledger.known_good.contains(version) {
            return Err((
                key(),
                format!(
                    "{version} is not in ledger.known_good {:?}",
                    ledger.known_good
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for u in units {
            if !Provider::ALL.iter().any(|p| p.name() == u.provider) {
                return Err((
                    key(),
                    format!("unknown provider {:?}: use hf, gcp or aws", u.provider),
                ));
            }
            if !seen.insert(u.provider.as_str()) {
                return Err((key(), format!("provider {} listed twice", u.provider)));
            }
            if u.id.trim().is_empty() || u.uri.trim().is_empty() {
                return Err((
                    key(),
                    format!("the {} unit needs an id and a uri", u.provider),
                ));
            }
        }
    }
    Ok(())
}

/// One rule for the genesis and for the membership proposals the ledger checks.
pub use scbe_core::governance::admission::check_address;

#[cfg(test)]
#[path = "genesis_tests.rs"]
mod tests;
