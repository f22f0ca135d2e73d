//! `scbe-node testnet`: everything a new cluster needs, one folder per host (like `cometbft
//! testnet`): a fresh key per validator and agent, one genesis that lists them all (copied
//! byte for byte into every folder), and each host's own `node.toml` or `agent.toml`. The
//! requester key stays at the top, off every host. Nothing is overwritten: an existing,
//! non-empty output directory is refused.

use std::path::{Path, PathBuf};

use scbe_wire::genesis::{check_address, Genesis, GenesisError};
use scbe_wire::genesis_file::{
    AgentEntry, AnalysisSection, GenesisFile, LedgerSection, RequesterEntry, RolloutSection,
    SampleSupply, ValidatorEntry,
};
use scbe_wire::key_file::{encode_hex, write_new_key, KeyFileError};

/// The specialties agents are spread over, in turn (the first batch of a rollout takes one of
/// each).
pub const SPECIALTIES: [&str; 3] = ["textgen", "embed", "code_execute"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Testnet {
    pub cluster: String,
    pub validators: usize,
    pub agents: usize,
    pub out: PathBuf,
    /// Host of each validator, in id order; fewer than `validators` repeats the last one
    /// (empty: 127.0.0.1).
    pub validator_hosts: Vec<String>,
    /// Validator i listens on `base_port + i`.
    pub base_port: u16,
    /// Same for agents.
    pub agent_hosts: Vec<String>,
    pub agent_base_port: u16,
    /// Validator i serves metrics on `127.0.0.1:(metrics_base_port + i)`.
    pub metrics_base_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("{0} already exists and is not empty: choose a new --out (nothing was written)")]
    OutExists(PathBuf),
    #[error("--validators {0}: a cluster needs at least 4 validators to tolerate one fault")]
    TooFewValidators(usize),
    #[error("{what} {index}: {detail}")]
    Address {
        what: &'static str,
        index: usize,
        detail: String,
    },
    #[error("port {0} + {1} does not fit in 16 bits")]
    Port(u16, usize),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
}

/// What was written, for the summary `scbe-node testnet` prints.
#[derive(Debug)]
pub struct Written {
    pub genesis: Genesis,
    pub validator_dirs: Vec<PathBuf>,
    pub agent_dirs: Vec<PathBuf>,
    pub requester_key: PathBuf,
}

fn host_of(hosts: &[String], i: usize) -> &str {
    hosts
        .get(i)
        .or_else(|| hosts.last())
        .map_or("127.0.0.1", String::as_str)
}

fn port(base: u16, i: usize) -> Result<u16, TestnetError> {
    u16::try_from(i)
        .ok()
        .and_then(|i| base.checked_add(i))
        .ok_or(TestnetError::Port(base, i))
}

/// `host:port` of each of `count` members, checked.
fn addresses(
    what: &'static str,
    hosts: &[String],
    base: u16,
    count: usize,
) -> Result<Vec<String>, TestnetError> {
    (0..count)
        .map(|i| {
            let a = format!("{}:{}", host_of(hosts, i), port(base, i)?);
            check_address(&a).map_err(|detail| TestnetError::Address {
                what,
                index: i,
                detail,
            })?;
            Ok(a)
        })
        .collect()
}

fn write(path: &Path, text: &str) -> Result<(), TestnetError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| TestnetError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| TestnetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A shell hook that records the version it is ordered to run: a testnet agent runs no model
/// until its operator points the hooks at real ones (configs/hooks/ has examples).
const RECORD_HOOK: &str = "#!/bin/sh\n\
# Testnet hook: records the ordered version. Replace with a real deploy (configs/hooks/).\n\
set -eu\n\
dir=\"${SCBE_PROCESS_DIR:-./process}\"\n\
mkdir -p \"$dir\"\n\
printf '%s\\n' \"$SCBE_VERSION\" >\"$dir/version.tmp\" && mv \"$dir/version.tmp\" \"$dir/version\"\n\
echo \"$SCBE_ACTION $SCBE_VERSION\"\n";

