//! The read path, off the core task. After every turn the core publishes what readers may see
//! (a [`ReadModel`] of its position and the ledger's summary, the new events into the
//! [`EventFeed`], changed proposals and nonces into the [`ReadIndex`]); `Status`, `Watch`, the
//! notifier and the dashboard read those and the store ([`Reads`]), never the core's queue, so
//! a crowd of readers cannot delay or crowd out consensus messages. `Audit.Prove` reads the
//! newest stable checkpoint's state the same way ([`StableProofs`]).

pub mod event_feed;
pub mod newest_registrations;
pub(crate) mod published;
pub mod read_index;
pub mod read_model;
pub mod read_pace;
pub mod stable_proofs;
pub mod status_cache;

pub use event_feed::EventFeed;
pub use newest_registrations::NewestRegistrations;
pub(crate) use published::Published;
pub use read_index::ReadIndex;
pub use read_model::{Position, ReadModel, Reads};
pub use read_pace::ReadPace;
pub use stable_proofs::{ProofSource, StableProofs};

#[cfg(test)]
mod reads_tests;
