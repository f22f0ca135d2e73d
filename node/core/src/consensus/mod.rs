//! The PBFT replica as a pure, deterministic state machine: no tokio, no tonic, no clock, no RNG,
//! no I/O, no hash-ordered maps. `Replica::handle(Input) -> Vec<Action>` is the whole interface;
//! see [`replica`] for the contract the runtime must honour. The scenario tests that carry
//! messages between replicas live in the wire crate (`node/wire/tests/consensus/`), since they go
//! through the real encoding, which this crate cannot depend on.

pub mod action;
pub mod app_state;
pub mod certificate;
pub mod codec;
pub mod config;
pub mod decided_replay;
pub mod directory;
pub mod epoch_chain;
pub mod epoch_link;
pub mod execution;
pub mod limits;
pub mod message;
pub mod nonce;
pub mod replica;
pub mod state_machine;
pub mod types;
pub mod validator_set;

pub use action::{Action, Decision, Input, Record, Timer, TimerKind};
pub use app_state::AppState;
pub use certificate::{check_checkpoint_cert_by, CertError};
pub use codec::Codec;
pub use config::{ConfigError, Directory, ReplicaConfig};
pub use decided_replay::{DecidedReplay, ReplayError};
pub use epoch_chain::EpochChain;
pub use epoch_link::{EpochLink, LinkError};
pub use message::{
    batch_digest, retype_request, Checkpoint, CheckpointCert, CommitCert, Envelope, Heartbeat,
    Kind, Message, NewView, PrePrepare, PreparedCert, Principal, Relay, Request, Signed, Snapshot,
    SnapshotPart, StateRequest, StateResponse, Suspect, ViewChange, Vote,
};
pub use replica::{
    nonce_parts, state_digest, state_digest_of, NoncePart, Replica, RestoreError, Status,
};
pub use state_machine::{SnapshotError, StateMachine};
pub use types::{Digest, ReplicaId, Seq, View};
pub use validator_set::ValidatorSet;

#[cfg(test)]
pub(crate) mod debug_codec;
