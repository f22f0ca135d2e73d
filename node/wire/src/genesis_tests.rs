//! The genesis file: rendering and digest, errors naming the file and key, known-good units,
//! and the progress deadline.

use super::*;
use crate::genesis_file::{AgentEntry, AnalysisSection, RequesterEntry, ValidatorEntry};
use crate::key_file::encode_hex;
use scbe_core::crypto::Keypair;
use scbe_core::rollout::order::OrderUnit;
use std::time::Duration;

fn file() -> GenesisFile {
    let key = |l: &str| encode_hex(Keypair::from_label(l).public().as_bytes());
    GenesisFile {
        cluster: "test".into(),
        validators: (0..4)
            .map(|i| ValidatorEntry {
                id: i,
                public_key: key(&format!("v{i}")),
                address: format!("validator-{i}.scbe.svc:7000"),
            })
            .collect(),
        requesters: vec![RequesterEntry {
            name: "release-team".into(),
            public_key: key("r"),
        }],
        agents: vec![AgentEntry {
            id: "agent-1".into(),
            specialty: "code_execute".into(),
            public_key: key("a1"),
            address: Some("10.0.0.7:7101".into()),
        }],
        consensus: Default::default(),
        gates: Default::default(),
        ledger: Default::default(),
        rollout: Default::default(),
        health: Default::default(),
        // One agent leaves no baseline: the thresholds decide when it is inconclusive.
        analysis: AnalysisSection {
            on_inconclusive: "proceed".into(),
            ..Default::default()
        },
        notify: Vec::new(),
    }
}

#[test]
fn a_rendered_genesis_reads_back_with_the_digest_of_its_bytes() {
    let text = Genesis::render(&file());
    let g = Genesis::from_bytes(Path::new("genesis.toml"), text.as_bytes()).expect("valid");
    assert_eq!(g.digest(), sha256(text.as_bytes()));
    assert_eq!(g.directory().n(), 4);
    assert_eq!(g.ledger_config().agents.len(), 1);
    assert_eq!(g.validator_address(2), Some("validator-2.scbe.svc:7000"));
    // One byte more (a comment) is another genesis.
    let other = format!("{text}\n# edited\n");
    let g2 = Genesis::from_bytes(Path::new("genesis.toml"), other.as_bytes()).expect("valid");
    assert_ne!(g.digest(), g2.digest());
}

/// A genesis that does not name a state digest (written before the tree) keeps the walk, so
/// its cluster's digests do not change with the build; one that names it gets it.
#[test]
fn the_state_digest_is_the_walk_unless_the_genesis_names_one() {
    use scbe_core::governance::ledger::StateDigest;
    let text = Genesis::render(&file());
    assert!(text.contains("state_digest = \"walk\""), "{text}");
    let without = text.replace("state_digest = \"walk\"\n", "");
    let g = Genesis::from_bytes(Path::new("g.toml"), without.as_bytes()).expect("valid");
    assert_eq!(g.ledger_config().state_digest, StateDigest::Walk);
    let tree = text.replace("state_digest = \"walk\"", "state_digest = \"tree\"");
    let g = Genesis::from_bytes(Path::new("g.toml"), tree.as_bytes()).expect("valid");
    assert_eq!(g.ledger_config().state_digest, StateDigest::Tree);
    let bad = text.replace("state_digest = \"walk\"", "state_digest = \"merkle\"");
    let e = Genesis::from_bytes(Path::new("g.toml"), bad.as_bytes()).expect_err("refused");
    assert!(e.to_string().contains("state_digest"), "{e}");
}

#[test]
fn errors_name_the_file_and_the_key() {
    let mut f = file();
    f.validators[1].id = 7;
    let e = Genesis::from_bytes(Path::new("g.toml"), Genesis::render(&f).as_bytes())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("genesis g.toml: key `validators[1].id`: must be 1"),
        "{e}"
    );
    let mut f = file();
    f.agents[0].address = Some("no port".into());
    assert!(matches!(
        Genesis::from_bytes(Path::new("g.toml"), Genesis::render(&f).as_bytes()),
        Err(GenesisError::Invalid { key, .. }) if key == "agents[0].address"
    ));
    let mut f = file();
    f.gates.min_safety = 2.0;
    assert!(matches!(
        Genesis::from_bytes(Path::new("g.toml"), Genesis::render(&f).as_bytes()),
        Err(GenesisError::Invalid { key, .. }) if key == "gates.min_safety"
    ));
}

