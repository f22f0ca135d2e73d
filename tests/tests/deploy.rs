//! The deployment files in deploy/ say only what the binaries understand: every YAML file
//! parses, every `scbe-node`/`scbe-agent` command line in them names a subcommand and flags its
//! `--help` lists, the agent config embedded in the Kubernetes manifest parses (unknown keys are
//! refused), the compose file's volumes are the folders `scbe-node testnet` writes for its
//! hosts, and the systemd units pass `systemd-analyze verify` with no warning where it exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A command line found in a file: binary, subcommand and the `--flags` after it.
#[derive(Debug)]
struct Invocation {
    binary: &'static str,
    args: Vec<String>,
}

fn tokens(line: &str) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || "[]\",{}".contains(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every scbe-node / scbe-agent invocation in `text`: a token naming the binary followed by its
/// arguments on the same line, or (an image's entrypoint) on the next `args:`/`CMD` line; an
/// `args:` line with no binary before it runs the image's entrypoint, scbe-node.
fn invocations(text: &str) -> Vec<Invocation> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let mut found = Vec::new();
    let mut pending: Option<&'static str> = None;
    for line in lines {
        let t = tokens(line);
        let named = t
            .iter()
            .position(|x| x.ends_with("scbe-node") || x.ends_with("scbe-agent"));
        let continues = matches!(
            t.first().map(String::as_str),
            Some("args:" | "CMD" | "command:")
        );
        if let Some(i) = named {
            let binary = if t[i].ends_with("scbe-node") {
                "scbe-node"
            } else {
                "scbe-agent"
            };
            let args: Vec<String> = t[i + 1..].to_vec();
            // A binary runs as `BIN SUBCOMMAND ...`; `-p scbe-agent` (a package) or a path being
            // copied is not an invocation.
            let is_word = |a: &String| a.chars().all(|c| c.is_ascii_lowercase());
            match args.first() {
                None => pending = Some(binary),
                Some(sub) if is_word(sub) => {
                    found.push(Invocation { binary, args });
                    pending = None;
                }
                Some(_) => {}
            }
        } else if continues && t.len() > 1 && (pending.is_some() || t[0] == "args:") {
            let binary = pending.take().unwrap_or("scbe-node");
            found.push(Invocation {
                binary,
                args: t[1..].to_vec(),
            });
        }
    }
    found
}

fn check_invocations(rel: &str, at_least: usize) {
    let found = invocations(&read(rel));
    assert!(found.len() >= at_least, "{rel}: found only {found:?}");
    for inv in found {
        let sub = inv.args.first().expect("a subcommand").clone();
        let help = Command::new(scbe_tests::workspace_bin(inv.binary))
            .args([&sub, "--help"])
            .output()
            .expect("runs");
        assert!(
            help.status.success(),
            "{rel}: `{} {sub}` is not a subcommand",
            inv.binary
        );
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in inv.args.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            assert!(
                help.contains(flag),
                "{rel}: `{} {sub}` has no flag {flag}",
                inv.binary
            );
        }
    }
}

#[test]
fn the_invocation_scanner_sees_what_it_must() {
    // Planted lines: the scanner must find these, and the flag check must be able to fail.
    let text = "cargo build -p scbe-agent --bins\ncp target/release/scbe-node /out/\n\
                ENTRYPOINT [\"/usr/local/bin/scbe-node\"]\nCMD [\"run\", \"--config\", \"x\"]\n\
                # scbe-node run --ignored-in-comments\n\
                command: [\"/usr/local/bin/scbe-agent\", \"health\", \"--config\", \"y\"]\n\
                args: [\"run\", \"--bogus\"]\n";
    let found = invocations(text);
    let seen: Vec<(&str, Vec<String>)> = found.iter().map(|i| (i.binary, i.args.clone())).collect();
    assert_eq!(
        seen,
        vec![
            (
                "scbe-node",
                vec!["run".into(), "--config".into(), "x".into()]
            ),
            (
                "scbe-agent",
                vec!["health".into(), "--config".into(), "y".into()]
            ),
            ("scbe-node", vec!["run".into(), "--bogus".into()]),
        ]
    );
    let help = Command::new(scbe_tests::workspace_bin("scbe-node"))
        .args(["run", "--help"])
        .output()
        .expect("runs");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--bogus"));
}

