//! State proofs: whenever an honest replica's stable checkpoint moves to one whose state it took
//! itself, the ledger's prover of that state leads to the digest the checkpoint's certificate
//! signs (with the checkpoint's seq and nonce table), and so does the proof of each release,
//! proposal and rollout it holds (the first and last few of each map): what `Audit.Prove` serves
//! and `scbe audit prove` checks, on the states the simulator's faults produce.

use std::collections::BTreeMap;

use scbe_core::consensus::{nonce_parts, state_digest_of, Digest, NoncePart, Replica, Seq};
use scbe_core::governance::ledger::checkpoint_prover::{CheckpointProver, ProveError};
use scbe_core::governance::ledger::state_proof::ProvenMap;
use scbe_core::governance::Ledger;

/// Entries proven at each end of each map, per checkpoint.
const PER_END: usize = 3;

/// Each replica's last stable checkpoint checked.
#[derive(Default)]
pub struct StateProofs {
    checked: BTreeMap<usize, Seq>,
    /// Proofs that led to the signed digest (the prover's own digest included).
    pub proved: u64,
}

impl StateProofs {
    /// Checks `replica`'s stable checkpoint if it moved since the last call for `node`.
    pub fn on_stable(&mut self, node: usize, replica: &Replica<Ledger>) -> Vec<String> {
        let cert = replica.stable_checkpoint();
        if self.checked.get(&node) == Some(&cert.seq) {
            return Vec::new();
        }
        self.checked.insert(node, cert.seq);
        // A state installed from a peer's bytes keeps no prover: nothing to check. (One
        // restored from the replica's own store has one: `Replica::restore` takes the
        // application's snapshot of what it restored.)
        let Some(snap) = replica.stable_snapshot() else {
            return Vec::new();
        };
        let Some(prover) = CheckpointProver::of(&snap.app_state) else {
            return Vec::new();
        };
        let (proved, found) = check_checkpoint(
            &format!("node {node}"),
            cert.seq,
            cert.state_digest,
            &prover,
            &nonce_parts(&snap.nonces),
        );
        self.proved += proved;
        found
    }
}

/// Checks that `prover`'s state, and each entry at the ends of its maps, leads to `signed`
/// with the checkpoint's seq `at` and nonce table: how many did, and what did not.
pub fn check_checkpoint(
    who: &str,
    at: Seq,
    signed: Digest,
    prover: &CheckpointProver,
    nonces: &[NoncePart],
) -> (u64, Vec<String>) {
    let mut proved = 0;
    let mut found = Vec::new();
    match prover.digest() {
        Err(ProveError::WalkDigest) => return (0, found), // the walk proves no part
        Err(e) => found.push(format!("{who} at {at}: the prover's digest: {e}")),
        Ok(d) if state_digest_of(at, d, nonces) != signed => found.push(format!(
            "{who} at {at}: the prover's state leads to another digest than the signed one"
        )),
        Ok(_) => proved += 1,
    }
    for map in ProvenMap::ALL {
        for key in ends(prover.state(), map) {
            let verdict = prover
                .prove(map, &key)
                .map_err(|e| e.to_string())
                .and_then(|p| p.state_digest().map_err(|e| e.to_string()));
            match verdict {
                Ok(d) if state_digest_of(at, d, nonces) == signed => proved += 1,
                Ok(_) => found.push(format!(
                    "{who} at {at}: {} {key} proves another digest than the signed one",
                    map.name()
                )),
                Err(e) => found.push(format!(
                    "{who} at {at}: {} {key} held but not proven: {e}",
                    map.name()
                )),
            }
        }
    }
    (proved, found)
}

/// The keys of the first and last [`PER_END`] entries of `map`.
fn ends(state: &scbe_core::governance::ledger::LedgerState, map: ProvenMap) -> Vec<String> {
    fn pick<'a, K: ToString + 'a, I: DoubleEndedIterator<Item = &'a K>>(
        keys: impl Fn() -> I,
    ) -> Vec<String> {
        let mut out: Vec<String> = keys().take(PER_END).map(K::to_string).collect();
        out.extend(keys().rev().take(PER_END).map(K::to_string));
        out.sort();
        out.dedup();
        out
    }
    match map {
        ProvenMap::Releases => pick(|| state.releases.keys()),
        ProvenMap::Proposals => pick(|| state.proposals.keys()),
        ProvenMap::Rollouts => pick(|| state.rollouts.keys()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scbe_core::consensus::StateMachine as _;
    use scbe_core::governance::ledger::StateDigest;
    use scbe_core::governance::ledger_world::World;

    /// The checker passes a checkpoint whose certificate signs its state, proving the prover's
    /// digest and each end entry, and reports every one of them against a digest that is not
    /// the state's (a certificate over another state, or another nonce table).
    #[test]
    fn a_checkpoint_signing_another_state_is_reported_entry_by_entry() {
        let mut w = World::new();
        for i in 0..8 {
            w.register(&format!("r{i}"));
        }
        w.promote_to_canary("c1");
        let prover = w.checkpoint_prover();
        let nonces = [([1; 32], [2; 24])];
        let signed = state_digest_of(Seq(9), w.ledger.digest(), &nonces);
        let (proved, found) = check_checkpoint("node 0", Seq(9), signed, &prover, &nonces);
        assert!(found.is_empty(), "{found:?}");
        // The prover's digest, 6 of the 9 releases, the one proposal and the one rollout.
        assert_eq!(proved, 1 + 6 + 1 + 1);
        let (proved, found) = check_checkpoint("node 0", Seq(9), signed, &prover, &[]);
        assert_eq!(proved, 0);
        assert_eq!(found.len(), 9, "{found:?}");
        assert!(found[0].contains("the prover's state"), "{found:?}");
        let (_, found) = check_checkpoint("node 0", Seq(8), signed, &prover, &nonces);
        assert_eq!(found.len(), 9, "another seq: {found:?}");
    }

    #[test]
    fn a_state_digested_by_the_walk_proves_nothing_and_is_not_reported() {
        let mut w = World::with_state_digest(StateDigest::Walk);
        w.register("r1");
        let prover = w.checkpoint_prover();
        let (proved, found) = check_checkpoint("node 0", Seq(1), Digest([0; 32]), &prover, &[]);
        assert_eq!((proved, found.len()), (0, 0));
    }
}
