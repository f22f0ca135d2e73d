//! `scbe propose`, `scbe rollback` and `scbe abort`: sign and submit an operation, then (for
//! promotions, rollbacks, aborts, membership and settings changes) print every validator's vote as it arrives and the decision; exit 0 when accepted
//! (and approved), 1 when not.

use scbe_wire::tls::Dial;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use scbe_core::governance::Operation;

use super::{client, out, runtime, Unusable};
use crate::render;

/// How long `propose promote` and `rollback` wait for the votes.
pub const VOTE_WAIT: Duration = Duration::from_secs(120);

pub fn submit(cli_node: &Dial, key: &Option<PathBuf>, op: Operation) -> Result<ExitCode, Unusable> {
    let wants_votes = matches!(
        op,
        Operation::Promote { .. }
            | Operation::Rollback { .. }
            | Operation::Abort { .. }
            | Operation::Approve { .. }
            | Operation::ProposeAgent { .. }
            | Operation::ProposeSettings { .. }
            | Operation::ProposeRequester { .. }
            | Operation::ProposeValidator { .. }
    );
    runtime()?.block_on(async {
        let mut c = client(cli_node, key).await?;
        let r = c.submit(&op).await.map_err(|e| Unusable(e.into()))?;
        let when = if r.already_decided {
            format!("already decided at seq {}", r.seq)
        } else {
            format!("decided at seq {}", r.seq)
        };
        if !r.accepted {
            out(&format!("rejected ({when}):"));
            for reason in &r.reasons {
                out(&format!("  - {reason}"));
            }
            return Ok(ExitCode::from(1));
        }
        let mut what = String::new();
        if let Some(p) = r.proposal {
            what.push_str(&format!(": proposal {p}"));
        }
        out(&format!("accepted ({when}){what}"));
        let (Some(p), true) = (r.proposal, wants_votes) else {
            return Ok(ExitCode::SUCCESS);
        };
        out("votes:");
        let decided = c
            .wait_decision(p, VOTE_WAIT, |v, vote| {
                out(&format!("  {}", render::vote_line(v, vote)));
            })
            .await
            .map_err(|e| Unusable(e.into()))?;
        let (line, approved) = render::decision_text(&decided);
        out(&line);
        Ok(if approved {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