#[test]
fn every_command_line_names_flags_that_exist() {
    check_invocations("Dockerfile", 2);
    check_invocations("compose.yaml", 2);
    check_invocations("kubernetes/validators.yaml", 3);
    check_invocations("kubernetes/agent-sidecar.yaml", 2);
    check_invocations("systemd/scbe-node.service", 1);
    check_invocations("systemd/scbe-agent.service", 1);
}

#[test]
fn the_manifests_parse_and_the_embedded_agent_config_is_valid() {
    let docs = yaml("kubernetes/validators.yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "StatefulSet",
            "Service",
            "Service",
            "Service",
            "Service"
        ]
    );
    let set = &docs[1]["spec"];
    assert_eq!(set["replicas"].as_i64(), Some(4));
    assert!(!set["volumeClaimTemplates"].is_badvalue());
    // Service i answers on validator i's port (scbe-node testnet: 7000 + i).
    for (i, svc) in docs[2..].iter().enumerate() {
        assert_eq!(
            svc["metadata"]["name"].as_str(),
            Some(format!("scbe-validator-{i}").as_str())
        );
        assert_eq!(
            svc["spec"]["ports"][0]["port"].as_i64(),
            Some(7000 + i as i64)
        );
    }

    let docs = yaml("kubernetes/agent-sidecar.yaml");
    let config = docs[0]["data"]["agent.toml"].as_str().expect("agent.toml");
    let parsed = scbe_agent::config::AgentConfig::parse(Path::new("agent.toml"), config)
        .unwrap_or_else(|e| panic!("the embedded agent.toml: {e}"));
    assert_eq!(parsed.agent.id, "agent-00");
    let containers = &docs[1]["spec"]["template"]["spec"]["containers"];
    let names: Vec<&str> = containers
        .as_vec()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["model-server", "agent"], "the agent is a sidecar");
}

#[test]
fn the_compose_file_mounts_the_folders_scbe_node_testnet_writes() {
    let docs = yaml("compose.yaml");
    let services = docs[0]["services"].as_hash().expect("services");
    let d = tempfile::tempdir().expect("tmp");
    let out = d.path().join("net");
    // The command in compose.yaml's header.
    let o = Command::new(scbe_tests::workspace_bin("scbe-node"))
        .args(["testnet", "--validators", "4", "--agents", "3", "--out"])
        .arg(&out)
        .args([
            "--validator-hosts",
            "v0,v1,v2,v3",
            "--agent-hosts",
            "a0,a1,a2",
        ])
        .output()
        .expect("testnet");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let genesis = scbe_wire::genesis::Genesis::load(&out.join("genesis.toml")).expect("genesis");
    for v in &genesis.file().validators {
        let name = format!("v{}", v.id);
        let svc = &docs[0]["services"][name.as_str()];
        assert!(!svc.is_badvalue(), "no service {name}");
        let volume = svc["volumes"][0].as_str().expect("volume");
        let folder = volume
            .trim_start_matches("./net/")
            .split(':')
            .next()
            .unwrap_or("");
        assert!(out.join(folder).join("node.toml").exists(), "{volume}");
        // The genesis reaches it by service name, on the port compose publishes.
        let port = v.address.rsplit(':').next().unwrap_or("");
        assert_eq!(v.address, format!("{name}:{port}"));
        assert_eq!(
            svc["ports"][0].as_str(),
            Some(format!("{port}:{port}").as_str())
        );
    }
    for (i, a) in genesis.file().agents.iter().enumerate() {
        let name = format!("a{i}");
        assert!(
            services.contains_key(&Yaml::String(name.clone())),
            "no service {name}"
        );
        assert_eq!(
            a.address
                .as_deref()
                .map(|x| x.starts_with(&format!("{name}:"))),
            Some(true)
        );
        let volume = docs[0]["services"][name.as_str()]["volumes"][0]
            .as_str()
            .expect("volume");
        let folder = volume
            .trim_start_matches("./net/")
            .split(':')
            .next()
            .unwrap_or("");
        assert!(out.join(folder).join("agent.toml").exists(), "{volume}");
    }
}