#[test]
fn the_progress_deadline_is_derived_or_set_and_never_shorter_than_a_window() {
    let parse =
        |f: &GenesisFile| Genesis::from_bytes(Path::new("g.toml"), Genesis::render(f).as_bytes());
    let f = file();
    let ro = &f.rollout;
    assert_eq!(
        ro.step_deadline(),
        ro.deploy_deadline + ro.window + ro.sample_interval * 3,
        "unset: derived"
    );
    assert!(
        !Genesis::render(&f).contains("progress_deadline"),
        "unset is not written"
    );
    let mut f = file();
    f.rollout.progress_deadline = Some(Duration::from_secs(15 * 60));
    let g = parse(&f).expect("valid");
    assert_eq!(
        g.file().rollout.step_deadline(),
        Duration::from_secs(15 * 60)
    );
    // Exactly the shortest is allowed; a second less is refused, naming the key.
    let shortest = f.rollout.shortest_progress_deadline();
    f.rollout.progress_deadline = Some(shortest);
    assert!(parse(&f).is_ok());
    f.rollout.progress_deadline = Some(shortest - Duration::from_secs(1));
    match parse(&f) {
        Err(GenesisError::Invalid { key, problem, .. }) => {
            assert_eq!(key, "rollout.progress_deadline");
            assert!(problem.contains("before it could be healthy"), "{problem}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|g| g.digest())),
    }
}

#[test]
fn known_good_units_read_back_and_are_checked() {
    let unit = |provider: &str| OrderUnit {
        provider: provider.into(),
        id: "runtime-v0".into(),
        uri: "s3://models/runtime-v0".into(),
    };
    let parse =
        |f: &GenesisFile| Genesis::from_bytes(Path::new("g.toml"), Genesis::render(f).as_bytes());
    let mut f = file();
    f.ledger
        .known_good_units
        .insert("v0".into(), vec![unit("aws")]);
    let g = parse(&f).expect("valid");
    assert_eq!(g.ledger_config().known_good_units["v0"], vec![unit("aws")]);
    for (units_of, units, problem) in [
        ("v9", vec![unit("aws")], "not in ledger.known_good"),
        ("v0", vec![unit("azure")], "unknown provider"),
        ("v0", vec![unit("aws"), unit("aws")], "listed twice"),
    ] {
        let mut f = file();
        f.ledger.known_good_units.insert(units_of.into(), units);
        match parse(&f) {
            Err(GenesisError::Invalid {
                key, problem: p, ..
            }) => {
                assert_eq!(key, format!("ledger.known_good_units.{units_of}"));
                assert!(p.contains(problem), "{p}");
            }
            other => panic!("expected {problem:?}, got {:?}", other.map(|g| g.digest())),
        }
    }
}

/// `[analysis]` reads into the ledger's settings; a fleet that could never supply
/// `min_samples` with `on_inconclusive = "rollback"` is refused (every canary would roll
/// back), and so are values outside the fixed tables.
#[test]
fn analysis_settings_are_read_and_checked_against_the_fleet() {
    use scbe_core::rollout::baseline::{Alpha, Analysis, OnInconclusive};
    let parse =
        |f: &GenesisFile| Genesis::from_bytes(Path::new("g.toml"), Genesis::render(f).as_bytes());
    let key_of = |f: &GenesisFile| match parse(f) {
        Err(GenesisError::Invalid { key, problem, .. }) => (key, problem),
        other => panic!("expected a refusal, got {:?}", other.map(|g| g.digest())),
    };
    let g = parse(&file()).expect("valid");
    let a = &g.ledger_config().analysis;
    assert_eq!(
        (
            a.analysis,
            a.on_inconclusive,
            a.baseline.alpha,
            a.baseline.min_samples
        ),
        (Analysis::Both, OnInconclusive::Proceed, Alpha::P01, 20)
    );
    // Pause on inconclusive: a human decides, even where no baseline can exist.
    let mut f = file();
    f.analysis.on_inconclusive = "pause".into();
    let g = parse(&f).expect("valid");
    assert_eq!(
        g.ledger_config().analysis.on_inconclusive,
        OnInconclusive::Pause
    );
    f.analysis.analysis = "baseline".into();
    let g = parse(&f).expect("valid");
    assert_eq!(g.ledger_config().analysis.analysis, Analysis::Baseline);
    // Rollback on inconclusive with one agent: no baseline can ever exist.
    let mut f = file();
    f.analysis.on_inconclusive = "rollback".into();
    let (key, problem) = key_of(&f);
    assert_eq!(key, "analysis.min_samples");
    assert!(
        problem.contains("every canary would roll back"),
        "{problem}"
    );
    // Six agents over three specialties, 30 samples a window: 90 on each side suffice.
    f.agents = (0..6)
        .map(|i| AgentEntry {
            id: format!("agent-{i}"),
            specialty: ["a", "b", "c"][i % 3].into(),
            public_key: key_hex(&format!("a{i}")),
            address: None,
        })
        .collect();
    assert!(parse(&f).is_ok());
    f.analysis.min_samples = 91;
    assert_eq!(key_of(&f).0, "analysis.min_samples");
    f.analysis.analysis = "thresholds".into();
    assert!(parse(&f).is_ok(), "no comparison, nothing to supply");
    for (k, change) in [
        (
            "analysis.alpha",
            (|f: &mut GenesisFile| f.analysis.alpha = 0.02) as fn(&mut GenesisFile),
        ),
        ("analysis.analysis", |f| {
            f.analysis.analysis = "kayenta".into()
        }),
        ("analysis.on_inconclusive", |f| {
            f.analysis.on_inconclusive = "ask".into()
        }),
        ("analysis.min_samples", |f| f.analysis.min_samples = 1),
        ("analysis.tolerance.coherence", |f| {
            f.analysis.tolerance.coherence = -0.1
        }),
    ] {
        let mut f = file();
        change(&mut f);
        assert_eq!(key_of(&f).0, k);
    }
}

fn key_hex(label: &str) -> String {
    encode_hex(Keypair::from_label(label).public().as_bytes())
}

#[test]
fn a_call_under_another_genesis_is_refused_naming_both() {
    let mine = sha256(b"ours");
    let theirs = sha256(b"theirs");
    let mut ok = tonic::Request::new(());
    present(&mut ok, &mine);
    assert_eq!(check_presented(&ok, &mine), Ok(()));
    let mut other = tonic::Request::new(());
    present(&mut other, &theirs);
    let e = check_presented(&other, &mine).expect_err("refused");
    let status = e.to_status();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains(&hex(&mine)));
    assert!(status.message().contains(&hex(&theirs)));
    assert_eq!(refused_genesis(&status), Some(mine));
    let none = check_presented(&tonic::Request::new(()), &mine).expect_err("none presented");
    assert_eq!(none.theirs, None);
    assert_eq!(refused_genesis(&tonic::Status::unavailable("down")), None);
}

#[test]
fn addresses_are_host_names_or_ip_addresses_with_a_port() {
    for ok in [
        "127.0.0.1:7000",
        "[::1]:7000",
        "validator-0:7000",
        "v0.scbe.svc.cluster.local:443",
    ] {
        assert_eq!(check_address(ok), Ok(()), "{ok}");
    }
    for bad in ["nowhere", "host:port", "-bad-:1", "a..b:1", ":7000"] {
        assert!(check_address(bad).is_err(), "{bad}");
    }
}

#[test]
fn notification_sinks_are_read_checked_and_named_to_the_ledger() {
    let mut f = file();
    f.notify = vec![crate::notify_entry::NotifyEntry {
        name: "ops".into(),
        url: "https://hooks.example.com/services/x".into(),
        events: vec!["rollout_failed".into()],
    }];
    let g =
        Genesis::from_bytes(Path::new("g.toml"), Genesis::render(&f).as_bytes()).expect("valid");
    assert_eq!(g.file().notify, f.notify);
    assert_eq!(g.ledger_config().notify_sinks, vec!["ops".to_string()]);
    f.notify[0].url = "hooks.example.com".into();
    assert!(matches!(
        Genesis::from_bytes(Path::new("g.toml"), Genesis::render(&f).as_bytes()),
        Err(GenesisError::Invalid { key, .. }) if key == "notify[0].url"
    ));
}

/// The commented `[[notify]]` example of configs/genesis.toml, uncommented, is a valid genesis
/// section (with this test's validators, so it also loads without keys of its own).
#[test]
fn the_documented_notify_example_loads() {
    const SAMPLE: &str = include_str!("../../../configs/genesis.toml");
    let start = SAMPLE.find("# [[notify]]").expect("example");
    let example: String = SAMPLE[start..]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("{}\n{example}", Genesis::render(&file()));
    let g = Genesis::from_bytes(Path::new("g.toml"), text.as_bytes()).expect("valid");
    assert_eq!(g.file().notify.len(), 1, "{example}");
    assert_eq!(g.file().notify[0].name, "ops-slack");
    assert_eq!(g.file().notify[0].events.len(), 3);
}
