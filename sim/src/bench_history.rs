//! What a long history of proposals and rollouts costs the questions a validator asks at
//! every decided seq and watcher tick (`scbe-sim bench-digest --history-promotions N`).
//!
//! Method. A ledger of the bench's four validators and no agents goes through `N` promotions
//! with the real operations: each registers a release, proposes it to canary, and validators
//! 0-2 approve; with no agents each approved rollout ends at once, so each promotion leaves
//! one closed proposal and one finished rollout. A last promotion is left pending. Then per
//! round, each over [`REPEATS`] calls:
//! - *pending proposals*: the proposals open to votes, as the ledger finds them
//!   (`LifecycleMap::open_values`), and as a walk over every proposal filtered by status finds
//!   them (the ledger's code before), in the same run; both answers are compared;
//! - *active rollout*: likewise for the rollout that holds the fleet;
//! - *a refused request*: `apply_operation` of a rollback the ledger refuses (it expires
//!   proposals first, as at every decided seq), the whole of one request's ledger work; all
//!   at the seq after the history's (a later seq would expire the pending proposal), each
//!   with a fresh nonce.
//!
//! Figures are per call, medians of the rounds.

use std::time::{Duration, Instant};

use scbe_core::crypto::Keypair;
use scbe_core::governance::ledger::{ProposalStatus, Signer};
use scbe_core::governance::{Ledger, Operation, Stage};

use scbe_core::consensus::StateMachine as _;
use scbe_core::governance::ledger::Outcome;

use crate::bench_digest::{bench_ledger, median};

/// Calls timed together in a round.
const REPEATS: u32 = 200;

#[derive(Debug, Clone, Copy)]
pub struct HistorySample {
    pub promotions: usize,
    pub pending: Duration,
    pub pending_walk: Duration,
    pub active: Duration,
    pub active_walk: Duration,
    pub refused: Duration,
}

/// Applies operations to the bench's ledger, one seq and nonce each.
struct Driver {
    ledger: Ledger,
    seq: u64,
    requester: scbe_core::crypto::PublicKey,
    validators: Vec<scbe_core::crypto::PublicKey>,
}

impl Driver {
    fn apply(&mut self, signer: Signer, op: &Operation) -> Outcome {
        self.seq += 1;
        let key = match signer {
            Signer::Validator(i) => self.validators[i as usize],
            Signer::Requester(k) => k,
        };
        self.ledger
            .apply_operation(self.seq, signer, &key, self.seq, &op.to_bytes())
    }

    fn request(&mut self, op: &Operation) -> Result<Outcome, String> {
        let o = self.apply(Signer::Requester(self.requester), op);
        if o.accepted {
            Ok(o)
        } else {
            Err(format!("{op:?} refused: {:?}", o.reasons))
        }
    }

    /// Registers release `i` and proposes it to canary; the proposal's id.
    fn propose(&mut self, i: usize) -> Result<u64, String> {
        let version = format!("h{i:07}");
        let release = crate::releases::bench_release(&version, i as u64);
        self.request(&Operation::RegisterRelease { release })?;
        let o = self.request(&Operation::Promote {
            version,
            to: Stage::Canary,
            rollback_to: "v0".into(),
            pause_before: None,
            steps: Vec::new(),
        })?;
        o.proposal
            .ok_or_else(|| "a promotion opened no proposal".into())
    }
}

/// The ledger after `promotions` approved promotions and one pending, and the last seq and
/// nonce it applied.
fn ledger_with_history(promotions: usize) -> Result<(Ledger, u64), String> {
    let mut d = Driver {
        ledger: bench_ledger(),
        seq: 0,
        requester: Keypair::from_label("bench/requester").public(),
        validators: (0..4)
            .map(|i| Keypair::from_label(&format!("bench/validator/{i}")).public())
            .collect(),
    };
    for i in 0..promotions {
        let p = d.propose(i)?;
        for v in 0..3 {
            let o = d.apply(
                Signer::Validator(v),
                &Operation::Vote {
                    proposal: p,
                    approve: true,
                    reasons: Vec::new(),
                },
            );
            if !o.accepted {
                return Err(format!("vote on {p} refused: {:?}", o.reasons));
            }
        }
        let status = d.ledger.state().proposals.get(&p).map(|p| p.status);
        if status != Some(ProposalStatus::Approved) {
            return Err(format!("proposal {p} is {status:?}, not approved"));
        }
        // As at each checkpoint.
        if i % 32 == 31 {
            d.ledger.before_checkpoint();
        }
    }
    let last = d.propose(promotions)?;
    d.ledger.before_checkpoint();
    let status = d.ledger.state().proposals.get(&last).map(|p| p.status);
    if status != Some(ProposalStatus::Pending) {
        return Err(format!(
            "the last proposal, {last}, is {status:?}, not pending"
        ));
    }
    Ok((d.ledger, d.seq))
}

