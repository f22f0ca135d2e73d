//! What `scbe status` shows of the cluster beside the ledger: the validator asked, every peer it
//! links to (asked in turn, at the address that validator uses), their views, executed and
//! stable checkpoints, genesis digests and links, with a flag on every validator that is split
//! from the others (another genesis, or a state that diverged from a quorum's) or unreachable.
//! A split shows here, not only in a log line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use scbe_proto::v1 as pb;

/// One validator as `scbe status` saw it.
pub struct Answer {
    pub id: u32,
    /// Where it was asked.
    pub address: String,
    pub reply: Result<pb::StatusReply, String>,
}

/// The validator asked and its peers.
pub struct ClusterView {
    pub asked: pb::StatusReply,
    pub peers: Vec<Answer>,
}

/// What is wrong with one validator, as seen from the whole view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    Unreachable(String),
    /// It runs another genesis than the validator asked.
    OtherGenesis(String),
    /// Its state diverged from a quorum's at this sequence number.
    Diverged(u64),
    /// At a stable checkpoint others share, its state digest differs from theirs.
    SplitAt(u64),
    /// Its key is not in the validator set in force: it follows, it does not vote. `proven`:
    /// the old set's quorum certified the change (a rotated validator may restart with its
    /// new key only then).
    Observing {
        proven: bool,
    },
    /// It is in an earlier validator-set epoch than the newest one reported.
    EpochBehind {
        epoch: u64,
        newest: u64,
    },
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flag::Unreachable(e) => write!(f, "UNREACHABLE: {e}"),
            Flag::OtherGenesis(g) => write!(
                f,
                "SPLIT: runs genesis {}, not the cluster's (compare genesis files: sha256sum)",
                short(g)
            ),
            Flag::Diverged(seq) => write!(
                f,
                "SPLIT: its state diverged from a quorum's at seq {seq} (it is fetching theirs)"
            ),
            Flag::SplitAt(seq) => write!(
                f,
                "SPLIT: its state at checkpoint {seq} differs from the other validators'"
            ),
            Flag::Observing { proven: true } => write!(
                f,
                "OBSERVING: its key is not in the validator set in force (rotated: restart it \
                 with the new key and node.rekeyed = true; removed: stop it)"
            ),
            Flag::Observing { proven: false } => write!(
                f,
                "OBSERVING: its key is not in the validator set in force, and the change is not \
                 proven yet (the old set's quorum has not signed its boundary checkpoint: \
                 validators behind may need this one's old key to catch up). Rotated: keep it \
                 running on the old key until this flag says the change is proven, then restart \
                 it with the new key and node.rekeyed = true; removed: stop it"
            ),
            Flag::EpochBehind { epoch, newest } => write!(
                f,
                "BEHIND: in validator-set epoch {epoch}, others in {newest} (it catches up)"
            ),
        }
    }
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

impl ClusterView {
    /// Every validator's reply by id (the one asked and those that answered).
    fn replies(&self) -> BTreeMap<u32, &pb::StatusReply> {
        let mut m = BTreeMap::from([(self.asked.node, &self.asked)]);
        for a in &self.peers {
            if let Ok(r) = &a.reply {
                m.insert(a.id, r);
            }
        }
        m
    }

    /// The flags of validator `id`.
    pub fn flags(&self, id: u32) -> Vec<Flag> {
        if let Some(Answer { reply: Err(e), .. }) = self.peers.iter().find(|a| a.id == id) {
            return vec![Flag::Unreachable(e.clone())];
        }
        let replies = self.replies();
        let Some(r) = replies.get(&id) else {
            return vec![];
        };
        let mut flags = vec![];
        if r.genesis != self.asked.genesis {
            flags.push(Flag::OtherGenesis(r.genesis.clone()));
        }
        if r.diverged_at != 0 {
            flags.push(Flag::Diverged(r.diverged_at));
        }
        if r.observing {
            flags.push(Flag::Observing {
                proven: r.epoch_proven,
            });
        }
        let newest = replies.values().map(|o| o.epoch).max().unwrap_or(0);
        if r.epoch < newest {
            flags.push(Flag::EpochBehind {
                epoch: r.epoch,
                newest,
            });
        }
        // Same checkpoint, other digest, and more validators agree with each other than with it.
        if r.stable_checkpoint > 0 {
            let same_seq = || {
                replies.values().filter(|o| {
                    o.stable_checkpoint == r.stable_checkpoint && o.genesis == r.genesis
                })
            };
            let agree = same_seq()
                .filter(|o| o.stable_digest == r.stable_digest)
                .count();
            let most = same_seq()
                .map(|o| {
                    same_seq()
                        .filter(|p| p.stable_digest == o.stable_digest)
                        .count()
                })
                .max()
                .unwrap_or(0);
            if agree < most {
                flags.push(Flag::SplitAt(r.stable_checkpoint));
            }
        }
        flags
    }

