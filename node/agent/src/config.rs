//! The agent's TOML configuration (`scbe-agent run --config agent.toml`), validated at start-up
//! with errors that name the key. Every key is documented in `configs/agent.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use scbe_core::agent::SyntheticModel;
use scbe_core::crypto::{Keypair, Verifier};
pub use scbe_wire::config_error::ConfigError;
use scbe_wire::config_error::{invalid, load_toml, parse_toml};
use scbe_wire::key_file::{parse_public_key, read_key_file};

fn d_sample() -> Duration {
    Duration::from_secs(10)
}
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
    pub id: String,
    pub specialty: String,
    /// gRPC address the FleetAgent service listens on.
    pub listen: SocketAddr,
    pub key_file: PathBuf,
    /// Where the agent keeps its current and previous version.
    pub data_dir: PathBuf,
    /// Version the agent runs before its first order (the fleet's production version).
    #[serde(default = "d_initial")]
    pub initial_version: String,
    /// How often the health source is sampled.
    #[serde(default = "d_sample", with = "humantime_serde")]
    pub sample_interval: Duration,
    /// How many of the latest samples a report's aggregates cover.
    #[serde(default = "d_window")]
    pub report_window: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorKey {
    pub public_key: String,
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
    /// The validator set whose quorum the agent obeys (same keys as the validators' config).
    pub validators: Vec<ValidatorKey>,
    pub hooks: HooksSection,
    pub health: HealthSection,
}

/// Everything the daemon needs, checked.
pub struct ValidatedAgent {
    pub raw: AgentConfig,
    pub key: Keypair,
    pub validators: Vec<Verifier>,
    pub quorum: usize,
    pub data_dir: PathBuf,
    /// Hooks with relative program paths resolved against the config's directory.
    pub hooks: HooksSection,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        parse_toml(path, text)
    }

    /// Validates everything and loads the key; `base` resolves relative paths.
    pub fn validate(self, base: &Path) -> Result<ValidatedAgent, ConfigError> {
        let a = &self.agent;
        if a.id.is_empty() || a.id.len() > scbe_core::rollout::evidence::MAX_AGENT_ID_BYTES {
            return Err(invalid("agent.id", "must be 1 to 128 characters"));
        }
        if !a
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "agent.id",
                "may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        if a.specialty.trim().is_empty() {
            return Err(invalid("agent.specialty", "must not be empty"));
        }
        if a.sample_interval.is_zero() {
            return Err(invalid(
                "agent.sample_interval",
                "must be greater than zero",
            ));
        }
        if a.report_window == 0 || a.report_window > 4096 {
            return Err(invalid("agent.report_window", "must be between 1 and 4096"));
        }
        if a.initial_version.trim().is_empty() {
            return Err(invalid("agent.initial_version", "must not be empty"));
        }
        let n = self.validators.len();
        if n < 4 {
            return Err(invalid(
                "validators",
                format!("need the whole validator set (at least 4 keys), got {n}"),
            ));
        }
        let mut validators = Vec::with_capacity(n);
        for (i, v) in self.validators.iter().enumerate() {
            let key = parse_public_key(&v.public_key)
                .and_then(|k| Verifier::new(k).ok())
                .ok_or_else(|| {
                    invalid(
                        format!("validators[{i}].public_key"),
                        "must be 64 hex characters of a valid ed25519 key",
                    )
                })?;
            if validators
                .iter()
                .any(|x: &Verifier| x.public() == key.public())
            {
                return Err(invalid(
                    format!("validators[{i}].public_key"),
                    "listed twice",
                ));
            }
            validators.push(key);
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
        let key = read_key_file(&base.join(&a.key_file))?;
        let quorum = scbe_core::consensus::config::quorum_for(n);
        Ok(ValidatedAgent {
            data_dir: base.join(&a.data_dir),
            raw: self,
            key,
            validators,
            quorum,
            hooks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_wire::key_file::encode_hex;

    const SAMPLE: &str = include_str!("../../../configs/agent.toml");

    fn sample_in(dir: &Path) -> String {
        let mut text = SAMPLE.to_string();
        for i in 0..4u8 {
            let k = Keypair::from_label(&format!("val{i}"));
            text = text.replace(
                &format!("{i}").repeat(64),
                &encode_hex(k.public().as_bytes()),
            );
        }
        std::fs::create_dir_all(dir.join("keys")).expect("dir");
        let k = Keypair::from_label("agent");
        std::fs::write(
            dir.join("keys/agent-001.key"),
            encode_hex(&k.secret_bytes()),
        )
        .expect("key");
        text
    }

    fn check(dir: &Path, text: &str) -> Result<ValidatedAgent, ConfigError> {
        AgentConfig::parse(Path::new("agent.toml"), text)?.validate(dir)
    }

    #[test]
    fn the_commented_sample_is_valid() {
        let d = tempfile::tempdir().expect("tmp");
        let v = check(d.path(), &sample_in(d.path())).expect("sample validates");
        assert_eq!(v.quorum, 3);
        assert_eq!(v.raw.agent.sample_interval, Duration::from_secs(10));
        assert!(v.hooks.deploy[0].ends_with("hooks/process-deploy.sh"));
    }

    #[test]
    fn errors_name_the_key() {
        let d = tempfile::tempdir().expect("tmp");
        let good = sample_in(d.path());
        let cases = [
            (
                good.replacen("id = \"agent-001\"", "id = \"agent 001\"", 1),
                "`agent.id`",
            ),
            (
                good.replacen("sample_interval = \"10s\"", "sample_interval = \"0s\"", 1),
                "`agent.sample_interval`",
            ),
            (
                good.replacen("deploy = [\"hooks/process-deploy.sh\"]", "deploy = []", 1),
                "`hooks.deploy`",
            ),
            (
                good.replacen("degrade_after = 3", "degrade_after = 3\nbogus = 1", 1),
                "bogus",
            ),
        ];
        for (text, expect) in cases {
            let e = check(d.path(), &text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(expect), "expected {expect:?} in {e:?}");
        }
        let three: String = good
            .split("[[validators]]")
            .take(4)
            .collect::<Vec<_>>()
            .join("[[validators]]");
        let e = check(
            d.path(),
            &format!("{three}\n{}", &good[good.find("[hooks]").unwrap_or(0)..]),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("`validators`"), "{e}");
    }
}
