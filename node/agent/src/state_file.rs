//! The agent's durable state: what it runs now, what it ran before, and the newest order it
//! obeyed. Written with a temporary file, fsync, rename and a directory fsync, so a kill at any
//! instant leaves either the old state or the new one on disk, never a torn or empty file; a
//! restarted agent reports the truth.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use scbe_core::agent::{AgentState, Installed};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("agent state {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("agent state {path} is damaged ({detail}); it is only ever replaced whole, so this is disk damage: restore it or remove it to start from agent.initial_version")]
    Damaged { path: PathBuf, detail: String },
}

/// The state file in a data directory.
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(data_dir: &Path) -> Self {
        StateFile {
            path: data_dir.join("agent-state.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state, or one running `initial` if none was ever written.
    pub fn load(&self, initial: &Installed) -> Result<AgentState, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
                path: self.path.clone(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(AgentState::running(initial.clone()))
            }
            Err(e) => Err(StateError::Io {
                path: self.path.clone(),
                detail: e.to_string(),
            }),
        }
    }

    /// Replaces the state atomically and durably.
    pub fn store(&self, state: &AgentState) -> Result<(), StateError> {
        let io = |e: std::io::Error| StateError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        // The rename itself must survive a power cut.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v0() -> Installed {
        AgentState::initial("v0").current
    }

    #[test]
    fn missing_means_initial_and_a_stored_state_reads_back() {
        let d = tempfile::tempdir().expect("tmp");
        let f = StateFile::new(&d.path().join("data"));
        assert_eq!(f.load(&v0()).expect("loads"), AgentState::initial("v0"));
        let mut s = AgentState::initial("v0");
        s.previous = Some(s.current.clone());
        s.current.version = "v1".into();
        s.last_order_seq = 12;
        f.store(&s).expect("stores");
        assert_eq!(f.load(&v0()).expect("loads"), s);
    }

    #[test]
    fn a_leftover_temporary_file_does_not_matter_and_damage_is_reported() {
        let d = tempfile::tempdir().expect("tmp");
        let f = StateFile::new(d.path());
        let s = AgentState::initial("v3");
        f.store(&s).expect("stores");
        // A kill between writing the temporary file and the rename leaves it behind.
        std::fs::write(d.path().join("agent-state.json.tmp"), b"{\"cur").expect("write");
        assert_eq!(f.load(&v0()).expect("loads"), s);
        std::fs::write(f.path(), b"").expect("write");
        let e = f
            .load(&v0())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("damaged"), "{e}");
    }
}