impl Testnet {
    pub fn write(&self) -> Result<Written, TestnetError> {
        if self.validators < 4 {
            return Err(TestnetError::TooFewValidators(self.validators));
        }
        if std::fs::read_dir(&self.out).is_ok_and(|mut d| d.next().is_some()) {
            return Err(TestnetError::OutExists(self.out.clone()));
        }
        // Check every address before the first file is written.
        let validator_addrs = addresses(
            "validator",
            &self.validator_hosts,
            self.base_port,
            self.validators,
        )?;
        let agent_addrs = addresses(
            "agent",
            &self.agent_hosts,
            self.agent_base_port,
            self.agents,
        )?;
        port(self.metrics_base_port, self.validators)?;

        let node_dir = |i: usize| self.out.join(format!("node{i}"));
        let agent_id = |i: usize| format!("agent-{i:02}");
        let agent_dir = |i: usize| self.out.join(agent_id(i));
        let key = |path: PathBuf| -> Result<String, TestnetError> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| TestnetError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            Ok(encode_hex(write_new_key(&path)?.public().as_bytes()))
        };

        let requester_key = self.out.join("requester.key");
        let requesters = vec![RequesterEntry {
            name: "requester".into(),
            public_key: key(requester_key.clone())?,
        }];
        let mut validators = Vec::new();
        for (i, address) in validator_addrs.iter().enumerate() {
            validators.push(ValidatorEntry {
                id: i as u32,
                public_key: key(node_dir(i).join(format!("keys/node{i}.key")))?,
                address: address.clone(),
            });
        }
        let mut agents = Vec::new();
        for (i, address) in agent_addrs.iter().enumerate() {
            agents.push(AgentEntry {
                id: agent_id(i),
                specialty: SPECIALTIES[i % SPECIALTIES.len()].into(),
                public_key: key(agent_dir(i).join(format!("keys/{}.key", agent_id(i))))?,
                address: Some(address.clone()),
            });
        }
        let rollout = RolloutSection::default();
        let file = GenesisFile {
            cluster: self.cluster.clone(),
            validators,
            requesters,
            analysis: AnalysisSection::fitted(SampleSupply::of(&rollout, &agents)),
            notify: Vec::new(),
            agents,
            consensus: Default::default(),
            gates: Default::default(),
            ledger: LedgerSection::for_new_cluster(),
            rollout,
            health: Default::default(),
        };
        let text = format!(
            "# Generated by scbe-node testnet. Every validator and agent of cluster {:?} holds this\n\
             # file byte for byte (its SHA-256 is the genesis digest they present to each other).\n\
             # See configs/genesis.toml for what each key means.\n{}",
            self.cluster,
            Genesis::render(&file)
        );
        let top = self.out.join("genesis.toml");
        write(&top, &text)?;
        let genesis = Genesis::from_bytes(&top, text.as_bytes())?;