/// `systemd-analyze verify` of `unit`, with its binary at the path the test built; the
/// warnings it printed (empty when clean).
fn verify_unit(unit: &str, binary: &str, dir: &Path) -> Option<String> {
    let text = read(&format!("systemd/{unit}")).replace(
        &format!("/usr/local/bin/{binary}"),
        &scbe_tests::workspace_bin(binary).display().to_string(),
    );
    verify_text(unit, &text, dir)
}

fn verify_text(unit: &str, text: &str, dir: &Path) -> Option<String> {
    let path = dir.join(unit);
    std::fs::write(&path, text).expect("write unit");
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .ok()?;
    Some(format!(
        "{}{}{}",
        if o.status.success() {
            ""
        } else {
            "exit status not 0\n"
        },
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ))
}

#[test]
fn the_systemd_units_verify_cleanly_where_systemd_analyze_exists() {
    let d = tempfile::tempdir().expect("tmp");
    let Some(node) = verify_unit("scbe-node.service", "scbe-node", d.path()) else {
        // Not every machine has systemd; the flags are still checked above.
        eprintln!("systemd-analyze not found: units not verified here");
        return;
    };
    assert_eq!(node, "", "scbe-node.service");
    let agent = verify_unit("scbe-agent.service", "scbe-agent", d.path()).expect("ran once");
    assert_eq!(agent, "", "scbe-agent.service");
    // The check can fail: a misspelled directive is reported.
    let bad = read("systemd/scbe-node.service")
        .replace(
            "/usr/local/bin/scbe-node",
            &scbe_tests::workspace_bin("scbe-node").display().to_string(),
        )
        .replace("ProtectHome=yes", "ProtectHomme=yes");
    let warned = verify_text("bad.service", &bad, d.path()).expect("ran");
    assert!(warned.contains("ProtectHomme"), "{warned}");
}

/// Every metric the Grafana dashboard (`configs/grafana/scbe-fleet.json`) queries is one a
/// validator or an agent exports: both pages rendered with some data, each name found as a
/// series (counters with `_total`, histograms with `_bucket`), and the JSON is a dashboard.
#[test]
fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    use std::sync::Arc;
    use std::time::Duration;
    let text = read("../configs/grafana/scbe-fleet.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    assert_eq!(dash["uid"], "scbe-fleet");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 15, "{exprs:?}");

    let validator = Arc::new(scbe_validator::metrics::Metrics::default());
    validator.dropped("queue full");
    validator.observe_latency(Duration::from_millis(2));
    let fleet = Arc::new(scbe_validator::fleet::monitor::FleetHealth::default());
    fleet.refuse("bad signature");
    fleet.update(&scbe_core::rollout::evidence::HealthBody {
        agent: "agent-00".into(),
        rollout: 0,
        version: "v0".into(),
        report: 1,
        samples: 4,
        window: 4,
        coherence_mean: 0.9,
        error_rate_mean: 0.01,
        response_ms_p95: 100.0,
        safety_min: 0.99,
        tasks_per_minute: 30.0,
        latest: Vec::new(),
    });
    let agent = scbe_agent::metrics::AgentMetrics::default();
    agent.order("deploy", "done", "");
    agent.hook_ran(Duration::from_secs(1));
    agent.reported(scbe_core::rollout::evidence::Sample {
        coherence: 0.9,
        error_rate: 0.01,
        response_ms: 100.0,
        safety: 0.99,
        tasks_per_minute: 30.0,
    });
    let pages = [
        scbe_wire::metrics_http::encode(&validator.registry(0, fleet)),
        scbe_wire::metrics_http::encode(&agent.registry("agent-00")),
    ];
    let series: std::collections::BTreeSet<String> = pages
        .iter()
        .flat_map(|p| p.lines())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect();
    for expr in &exprs {
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("scbe_"));
        for name in names {
            assert!(
                series.contains(name),
                "{name} (in {expr}) is exported by neither page: {series:?}"
            );
        }
    }
}
