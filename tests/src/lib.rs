//! Helpers for the end-to-end tests: where the workspace's binaries are.

use std::path::PathBuf;
use std::process::Command;

/// Path of a workspace binary built in the same profile as the running test, building it first
/// if it is missing (`cargo test --workspace` has already built it; `cargo test -p scbe-tests`
/// alone may not have).
pub fn workspace_bin(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps/; binaries in target/<profile>/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let bin = profile_dir.join(name);
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "scbe-node", "--bins"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building {name} failed");
    }
    assert!(bin.exists(), "{} not found after building", bin.display());
    bin
}