    /// The readable table.
    pub fn text(&self) -> String {
        let mut out = format!(
            "cluster:   {} · genesis {}\n",
            if self.asked.cluster.is_empty() {
                "(unnamed)"
            } else {
                &self.asked.cluster
            },
            short(&self.asked.genesis)
        );
        let _ = writeln!(
            out,
            "  {:<10} {:<22} {:>5} {:>5} {:<12} {:>9} {:>10}  {:<12} flags",
            "validator", "address", "epoch", "view", "status", "executed", "checkpoint", "genesis"
        );
        let mut ids: Vec<(u32, String)> = vec![(self.asked.node, "(asked)".to_string())];
        ids.extend(self.peers.iter().map(|a| (a.id, a.address.clone())));
        ids.sort();
        let replies = self.replies();
        for (id, address) in ids {
            let flags: Vec<String> = self.flags(id).iter().map(ToString::to_string).collect();
            let flags = if flags.is_empty() {
                "ok".to_string()
            } else {
                flags.join("; ")
            };
            match replies.get(&id) {
                Some(r) => {
                    let _ = writeln!(
                        out,
                        "  {:<10} {:<22} {:>5} {:>5} {:<12} {:>9} {:>10}  {:<12} {}",
                        id,
                        address,
                        r.epoch,
                        scbe_core::consensus::View(r.view).in_epoch(),
                        r.status,
                        r.last_executed,
                        r.stable_checkpoint,
                        short(&r.genesis),
                        flags
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  {:<10} {:<22} {:>5} {:>5} {:<12} {:>9} {:>10}  {:<12} {}",
                        id, address, "-", "-", "-", "-", "-", "-", flags
                    );
                }
            }
        }
        for l in &self.asked.peers {
            if !l.refused_genesis.is_empty() {
                let _ = writeln!(
                    out,
                    "  link {} -> {}: REFUSED by validator {}, which runs genesis {} (this one \
                     runs {})",
                    self.asked.node,
                    l.id,
                    l.id,
                    short(&l.refused_genesis),
                    short(&self.asked.genesis)
                );
            } else if !l.connected && !l.problem.is_empty() {
                let _ = writeln!(
                    out,
                    "  link {} -> {}: down ({})",
                    self.asked.node, l.id, l.problem
                );
            }
        }
        for c in &self.asked.refused {
            let _ = writeln!(
                out,
                "  refused {}: it presented genesis {} ({} times); this cluster's is {}",
                c.from,
                if c.presented.is_empty() {
                    "none"
                } else {
                    short(&c.presented)
                },
                c.count,
                short(&self.asked.genesis)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(node: u32, checkpoint: u64, digest: u8, genesis: &str) -> pb::StatusReply {
        pb::StatusReply {
            node,
            view: 0,
            status: "Normal".into(),
            last_executed: checkpoint + 3,
            stable_checkpoint: checkpoint,
            stable_digest: vec![digest; 32].into(),
            genesis: genesis.into(),
            cluster: "c".into(),
            ..Default::default()
        }
    }

    fn answer(r: pb::StatusReply) -> Answer {
        Answer {
            id: r.node,
            address: format!("v{}:7000", r.node),
            reply: Ok(r),
        }
    }

    #[test]
    fn agreeing_validators_carry_no_flag() {
        let v = ClusterView {
            asked: reply(0, 64, 1, "aa"),
            peers: (1..4).map(|i| answer(reply(i, 64, 1, "aa"))).collect(),
        };
        for id in 0..4 {
            assert_eq!(v.flags(id), vec![], "validator {id}");
        }
        assert!(!v.text().contains("SPLIT"), "{}", v.text());
    }

    #[test]
    fn another_genesis_a_divergent_state_and_a_silent_peer_are_flagged() {
        let mut diverged = reply(2, 64, 1, "aa");
        diverged.diverged_at = 96;
        let v = ClusterView {
            asked: reply(0, 64, 1, "aa"),
            peers: vec![
                answer(reply(1, 64, 9, "aa")),
                answer(diverged),
                answer(reply(3, 0, 0, "bb")),
                Answer {
                    id: 4,
                    address: "v4:7000".into(),
                    reply: Err("connection refused".into()),
                },
            ],
        };
        assert_eq!(v.flags(0), vec![]);
        assert_eq!(v.flags(1), vec![Flag::SplitAt(64)]);
        assert_eq!(v.flags(2), vec![Flag::Diverged(96)]);
        assert_eq!(v.flags(3), vec![Flag::OtherGenesis("bb".into())]);
        assert_eq!(
            v.flags(4),
            vec![Flag::Unreachable("connection refused".into())]
        );
        let text = v.text();
        assert!(text.contains("UNREACHABLE: connection refused"), "{text}");
        assert!(text.contains("runs genesis bb"), "{text}");
    }

    /// A rotated validator on its old key: told to keep running until the change is proven,
    /// and to restart with its new key once it is (before, its store refuses the new key).
    #[test]
    fn an_observer_is_told_whether_it_may_restart_with_its_new_key_yet() {
        let observer = |proven| {
            let mut r = reply(3, 64, 1, "aa");
            (r.epoch, r.observing, r.epoch_proven) = (1, true, proven);
            r
        };
        let mut asked = reply(0, 64, 1, "aa");
        asked.epoch = 1;
        for proven in [false, true] {
            let v = ClusterView {
                asked: asked.clone(),
                peers: vec![answer(observer(proven))],
            };
            assert_eq!(v.flags(3), vec![Flag::Observing { proven }]);
            let text = v.text();
            assert_eq!(text.contains("not proven yet"), !proven, "{text}");
            assert!(text.contains("restart it with the new key"), "{text}");
        }
    }
}
