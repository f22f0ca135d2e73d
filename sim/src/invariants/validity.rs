//! Validity: every request an honest replica executes carries a valid signature from a known
//! principal (a validator of the set in force at its seq), and a requester's request is one that
//! requester actually submitted.

use std::collections::BTreeSet;

use scbe_core::consensus::{Decision, Digest, Directory, Principal};

#[derive(Default)]
pub struct Validity {
    submitted: BTreeSet<Digest>,
}

impl Validity {
    pub fn on_submitted(&mut self, envelope: Digest) {
        self.submitted.insert(envelope);
    }

    /// `directory`: the requesters and the validators in force at `d.seq`.
    pub fn on_deliver(&self, node: usize, d: &Decision, directory: &Directory) -> Vec<String> {
        let mut out = Vec::new();
        for r in &d.executed {
            let env = r.envelope();
            if env.verify().is_err() {
                out.push(format!(
                    "replica {node} executed a request with a bad signature at {}",
                    d.seq
                ));
            }
            match directory.principal(&env.signer) {
                None => out.push(format!(
                    "replica {node} executed a request from unknown signer {} at {}",
                    env.signer, d.seq
                )),
                Some(Principal::Requester) if !self.submitted.contains(&env.digest()) => {
                    out.push(format!(
                        "replica {node} executed a request nobody submitted at {}",
                        d.seq
                    ))
                }
                Some(_) => {}
            }
        }
        out
    }
}
