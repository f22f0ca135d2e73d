//! The consensus tests' application: it counts applied requests and chains their ids, enough
//! state for digests and snapshots, and holds a validator set that a request starting with
//! [`ChainApp::SET_PREFIX`] replaces (the ledger's validator proposals, reduced to the effect
//! consensus sees), and the signers a request starting with [`ChainApp::BAR_PREFIX`] bars from
//! being ordered (the ledger's removed requesters and validators).

use std::collections::BTreeSet;

use scbe_core::consensus::*;
use scbe_core::crypto::PublicKey;

/// Counts applied requests and chains their ids: enough state for digests and snapshots.
#[derive(Default)]
pub struct ChainApp {
    applied: u64,
    chain: Digest,
    /// The validator set a request put in force (`None`: the genesis set).
    set: Option<ValidatorSet>,
    /// Non-zero: this replica's digests differ from everyone's (see [`ChainApp::diverging`]).
    salt: u64,
    /// Zero bytes added to every snapshot (see [`ChainApp::padded`]).
    pad: usize,
    /// Signers whose requests [`StateMachine::may_order`] refuses (see [`ChainApp::BAR_PREFIX`]).
    barred: BTreeSet<PublicKey>,
}

impl ChainApp {
    /// A request whose operation starts with this replaces the validator set with the
    /// (id, key) pairs that follow (4 + 32 bytes each).
    pub const SET_PREFIX: &'static [u8] = b"set:";

    /// A request whose operation starts with this bars the signer whose 32-byte key follows:
    /// from then on the app orders none of its requests.
    pub const BAR_PREFIX: &'static [u8] = b"bar:";

    /// An app whose state digests differ from every other replica's until it restores a peer's
    /// snapshot: a replica that executed something else (a bug, a damaged store).
    pub fn diverging() -> Self {
        Self {
            salt: 1,
            ..Self::default()
        }
    }

    /// An app whose snapshots carry `pad` more bytes: a state large enough that the replica
    /// persists it only every so often (`snapshot_persist_floor`).
    pub fn padded(mut self, pad: usize) -> Self {
        self.pad = pad;
        self
    }

    /// The operation that puts `members` in force as the next validator set.
    pub fn set_operation(members: &[(ReplicaId, PublicKey)]) -> Vec<u8> {
        let mut op = Self::SET_PREFIX.to_vec();
        for (id, key) in members {
            op.extend_from_slice(&id.0.to_be_bytes());
            op.extend_from_slice(key.as_bytes());
        }
        op
    }

    /// The operation that bars `signer`'s requests from being ordered.
    pub fn bar_operation(signer: &PublicKey) -> Vec<u8> {
        [Self::BAR_PREFIX, signer.as_bytes()].concat()
    }

    /// The barred signers' snapshot bytes (none when nobody is barred): 2, a count, the keys.
    fn barred_bytes(&self) -> Vec<u8> {
        if self.barred.is_empty() {
            return Vec::new();
        }
        let mut v = vec![2u8];
        v.extend_from_slice(&(self.barred.len() as u32).to_be_bytes());
        for key in &self.barred {
            v.extend_from_slice(key.as_bytes());
        }
        v
    }

