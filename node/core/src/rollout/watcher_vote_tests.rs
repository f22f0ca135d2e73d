//! The watcher's votes on proposals (validators vote on what they can check themselves).

use super::*;
use crate::governance::ledger::Signer;
use crate::governance::ledger_world::{release, World};
use crate::governance::Stage;

#[test]
fn a_validator_votes_on_what_its_ledger_shows_pending_until_its_vote_is_in() {
    let mut w = World::new();
    w.request(Operation::RegisterRelease {
        release: release("v1"),
    });
    let p = w
        .request(Operation::Promote {
            version: "v1".into(),
            to: Stage::Canary,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        })
        .proposal
        .expect("proposal");
    let mut watcher = Watcher::new(WatchSettings {
        step_deadline_ms: 10_000,
        resubmit_ms: 1_000,
        leader_grace_ms: 1_000,
        stall_ms: 5_000,
        max_op_bytes: 1 << 20,
    });
    let votes = watcher.votes(&w.ledger, 2, 0);
    assert!(
        matches!(votes.as_slice(), [Operation::Vote { proposal, approve: true, .. }] if *proposal == p),
        "{votes:?}"
    );
    assert!(
        watcher.votes(&w.ledger, 2, 500).is_empty(),
        "not again at once"
    );
    // Lost (say the validator crashed before it was ordered): again after resubmit_ms.
    let again = watcher.votes(&w.ledger, 2, 1_000);
    assert_eq!(again, votes);
    assert!(w.submit(Signer::Validator(2), &again[0]).accepted);
    assert!(watcher.votes(&w.ledger, 2, 5_000).is_empty(), "voted");
}
