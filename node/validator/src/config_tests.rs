//! Node configuration: the commented samples (node.toml and the genesis it names) are valid,
//! errors name the file and the key, and a key file that does not match the genesis is refused.

use super::*;
use scbe_wire::key_file::encode_hex;

const SAMPLE: &str = include_str!("../../../configs/node.toml");
const GENESIS: &str = include_str!("../../../configs/genesis.toml");

/// The sample genesis with real keys (with `edit` applied) in `dir`, node 0's key there, and
/// the sample node.toml.
fn sample_in(dir: &Path, edit: impl Fn(String) -> String) -> String {
    let mut genesis = GENESIS.to_string();
    for i in 0..6u8 {
        let k = Keypair::from_label(&format!("cfg{i}"));
        let placeholder = format!("{}", i).repeat(64);
        genesis = genesis.replace(&placeholder, &encode_hex(k.public().as_bytes()));
    }
    std::fs::write(dir.join("genesis.toml"), edit(genesis)).expect("genesis");
    std::fs::create_dir_all(dir.join("keys")).expect("dir");
    let k0 = Keypair::from_label("cfg0");
    std::fs::write(dir.join("keys/node0.key"), encode_hex(&k0.secret_bytes())).expect("key");
    SAMPLE.to_string()
}

fn validate(dir: &Path, text: &str) -> Result<Validated, ConfigError> {
    NodeConfig::parse(Path::new("node.toml"), text)?.validate(dir)
}

#[test]
fn the_commented_samples_are_valid() {
    let d = tempfile::tempdir().expect("tmp");
    let v = validate(d.path(), &sample_in(d.path(), |g| g)).expect("samples validate");
    assert_eq!(v.replica.n(), 4);
    assert_eq!(v.raw.consensus.request_timeout, Duration::from_millis(500));
    assert_eq!(v.ledger.agents.len(), 1);
    assert_eq!(v.ledger.health.min_samples, 30, "5m window / 10s samples");
    assert_eq!(
        v.ledger.health.max_response_ms_p95, 200.0,
        "the latency gate"
    );
    assert_eq!(
        v.genesis.file().rollout.step_deadline(),
        Duration::from_secs(450)
    );
    assert_eq!(v.listen, "127.0.0.1:7000".parse().expect("addr"));
    assert_eq!(v.peers.get(&3).map(String::as_str), Some("127.0.0.1:7003"));
    assert_eq!(v.genesis.cluster(), "example");
}

#[test]
fn errors_name_the_key() {
    let d = tempfile::tempdir().expect("tmp");
    let node = sample_in(d.path(), |g| g);
    let check = |node: String, genesis_edit: &dyn Fn(String) -> String, expect: &str| {
        sample_in(d.path(), genesis_edit);
        let e = validate(d.path(), &node)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(expect), "expected {expect:?} in {e:?}");
    };
    let same = |g: String| g;
    // This node's own settings.
    check(
        node.replacen("request_timeout = \"500ms\"", "request_timeout = \"0s\"", 1),
        &same,
        "config key `consensus.request_timeout`: must be greater than zero",
    );
    check(
        node.replacen("\nid = 0\n", "\nid = 9\n", 1),
        &same,
        "config key `node.id`: 9 is not a validator of genesis",
    );
    check(
        node.replacen(
            "max_inflight_batches = 8",
            "max_inflight_batches = 8\nmax_bacth = 3",
            1,
        ),
        &same,
        "unknown field `max_bacth`",
    );
    // Its own id, or no id at all (another id may be one the quorum added since the genesis).
    for bad in ["0", "seven"] {
        check(
            node.replacen(
                "# \"1\" = \"10.0.0.11:7001\"",
                &format!("\"{bad}\" = \"10.0.0.11:7001\""),
                1,
            ),
            &same,
            &format!("config key `peers.{bad}`: must be the id of another validator"),
        );
    }
    check(
        node.replacen("# \"1\" = \"10.0.0.11:7001\"", "\"1\" = \"nowhere\"", 1),
        &same,
        "config key `peers.1`",
    );
    // What the cluster agrees on, named in the genesis.
    check(
        node.clone(),
        &|g: String| g.replacen("id = 1\n", "id = 7\n", 1),
        "genesis.toml: key `validators[1].id`: must be 1",
    );
    check(
        node.clone(),
        &|g: String| g.replacen("window = 64", "window = 100", 1),
        "key `consensus`",
    );
    check(
        node.clone(),
        &|g: String| g.replacen("min_safety = 0.95", "min_safety = 1.5", 1),
        "key `gates.min_safety`: must be between 0 and 1",
    );
    check(
        node.clone(),
        &|g: String| g.replacen("known_good = [\"v0\"]", "known_good = []", 1),
        "key `ledger.known_good`",
    );
    check(
        node.clone(),
        &|g: String| g.replacen("breach_samples = 2", "breach_samples = 33", 1),
        "key `health.breach_samples`: must be between 1 and",
    );
    check(
        node.clone(),
        &|g: String| g.replacen("sample_interval = \"10s\"", "sample_interval = \"10m\"", 1),
        "key `rollout.sample_interval`",
    );
    check(
        node.clone(),
        &|g: String| g.replacen("id = \"agent-001\"", "id = \"agent 001\"", 1),
        "key `agents[0].id`",
    );
    check(
        node.clone(),
        &|g: String| g.replacen("address = \"127.0.0.1:7002\"", "address = \"nowhere\"", 1),
        "key `validators[2].address`",
    );
    assert!(
        NodeConfig::parse(Path::new("node.toml"), "not toml at all [")
            .err()
            .is_some_and(|e| e.to_string().contains("node.toml")),
    );
}

