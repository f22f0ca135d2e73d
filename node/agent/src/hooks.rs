//! Deploy and rollback hooks: the operator's commands that actually change what an agent serves
//! (e.g. `kubectl set image` + `kubectl rollout status`, or restarting a process). The order is
//! passed in `SCBE_*` environment variables; a non-zero exit or a timeout is a failed deploy,
//! stated with the command's last output in the signed ack.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use scbe_core::rollout::evidence::OrderAction;
use scbe_core::rollout::order::Order;

use scbe_core::agent::Installed;

/// Output kept from a hook for the ack's detail (its tail).
const DETAIL_BYTES: usize = 400;

/// The environment a hook sees, besides the operator's own `hooks.env`.
pub fn hook_env(agent: &str, order: &Order, current: &Installed) -> BTreeMap<String, String> {
    let action = match order.action {
        OrderAction::Deploy => "deploy",
        OrderAction::Rollback => "rollback",
    };
    let mut env = BTreeMap::from([
        ("SCBE_ACTION".to_string(), action.to_string()),
        ("SCBE_AGENT_ID".into(), agent.to_string()),
        ("SCBE_ROLLOUT".into(), order.rollout.to_string()),
        ("SCBE_BATCH".into(), order.batch.to_string()),
        ("SCBE_VERSION".into(), order.version.clone()),
        ("SCBE_RELEASE_DIGEST".into(), order.release_digest.clone()),
        (
            "SCBE_UNITS".into(),
            serde_json::to_string(&order.units).unwrap_or_default(),
        ),
        ("SCBE_PREVIOUS_VERSION".into(), current.version.clone()),
    ]);
    for u in &order.units {
        let p = u.provider.to_ascii_uppercase();
        env.insert(format!("SCBE_UNIT_{p}_ID"), u.id.clone());
        env.insert(format!("SCBE_UNIT_{p}_URI"), u.uri.clone());
    }
    env
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
}
