//! Client requests received in one turn reach the peers in one `Relay`, and a primary does not
//! relay what its own pre-prepare already carries.

use super::tests::Cluster;
use super::*;

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
                    let m = crate::net::open(&crate::net::encode_envelope(env), &c.dir)
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
fn a_primary_relays_only_what_it_could_not_propose_yet() {
    // One batch in flight: the first request is proposed at once, the other two wait.
    let mut c = Cluster::new(4, 128);
    let inputs = (1..=3)
        .map(|n| Input::ClientRequest(c.request(n)))
        .collect();
    turn(&mut c, 0, inputs);
    assert_eq!(relayed(&c, 0), (vec![2], 0));
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
