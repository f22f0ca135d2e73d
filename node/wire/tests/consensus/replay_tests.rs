//! A decided log replayed offline reaches the digests the validators signed at every
//! checkpoint, and a log with a batch missing, swapped, repeated or a forged checkpoint is
//! refused at the first wrong seq (what `scbe audit verify` relies on).

use scbe_core::consensus::decided_replay::CheckpointCheck;
use scbe_core::consensus::*;
use scbe_wire::testkit::{ChainApp, Cluster};

/// Replica 0's decided certificates and the stable checkpoint certificates it persisted, after
/// 16 requests with K = 8, four of them large enough to bring checkpoints by bytes.
fn decided_log() -> (Cluster, Vec<CommitCert>, Vec<CheckpointCert>) {
    let mut c = Cluster::new_with(4, 8, |cfg| {
        cfg.max_window_bytes = 40 * 1024;
        cfg.max_batch_bytes = 16 * 1024;
        cfg.max_request_bytes = 16 * 1024;
    });
    for nonce in 1..=16 {
        let len = if matches!(nonce, 2 | 3 | 10 | 11) {
            15 * 1024
        } else {
            8
        };
        c.input(0, Input::ClientRequest(c.request_sized(nonce, len)));
        c.run();
    }
    for i in 0..4 {
        c.fire_if_armed(i, TimerKind::Status);
    }
    let certs = c.decided_certificates(0);
    let stable = c.stable_certificates(0);
    (c, certs, stable)
}

fn replay(c: &Cluster) -> DecidedReplay<ChainApp> {
    DecidedReplay::new(c.config(0), ChainApp::default())
}

#[test]
fn an_untouched_log_replays_to_every_signed_checkpoint_digest() {
    let (c, certs, stable) = decided_log();
    assert_eq!(certs.len(), 16, "every request decided in its own batch");
    assert!(
        stable.len() >= 3,
        "checkpoints became stable: {}",
        stable.len()
    );
    let mut r = replay(&c);
    let mut taken = Vec::new();
    for cert in &certs {
        if let Some(d) = r.feed(cert).expect("valid log") {
            taken.push((cert.seq(), d));
        }
    }
    // Checkpoints by interval (8, 16) and by bytes (after the 15 KiB requests).
    assert!(taken.iter().any(|(s, _)| s.0 % 8 != 0), "{taken:?}");
    for s in &stable {
        assert_eq!(
            r.check_signed(s),
            Ok(CheckpointCheck::Matches),
            "seq {}",
            s.seq.0
        );
    }
    // The final digest is the replica's own at its last checkpoint (seq 16 is one).
    let last = c.replica(0).stable_checkpoint();
    assert_eq!(last.seq, Seq(16));
    assert_eq!(r.digest_now(), last.state_digest);
}

#[test]
fn a_missing_repeated_or_swapped_batch_names_the_first_wrong_seq() {
    let (c, certs, _) = decided_log();
    let run = |log: Vec<CommitCert>| -> Result<Seq, ReplayError> {
        let mut r = replay(&c);
        for cert in &log {
            r.feed(cert)?;
        }
        Ok(r.last())
    };
    let mut middle = certs.clone();
    middle.remove(5);
    assert_eq!(run(middle).expect_err("refused").seq(), Seq(6));
    assert_eq!(run(certs[1..].to_vec()).expect_err("refused").seq(), Seq(1));
    let mut swapped = certs.clone();
    swapped.swap(3, 4);
    assert_eq!(run(swapped).expect_err("refused").seq(), Seq(4));
    let mut twice = certs.clone();
    twice.insert(7, certs[6].clone());
    assert_eq!(run(twice).expect_err("refused").seq(), Seq(8));
    assert_eq!(run(certs), Ok(Seq(16)));
}

#[test]
fn a_certificate_short_of_a_quorum_or_a_forged_checkpoint_is_refused() {
    let (c, certs, stable) = decided_log();
    let mut weak = certs.clone();
    weak[2].commits.truncate(2);
    let mut r = replay(&c);
    let err = weak
        .iter()
        .try_for_each(|x| r.feed(x).map(|_| ()))
        .expect_err("refused");
    assert!(
        matches!(err, ReplayError::Certificate { seq: Seq(3), .. }),
        "{err}"
    );

    let mut r = replay(&c);
    for cert in &certs {
        r.feed(cert).expect("valid log");
    }
    // A checkpoint whose signatures are all there but whose digest the replay does not reach:
    // it fails its signature check (the signed digest differs) before any comparison.
    let mut forged = stable[0].clone();
    forged.state_digest = Digest::of_parts(&[b"forged"]);
    assert!(matches!(
        r.check_signed(&forged),
        Err(ReplayError::CheckpointCertificate { .. })
    ));
    // A replay from another starting state (as a verifier with another genesis would run)
    // reaches other digests: the first signed checkpoint names the difference.
    let mut other = ChainApp::default();
    other.apply(Seq(0), &c.request(99));
    let mut r = DecidedReplay::new(c.config(0), other);
    for cert in &certs {
        r.feed(cert).expect("the certificates themselves are valid");
    }
    let err = r.check_signed(&stable[0]).expect_err("refused");
    assert!(
        matches!(err, ReplayError::DigestDiffers { seq, .. } if seq == stable[0].seq),
        "{err}"
    );
    // A signed checkpoint beyond what was replayed is not compared.
    let mut short = replay(&c);
    short.feed(&certs[0]).expect("seq 1");
    assert_eq!(
        short.check_signed(&stable[stable.len() - 1]),
        Ok(CheckpointCheck::Beyond)
    );
}