fn per_call(f: &mut impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..REPEATS {
        f();
    }
    t.elapsed() / REPEATS
}

pub fn measure_history(promotions: usize, rounds: usize) -> Result<HistorySample, String> {
    let (mut ledger, last) = ledger_with_history(promotions)?;
    let requester = Keypair::from_label("bench/requester").public();
    let refused_op = Operation::Rollback {
        target_version: "v0".into(),
        reason: "bench".into(),
    }
    .to_bytes();
    // Every refused request at the next seq, each with a nonce of its own: at later seqs the
    // pending proposal would expire within the rounds.
    let seq = last + 1;
    let mut nonce = last;
    let (mut pending, mut pending_walk, mut active, mut active_walk, mut refused) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let s = ledger.state();
        let found: Vec<u64> = s.proposals.open_values().map(|p| p.id).collect();
        let walked: Vec<u64> = s
            .proposals
            .values()
            .filter(|p| p.status == ProposalStatus::Pending)
            .map(|p| p.id)
            .collect();
        if found != walked || found.len() != 1 {
            return Err(format!(
                "pending proposals: found {found:?}, walked {walked:?}"
            ));
        }
        let walked_active = s.rollouts.values().find(|r| r.status.is_active());
        if s.active_rollout().map(|r| r.id) != walked_active.map(|r| r.id) {
            return Err("the active rollouts found and walked differ".into());
        }
        pending.push(per_call(&mut || {
            std::hint::black_box(s.proposals.open_values().count());
        }));
        pending_walk.push(per_call(&mut || {
            std::hint::black_box(
                s.proposals
                    .values()
                    .filter(|p| p.status == ProposalStatus::Pending)
                    .count(),
            );
        }));
        active.push(per_call(&mut || {
            std::hint::black_box(s.active_rollout().map(|r| r.id));
        }));
        active_walk.push(per_call(&mut || {
            std::hint::black_box(
                s.rollouts
                    .values()
                    .find(|r| r.status.is_active())
                    .map(|r| r.id),
            );
        }));
        let mut accepted = 0;
        refused.push(per_call(&mut || {
            nonce += 1;
            let o = ledger.apply_operation(
                seq,
                Signer::Requester(requester),
                &requester,
                nonce,
                &refused_op,
            );
            accepted += u32::from(o.accepted);
        }));
        if accepted > 0 {
            return Err(format!("{accepted} of the rollbacks were accepted"));
        }
    }
    Ok(HistorySample {
        promotions,
        pending: median(pending),
        pending_walk: median(pending_walk),
        active: median(active),
        active_walk: median(active_walk),
        refused: median(refused),
    })
}

pub fn print_history(promotions: &[usize], rounds: usize) -> Result<(), String> {
    if promotions.is_empty() {
        return Ok(());
    }
    println!(
        "\nhistory: per call, medians of {rounds} rounds of {REPEATS} calls (the open entries found / a walk over every entry)"
    );
    println!(
        "| promotions in history | pending proposals | active rollout | a refused request, whole |"
    );
    println!("|---|---|---|---|");
    for &n in promotions {
        let s = measure_history(n, rounds)?;
        println!(
            "| {} | {:.2} / {:.2} µs | {:.2} / {:.2} µs | {:.2} µs |",
            s.promotions,
            s.pending.as_secs_f64() * 1e6,
            s.pending_walk.as_secs_f64() * 1e6,
            s.active.as_secs_f64() * 1e6,
            s.active_walk.as_secs_f64() * 1e6,
            s.refused.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}
