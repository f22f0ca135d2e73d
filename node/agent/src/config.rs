//! The agent's TOML configuration (`scbe-agent run --config agent.toml`), validated at start-up
//! with errors that name the key. Every key is documented in `configs/agent.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use scbe_core::agent::{Installed, SyntheticModel};
use scbe_core::crypto::{Keypair, Verifier};
pub use scbe_wire::config_error::ConfigError;
use scbe_wire::config_error::{invalid, load_toml, parse_toml};
use scbe_wire::genesis::Genesis;
use scbe_wire::key_file::{parse_public_key, read_key_file};
use scbe_wire::tls::{TlsSection, Transport};

fn d_window() -> u32 {
    30
}
fn d_initial() -> String {
    "v0".into()
}
fn d_hook_timeout() -> Duration {
    Duration::from_secs(120)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// This agent's id in the genesis (its specialty and public key are taken from there), or
    /// of an agent admitted later by `scbe propose agent add`.
    pub id: String,
    /// Only for an agent the genesis does not list (admitted later): its specialty, as
    /// proposed. An agent the genesis lists takes it from there.
    #[serde(default)]
    pub specialty: Option<String>,
    /// The cluster's genesis file (relative paths are relative to this config): the validator
    /// set whose quorum the agent obeys, its own entry, and the sample interval.
    pub genesis: PathBuf,
    /// Where the FleetAgent service listens. Default: the genesis address when it is an IP
    /// address, otherwise every interface on its port.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    pub key_file: PathBuf,
    /// Set when this agent's key was replaced after genesis by `scbe propose agent update
    /// --public-key`: it then starts with a key that differs from its genesis entry (the
    /// validators count its evidence under the key the ledger holds). Left unset, a key that
    /// differs from the genesis is refused as the misconfiguration it usually is.
    #[serde(default)]
    pub rekeyed: bool,
    /// Where the agent keeps its current and previous version.
    pub data_dir: PathBuf,
    /// Version the agent runs before its first order (the fleet's production version).
    #[serde(default = "d_initial")]
    pub initial_version: String,
    /// How many of the latest samples a report's aggregates cover.
    #[serde(default = "d_window")]
    pub report_window: u32,
    /// Where the agent serves its own `/metrics` (Prometheus/OpenMetrics text); unset: none.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSection {
    /// Deploy command (argv); runs with SCBE_* variables describing the order.
    pub deploy: Vec<String>,
    /// Rollback command (argv).
    pub rollback: Vec<String>,
    /// A hook that runs longer is killed and the deploy fails.
    #[serde(default = "d_hook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra environment for both hooks (e.g. the Kubernetes deployment name).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Where health figures come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum HealthSection {
    /// GET an HTTP URL serving Prometheus text or JSON.
    Http {
        url: String,
        #[serde(default)]
        format: HttpFormat,
        /// Metric (Prometheus) or field (JSON) names, if not the defaults.
        #[serde(default)]
        names: MetricNames,
    },
    /// Run a command that prints one JSON object with the figures.
    Command {
        command: Vec<String>,
        #[serde(default)]
        names: MetricNames,
    },
    /// A seeded model for demos and tests.
    Synthetic(SyntheticModel),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpFormat {
    #[default]
    Prometheus,
    Json,
}

/// Names of the five figures in the source's output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricNames {
    pub coherence: String,
    pub error_rate: String,
    pub response_ms: String,
    pub safety: String,
    pub tasks_per_minute: String,
}

