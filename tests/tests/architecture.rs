//! Lints as architecture: the consensus core and the governance domain stay pure and
//! deterministic. No async runtime, no RPC or protobuf types, no clock, no randomness, no
//! hash-ordered collections, and no imports from the runtime layers above them.

use std::fs;
use std::path::{Path, PathBuf};

/// Tokens that must not appear in the non-test code of a pure module, with the reason.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "async runtime"),
    ("tonic", "RPC layer"),
    ("prost", "protobuf types live in scbe-proto and net/"),
    ("scbe_proto", "protobuf types live in net/"),
    ("Instant::now", "wall clock"),
    ("SystemTime", "wall clock"),
    ("std::time", "wall clock"),
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
    (
        "crate::net",
        "dependencies flow net -> consensus, never back",
    ),
    (
        "crate::storage",
        "dependencies flow storage -> consensus, never back",
    ),
    ("std::fs", "I/O"),
    ("std::net", "I/O"),
];

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

/// The file's text before its `#[cfg(test)]` module; test code may use anything.
fn product_code(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    }
}

fn violations(module: &str) -> (usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../node/src")
        .join(module);
    let mut files = Vec::new();
    if root.is_file() {
        files.push(root);
    } else {
        rust_files(&root, &mut files);
    }
    let mut found = Vec::new();
    let mut scanned = 0;
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let text = fs::read_to_string(f).expect("readable source");
        scanned += 1;
        for (line_no, line) in product_code(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (token, why) in FORBIDDEN {
                if code.contains(token) {
                    found.push(format!(
                        "{}:{}: `{token}` ({why})",
                        f.display(),
                        line_no + 1
                    ));
                }
            }
        }
    }
    (scanned, found)
}

#[test]
fn consensus_core_is_pure() {
    let (scanned, found) = violations("consensus");
    assert!(
        scanned >= 5,
        "consensus sources not found ({scanned} files)"
    );
    assert!(
        found.is_empty(),
        "impure code in consensus/:\n{}",
        found.join("\n")
    );
}

#[test]
fn governance_domain_is_pure() {
    let (scanned, found) = violations("governance");
    assert!(
        scanned >= 5,
        "governance sources not found ({scanned} files)"
    );
    assert!(
        found.is_empty(),
        "impure code in governance/:\n{}",
        found.join("\n")
    );
}

#[test]
fn rollout_decisions_and_the_agents_core_are_pure() {
    // The executor and the monitor (rollout/executor.rs, rollout/monitor.rs) are the runtime;
    // everything they decide with is here, and the simulator runs it.
    for file in [
        "rollout/plan.rs",
        "rollout/evidence.rs",
        "rollout/health.rs",
        "rollout/order.rs",
        "rollout/watcher.rs",
        "fleet/core.rs",
        "fleet/synthetic.rs",
    ] {
        let (scanned, found) = violations(file);
        assert_eq!(scanned, 1, "{file} not found");
        assert!(
            found.is_empty(),
            "impure code in {file}:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_checker_catches_a_violation() {
    // The scan must be able to fail: feed it a line with a forbidden token.
    let text = "use std::collections::HashMap;\n#[cfg(test)]\nmod t { use tokio; }";
    let product = product_code(text);
    assert!(product.contains("HashMap"));
    assert!(!product.contains("tokio"), "test code is exempt");
}
