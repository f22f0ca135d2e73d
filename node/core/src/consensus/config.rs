//! The replica's static configuration: the validator set, who may submit requests, and the
//! protocol's sizes. Validated once at construction so the core never has to re-check it.

use std::collections::BTreeMap;

use crate::crypto::{PublicKey, Verifier};

use super::limits;
use super::message::Principal;

/// A batch is at most 1 MiB unless the window budget is smaller.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1024 * 1024;
/// The ledger's largest operation (256 KiB) plus the request's own fields and framing.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 256 * 1024 + 1024;
use super::types::{ReplicaId, View};

/// Who may sign what: validators by index, and registered requesters.
#[derive(Clone, Debug)]
pub struct Directory {
    validators: Vec<PublicKey>,
    /// Who each key is, with the key decompressed once for verification.
    principals: BTreeMap<PublicKey, (Principal, Verifier)>,
}

impl Directory {
    pub fn new(
        validators: Vec<PublicKey>,
        requesters: Vec<PublicKey>,
    ) -> Result<Self, ConfigError> {
        let mut principals = BTreeMap::new();
        let all = validators
            .iter()
            .enumerate()
            .map(|(i, v)| (*v, Principal::Validator(ReplicaId(i as u32))))
            .chain(requesters.iter().map(|r| (*r, Principal::Requester)));
        for (key, principal) in all {
            let verifier = Verifier::new(key).map_err(|_| ConfigError::InvalidKey(key))?;
            if principals.insert(key, (principal, verifier)).is_some() {
                return Err(ConfigError::DuplicateKey(key));
            }
        }
        Ok(Self {
            validators,
            principals,
        })
    }

    pub fn n(&self) -> usize {
        self.validators.len()
    }

    pub fn validators(&self) -> &[PublicKey] {
        &self.validators
    }

    pub fn validator_key(&self, id: ReplicaId) -> Option<&PublicKey> {
        self.validators.get(id.0 as usize)
    }

    /// Resolves a signer; `None` means the key is unknown and the message must be dropped.
    pub fn principal(&self, key: &PublicKey) -> Option<Principal> {
        self.principals.get(key).map(|(p, _)| *p)
    }

