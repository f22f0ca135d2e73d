//! How a decided batch executes and when a checkpoint follows it. Shared by the replica and by
//! [`DecidedReplay`](super::decided_replay::DecidedReplay) (what `scbe audit verify` runs over an
//! exported log), so a log replayed offline reaches exactly the state digests the validators
//! signed: one rule for duplicate nonces, one rule for checkpoint positions.

use std::collections::BTreeMap;

use crate::crypto::PublicKey;

use super::config::ReplicaConfig;
use super::message::{Request, Signed};
use super::nonce::NonceWindow;
use super::state_machine::StateMachine;
use super::types::Seq;

/// Applies the requests of the batch decided at `seq` whose nonces are still fresh, in batch
/// order, marking each nonce executed. A duplicate a Byzantine primary slipped in is skipped
/// identically on every replica. `executed` is told of each applied request with its signer's
/// window after it.
pub fn apply_fresh<A: StateMachine>(
    app: &mut A,
    nonces: &mut BTreeMap<PublicKey, NonceWindow>,
    seq: Seq,
    batch: &[Signed<Request>],
    mut executed: impl FnMut(&Signed<Request>, &NonceWindow),
) {
    for r in batch {
        let window = nonces.entry(*r.signer()).or_default();
        if !window.is_fresh(r.value().nonce) {
            continue;
        }
        window.mark(r.value().nonce);
        let window = *window;
        app.apply(seq, r);
        executed(r, &window);
    }
}

/// Where checkpoints fall: after every multiple of `checkpoint_interval`, as soon as the
/// batches executed since the last checkpoint reach `checkpoint_bytes` (the window's byte budget
/// frees up only when a checkpoint becomes stable, so big requests must bring checkpoints
/// sooner), and after a batch that changed the validator set (the new epoch starts from that
/// checkpoint). Every rule depends only on the decided sequence, so every replica, and a replay
/// of the decided log, checkpoints at the same seqs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointClock {
    bytes_since: usize,
}

impl CheckpointClock {
    /// Counts the batch of `bytes` executed at `seq` (which changed the validator set if
    /// `new_epoch`); true when a checkpoint follows it, and the count starts again.
    pub fn executed(
        &mut self,
        cfg: &ReplicaConfig,
        seq: Seq,
        bytes: usize,
        new_epoch: bool,
    ) -> bool {
        self.bytes_since += bytes;
        let due = seq.0.is_multiple_of(cfg.checkpoint_interval)
            || self.bytes_since >= cfg.checkpoint_bytes()
            || new_epoch;
        if due {
            self.restart();
        }
        due
    }

    /// At a checkpoint reached another way (a restored or transferred snapshot).
    pub fn restart(&mut self) {
        self.bytes_since = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::config::Directory;
    use crate::consensus::types::ReplicaId;
    use crate::crypto::Keypair;

    fn config() -> ReplicaConfig {
        let keys = (0..4)
            .map(|i| Keypair::from_label(&format!("v{i}")).public())
            .collect();
        let dir = Directory::new(keys, vec![]).expect("4 distinct keys");
        ReplicaConfig::new(ReplicaId(0), dir).expect("4 validators")
    }

    /// A checkpoint falls at every multiple of K and once the bytes since the last one reach the
    /// budget; either way, and at a checkpoint reached by a restored or fetched snapshot, the
    /// byte count starts again. cargo-mutants (consensus shard 1) found `restart` doing nothing
    /// with every consensus test passing: replicas would then checkpoint by bytes ever more
    /// often after the first, and a replay would agree with them only by luck.
    #[test]
    fn the_byte_count_starts_again_at_every_checkpoint() {
        let cfg = config();
        let (k, budget) = (cfg.checkpoint_interval, cfg.checkpoint_bytes());
        let mut clock = CheckpointClock::default();
        assert!(!clock.executed(&cfg, Seq(1), budget - 1, false));
        assert!(clock.executed(&cfg, Seq(2), 1, false), "the budget reached");
        assert!(
            !clock.executed(&cfg, Seq(3), budget - 1, false),
            "counted from 0"
        );
        assert!(clock.executed(&cfg, Seq(k), 0, false), "a multiple of K");
        assert!(
            !clock.executed(&cfg, Seq(k + 1), budget - 1, false),
            "counted from 0"
        );
        clock.restart();
        assert_eq!(clock, CheckpointClock::default());
        assert!(
            !clock.executed(&cfg, Seq(k + 2), budget - 1, false),
            "counted from 0"
        );
        assert!(
            clock.executed(&cfg, Seq(k + 3), 0, true),
            "a batch that changed the validator set"
        );
        assert!(
            !clock.executed(&cfg, Seq(k + 4), budget - 1, false),
            "counted from 0"
        );
    }
}
