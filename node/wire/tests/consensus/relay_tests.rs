//! Client requests received in one turn reach the peers in one `Relay`, the primary's included.

use scbe_core::consensus::*;
use scbe_wire::testkit::{ChainApp, Cluster};

/// Hands `inputs` to replica `i` as one turn, as the node does, then delivers everything.
fn turn(c: &mut Cluster, i: usize, inputs: Vec<Input>) {
    let r = c.replicas[i].as_mut().expect("replica is up");
    r.begin_turn();
    let mut actions = Vec::new();
    for input in inputs {
        actions.extend(r.handle(input));
    }
    actions.extend(r.end_turn());
    c.apply(i, actions);
    c.run();
}

/// (requests in `Relay` broadcasts, requests broadcast on their own) in replica `i`'s log.
fn relayed(c: &Cluster, i: usize) -> (Vec<usize>, usize) {
    let mut relays = Vec::new();
    let mut single = 0;
    for a in &c.log[i] {
        if let Action::Broadcast(env) = a {
            match env.kind {
                Kind::Relay => {
                    let m = scbe_wire::open(&scbe_wire::encode_envelope(env), &c.dir)
                        .expect("own relay opens");
                    let Message::Relay(r) = m.value() else {
                        panic!("relay kind")
                    };
                    relays.push(r.requests.len());
                }
                Kind::Request => single += 1,
                _ => {}
            }
        }
    }
    (relays, single)
}

#[test]
fn a_backups_turn_of_client_requests_goes_out_as_one_relay() {
    let mut c = Cluster::new(4, 128);
    let inputs = (1..=5)
        .map(|n| Input::ClientRequest(c.request(n)))
        .collect();
    turn(&mut c, 1, inputs);
    assert_eq!(relayed(&c, 1), (vec![5], 0));
    for i in 0..4 {
        assert_eq!(c.executed_requests(i), 5, "replica {i}");
    }
}

#[test]
fn a_primary_relays_even_what_it_proposed_so_a_lost_pre_prepare_loses_no_request() {
    // One batch in flight: the first request is proposed at once, the other two wait; all three
    // are relayed (if the pre-prepare were lost and the view changed, the backups would still
    // hold the first one).
    let mut c = Cluster::new(4, 128);
    let inputs = (1..=3)
        .map(|n| Input::ClientRequest(c.request(n)))
        .collect();
    turn(&mut c, 0, inputs);
    assert_eq!(relayed(&c, 0), (vec![3], 0));
    for i in 0..4 {
        assert_eq!(c.executed_requests(i), 3, "replica {i}");
    }
}

#[test]
fn outside_a_turn_each_request_is_relayed_as_sent() {
    let mut c = Cluster::new(4, 128);
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    assert_eq!(relayed(&c, 1), (vec![], 1));
}

/// The primary's pre-prepare is lost: the backups hold the request from its relay, time it out,
/// change view, and the new primary orders it. Without the primary's relay nobody but the old
/// primary held the request and it waited for the client to give up (a 30 s stall seen on a
/// process cluster).
#[test]
fn a_request_in_a_lost_pre_prepare_is_ordered_by_the_next_primary() {
    let mut c = Cluster::new(4, 128);
    c.drop_kinds.insert(Kind::PrePrepare);
    let inputs = vec![Input::ClientRequest(c.request(1))];
    turn(&mut c, 0, inputs);
    c.drop_kinds.clear();
    for i in 1..4 {
        c.fire_if_armed(i, TimerKind::Request);
    }
    for i in 1..4 {
        assert_eq!(c.replica(i).view(), View(1), "replica {i}");
        assert_eq!(c.executed_requests(i), 1, "replica {i}");
    }
}

/// Only backup 1 holds a request: its relay was lost on every link and its client never sends
/// it again. On its request timer the backup relays it once more, and the primary orders it in
/// the same view (one lone timeout is no reason to leave the view).
#[test]
fn a_request_only_one_backup_holds_is_relayed_again_on_its_request_timer() {
    let mut c = Cluster::new(4, 128);
    c.isolate(1);
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    c.heal();
    assert_eq!(c.executed_requests(0), 0, "nobody else has it yet");
    c.fire(1, TimerKind::Request);
    for i in 0..4 {
        assert_eq!(c.executed_requests(i), 1, "replica {i}");
        assert_eq!(c.replica(i).view(), View(0), "replica {i}");
    }
}

/// The operation bytes of a request that costs exactly 2 KiB in a batch.
const TWO_KIB_OPERATION: usize = 2048 - limits::REQUEST_FRAMING_BYTES - 5;

/// A cluster whose requests may cost 2 KiB and whose batches (and relay chunks) 4 KiB: two
/// such requests fill one exactly.
fn two_to_a_batch() -> Cluster {
    Cluster::new_with(4, 128, |cfg| {
        cfg.max_request_bytes = 2048;
        cfg.max_batch_bytes = 4096;
        cfg.max_window_bytes = 64 * 1024;
    })
}