    /// The signer's role and its decompressed key; `None` for unknown keys.
    pub fn lookup(&self, key: &PublicKey) -> Option<(Principal, &Verifier)> {
        self.principals.get(key).map(|(p, v)| (*p, v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("need at least 4 validators to tolerate one fault, got {0}")]
    TooFewValidators(usize),
    #[error("replica id {id} is outside the validator set of {n}")]
    UnknownSelf { id: u32, n: usize },
    #[error("the signing key is not validator {0}'s key in the validator set")]
    KeyMismatch(u32),
    #[error("key {0} is not a valid ed25519 public key (or is a weak, small-order key)")]
    InvalidKey(PublicKey),
    #[error("key {0} appears twice in the validator/requester set")]
    DuplicateKey(PublicKey),
    #[error("{name} must be at least {min}, got {value}")]
    TooSmall {
        name: &'static str,
        min: u64,
        value: u64,
    },
    #[error("window ({window}) must be a multiple of the checkpoint interval ({interval}) and at least twice it")]
    Window { window: u64, interval: u64 },
    #[error("size limits out of order: need max_request_bytes ({request}) <= max_batch_bytes ({batch}) <= max_window_bytes ({window}) / 2")]
    SizeOrder {
        request: usize,
        batch: usize,
        window: usize,
    },
    #[error("a {message} could reach {bytes} bytes, over the {cap}-byte message cap: lower max_window_bytes / max_batch_bytes / max_transfer_bytes or the window")]
    MessageTooLarge {
        message: &'static str,
        bytes: usize,
        cap: usize,
    },
}

/// Below this size a snapshot is persisted at every checkpoint (see
/// [`ReplicaConfig::snapshot_persist_floor`]): small states cost little to write, and their
/// restarts replay nothing.
pub const DEFAULT_SNAPSHOT_PERSIST_FLOOR: usize = 1 << 20;

/// Protocol parameters. Defaults follow PBFT (K = 128, L = 256).
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub id: ReplicaId,
    pub directory: Directory,
    /// K: a checkpoint every this many sequence numbers.
    pub checkpoint_interval: u64,
    /// L: sequence numbers accepted above the low watermark.
    pub window: u64,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Most batches the primary keeps in flight (proposed, not executed).
    pub max_inflight_batches: u64,
    /// Most requests waiting to be ordered; more are dropped (and counted) at the door.
    pub max_pending: usize,
    /// Most decided batches sent in one state-transfer response.
    pub max_transfer_batches: usize,
    /// Most messages buffered per peer for views this replica has not entered yet.
    pub max_future_per_peer: usize,
    /// Largest request admitted, in encoded bytes (see [`super::limits`]).
    pub max_request_bytes: usize,
    /// Largest batch, in encoded bytes of its requests.
    pub max_batch_bytes: usize,
    /// Most bytes of batches held above the stable checkpoint (bounds view changes).
    pub max_window_bytes: usize,
    /// Most bytes of decided batches in one state-transfer response.
    pub max_transfer_bytes: usize,
    /// Heartbeat intervals a backup lets its primary stay silent before it changes view
    /// (doubled for every consecutive view that failed); 0 turns silence detection off, leaving
    /// only the request timer.
    pub silence_ticks: u32,
    /// Snapshots up to this many bytes are persisted at every checkpoint. A larger one is
    /// persisted only once the batches executed since the last persisted snapshot add up to
    /// its size; a restart re-executes the decided log (the audit trail) from the newest one it
    /// has. So persisting state costs about as many bytes as the requests that changed it,
    /// not the whole state at every checkpoint. Checkpoints themselves (digest, agreement, the
    /// in-memory snapshot peers fetch) are unchanged.
    pub snapshot_persist_floor: usize,
    quorum: usize,
}

impl ReplicaConfig {
    pub fn new(id: ReplicaId, directory: Directory) -> Result<Self, ConfigError> {
        let n = directory.n();
        if n < 4 {
            return Err(ConfigError::TooFewValidators(n));
        }
        if id.0 as usize >= n {
            return Err(ConfigError::UnknownSelf { id: id.0, n });
        }
        let mut cfg = Self {
            id,
            quorum: quorum_for(n),
            directory,
            checkpoint_interval: 128,
            window: 256,
            max_batch: 256,
            max_inflight_batches: 8,
            max_pending: 100_000,
            max_transfer_batches: 64,
            max_future_per_peer: 1024,
            max_request_bytes: 0,
            max_batch_bytes: 0,
            max_window_bytes: 0,
            max_transfer_bytes: 4 * 1024 * 1024,
            silence_ticks: 4,
            snapshot_persist_floor: DEFAULT_SNAPSHOT_PERSIST_FLOOR,
        };
        cfg.derive_byte_limits();
        Ok(cfg)
    }

    /// Sets the byte limits to the largest that fit the message cap for this validator count
    /// and window (call again after changing `window`).
    pub fn derive_byte_limits(&mut self) {
        self.max_window_bytes = limits::default_window_bytes(self.n(), self.quorum, self.window);
        // At most half the window budget, so a full batch always fits above what stays held
        // until the next checkpoint (see `checkpoint_bytes`).
        self.max_batch_bytes = DEFAULT_MAX_BATCH_BYTES.min(self.max_window_bytes / 2);
        self.max_request_bytes = DEFAULT_MAX_REQUEST_BYTES.min(self.max_batch_bytes);
    }

    /// A checkpoint is taken once this many bytes of batches executed since the last one, so the
    /// bytes held above a stable checkpoint stay below `max_window_bytes - max_batch_bytes` and
    /// the primary can always propose a full batch once that checkpoint is stable.
    pub fn checkpoint_bytes(&self) -> usize {
        self.max_window_bytes
            .saturating_sub(self.max_batch_bytes)
            .max(1)
    }

