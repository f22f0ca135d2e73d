//! A local quorum and fleet on loopback: generates keys and configs in a directory and runs real
//! `scbe-node` and `scbe-agent` processes (agents with the synthetic health model). Used by
//! `scbe-sim up`, `scbe-sim demo` and the end-to-end tests; every process it starts is killed
//! when the cluster is dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scbe_core::consensus::Digest;
use scbe_core::crypto::{Keypair, PublicKey};
use scbe_validator::config::{ConfigError, NodeConfig};
use scbe_wire::genesis::{Genesis, GenesisError};
use scbe_wire::genesis_file::{
    AgentEntry, AnalysisSection, ConsensusSizes, GenesisFile, HealthSection, LedgerSection,
    RequesterEntry, RolloutSection, SampleSupply, ValidatorEntry,
};
use scbe_wire::key_file::{encode_hex, read_key_file, write_new_key, KeyFileError};

pub use crate::local_options::LocalOptions;

mod new_cluster;

pub struct LocalNode {
    pub id: u32,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    /// Its browser dashboard (`None` in a directory written before dashboards existed).
    pub dashboard: Option<SocketAddr>,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl LocalNode {
    /// The dashboard's address for a browser, if this validator serves one (on loopback: no
    /// token).
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard.map(|d| format!("http://{d}/"))
    }

    /// The running process, if started and not stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub struct LocalAgent {
    pub id: String,
    pub specialty: String,
    pub addr: SocketAddr,
    /// Where it serves `/metrics` (none for a cluster directory made before agents had them).
    pub metrics: Option<SocketAddr>,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// How to start the processes: the command (argv prefix) that runs a validator and the one that
/// runs an agent; `run --config FILE` is appended.
#[derive(Clone, Debug)]
pub struct Launch {
    pub validator: Vec<std::ffi::OsString>,
    pub agent: Vec<std::ffi::OsString>,
}

impl Launch {
    /// The installed binaries: `scbe-node` at `node_bin` and `scbe-agent` beside it.
    pub fn binaries(node_bin: &Path) -> Self {
        Launch {
            validator: vec![node_bin.into()],
            agent: vec![node_bin.with_file_name("scbe-agent").into()],
        }
    }

    /// One binary that runs either as a subcommand (how `scbe-sim` starts its processes).
    pub fn subcommands(exe: &Path, validator: &str, agent: &str) -> Self {
        Launch {
            validator: vec![exe.into(), validator.into()],
            agent: vec![exe.into(), agent.into()],
        }
    }
}

pub struct LocalCluster {
    pub dir: PathBuf,
    pub nodes: Vec<LocalNode>,
    pub agents: Vec<LocalAgent>,
    pub requester_key: PathBuf,
    /// The digest of the cluster's genesis (what its validators and agents present).
    pub genesis: Digest,
    /// Validators' and agents' keys, which clients pin (see `local_clients`).
    pub validator_keys: Vec<PublicKey>,
    pub agent_keys: Vec<PublicKey>,
    /// Plaintext instead of TLS.
    pub plaintext: bool,
    /// Validator 0's side of links to agents, made once (reading its key and making its
    /// certificate) on first use: clients poll agents in loops.
    pub(crate) validator0: std::sync::OnceLock<scbe_wire::tls::Transport>,
    launch: Launch,
}

/// Specialties of a local fleet, in turn.
pub const SPECIALTIES: [&str; 3] = ["code_execute", "doc_plan", "memory_storage"];

/// The local agents' hook: records the version; fails on versions containing $SCBE_FAIL_DEPLOY.
const LOCAL_HOOK: &str = r#"#!/bin/sh
# Written by scbe-sim: a local agent's deploy and rollback hook. It records the version the
# agent serves; it fails for versions containing $SCBE_FAIL_DEPLOY (to show failed deploys).
set -eu
if [ -n "${SCBE_FAIL_DEPLOY:-}" ] && [ "$SCBE_ACTION" = deploy ]; then
  case "$SCBE_VERSION" in *"$SCBE_FAIL_DEPLOY"*) echo "deploy of $SCBE_VERSION failed: image not found" >&2; exit 1;; esac