/// On its request timer a backup hands on again only the requests that waited longest, up
/// to one batch's bytes (two of these five), not its whole queue: a backup holding many
/// would flood the primary on every timeout. cargo-mutants at 8c1a26e left the byte count's
/// sum (`+=` as `*=`, which never reached the cap) unseen: every test forwarded one request.
#[test]
fn a_request_timer_hands_on_the_oldest_requests_up_to_one_batchs_bytes() {
    let mut c = two_to_a_batch();
    c.isolate(1);
    for n in 1..=5 {
        c.input(
            1,
            Input::ClientRequest(c.request_sized(n, TWO_KIB_OPERATION)),
        );
    }
    c.run();
    c.heal();
    assert_eq!(c.replica(1).pending_requests(), 5);
    c.log[1].clear();
    c.fire(1, TimerKind::Request);
    let forwarded: Vec<u64> = c
        .sent(1, Kind::Request)
        .iter()
        .filter_map(|m| match m.value() {
            Message::Request(r) => Some(r.nonce),
            _ => None,
        })
        .collect();
    assert_eq!(
        forwarded,
        vec![1, 2],
        "the two oldest fill one batch's bytes"
    );
    assert_eq!(
        relayed(&c, 1).0,
        Vec::<usize>::new(),
        "and no relay of more"
    );
    for i in 0..4 {
        assert_eq!(c.executed_requests(i), 2, "replica {i}");
    }
}

/// A turn's relay is cut into chunks of at most `max_batch_bytes`: requests that fill a chunk
/// exactly go together, one byte more starts the next chunk, and a chunk of one request goes
/// as the client's own envelope. cargo-mutants (consensus shard 5) left the cut's comparison,
/// its sum and the chunk's byte count unseen: every relay test stayed under the cap.
#[test]
fn a_turns_relay_is_cut_at_the_batch_byte_cap() {
    let mut c = two_to_a_batch();
    let exact: Vec<Signed<Request>> = (1..=5)
        .map(|n| c.request_sized(n, TWO_KIB_OPERATION))
        .collect();
    assert!(
        exact.iter().all(|r| limits::request_bytes(r) == 2048),
        "two requests fill a chunk exactly"
    );
    turn(
        &mut c,
        1,
        exact.into_iter().map(Input::ClientRequest).collect(),
    );
    assert_eq!(relayed(&c, 1), (vec![2, 2], 1), "2 + 2 + the fifth alone");
    let mut c2 = Cluster::new_with(4, 128, |cfg| {
        cfg.max_request_bytes = 2048;
        cfg.max_batch_bytes = 4095;
        cfg.max_window_bytes = 64 * 1024;
    });
    let over: Vec<Input> = (1..=3)
        .map(|n| Input::ClientRequest(c2.request_sized(n, TWO_KIB_OPERATION)))
        .collect();
    turn(&mut c2, 1, over);
    assert_eq!(relayed(&c2, 1), (vec![], 3), "a byte short: each alone");
    for i in 0..4 {
        assert_eq!(c.executed_requests(i), 5, "replica {i}");
        assert_eq!(c2.executed_requests(i), 3, "replica {i}");
    }
}

/// A backup holding a request whose signer the application barred since it was admitted
/// forgets it on its next status tick, so its request timer, firing later, neither relays it
/// again nor suspects the primary: no primary may ever propose it (the backups would refuse
/// the batch), and waiting for it stalled view after view (simulator seed 33 at n = 7, a
/// removed validator's own requests). cargo-mutants found `forget_unorderable` emptied with
/// every fast test passing: `ChainApp` ordered every signer until it learnt to bar one.
#[test]
fn a_pending_request_whose_signer_was_barred_is_forgotten_and_suspects_nobody() {
    let forgotten = "pending request whose signer the ledger no longer knows";
    let mut c = Cluster::new(4, 128);
    // Only backup 1 gets request 1: its relay is lost.
    c.drop_kinds.insert(Kind::Request);
    c.input(1, Input::ClientRequest(c.request(1)));
    c.run();
    c.drop_kinds.clear();
    assert_eq!(c.replica(1).pending_requests(), 1);
    assert!(c.armed(1, TimerKind::Request).is_some());

    // The client's next request bars the client itself; every replica executes it.
    let bar = c.request_with(2, ChainApp::bar_operation(&c.client_key()));
    c.input(0, Input::ClientRequest(bar));
    c.run();
    for i in 0..4 {
        assert_eq!(c.executed_requests(i), 1, "replica {i}");
    }
    assert_eq!(c.replica(1).pending_requests(), 1, "request 1 still waits");
    assert_eq!(c.replica(1).dropped().get(forgotten), None);

    c.fire(1, TimerKind::Status);
    assert_eq!(c.replica(1).pending_requests(), 0);
    assert_eq!(c.replica(1).dropped().get(forgotten), Some(&1));
    let relays_before = c.broadcasts(1, Kind::Request) + c.broadcasts(1, Kind::Relay);
    c.fire_if_armed(1, TimerKind::Request);
    c.run();
    assert_eq!(
        c.broadcasts(1, Kind::Request) + c.broadcasts(1, Kind::Relay),
        relays_before,
        "nothing relayed again"
    );
    assert_eq!(c.replica(1).suspecting(), None);
    assert_eq!(c.replica(1).view(), View(0));

    // A barred signer's new request is refused at the door.
    c.input(1, Input::ClientRequest(c.request(3)));
    assert_eq!(c.replica(1).pending_requests(), 0);
}
