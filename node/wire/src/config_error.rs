//! What can be wrong with a daemon's TOML configuration, for both daemons: every error names the
//! file or the key at fault and what is wrong with it.

use std::path::PathBuf;

use crate::key_file::KeyFileError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("config {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Genesis(#[from] crate::genesis::GenesisError),
}

/// A [`ConfigError::Invalid`] for `key`.
pub fn invalid(key: impl Into<String>, problem: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.to_string(),
    }
}

/// Reads and parses a TOML config file.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    parse_toml(path, &text)
}

/// Parses TOML config text (`path` names it in errors).
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}
