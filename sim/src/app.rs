//! The simulator's replicated application: a hash chain over every executed request. Any
//! divergence in what or in which order replicas execute changes the digest, so checkpoint
//! agreement exercises the core's state digests and state transfer for real.

use scbe_core::consensus::{AppState, Digest, Request, Seq, Signed, SnapshotError, StateMachine};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashChainApp {
    applied: u64,
    chain: Digest,
}

impl HashChainApp {
    pub fn new() -> Self {
        Self::default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        if bytes.len() != 40 {
            return Err(SnapshotError(format!(
                "hash-chain snapshot must be 40 bytes, got {}",
                bytes.len()
            )));
        }
        let mut applied = [0u8; 8];
        applied.copy_from_slice(&bytes[..8]);
        let chain = Digest::from_slice(&bytes[8..])
            .ok_or_else(|| SnapshotError("bad chain digest".into()))?;
        Ok(Self {
            applied: u64::from_be_bytes(applied),
            chain,
        })
    }
}

impl StateMachine for HashChainApp {
    fn apply(&mut self, seq: Seq, request: &Signed<Request>) {
        let id = request.envelope().digest();
        self.chain =
            Digest::of_parts(&[self.chain.as_bytes(), &seq.0.to_be_bytes(), id.as_bytes()]);
        self.applied += 1;
    }

    fn digest(&self) -> Digest {
        Digest::of_parts(&[&self.applied.to_be_bytes(), self.chain.as_bytes()])
    }

    fn snapshot(&self) -> AppState {
        // Encoded when first read, as the ledger's snapshots are.
        let (applied, chain) = (self.applied, self.chain);
        AppState::lazy(40, move || {
            let mut out = applied.to_be_bytes().to_vec();
            out.extend_from_slice(chain.as_bytes());
            out
        })
    }

    fn snapshot_digest(&self, snapshot: &[u8]) -> Result<Digest, SnapshotError> {
        Ok(Self::decode(snapshot)?.digest())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        *self = Self::decode(snapshot)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_roundtrip_and_bad_snapshot() {
        let mut a = HashChainApp::new();
        a.chain = Digest([7; 32]);
        a.applied = 3;
        let mut b = HashChainApp::new();
        assert_eq!(b.snapshot_digest(&a.snapshot()), Ok(a.digest()));
        b.restore(&a.snapshot()).expect("restores");
        assert_eq!(a, b);
        assert!(b.restore(&[1, 2, 3]).is_err());
        assert_eq!(a, b, "a failed restore changes nothing");
    }
}