#[test]
fn a_key_file_that_does_not_match_the_genesis_is_refused() {
    let d = tempfile::tempdir().expect("tmp");
    let text = sample_in(d.path(), |g| g);
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
    assert!(e.contains("the genesis lists"), "{e}");
}

#[test]
fn a_host_name_in_the_genesis_is_listened_on_at_every_interface() {
    let d = tempfile::tempdir().expect("tmp");
    let text = sample_in(d.path(), |g| {
        g.replacen(
            "address = \"127.0.0.1:7000\"",
            "address = \"validator-0.scbe:7000\"",
            1,
        )
    });
    let text = text.replacen("listen = \"127.0.0.1:7000\"\n", "", 1);
    let v = validate(d.path(), &text).expect("valid");
    assert_eq!(v.listen, "0.0.0.0:7000".parse().expect("addr"));
}

#[test]
fn tls_is_the_default_and_plaintext_stays_on_loopback() {
    let d = tempfile::tempdir().expect("tmp");
    let node = sample_in(d.path(), |g| g);
    let v = validate(d.path(), &node).expect("sample");
    assert!(v.transport.is_tls(), "the sample says plaintext = false");
    let v = validate(d.path(), &node.replace("plaintext = false", "")).expect("no [tls] key");
    assert!(v.transport.is_tls(), "TLS when nothing is set");
    let plain = node.replace("plaintext = false", "plaintext = true");
    let v = validate(d.path(), &plain).expect("plaintext on loopback");
    assert!(!v.transport.is_tls());
    // Listening on every interface, or a peer reached off loopback: refused, naming the key
    // and the address.
    let everywhere = plain.replace("listen = \"127.0.0.1:7000\"", "listen = \"0.0.0.0:7000\"");
    let e = validate(d.path(), &everywhere).err().map(|e| e.to_string());
    let e = e.unwrap_or_default();
    assert!(
        e.contains("tls.plaintext") && e.contains("0.0.0.0:7000"),
        "{e}"
    );
    let remote_peer = plain.replace("# \"1\" = \"10.0.0.11:7001\"", "\"1\" = \"10.0.0.11:7001\"");
    let e = validate(d.path(), &remote_peer)
        .err()
        .map(|e| e.to_string());
    let e = e.unwrap_or_default();
    assert!(
        e.contains("tls.plaintext") && e.contains("10.0.0.11:7001"),
        "{e}"
    );
}

#[test]
fn ca_files_come_together() {
    let d = tempfile::tempdir().expect("tmp");
    let node = sample_in(d.path(), |g| g);
    let one = node.replace("plaintext = false", "cert_file = \"tls/node.pem\"");
    let e = validate(d.path(), &one).err().map(|e| e.to_string());
    assert!(e.unwrap_or_default().contains("go together"));
    let all = node.replace(
        "plaintext = false",
        "cert_file = \"tls/node.pem\"\nkey_file = \"tls/node.key\"\nca_file = \"tls/ca.pem\"",
    );
    // Named but missing: refused at start-up, naming the file.
    let e = validate(d.path(), &all).err().map(|e| e.to_string());
    let e = e.unwrap_or_default();
    assert!(e.contains("tls.cert_file") && e.contains("node.pem"), "{e}");
    let both = node.replace(
        "plaintext = false",
        "plaintext = true\ncert_file = \"a\"\nkey_file = \"b\"\nca_file = \"c\"",
    );
    let e = validate(d.path(), &both).err().map(|e| e.to_string());
    assert!(e.unwrap_or_default().contains("exclude each other"));
}

