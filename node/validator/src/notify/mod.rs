//! Notifications: the genesis's `[[notify]]` webhooks, served by whichever validator leads.
//!
//! - [`notification`]: the JSON a sink receives (one ledger event, its Sacred Tongue tag, a
//!   Slack-compatible `text` line, and an `id` equal on every validator).
//! - [`webhook`]: one HTTP(S) POST with a deadline.
//! - [`notifier`]: one task per sink. While this validator is the primary it reads the ledger's
//!   events after the point the ledger records as delivered, posts those the sink asks for in
//!   order (retrying with capped backoff), and then has the point recorded through consensus
//!   (`Operation::Notified`), so a leader elected after a failover resends from there.
//!
//! Nothing here is on consensus's path: the core task only answers event reads and orders the
//! small `Notified` records; a sink that is down delays that sink's own notifications.

pub mod notification;
pub mod notifier;
pub mod webhook;

use std::collections::BTreeMap;

pub use notifier::{start_notifiers, EventReader, NotifyContext};

/// What the notifiers need from the core after every turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyView {
    /// This validator is the primary of its view, in normal operation.
    pub leading: bool,
    /// Ledger events so far.
    pub events: u64,
    /// Per sink, the ledger's record of what was delivered (`Operation::Notified`).
    pub notified: BTreeMap<String, u64>,
}
