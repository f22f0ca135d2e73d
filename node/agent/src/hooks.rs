//! Deploy and rollback hooks: the operator's commands that actually change what an agent serves
//! (e.g. `kubectl set image` + `kubectl rollout status`, or restarting a process). The order is
//! passed in `SCBE_*` environment variables; a non-zero exit or a timeout is a failed deploy,
//! stated with the command's last output in the signed ack.
//!
//! A deploy hook that fails may have done half its work (`kubectl set image` succeeded,
//! `kubectl rollout status` did not): before the agent acks the failure it runs the rollback
//! hook for the version it still runs ([`obey`]), so what it serves matches what it reports.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use scbe_core::rollout::evidence::OrderAction;
use scbe_core::rollout::order::{Order, OrderUnit};

use scbe_core::agent::Installed;

use crate::config::HooksSection;

/// Output kept from a hook for the ack's detail (its tail).
const DETAIL_BYTES: usize = 400;

/// The variables that describe a version: what a hook must put in place.
fn version_env(
    env: &mut BTreeMap<String, String>,
    version: &str,
    release_digest: &str,
    units: &[OrderUnit],
) {
    env.insert("SCBE_VERSION".into(), version.to_string());
    env.insert("SCBE_RELEASE_DIGEST".into(), release_digest.to_string());
    env.insert(
        "SCBE_UNITS".into(),
        serde_json::to_string(units).unwrap_or_default(),
    );
    for u in units {
        let p = u.provider.to_ascii_uppercase();
        env.insert(format!("SCBE_UNIT_{p}_ID"), u.id.clone());
        env.insert(format!("SCBE_UNIT_{p}_URI"), u.uri.clone());
    }
}

fn order_env(agent: &str, order: &Order, action: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("SCBE_ACTION".to_string(), action.to_string()),
        ("SCBE_AGENT_ID".into(), agent.to_string()),
        ("SCBE_ROLLOUT".into(), order.rollout.to_string()),
        ("SCBE_BATCH".into(), order.batch.to_string()),
    ])
}

/// The environment a hook sees, besides the operator's own `hooks.env`.
pub fn hook_env(agent: &str, order: &Order, current: &Installed) -> BTreeMap<String, String> {
    let action = match order.action {
        OrderAction::Deploy => "deploy",
        OrderAction::Rollback => "rollback",
    };
    let mut env = order_env(agent, order, action);
    version_env(
        &mut env,
        &order.version,
        &order.release_digest,
        &order.units,
    );
    env.insert("SCBE_PREVIOUS_VERSION".into(), current.version.clone());
    env
}

/// The environment of the rollback hook that undoes a failed deploy of `order`: the version to
/// put back is the one the agent still runs (`current`), `SCBE_PREVIOUS_VERSION` the one that
/// failed, and `SCBE_UNDO=1` says why it runs.
pub fn undo_env(agent: &str, order: &Order, current: &Installed) -> BTreeMap<String, String> {
    let mut env = order_env(agent, order, "rollback");
    version_env(
        &mut env,
        &current.version,
        &current.release_digest,
        &current.units,
    );
    env.insert("SCBE_PREVIOUS_VERSION".into(), order.version.clone());
    env.insert("SCBE_UNDO".into(), "1".into());
    env
}

/// The operator's `[hooks.env]`, then ours (which win).
fn with_operator_env(
    hooks: &HooksSection,
    ours: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = hooks.env.clone();
    env.extend(ours);
    env
}

/// Runs the hook for `order` (`action` says which); if a deploy hook fails, runs the rollback
/// hook for `current` before returning the failure, whose text then says whether the undo
/// worked. The error text goes into the agent's signed ack.
pub async fn obey(
    hooks: &HooksSection,
    agent: &str,
    order: &Order,
    action: OrderAction,
    current: &Installed,
) -> Result<(), String> {
    let env = with_operator_env(hooks, hook_env(agent, order, current));
    let argv = match action {
        OrderAction::Deploy => &hooks.deploy,
        OrderAction::Rollback => &hooks.rollback,
    };
    let failed = match run_hook(argv, &env, hooks.timeout).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if action == OrderAction::Rollback {
        return Err(failed.to_string());
    }
    tracing::warn!(version = %order.version, "deploy hook failed ({failed}); running the rollback hook for {}", current.version);
    let env = with_operator_env(hooks, undo_env(agent, order, current));
    match run_hook(&hooks.rollback, &env, hooks.timeout).await {
        Ok(()) => Err(format!(
            "{failed}; undone: the rollback hook put {} back",
            current.version
        )),
        Err(undo) => Err(format!(
            "{failed}; the rollback hook could not put {} back either: {undo}",
            current.version
        )),
    }
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|i| text.len() - i <= DETAIL_BYTES)
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// How a hook failed (the text goes into the agent's signed ack).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("no hook command configured")]
    NotConfigured,
    #[error("cannot start hook {program}: {detail}")]
    Start { program: String, detail: String },
    #[error("hook {program} did not finish within {}", humantime::format_duration(*.timeout))]
    Timeout { program: String, timeout: Duration },
    #[error("hook {program} could not be waited for: {detail}")]
    Wait { program: String, detail: String },
    #[error("hook {program} failed ({status}): {output}")]
    Failed {
        program: String,
        status: String,
        /// The tail of its output.
        output: String,
    },
}