impl Default for MetricNames {
    fn default() -> Self {
        Self {
            coherence: "scbe_agent_coherence".into(),
            error_rate: "scbe_agent_error_rate".into(),
            response_ms: "scbe_agent_response_ms_p95".into(),
            safety: "scbe_agent_safety".into(),
            tasks_per_minute: "scbe_agent_tasks_per_minute".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub agent: AgentSection,
    pub hooks: HooksSection,
    pub health: HealthSection,
    #[serde(default)]
    pub tls: TlsSection,
}

/// Everything the daemon needs, checked.
pub struct ValidatedAgent {
    pub raw: AgentConfig,
    pub genesis: Genesis,
    pub key: Keypair,
    /// The validator set whose quorum the agent obeys, and the quorum.
    pub validators: Vec<Verifier>,
    pub quorum: usize,
    /// This agent's specialty, as the genesis lists it (or `agent.specialty`).
    pub specialty: String,
    /// The genesis does not list it: it serves orders once the validators admitted it.
    pub admitted_later: bool,
    /// How often the health source is sampled (the genesis's `rollout.sample_interval`).
    pub sample_interval: Duration,
    pub listen: SocketAddr,
    /// TLS with this agent's key as its certificate (only validators may call), or plaintext
    /// on loopback.
    pub transport: Transport,
    pub data_dir: PathBuf,
    /// Hooks with relative program paths resolved against the config's directory.
    pub hooks: HooksSection,
}

impl ValidatedAgent {
    /// What the agent runs before its first order: `agent.initial_version`, with the units
    /// the genesis lists for it (a rollback hook that undoes a failed deploy puts them back).
    pub fn initial_install(&self) -> Installed {
        let version = self.raw.agent.initial_version.clone();
        let units = (self.genesis.file().ledger.known_good_units)
            .get(&version)
            .cloned()
            .unwrap_or_default();
        Installed {
            version,
            release_digest: String::new(),
            units,
        }
    }
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        parse_toml(path, text)
    }

    /// Validates everything, reads the genesis and the key; `base` resolves relative paths.
    pub fn validate(self, base: &Path) -> Result<ValidatedAgent, ConfigError> {
        let genesis = Genesis::load(&base.join(&self.agent.genesis))?;
        self.validate_with(base, genesis)
    }

    /// [`Self::validate`] with the genesis already read.
    pub fn validate_with(
        self,
        base: &Path,
        genesis: Genesis,
    ) -> Result<ValidatedAgent, ConfigError> {
        let a = &self.agent;
        let entry = genesis.file().agents.iter().find(|e| e.id == a.id).cloned();
        if entry.is_none() && (a.specialty.is_none() || a.listen.is_none()) {
            return Err(invalid(
                "agent.id",
                format!(
                    "{:?} is not an agent of genesis {}: fix the id, or, for an agent admitted by \
                     `scbe propose agent add`, set agent.specialty and agent.listen",
                    a.id,
                    genesis.path().display()
                ),
            ));
        }
        if let (Some(e), Some(s)) = (&entry, &a.specialty) {
            if *s != e.specialty {
                return Err(invalid(
                    "agent.specialty",
                    format!(
                        "{s:?}, but the genesis lists {:?} for agent {}: remove agent.specialty",
                        e.specialty, a.id
                    ),
                ));
            }
        }
        if a.report_window == 0 || a.report_window > 4096 {
            return Err(invalid("agent.report_window", "must be between 1 and 4096"));
        }
        if a.initial_version.trim().is_empty() {
            return Err(invalid("agent.initial_version", "must not be empty"));
        }
        let mut hooks = self.hooks.clone();
        for (k, argv) in [
            ("hooks.deploy", &mut hooks.deploy),
            ("hooks.rollback", &mut hooks.rollback),
        ] {
            let Some(program) = argv.first_mut() else {
                return Err(invalid(k, "must name a command, e.g. [\"./deploy.sh\"]"));
            };
            // A relative path with a directory part is relative to the config file.
            if program.contains('/') && !Path::new(program.as_str()).is_absolute() {
                *program = base.join(program.as_str()).display().to_string();
            }
        }
        if hooks.timeout.is_zero() {
            return Err(invalid("hooks.timeout", "must be greater than zero"));
        }
        match &self.health {
            HealthSection::Http { url, .. } => {
                if !url.starts_with("http://") {
                    return Err(invalid(
                        "health.url",
                        "must be an http:// URL (TLS is not supported for health sources)",
                    ));
                }
            }
            HealthSection::Command { command, .. } => {
                if command.is_empty() {
                    return Err(invalid("health.command", "must name a command"));
                }
            }
            HealthSection::Synthetic(m) => m
                .validate()
                .map_err(|e| invalid(format!("health.{}", e.setting), e.problem))?,
        }
        let key_path = base.join(&a.key_file);
        let key = read_key_file(&key_path)?;
        if let Some(entry) = entry.as_ref().filter(|_| !a.rekeyed) {
            let listed = parse_public_key(&entry.public_key);
            if listed != Some(key.public()) {
                return Err(invalid(
                    "agent.key_file",
                    format!(
                        "{} holds key {}, but the genesis lists {} for agent {}: the validators would refuse every report it signs (if an approved `scbe propose agent update --public-key` replaced it, set agent.rekeyed = true)",
                        key_path.display(),
                        key.public(),
                        entry.public_key,
                        a.id
                    ),
                ));
            }
        }
        let listen = match a.listen {
            Some(l) => l,
            None => entry
                .as_ref()
                .and_then(|e| e.address.as_deref())
                .and_then(default_listen)
                .ok_or_else(|| {
                    invalid(
                        "agent.listen",
                        "the genesis gives this agent no address with a port: set agent.listen",
                    )
                })?,
        };
        let validators: Vec<Verifier> = genesis
            .directory()
            .validators()
            .iter()
            .filter_map(|k| Verifier::new(*k).ok())
            .collect();
        let quorum = scbe_core::consensus::config::quorum_for(validators.len());
        let transport = self.tls.transport(&key, [listen.to_string()], base)?;
        Ok(ValidatedAgent {
            data_dir: base.join(&a.data_dir),
            admitted_later: entry.is_none(),
            specialty: entry
                .map(|e| e.specialty)
                .or_else(|| a.specialty.clone())
                .unwrap_or_default(),
            sample_interval: genesis.file().rollout.sample_interval,
            raw: self,
            genesis,
            key,
            validators,
            quorum,
            listen,
            transport,
            hooks,
        })
    }
}

/// The genesis address when it is an IP address; every interface on its port otherwise.
fn default_listen(address: &str) -> Option<SocketAddr> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Some(addr);
    }
    let port = address.rsplit_once(':')?.1.parse::<u16>().ok()?;
    Some(SocketAddr::from(([0, 0, 0, 0], port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_wire::key_file::encode_hex;

    const SAMPLE: &str = include_str!("../../../configs/agent.toml");
    const GENESIS: &str = include_str!("../../../configs/genesis.toml");

    /// The sample genesis with real keys (agent-001's is `agent_key`'s), the agent's key file,
    /// and the sample agent.toml.
    fn sample_in(dir: &Path, agent_key: &Keypair) -> String {
        let mut genesis = GENESIS.to_string();
        for i in 0..5u8 {
            let k = Keypair::from_label(&format!("val{i}"));
            genesis = genesis.replace(
                &format!("{i}").repeat(64),
                &encode_hex(k.public().as_bytes()),
            );
        }
        genesis = genesis.replace(
            &"5".repeat(64),
            &encode_hex(Keypair::from_label("agent").public().as_bytes()),
        );
        std::fs::write(dir.join("genesis.toml"), genesis).expect("genesis");
        std::fs::create_dir_all(dir.join("keys")).expect("dir");
        std::fs::write(
            dir.join("keys/agent-001.key"),
            encode_hex(&agent_key.secret_bytes()),
        )
        .expect("key");
        SAMPLE.to_string()
    }

    fn check(dir: &Path, text: &str) -> Result<ValidatedAgent, ConfigError> {
        AgentConfig::parse(Path::new("agent.toml"), text)?.validate(dir)
    }

    #[test]
    fn the_commented_sample_is_valid() {
        let d = tempfile::tempdir().expect("tmp");
        let v = check(
            d.path(),
            &sample_in(d.path(), &Keypair::from_label("agent")),
        )
        .expect("sample validates");
        assert_eq!(v.quorum, 3);
        assert_eq!(v.validators.len(), 4);
        assert_eq!(
            v.sample_interval,
            Duration::from_secs(10),
            "from the genesis"
        );
        assert_eq!(v.specialty, "code_execute", "from the genesis");
        assert!(v.hooks.deploy[0].ends_with("hooks/process-deploy.sh"));
        let start = v.initial_install();
        assert_eq!(start.version, "v0");
        assert_eq!(
            start
                .units
                .iter()
                .map(|u| u.uri.as_str())
                .collect::<Vec<_>>(),
            ["s3://scbe-training-data/models/runtime-v0"],
            "the genesis's units for v0"
        );
    }

    #[test]
    fn tls_is_the_default_and_plaintext_only_on_loopback() {
        let d = tempfile::tempdir().expect("tmp");
        let good = sample_in(d.path(), &Keypair::from_label("agent"));
        assert!(check(d.path(), &good).expect("sample").transport.is_tls());
        let plain = good.replace("plaintext = false", "plaintext = true");
        assert!(plain.contains("listen = \"127.0.0.1:7101\""), "{plain}");
        assert!(!check(d.path(), &plain)
            .expect("loopback")
            .transport
            .is_tls());
        let open = plain.replace("127.0.0.1:7101", "0.0.0.0:7100");
        let e = check(d.path(), &open).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(
            e.contains("tls.plaintext") && e.contains("0.0.0.0:7100"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let d = tempfile::tempdir().expect("tmp");
        let good = sample_in(d.path(), &Keypair::from_label("agent"));
        let cases = [
            (
                good.replacen("id = \"agent-001\"", "id = \"agent-002\"", 1),
                "`agent.id`: \"agent-002\" is not an agent of genesis",
            ),
            (
                good.replacen(
                    "id = \"agent-001\"",
                    "id = \"agent-001\"\nspecialty = \"x\"",
                    1,
                ),
                "but the genesis lists \"code_execute\"",
            ),
            (
                good.replacen("deploy = [\"hooks/process-deploy.sh\"]", "deploy = []", 1),
                "`hooks.deploy`",
            ),
            (
                good.replacen("degrade_after = 3", "degrade_after = 3\nbogus = 1", 1),
                "bogus",
            ),
            (
                good.replacen(
                    "report_window = 30",
                    "report_window = 30\nsample_interval = \"5s\"",
                    1,
                ),
                "unknown field `sample_interval`",
            ),
        ];
        for (text, expect) in cases {
            let e = check(d.path(), &text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(expect), "expected {expect:?} in {e:?}");
        }
    }

    /// An agent the genesis does not list starts when it names its specialty and where it
    /// listens (it was admitted, or is about to be, by `scbe propose agent add`).
    #[test]
    fn an_agent_admitted_after_the_genesis_starts_with_its_own_specialty() {
        let d = tempfile::tempdir().expect("tmp");
        let good = sample_in(d.path(), &Keypair::from_label("agent"));
        std::fs::write(
            d.path().join("keys/agent-009.key"),
            encode_hex(&Keypair::from_label("agent-009").secret_bytes()),
        )
        .expect("key");
        let text = good
            .replacen(
                "id = \"agent-001\"",
                "id = \"agent-009\"\nspecialty = \"embed\"",
                1,
            )
            .replacen("keys/agent-001.key", "keys/agent-009.key", 1);
        let v = check(d.path(), &text).expect("valid");
        assert!(v.admitted_later);
        assert_eq!(v.specialty, "embed");
        let without = text.replacen("specialty = \"embed\"\n", "", 1);
        let e = check(d.path(), &without).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("set agent.specialty")),
            "{e:?}"
        );
    }

    /// A walkthrough finding: an agent whose key is not the one the validators list signed
    /// reports every validator refused, and its batches rolled back on no data, explained only
    /// in the validators' logs. It now refuses to start, naming both keys.
    #[test]
    fn an_agent_whose_key_is_not_the_genesis_one_refuses_to_start() {
        let d = tempfile::tempdir().expect("tmp");
        let text = sample_in(d.path(), &Keypair::from_label("someone else"));
        let e = check(d.path(), &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("config key `agent.key_file`"), "{e}");
        assert!(
            e.contains("the validators would refuse every report it signs"),
            "{e}"
        );
        assert!(e.contains("set agent.rekeyed = true"), "{e}");
    }

    /// An agent of the genesis re-keyed by proposal starts with its new key once its config
    /// says so, and signs with it.
    #[test]
    fn a_genesis_agent_rekeyed_by_proposal_starts_with_its_new_key() {
        let d = tempfile::tempdir().expect("tmp");
        let new_key = Keypair::from_label("agent-001 new");
        let text = sample_in(d.path(), &new_key).replacen("[agent]", "[agent]\nrekeyed = true", 1);
        assert!(text.contains("rekeyed = true"), "{text}");
        let v = check(d.path(), &text).expect("starts");
        assert_eq!(v.key.public(), new_key.public());
    }
}
