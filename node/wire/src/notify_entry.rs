//! The genesis's `[[notify]]` entries: webhooks the current leader posts ledger events to.
//!
//! They live in the genesis, not in a node's own config, because any validator may become the
//! leader that sends them, and the ledger records how far each sink was served by its name: a
//! sink one validator knows and another does not would be served by some leaders only.

use std::collections::BTreeSet;

use scbe_core::governance::ledger::{DEFAULT_NOTIFY_EVENTS, NOTIFIABLE_EVENTS};
use serde::{Deserialize, Serialize};
use tonic::codegen::http::Uri;

/// Sinks one genesis may list.
pub const MAX_NOTIFY_SINKS: usize = 8;
/// Longest sink name (it is a key of the ledger's state).
pub const MAX_SINK_NAME_CHARS: usize = 64;

/// One `[[notify]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyEntry {
    /// Names the sink in the ledger and in logs: letters, digits, `-` and `_`.
    pub name: String,
    /// Where the JSON is POSTed: `http://` or `https://` (system-independent web PKI roots).
    pub url: String,
    /// Event kinds to send (see [`NOTIFIABLE_EVENTS`]); empty: [`DEFAULT_NOTIFY_EVENTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

impl NotifyEntry {
    /// The event kinds this sink takes.
    pub fn takes(&self) -> BTreeSet<String> {
        if self.events.is_empty() {
            DEFAULT_NOTIFY_EVENTS
                .iter()
                .map(|k| k.to_string())
                .collect()
        } else {
            self.events.iter().cloned().collect()
        }
    }

    /// The parsed URL (checked when the genesis loads).
    pub fn uri(&self) -> Result<Uri, String> {
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| format!("{:?} is not a URL: {e}", self.url))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "{:?} must start with http:// or https://",
                    self.url
                ))
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{:?} names no host", self.url));
        }
        Ok(uri)
    }
}

/// Checks every entry: `Err((key, problem))` names the first bad key.
pub fn check_notify(entries: &[NotifyEntry]) -> Result<(), (String, String)> {
    if entries.len() > MAX_NOTIFY_SINKS {
        return Err((
            "notify".into(),
            format!("at most {MAX_NOTIFY_SINKS} sinks, got {}", entries.len()),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let name_ok = !e.name.is_empty()
            && e.name.chars().count() <= MAX_SINK_NAME_CHARS
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !name_ok {
            return Err((
                format!("notify[{i}].name"),
                format!(
                    "{:?}: 1 to {MAX_SINK_NAME_CHARS} letters, digits, '-' or '_'",
                    e.name
                ),
            ));
        }
        if !names.insert(e.name.as_str()) {
            return Err((
                format!("notify[{i}].name"),
                format!("duplicate sink name {:?}", e.name),
            ));
        }
        e.uri().map_err(|p| (format!("notify[{i}].url"), p))?;
        if let Some(unknown) = e
            .events
            .iter()
            .find(|k| !NOTIFIABLE_EVENTS.contains(&k.as_str()))
        {
            return Err((
                format!("notify[{i}].events"),
                format!(
                    "unknown event kind {unknown:?}; one of: {}",
                    NOTIFIABLE_EVENTS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, url: &str, events: &[&str]) -> NotifyEntry {
        NotifyEntry {
            name: name.into(),
            url: url.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn good_entries_pass_and_an_empty_filter_takes_the_defaults() {
        let ok = [
            entry("ops", "http://127.0.0.1:9000/hook", &[]),
            entry(
                "slack_ops",
                "https://hooks.example.com/x/y",
                &["rollout_failed"],
            ),
        ];
        assert_eq!(check_notify(&ok), Ok(()));
        assert_eq!(ok[0].takes().len(), DEFAULT_NOTIFY_EVENTS.len());
        assert!(ok[0].takes().contains("auto_rollback"));
        assert_eq!(
            ok[1].takes().into_iter().collect::<Vec<_>>(),
            vec!["rollout_failed"]
        );
    }

    #[test]
    fn each_bad_entry_is_named_by_its_key() {
        let cases = [
            (vec![entry("", "http://h/", &[])], "notify[0].name"),
            (vec![entry("a b", "http://h/", &[])], "notify[0].name"),
            (
                vec![entry("a", "http://h/", &[]), entry("a", "http://g/", &[])],
                "notify[1].name",
            ),
            (vec![entry("a", "ftp://h/", &[])], "notify[0].url"),
            (vec![entry("a", "hooks.example.com", &[])], "notify[0].url"),
            (vec![entry("a", "http://", &[])], "notify[0].url"),
            (
                vec![entry("a", "http://h/", &["rollout_done"])],
                "notify[0].events",
            ),
            (
                (0..=MAX_NOTIFY_SINKS)
                    .map(|i| entry(&format!("s{i}"), "http://h/", &[]))
                    .collect(),
                "notify",
            ),
        ];
        for (entries, key) in cases {
            let err = check_notify(&entries).expect_err(key);
            assert_eq!(err.0, key, "{err:?}");
        }
    }
}
