//! Node configuration: the commented sample is valid, errors name the key, and a mismatched key
//! file is refused.

use super::*;
use scbe_wire::key_file::encode_hex;

const SAMPLE: &str = include_str!("../../../configs/node.toml");

/// The sample with real keys, and node 0's key written to `dir`.
fn sample_in(dir: &Path) -> String {
    let mut text = SAMPLE.to_string();
    for i in 0..6u8 {
        let k = Keypair::from_label(&format!("cfg{i}"));
        let placeholder = format!("{}", i).repeat(64);
        text = text.replace(&placeholder, &encode_hex(k.public().as_bytes()));
    }
    std::fs::create_dir_all(dir.join("keys")).expect("dir");
    let k0 = Keypair::from_label("cfg0");
    std::fs::write(dir.join("keys/node0.key"), encode_hex(&k0.secret_bytes())).expect("key");
    text
}

fn validate(dir: &Path, text: &str) -> Result<Validated, ConfigError> {
    NodeConfig::parse(Path::new("node.toml"), text)?.validate(dir)
}

#[test]
fn the_commented_sample_is_valid() {
    let d = tempfile::tempdir().expect("tmp");
    let v = validate(d.path(), &sample_in(d.path())).expect("sample validates");
    assert_eq!(v.replica.n(), 4);
    assert_eq!(v.raw.consensus.request_timeout, Duration::from_millis(500));
    assert_eq!(v.ledger.agents.len(), 1);
    assert_eq!(v.ledger.health.min_samples, 30, "5m window / 10s samples");
    assert_eq!(
        v.ledger.health.max_response_ms_p95, 200.0,
        "the latency gate"
    );
    assert_eq!(v.raw.rollout.step_deadline(), Duration::from_secs(450));
}

fn err(text: &str) -> String {
    let d = tempfile::tempdir().expect("tmp");
    match validate(d.path(), text) {
        Ok(_) => panic!("must be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_key() {
    let d = tempfile::tempdir().expect("tmp");
    let good = sample_in(d.path());
    let check = |text: String, expect: &str| {
        let e = validate(d.path(), &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(expect), "expected {expect:?} in {e:?}");
    };
    check(
        good.replacen("id = 1\n", "id = 7\n", 1),
        "config key `validators[1].id`: must be 1",
    );
    check(
        good.replacen("request_timeout = \"500ms\"", "request_timeout = \"0s\"", 1),
        "config key `consensus.request_timeout`: must be greater than zero",
    );
    check(
        good.replacen("window = 64", "window = 100", 1),
        "config key `consensus`",
    );
    check(
        good.replacen("min_safety = 0.95", "min_safety = 1.5", 1),
        "config key `gates.min_safety`: must be between 0 and 1",
    );
    check(
        good.replacen("\nid = 0\n", "\nid = 9\n", 1),
        "config key `node.id`",
    );
    check(
        good.replacen("known_good = [\"v0\"]", "known_good = []", 1),
        "config key `ledger.known_good`",
    );
    check(
        good.replacen("max_batch = 256", "max_batch = 256\nmax_bacth = 3", 1),
        "unknown field `max_bacth`",
    );
    check(
        good.replacen("breach_samples = 2", "breach_samples = 9", 1),
        "config key `health.breach_samples`: must be between 1 and",
    );
    check(
        good.replacen("sample_interval = \"10s\"", "sample_interval = \"10m\"", 1),
        "config key `rollout.sample_interval`",
    );
    check(
        good.replacen("id = \"agent-001\"", "id = \"agent 001\"", 1),
        "config key `agents[0].id`",
    );
    let bad_key = good.replacen("address = \"127.0.0.1:7001\"", "address = \"nowhere\"", 1);
    check(bad_key, "address");
    assert!(err("not toml at all [").contains("node.toml"));
}

#[test]
fn a_key_file_that_does_not_match_its_validator_entry_is_refused() {
    let d = tempfile::tempdir().expect("tmp");
    let text = sample_in(d.path());
    std::fs::write(
        d.path().join("keys/node0.key"),
        encode_hex(&Keypair::from_label("other").secret_bytes()),
    )
    .expect("key");
    let e = validate(d.path(), &text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("config key `node.key_file`"), "{e}");
}