#[test]
fn a_dashboard_beyond_loopback_needs_a_token_and_a_token_must_be_long() {
    let d = tempfile::tempdir().expect("tmp");
    let node = sample_in(d.path(), |g| g);
    let with = |section: &str| {
        validate(
            d.path(),
            &node.replace("# listen = \"127.0.0.1:9300\"", section),
        )
    };
    let err = |section: &str| {
        with(section)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    // Off by default; on loopback no token is needed.
    assert!(validate(d.path(), &node)
        .expect("valid")
        .dashboard
        .is_none());
    let local = with("listen = \"127.0.0.1:9300\"").expect("valid");
    let s = local.dashboard.expect("served");
    assert_eq!((s.listen.port(), s.token), (9300, None));
    // Every interface: refused without a token, naming the key and why.
    let e = err("listen = \"0.0.0.0:9300\"");
    assert!(
        e.contains("dashboard.token_file") && e.contains("not a loopback address"),
        "{e}"
    );
    std::fs::write(d.path().join("short.token"), "abc\n").expect("token");
    let e = err("listen = \"0.0.0.0:9300\"\ntoken_file = \"short.token\"");
    assert!(e.contains("at least 16 characters"), "{e}");
    let e = err("listen = \"0.0.0.0:9300\"\ntoken_file = \"missing.token\"");
    assert!(e.contains("cannot read"), "{e}");
    std::fs::write(d.path().join("good.token"), "0123456789abcdef0123\n").expect("token");
    let ok = with("listen = \"0.0.0.0:9300\"\ntoken_file = \"good.token\"").expect("valid");
    assert_eq!(
        ok.dashboard.and_then(|s| s.token).as_deref(),
        Some("0123456789abcdef0123"),
        "read and trimmed"
    );
}

/// A validator the quorum added: its id is not the genesis's, so `added = true` is required
/// (and refused for a genesis id), `listen` too (the genesis has no address for it); its key
/// is checked against nothing in the genesis, and its peers are every genesis validator.
#[test]
fn an_added_validator_names_itself_with_added_and_a_listen_address() {
    let d = tempfile::tempdir().expect("tmp");
    let text = sample_in(d.path(), |g| g);
    let k7 = Keypair::from_label("added seven");
    std::fs::write(
        d.path().join("keys/node7.key"),
        encode_hex(&k7.secret_bytes()),
    )
    .expect("key");
    let node7 = text
        .replacen("\nid = 0\n", "\nid = 7\n", 1)
        .replacen("keys/node0.key", "keys/node7.key", 1)
        .replacen("data/node0", "data/node7", 1);
    let err = |t: &str| {
        validate(d.path(), t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(
        err(&node7).contains("set node.added = true"),
        "{}",
        err(&node7)
    );
    let added = node7.replacen("\nid = 7\n", "\nid = 7\nadded = true\n", 1);
    let v = validate(d.path(), &added).expect("an added validator");
    assert_eq!(v.replica.id, scbe_core::consensus::ReplicaId(7));
    assert_eq!(v.peers.len(), 4, "every genesis validator is a peer");
    let no_listen = added.replacen("listen = \"127.0.0.1:7000\"\n", "", 1);
    assert!(
        err(&no_listen).contains("node.listen"),
        "{}",
        err(&no_listen)
    );
    let genesis_id = text.replacen("\nid = 0\n", "\nid = 0\nadded = true\n", 1);
    assert!(
        err(&genesis_id).contains("node.added"),
        "{}",
        err(&genesis_id)
    );
}

#[test]
fn release_bodies_are_in_the_store_unless_the_node_says_false() {
    let d = tempfile::tempdir().expect("tmp");
    let node = sample_in(d.path(), |g| g);
    let v = validate(d.path(), &node).expect("sample");
    assert!(
        v.raw.node.release_bodies_in_store,
        "the sample leaves the key commented out: the default is the store"
    );
    let off = node.replace(
        "# release_bodies_in_store = true",
        "release_bodies_in_store = false",
    );
    assert_ne!(off, node, "the sample names the key");
    let v = validate(d.path(), &off).expect("off");
    assert!(!v.raw.node.release_bodies_in_store);
}