    /// The largest messages this configuration allows.
    pub fn worst_case(&self) -> limits::WorstCase {
        limits::worst_case(&limits::SizeInputs {
            n: self.n(),
            quorum: self.quorum,
            window: self.window,
            max_batch_bytes: self.max_batch_bytes,
            max_window_bytes: self.max_window_bytes,
            max_transfer_bytes: self.max_transfer_bytes,
        })
    }

    /// Checks the tunables after a caller has changed them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let small = |name, min, value| {
            if value < min {
                Err(ConfigError::TooSmall { name, min, value })
            } else {
                Ok(())
            }
        };
        small("checkpoint_interval", 1, self.checkpoint_interval)?;
        small("max_batch", 1, self.max_batch as u64)?;
        small("max_inflight_batches", 1, self.max_inflight_batches)?;
        small("max_pending", 1, self.max_pending as u64)?;
        small("max_transfer_batches", 1, self.max_transfer_batches as u64)?;
        small("max_future_per_peer", 1, self.max_future_per_peer as u64)?;
        if self.window < 2 * self.checkpoint_interval
            || !self.window.is_multiple_of(self.checkpoint_interval)
        {
            return Err(ConfigError::Window {
                window: self.window,
                interval: self.checkpoint_interval,
            });
        }
        small("max_request_bytes", 1024, self.max_request_bytes as u64)?;
        small("max_transfer_bytes", 1, self.max_transfer_bytes as u64)?;
        if self.max_request_bytes > self.max_batch_bytes
            || self.max_batch_bytes > self.max_window_bytes / 2
        {
            return Err(ConfigError::SizeOrder {
                request: self.max_request_bytes,
                batch: self.max_batch_bytes,
                window: self.max_window_bytes,
            });
        }
        let w = self.worst_case();
        for (message, bytes) in [
            ("pre-prepare", w.pre_prepare),
            ("view change", w.view_change),
            ("new-view", w.new_view),
            ("state-transfer response", w.state_response),
        ] {
            if bytes > limits::MAX_MESSAGE_BYTES {
                return Err(ConfigError::MessageTooLarge {
                    message,
                    bytes,
                    cap: limits::MAX_MESSAGE_BYTES,
                });
            }
        }
        Ok(())
    }

    pub fn n(&self) -> usize {
        self.directory.n()
    }

    /// f = (n - 1) / 3.
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }

    /// q = ceil((n + f + 1) / 2): any two quorums share at least f + 1 validators.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    pub fn primary(&self, view: View) -> ReplicaId {
        ReplicaId((view.0 % self.n() as u64) as u32)
    }

    /// Test-only hook used by the simulator's honesty check: a replica with a quorum one too small
    /// must be caught breaking agreement. Never exposed in the node's configuration.
    #[doc(hidden)]
    pub fn with_unsafe_quorum(mut self, quorum: usize) -> Self {
        self.quorum = quorum;
        self
    }
}

/// q = ceil((n + f + 1) / 2) with f = (n - 1) / 3.
pub fn quorum_for(n: usize) -> usize {
    let f = (n - 1) / 3;
    (n + f + 1).div_ceil(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_two_f_plus_one_when_n_is_three_f_plus_one() {
        for f in 1..10 {
            assert_eq!(quorum_for(3 * f + 1), 2 * f + 1);
        }
        // n = 5, 6: f = 1, q = 4.
        assert_eq!(quorum_for(5), 4);
        assert_eq!(quorum_for(6), 4);
    }

    #[test]
    fn any_two_quorums_intersect_in_f_plus_one() {
        for n in 4..40 {
            let f = (n - 1) / 3;
            let q = quorum_for(n);
            assert!(
                2 * q - n > f,
                "n={n}: two quorums share more than f validators"
            );
            assert!(q <= n - f, "n={n}: quorum must be reachable with f silent");
        }
    }
}