    fn parse_barred(s: &[u8]) -> Result<(BTreeSet<PublicKey>, usize), SnapshotError> {
        let bad = || SnapshotError("barred signers".into());
        if s.first() != Some(&2) {
            return Ok((BTreeSet::new(), 0));
        }
        let n = u32::from_be_bytes(s.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let end = 5 + 32 * n as usize;
        let keys = s.get(5..end).ok_or_else(bad)?;
        let barred = keys
            .chunks_exact(32)
            .map(|k| PublicKey(k.try_into().expect("32 bytes")))
            .collect();
        Ok((barred, end))
    }

    fn parse_members(mut bytes: &[u8]) -> Option<Vec<(ReplicaId, PublicKey)>> {
        let mut members = Vec::new();
        while !bytes.is_empty() {
            if bytes.len() < 36 {
                return None;
            }
            let id = u32::from_be_bytes(bytes[..4].try_into().ok()?);
            let key: [u8; 32] = bytes[4..36].try_into().ok()?;
            members.push((ReplicaId(id), PublicKey(key)));
            bytes = &bytes[36..];
        }
        Some(members)
    }

    fn set_bytes(&self) -> Vec<u8> {
        let Some(set) = &self.set else {
            return Vec::new();
        };
        let mut v = vec![1u8];
        v.extend_from_slice(&set.epoch.to_be_bytes());
        v.extend_from_slice(&set.start.0.to_be_bytes());
        v.extend_from_slice(&(set.members.len() as u32).to_be_bytes());
        v.extend_from_slice(&Self::set_operation(&set.members)[Self::SET_PREFIX.len()..]);
        v
    }

    fn parse_set(s: &[u8]) -> Result<(Option<ValidatorSet>, usize), SnapshotError> {
        let bad = || SnapshotError("validator set".into());
        if s.first() != Some(&1) {
            return Ok((None, 0));
        }
        if s.len() < 21 {
            return Err(bad());
        }
        let epoch = u64::from_be_bytes(s[1..9].try_into().map_err(|_| bad())?);
        let start = Seq(u64::from_be_bytes(s[9..17].try_into().map_err(|_| bad())?));
        let n = u32::from_be_bytes(s[17..21].try_into().map_err(|_| bad())?) as usize;
        let end = 21 + 36 * n;
        let members = s
            .get(21..end)
            .and_then(Self::parse_members)
            .ok_or_else(bad)?;
        Ok((
            Some(ValidatorSet {
                epoch,
                start,
                members,
            }),
            end,
        ))
    }
}

impl StateMachine for ChainApp {
    fn apply(&mut self, seq: Seq, r: &Signed<Request>) {
        self.applied += 1;
        self.chain = Digest::of_parts(&[self.chain.as_bytes(), r.envelope().digest().as_bytes()]);
        let op = &r.value().operation;
        if let Some(members) = op
            .strip_prefix(Self::SET_PREFIX)
            .and_then(Self::parse_members)
        {
            self.set = Some(ValidatorSet {
                epoch: self.validator_epoch() + 1,
                start: seq,
                members,
            });
        }
        if let Some(key) = op.strip_prefix(Self::BAR_PREFIX) {
            if let Ok(key) = key.try_into() {
                self.barred.insert(PublicKey(key));
            }
        }
    }
    fn may_order(&self, request: &Signed<Request>) -> bool {
        !self.barred.contains(request.signer())
    }
    fn validator_epoch(&self) -> u64 {
        self.set.as_ref().map_or(0, |s| s.epoch)
    }
    fn validator_set(&self) -> Option<ValidatorSet> {
        self.set.clone()
    }
    fn digest(&self) -> Digest {
        let mut d = Digest::of_parts(&[&self.applied.to_be_bytes(), self.chain.as_bytes()]);
        if let Some(set) = &self.set {
            d = Digest::of_parts(&[d.as_bytes(), set.digest().as_bytes()]);
        }
        if !self.barred.is_empty() {
            d = Digest::of_parts(&[d.as_bytes(), &self.barred_bytes()]);
        }
        if self.salt == 0 {
            return d;
        }
        Digest::of_parts(&[d.as_bytes(), &self.salt.to_be_bytes()])
    }
    fn snapshot(&self) -> AppState {
        // Lazy, as the ledger's: the core must work whenever (and whether) the bytes are made.
        let (applied, chain, pad) = (self.applied, self.chain, self.pad);
        let set = self.set_bytes();
        let barred = self.barred_bytes();
        let len = 40 + set.len() + barred.len() + pad;
        AppState::lazy(len, move || {
            let mut v = applied.to_be_bytes().to_vec();
            v.extend_from_slice(chain.as_bytes());
            v.extend_from_slice(&set);
            v.extend_from_slice(&barred);
            v.resize(len, 0);
            v
        })
    }
    fn snapshot_digest(&self, s: &[u8]) -> Result<Digest, SnapshotError> {
        let mut app = ChainApp::default();
        app.restore(s)?;
        Ok(app.digest())
    }

    fn restore(&mut self, s: &[u8]) -> Result<(), SnapshotError> {
        if s.len() < 40 {
            return Err(SnapshotError("length".into()));
        }
        let (set, set_len) = Self::parse_set(&s[40..])?;
        let (barred, barred_len) = Self::parse_barred(&s[40 + set_len..])?;
        let rest = &s[40 + set_len + barred_len..];
        if rest.iter().any(|b| *b != 0) {
            return Err(SnapshotError("length".into()));
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&s[..8]);
        self.applied = u64::from_be_bytes(n);
        self.chain = Digest::from_slice(&s[8..40]).ok_or(SnapshotError("digest".into()))?;
        self.set = set;
        self.barred = barred;
        self.pad = rest.len();
        self.salt = 0;
        Ok(())
    }
}
