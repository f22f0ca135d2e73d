//! Proofs of one entry of the state at a checkpoint (`ledger::checkpoint_prover`): every
//! release, proposal and rollout of a checkpoint proves the digest the checkpoint signs, and
//! nothing else does; a proof bent anywhere leads elsewhere; a state digested with the walk is
//! refused in so many words.

use super::ledger::checkpoint_prover::ProveError;
use super::ledger::state::ReleaseEntry;
use super::ledger::state_proof::{ProofError, ProvenMap, StateProof};
use super::ledger::StateDigest;
use super::ledger_world::World;
use crate::consensus::StateMachine as _;

/// A world with releases at every stage, a decided proposal and a rollout.
fn busy_world() -> World {
    let mut w = World::new();
    for i in 0..40 {
        w.register(&format!("r{i}"));
    }
    let rollout = w.promote_to_canary("c1");
    assert!(w.ledger.state().rollouts.contains_key(&rollout));
    w
}

#[test]
fn every_entry_of_a_checkpoint_proves_the_digest_it_signs() {
    let mut w = busy_world();
    let prover = w.checkpoint_prover();
    let signed = w.ledger.digest();
    assert_eq!(prover.digest(), Ok(signed));
    let state = w.ledger.state().clone();
    for (version, release) in state.releases.iter() {
        let proof = prover.prove(ProvenMap::Releases, version).expect("held");
        assert_eq!(proof.state_digest(), Ok(signed), "{version}");
        assert_eq!(proof.value::<ReleaseEntry>().expect("decodes"), *release);
    }
    assert!(!state.proposals.is_empty() && !state.rollouts.is_empty());
    for id in state.proposals.keys() {
        let proof = prover.prove(ProvenMap::Proposals, &id.to_string());
        assert_eq!(proof.expect("held").state_digest(), Ok(signed));
    }
    for id in state.rollouts.keys() {
        let proof = prover.prove(ProvenMap::Rollouts, &id.to_string());
        assert_eq!(proof.expect("held").state_digest(), Ok(signed));
    }
    // It reads back from its JSON (what travels) and still proves the digest.
    let proof = prover.prove(ProvenMap::Releases, "r7").expect("held");
    let json = serde_json::to_string(&proof).expect("encodes");
    let back: StateProof = serde_json::from_str(&json).expect("decodes");
    assert_eq!(back.state_digest(), Ok(signed));
}

/// The state moves on after the checkpoint; its prover still proves the checkpoint's state
/// (what the certificate vouches for), not the live one.
#[test]
fn a_checkpoints_prover_proves_that_checkpoint_as_the_state_moves_on() {
    let mut w = busy_world();
    let prover = w.checkpoint_prover();
    let signed = w.ledger.digest();
    w.register("later");
    assert_ne!(w.ledger.digest(), signed);
    assert_eq!(
        prover.prove(ProvenMap::Releases, "later").err(),
        Some(ProveError::NoEntry {
            map: ProvenMap::Releases,
            key: "later".into()
        })
    );
    let proof = prover.prove(ProvenMap::Releases, "r3").expect("held");
    assert_eq!(proof.state_digest(), Ok(signed));
    let now = w.checkpoint_prover();
    let proof = now.prove(ProvenMap::Releases, "later").expect("held now");
    assert_eq!(proof.state_digest(), Ok(w.ledger.digest()));
}

#[test]
fn what_is_not_there_or_not_a_key_is_refused_naming_it() {
    let mut w = busy_world();
    let prover = w.checkpoint_prover();
    for (map, key) in [
        (ProvenMap::Releases, "nope"),
        (ProvenMap::Proposals, "999"),
        (ProvenMap::Proposals, "one"),
        (ProvenMap::Rollouts, "-1"),
    ] {
        let e = prover.prove(map, key).expect_err("refused");
        assert_eq!(
            e,
            ProveError::NoEntry {
                map,
                key: key.into()
            }
        );
        assert!(e.to_string().contains(key), "{e}");
    }
}

/// Each part a proof carries is bound to the digest: a changed entry, a part of the state
/// changed, dropped or added, another journal, another map named, all lead elsewhere or fail.
#[test]
fn a_bent_proof_proves_no_signed_digest() {
    let mut w = busy_world();
    let prover = w.checkpoint_prover();
    let signed = w.ledger.digest();
    let good = prover.prove(ProvenMap::Releases, "r5").expect("held");
    let elsewhere = |p: &StateProof| p.state_digest() != Ok(signed);

    let mut p = good.clone();
    p.entry.entry = p.entry.entry.replace("r5", "r6");
    assert!(elsewhere(&p), "another entry under the path");
    let mut p = good.clone();
    p.entry.key = "\"r6\"".into();
    assert!(elsewhere(&p), "another key");
    for i in 4..good.state_parts.len() {
        let mut p = good.clone();
        p.state_parts[i].push(b' ');
        assert!(elsewhere(&p), "state part {i} changed");
    }
    let mut p = good.clone();
    p.state_parts[2][0] ^= 1;
    assert!(elsewhere(&p), "another map's root");
    let mut p = good.clone();
    p.state_parts[1][0] ^= 1;
    assert_eq!(
        p.state_digest(),
        Err(ProofError::MapRoot(ProvenMap::Releases))
    );
    let mut p = good.clone();
    p.map = ProvenMap::Rollouts;
    assert_eq!(
        p.state_digest(),
        Err(ProofError::MapRoot(ProvenMap::Rollouts))
    );
    let mut p = good.clone();
    p.state_parts.push(b"extra".to_vec());
    assert!(elsewhere(&p), "a part added");
    let mut p = good.clone();
    p.state_parts.truncate(4);
    assert_eq!(p.state_digest(), Err(ProofError::Parts { got: 4 }));
    let mut p = good.clone();
    p.journal[0] ^= 1;
    assert!(elsewhere(&p), "another journal");
    let mut p = good.clone();
    p.state_parts[0] = b"ledger-state/4".to_vec();
    assert_eq!(p.state_digest(), Err(ProofError::NotTree));
    assert_eq!(
        good.state_digest(),
        Ok(signed),
        "the unbent proof still holds"
    );
}

/// Under the walk every entry is hashed in a row: no part of the state can be proven alone,
/// and the refusal says how to move to the tree.
#[test]
fn a_state_digested_by_the_walk_is_refused_saying_why() {
    let mut w = World::with_state_digest(StateDigest::Walk);
    w.register("r1");
    let prover = w.checkpoint_prover();
    assert_eq!(prover.digest(), Err(ProveError::WalkDigest));
    let e = prover.prove(ProvenMap::Releases, "r1").expect_err("walk");
    assert_eq!(e, ProveError::WalkDigest);
    assert!(e.to_string().contains("--state-digest tree"), "{e}");
}

#[test]
fn map_names_parse_back_and_nothing_else_does() {
    for m in ProvenMap::ALL {
        assert_eq!(ProvenMap::from_name(m.name()), Some(m));
    }
    assert_eq!(ProvenMap::from_name("release"), None);
    let parts: Vec<usize> = ProvenMap::ALL.iter().map(|m| m.part()).collect();
    assert_eq!(parts, [1, 2, 3]);
}