fi
mkdir -p "$SCBE_PROCESS_DIR"
printf '%s
' "$SCBE_VERSION" >"$SCBE_PROCESS_DIR/version.tmp"
mv "$SCBE_PROCESS_DIR/version.tmp" "$SCBE_PROCESS_DIR/version"
"#;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] scbe_wire::tls::TlsError),
    #[error("cannot reopen the cluster: {0}")]
    Reopen(String),
    #[error("{dir} holds a cluster of {validators} validators and {agents} agents, not {asked_validators} and {asked_agents}: run with the same --validators and --agents to reopen it, or use another --dir (its data belongs to its own genesis)")]
    Shape {
        dir: PathBuf,
        validators: usize,
        agents: usize,
        asked_validators: usize,
        asked_agents: usize,
    },
}

/// The genesis file of a local cluster, in its directory.
pub const GENESIS: &str = "genesis.toml";

/// Next candidate port. Listener ports come from below the kernel's ephemeral range (32768 and
/// up on Linux): a port the kernel handed out and we released could be taken by some process's
/// *outgoing* connection before our node binds it, while ports below the range only collide
/// with other listeners, which the bind test catches.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Bytes of every file under `dir` (0 where unreadable): a validator's data directory on disk.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// A loopback port that is free now (bind-tested).
pub fn free_port() -> std::io::Result<SocketAddr> {
    use std::sync::atomic::Ordering;
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Spread concurrent processes apart by pid; step within a process by a counter.
    let base = (std::process::id() * 97) % SPAN;
    for _ in 0..SPAN {
        let k = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (base + k) % SPAN;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return l.local_addr();
        }
    }
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn key_at(path: &Path) -> Result<Keypair, KeyFileError> {
    if path.exists() {
        read_key_file(path)
    } else {
        write_new_key(path)
    }
}

impl LocalCluster {
    /// The cluster in `dir`: reopened as it is if `dir` already holds one (its genesis, keys,
    /// ports and configs: data is never paired with a new configuration), otherwise written anew
    /// with `n` validators and `opts.agents` agents. A directory holding a cluster of another
    /// shape is refused.
    pub fn generate(
        launch: &Launch,
        dir: &Path,
        n: usize,
        opts: &LocalOptions,
    ) -> Result<Self, LocalError> {
        if dir.join(GENESIS).exists() {
            let c = Self::reopen(launch, dir)?;
            if c.nodes.len() != n || c.agents.len() != opts.agents {
                return Err(LocalError::Shape {
                    dir: dir.to_path_buf(),
                    validators: c.nodes.len(),
                    agents: c.agents.len(),
                    asked_validators: n,
                    asked_agents: opts.agents,
                });
            }
            return Ok(c);
        }
        Self::write_new(launch, dir, n, opts)
    }

    /// A cluster directory written earlier, as it is.
    pub fn reopen(launch: &Launch, dir: &Path) -> Result<Self, LocalError> {
        let genesis = Genesis::load(&dir.join(GENESIS))?;
        let mut nodes = Vec::new();
        let mut plaintext = false;
        for v in &genesis.file().validators {
            let config = dir.join(format!("node{}.toml", v.id));
            let node = NodeConfig::load(&config)?;
            plaintext |= node.tls.plaintext;
            nodes.push(LocalNode {
                id: v.id,
                addr: node.node.listen.ok_or_else(|| {
                    LocalError::Reopen(format!("{} has no node.listen", config.display()))
                })?,
                metrics: node.node.metrics_listen.ok_or_else(|| {
                    LocalError::Reopen(format!("{} has no node.metrics_listen", config.display()))
                })?,
                dashboard: node.dashboard.listen,
                log: dir.join(format!("logs/node{}.log", v.id)),
                config,
                child: None,
            });
        }
        let mut agents = Vec::new();
        for a in &genesis.file().agents {
            let addr = a
                .address
                .as_deref()
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| {
                    LocalError::Reopen(format!("agent {} has no IP address in the genesis", a.id))
                })?;
            let config = dir.join(format!("{}.toml", a.id));
            let metrics = scbe_agent::config::AgentConfig::load(&config)
                .ok()
                .and_then(|c| c.agent.metrics_listen);
            agents.push(LocalAgent {
                specialty: a.specialty.clone(),
                addr,
                metrics,
                config,
                log: dir.join(format!("logs/{}.log", a.id)),
                id: a.id.clone(),
                child: None,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            nodes,
            agents,
            requester_key: dir.join("keys/requester.key"),
            genesis: genesis.digest(),
            validator_keys: genesis.directory().validators().to_vec(),
            agent_keys: agent_keys(&genesis),
            plaintext,
            validator0: std::sync::OnceLock::new(),
            launch: launch.clone(),
        })
    }