/// Runs `argv` with `env` (added to the daemon's environment) and waits at most `timeout`.
pub async fn run_hook(
    argv: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), HookError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(HookError::NotConfigured);
    };
    let program_name = program.clone();
    let child = tokio::process::Command::new(program)
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A hook that outlives its timeout is killed with the future that owns it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HookError::Start {
            program: program_name.clone(),
            detail: e.to_string(),
        })?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(HookError::Timeout {
            program: program_name,
            timeout,
        }),
        Ok(Err(e)) => Err(HookError::Wait {
            program: program_name,
            detail: e.to_string(),
        }),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            Err(HookError::Failed {
                program: program_name,
                status: out.status.to_string(),
                output: tail(&all),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::rollout::order::OrderUnit;

    fn order() -> Order {
        Order {
            rollout: 4,
            action: OrderAction::Deploy,
            batch: 2,
            issued_seq: 9,
            version: "v2".into(),
            release_digest: "abc".into(),
            units: vec![OrderUnit {
                provider: "hf".into(),
                id: "textgen-v2".into(),
                uri: "hf://x".into(),
            }],
            agents: vec!["a".into()],
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn hooks_see_the_order_and_fail_with_their_output() {
        let env = hook_env("a", &order(), &Installed::default());
        assert_eq!(env["SCBE_UNIT_HF_URI"], "hf://x");
        let ok = run_hook(
            &sh("test \"$SCBE_VERSION\" = v2 && test \"$SCBE_ACTION\" = deploy"),
            &env,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ok, Ok(()));
        let e = run_hook(
            &sh("echo image pull failed >&2; exit 3"),
            &env,
            Duration::from_secs(10),
        )
        .await;
        match e {
            Err(HookError::Failed { output, status, .. }) => {
                assert!(output.contains("image pull failed"), "{output}");
                assert!(status.contains('3'), "{status}");
            }
            other => panic!("expected a failed hook, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_a_failure() {
        let e = run_hook(&sh("sleep 5"), &BTreeMap::new(), Duration::from_millis(100)).await;
        assert!(matches!(e, Err(HookError::Timeout { .. })), "{e:?}");
        let missing = run_hook(
            &["/nonexistent/hook".into()],
            &BTreeMap::new(),
            Duration::from_secs(1),
        )
        .await;
        assert!(
            matches!(missing, Err(HookError::Start { .. })),
            "{missing:?}"
        );
    }

    fn installed(version: &str, uri: &str) -> Installed {
        Installed {
            version: version.into(),
            release_digest: format!("digest-{version}"),
            units: vec![OrderUnit {
                provider: "hf".into(),
                id: format!("textgen-{version}"),
                uri: uri.into(),
            }],
        }
    }

    /// Hooks that keep "what is served" in a file: deploy writes the ordered unit's URI there
    /// and then fails as `kubectl rollout status` would; rollback writes its URI there.
    fn half_failing_hooks(served: &std::path::Path, rollback_fails: bool) -> HooksSection {
        let path = served.display();
        let rollback_exit = if rollback_fails { "exit 4" } else { "true" };
        HooksSection {
            deploy: sh(&format!(
                "echo \"$SCBE_UNIT_HF_URI\" > {path}; echo pods not ready >&2; exit 1"
            )),
            rollback: sh(&format!(
                "test \"$SCBE_UNDO\" = 1 && echo \"$SCBE_UNIT_HF_URI\" > {path} && {rollback_exit}"
            )),
            timeout: Duration::from_secs(10),
            env: BTreeMap::new(),
        }
    }

    /// Deploys `order()` (v2) on an agent running v1, whose deploy hook fails; the error.
    async fn deploy_v2_over_v1(hooks: &HooksSection) -> String {
        obey(
            hooks,
            "a",
            &order(),
            OrderAction::Deploy,
            &installed("v1", "hf://x-v1"),
        )
        .await
        .expect_err("the deploy hook fails")
    }

    #[tokio::test]
    async fn a_deploy_hook_that_fails_half_way_is_undone_by_the_rollback_hook() {
        let dir = tempfile::tempdir().expect("tempdir");
        let served = dir.path().join("served");
        std::fs::write(&served, "hf://x-v1\n").expect("write");
        let hooks = half_failing_hooks(&served, false);
        let e = deploy_v2_over_v1(&hooks).await;
        assert!(e.contains("pods not ready"), "{e}");
        assert!(e.contains("undone: the rollback hook put v1 back"), "{e}");
        let now = std::fs::read_to_string(&served).expect("read");
        assert_eq!(now.trim(), "hf://x-v1", "the half-done deploy is undone");
    }

    #[tokio::test]
    async fn an_undo_that_fails_too_is_stated_in_the_ack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let served = dir.path().join("served");
        let hooks = half_failing_hooks(&served, true);
        let e = deploy_v2_over_v1(&hooks).await;
        assert!(
            e.contains("could not put v1 back either") && e.contains("exit status: 4"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_failed_rollback_hook_is_not_undone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let served = dir.path().join("served");
        let mut hooks = half_failing_hooks(&served, true);
        hooks.rollback = sh(&format!("echo ran >> {}; exit 2", served.display()));
        let mut rollback = order();
        rollback.action = OrderAction::Rollback;
        let e = obey(
            &hooks,
            "a",
            &rollback,
            OrderAction::Rollback,
            &installed("v1", "hf://x-v1"),
        )
        .await
        .expect_err("the rollback hook fails");
        assert!(!e.contains("undone") && !e.contains("back either"), "{e}");
        let ran = std::fs::read_to_string(&served).expect("read");
        assert_eq!(ran.lines().count(), 1, "the rollback hook ran once: {ran}");
    }
}