        let mut validator_dirs = Vec::new();
        for i in 0..validator_addrs.len() {
            let dir = node_dir(i);
            write(&dir.join("genesis.toml"), &text)?;
            write(
                &dir.join("node.toml"),
                &format!(
                    "# Generated by scbe-node testnet: validator {i} of {n} (cluster {c:?}).\n\
                     # Run on its host: scbe-node run --config node.toml (see configs/node.toml).\n\
                     # It listens at its genesis address (every interface for a host name).\n\
                     [node]\nid = {i}\ngenesis = \"genesis.toml\"\ndata_dir = \"data\"\n\
                     key_file = \"keys/node{i}.key\"\n\
                     metrics_listen = \"127.0.0.1:{m}\"\n",
                    n = self.validators,
                    c = self.cluster,
                    m = port(self.metrics_base_port, i)?,
                ),
            )?;
            validator_dirs.push(dir);
        }
        let mut agent_dirs = Vec::new();
        for i in 0..agent_addrs.len() {
            let dir = agent_dir(i);
            let id = agent_id(i);
            write(&dir.join("genesis.toml"), &text)?;
            let hook = dir.join("hooks/record-version.sh");
            write(&hook, RECORD_HOOK)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).map_err(
                    |source| TestnetError::Io {
                        path: hook.clone(),
                        source,
                    },
                )?;
            }
            write(
                &dir.join("agent.toml"),
                &format!(
                    "# Generated by scbe-node testnet: agent {id} (cluster {c:?}).\n\
                     # Run on its host: scbe-agent run --config agent.toml (see configs/agent.toml).\n\
                     # Its hooks only record the ordered version and its health is synthetic:\n\
                     # point [hooks] at your deploy scripts and [health] at your model server.\n\
                     [agent]\nid = \"{id}\"\ngenesis = \"genesis.toml\"\n\
                     key_file = \"keys/{id}.key\"\ndata_dir = \"data\"\ninitial_version = \"v0\"\n\
                     report_window = 30\n\n\
                     [hooks]\ndeploy = [\"hooks/record-version.sh\"]\n\
                     rollback = [\"hooks/record-version.sh\"]\ntimeout = \"2m\"\n\n\
                     [hooks.env]\nSCBE_PROCESS_DIR = \"data/process\"\n\n\
                     [health]\nsource = \"synthetic\"\nseed = {seed}\ndegrade = \"bad\"\n\
                     degrade_after = 3\n",
                    c = self.cluster,
                    seed = i + 1,
                ),
            )?;
            agent_dirs.push(dir);
        }
        Ok(Written {
            genesis,
            validator_dirs,
            agent_dirs,
            requester_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    fn testnet(out: &Path) -> Testnet {
        Testnet {
            cluster: "t".into(),
            validators: 4,
            agents: 2,
            out: out.to_path_buf(),
            validator_hosts: vec![],
            base_port: 7000,
            agent_hosts: vec![],
            agent_base_port: 7100,
            metrics_base_port: 9100,
        }
    }

    #[test]
    fn every_folder_holds_the_same_genesis_and_a_valid_node_toml() {
        let d = tempfile::tempdir().expect("tmp");
        let out = d.path().join("net");
        let w = testnet(&out).write().expect("written");
        let top = std::fs::read(out.join("genesis.toml")).expect("genesis");
        for (i, dir) in w.validator_dirs.iter().enumerate() {
            assert_eq!(std::fs::read(dir.join("genesis.toml")).expect("copy"), top);
            let v = NodeConfig::load(&dir.join("node.toml"))
                .and_then(|c| c.validate(dir))
                .expect("valid node.toml");
            assert_eq!(v.replica.id.0, i as u32);
            assert_eq!(v.genesis.digest(), w.genesis.digest());
            assert_eq!(v.listen.port(), 7000 + i as u16);
        }
        for dir in &w.agent_dirs {
            assert_eq!(std::fs::read(dir.join("genesis.toml")).expect("copy"), top);
            assert!(dir.join("agent.toml").exists());
        }
        assert_eq!(w.genesis.file().agents.len(), 2);
        assert_eq!(w.genesis.file().requesters.len(), 1);
        // A new cluster digests its state with the tree.
        assert_eq!(
            w.genesis.ledger_config().state_digest,
            scbe_core::governance::ledger::StateDigest::Tree
        );
        // Only the validator's own key is in its folder.
        let keys: Vec<_> = std::fs::read_dir(w.validator_dirs[1].join("keys"))
            .expect("keys")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(keys, vec![std::ffi::OsString::from("node1.key")]);
    }

    #[test]
    fn host_names_are_written_and_listened_on_at_every_interface() {
        let d = tempfile::tempdir().expect("tmp");
        let mut t = testnet(&d.path().join("net"));
        t.validator_hosts = ["a", "b", "c", "d"].map(String::from).to_vec();
        let w = t.write().expect("written");
        assert_eq!(w.genesis.validator_address(2), Some("c:7002"));
        let v = NodeConfig::load(&w.validator_dirs[2].join("node.toml"))
            .and_then(|c| c.validate(&w.validator_dirs[2]))
            .expect("valid");
        assert_eq!(v.listen.to_string(), "0.0.0.0:7002");
    }

    #[test]
    fn an_existing_output_or_too_few_validators_is_refused_and_nothing_is_written() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join("keep"), "x").expect("write");
        let e = testnet(d.path()).write().expect_err("refused");
        assert!(matches!(e, TestnetError::OutExists(_)), "{e}");
        assert_eq!(std::fs::read_dir(d.path()).expect("dir").count(), 1);
        let mut t = testnet(&d.path().join("new"));
        t.validators = 3;
        assert!(matches!(t.write(), Err(TestnetError::TooFewValidators(3))));
        assert!(!d.path().join("new").exists());
        let mut t = testnet(&d.path().join("new"));
        t.validator_hosts = vec!["bad host".into()];
        assert!(matches!(t.write(), Err(TestnetError::Address { .. })));
        assert!(!d.path().join("new").exists());
    }
}