    /// Starts (or restarts) validator `i` as a child process, logging to `logs/node{i}.log`.
    pub fn start(&mut self, i: usize) -> Result<(), LocalError> {
        let node = &mut self.nodes[i];
        node.child = Some(spawn_logged(
            &self.launch.validator,
            &node.config,
            &node.log,
        )?);
        Ok(())
    }

    /// Writes the key and node.toml of a validator the quorum is to add (not started; it joins
    /// the cluster once `scbe propose validator add` with the key returned is approved and it
    /// gets the id `id`, which is the next one never used). Its config is validator 0's with
    /// this node's own id, key, data directory and addresses, and `added = true`. Returns its
    /// index in `nodes` and its key.
    pub fn add_validator(&mut self, id: u32) -> Result<(usize, PublicKey), LocalError> {
        let key = key_at(&self.dir.join(format!("keys/node{id}.key")))?;
        let (addr, metrics) = (free_port()?, free_port()?);
        let base = std::fs::read_to_string(&self.nodes[0].config)?;
        let mut text = format!(
            "# Written by scbe-sim: validator {id}, added to the quorum by governance.\n\
             [node]\nid = {id}\nadded = true\ngenesis = \"{GENESIS}\"\ndata_dir = \"data/node{id}\"\nkey_file = \"keys/node{id}.key\"\nlisten = \"{addr}\"\nmetrics_listen = \"{metrics}\"\n"
        );
        // Validator 0's pacing and transport, none of its own addresses.
        let mut keep = false;
        for line in base.lines() {
            if line.starts_with('[') {
                keep = matches!(line, "[consensus]" | "[quotas]" | "[tls]");
                text.push('\n');
            }
            if keep {
                text.push_str(line);
                text.push('\n');
            }
        }
        let config = self.dir.join(format!("node{id}.toml"));
        std::fs::write(&config, text)?;
        self.nodes.push(LocalNode {
            id,
            addr,
            metrics,
            dashboard: None,
            config,
            log: self.dir.join(format!("logs/node{id}.log")),
            child: None,
        });
        self.validator_keys.push(key.public());
        Ok((self.nodes.len() - 1, key.public()))
    }

    /// Starts (or restarts) agent `i`, logging to `logs/agent-NN.log`.
    pub fn start_agent(&mut self, i: usize) -> Result<(), LocalError> {
        let a = &mut self.agents[i];
        a.child = Some(spawn_logged(&self.launch.agent, &a.config, &a.log)?);
        Ok(())
    }

    /// Starts every validator and every agent.
    pub fn start_all(&mut self) -> Result<(), LocalError> {
        for i in 0..self.nodes.len() {
            self.start(i)?;
        }
        for i in 0..self.agents.len() {
            self.start_agent(i)?;
        }
        Ok(())
    }

    /// Waits until every validator and agent accepts connections (or `deadline` passes, or one
    /// of them exits).
    pub fn wait_listening(&mut self, deadline: Duration) -> Result<(), LocalError> {
        let until = std::time::Instant::now() + deadline;
        let addrs: Vec<(String, SocketAddr)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("validator {i}"), n.addr))
            .chain(self.agents.iter().map(|a| (a.id.clone(), a.addr)))
            .collect();
        for (name, addr) in addrs {
            loop {
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if std::time::Instant::now() > until {
                    return Err(std::io::Error::other(format!(
                        "{name} is not listening on {addr} after {deadline:?} (see its log)"
                    ))
                    .into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// SIGKILL of an agent.
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn agent_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.agents[i].log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown path runs, exactly like a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The node's log so far (for test failure messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        for i in 0..self.agents.len() {
            self.kill_agent(i);
        }
    }
}

/// The genesis agents' keys, in order (a key that does not parse is skipped: the genesis
/// checks refuse it first).
fn agent_keys(genesis: &Genesis) -> Vec<PublicKey> {
    genesis
        .file()
        .agents
        .iter()
        .filter_map(|a| PublicKey::from_hex(&a.public_key))
        .collect()
}

/// `cmd run --config config`, output appended to `log`.
fn spawn_logged(
    cmd: &[std::ffi::OsString],
    config: &Path,
    log: &Path,
) -> Result<Child, LocalError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let (program, prefix) = cmd
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty launch command"))?;
    let mut command = Command::new(program);
    // Its own process group: a Ctrl-C in the terminal reaches only the launcher, which then
    // stops its children itself (after they are up), instead of every child at once at
    // whatever instant it happens to be in, e.g. creating its store.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    Ok(command
        .args(prefix)
        .args(["run", "--config"])
        .arg(config)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}
