//! Lints as architecture. The compiler is the first line: `scbe-core` cannot depend on tokio,
//! tonic, prost, redb, hyper or rand (checked here on the resolved dependency tree), and its
//! `clippy.toml` bans the clock, the random hasher, the file system and the network in every
//! line (CI runs clippy with `-D warnings`). The crates depend on each other one way only. A
//! text scan of every core file, tests included, is the second line: it catches what a
//! dependency check cannot (a `std` import, a path through another crate).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The packages `package` depends on (normal dependencies, transitively), by name.
fn dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo())
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_core_cannot_reach_io_rpc_storage_or_randomness() {
    let deps = dependencies("scbe-core");
    assert!(
        deps.iter().any(|d| d == "ed25519-dalek"),
        "the tree was read: {deps:?}"
    );
    for banned in [
        "tokio",
        "tonic",
        "prost",
        "redb",
        "hyper",
        "rand",
        "getrandom",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "scbe-core depends on {banned}: {deps:?}"
        );
    }
}

#[test]
fn crates_depend_on_each_other_one_way() {
    // (crate, scbe crates it must not reach): core <- wire <- validator, agent, cli <- sim <- tests.
    let layers = [
        (
            "scbe-core",
            &[
                "scbe-wire",
                "scbe-proto",
                "scbe-validator",
                "scbe-agent",
                "scbe-cli",
                "scbe-sim",
            ][..],
        ),
        (
            "scbe-wire",
            &["scbe-validator", "scbe-agent", "scbe-cli", "scbe-sim"][..],
        ),
        (
            "scbe-validator",
            &["scbe-agent", "scbe-cli", "scbe-sim"][..],
        ),
        (
            "scbe-agent",
            &["scbe-validator", "scbe-cli", "scbe-sim"][..],
        ),
        (
            "scbe-cli",
            &["scbe-validator", "scbe-agent", "scbe-sim"][..],
        ),
    ];
    for (krate, not) in layers {
        let deps = dependencies(krate);
        for n in not {
            assert!(
                !deps.iter().any(|d| d == n),
                "{krate} depends on {n}: dependencies run core <- wire <- validator, agent, cli <- sim"
            );
        }
    }
}

#[test]
fn the_core_clippy_config_bans_the_clock_the_random_hasher_fs_and_net() {
    let path = repo().join("node/core/clippy.toml");
    let text = fs::read_to_string(&path).expect("node/core/clippy.toml exists");
    for banned in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::collections::HashMap",
        "std::collections::HashSet",
        "std::fs::File",
        "std::fs::read",
        "std::fs::write",
        "std::net::TcpStream",
        "std::net::TcpListener",
    ] {
        assert!(
            text.contains(&format!("path = \"{banned}\"")),
            "{} does not ban {banned}",
            path.display()
        );
    }
}

/// Tokens that must not appear anywhere in the core crate's sources (comments aside), with
/// the reason.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "async runtime"),
    ("tonic", "RPC layer"),
    ("prost", "protobuf types live in scbe-proto and scbe-wire"),
    ("scbe_proto", "protobuf types live in scbe-wire"),
    ("scbe_wire", "the core is below the wire"),
    ("Instant::now", "wall clock"),
    ("SystemTime", "wall clock"),
    ("thread_rng", "randomness"),
    ("rand::", "randomness"),
    (
        "HashMap",
        "iteration order depends on a random hasher; use BTreeMap",
    ),
    (
        "HashSet",
        "iteration order depends on a random hasher; use BTreeSet",
    ),
    ("std::fs", "I/O"),
    ("std::net", "I/O"),
    ("std::env", "configuration is passed in"),
];

/// Where a token is allowed after all, and why: the `timing` feature's stopwatch in `crypto.rs`
/// measures signing for `scbe-sim bench-core` and nothing decides on it.
const ALLOWED: &[(&str, &str)] = &[("crypto.rs", "Instant::now")];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every forbidden token in the `.rs` files under `root`, whole files (tests included).
fn scan(root: &Path) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut found = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let text = fs::read_to_string(f).expect("readable source");
        for (line_no, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (token, why) in FORBIDDEN {
                if code.contains(token) && !ALLOWED.contains(&(name, token)) {
                    found.push(format!(
                        "{}:{}: `{token}` ({why})",
                        f.display(),
                        line_no + 1
                    ));
                }
            }
        }
    }
    (files.len(), found)
}

#[test]
fn every_line_of_the_core_is_free_of_io_clocks_and_randomness() {
    let (scanned, found) = scan(&repo().join("node/core/src"));
    assert!(scanned >= 40, "core sources not found ({scanned} files)");
    assert!(
        found.is_empty(),
        "impure code in scbe-core:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_finds_a_planted_violation_anywhere_in_a_file() {
    let dir = tempfile::tempdir().expect("tmp");
    // After a test module, where the old scan stopped looking.
    fs::write(
        dir.path().join("planted.rs"),
        "//! HashMap in a comment is fine.\nuse std::collections::BTreeMap;\n#[cfg(test)]\nmod t {}\nfn later() { let _ = std::time::Instant::now(); }\n",
    )
    .expect("write");
    let (scanned, found) = scan(dir.path());
    assert_eq!(scanned, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("planted.rs:5: `Instant::now`"),
        "{found:?}"
    );
}
