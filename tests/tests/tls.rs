//! TLS on every link of a real cluster (4 `scbe-node` and 2 `scbe-agent` processes on loopback,
//! started by the simulator's `LocalCluster` with its default: TLS). Each link refuses plaintext
//! and a certificate for a key outside its set (an agent completes the handshake with any key
//! and refuses its orders and health streams); the `scbe` CLI checks the validator's
//! certificate against the genesis, never trusting it on first use.

use std::process::Command;
use std::time::Duration;

use scbe_core::crypto::Keypair;
use scbe_proto::v1 as pb;
use scbe_sim::local::LocalOptions;
use scbe_tests::{fleet_options, within, Harness};
use scbe_wire::tls::{Dial, Link, PinnedKeys, Transport};

fn stranger() -> Transport {
    Transport::tls(&Keypair::from_label("a key no genesis lists")).expect("identity")
}

/// Connects through `link` to `addr` now; the error with all its causes. Every network step
/// here runs `within` a deadline that names it: a rare hang in CI (2026-12-06) left no trace
/// of which call it awaited.
async fn connect(link: &Link, addr: &str) -> Result<tonic::transport::Channel, String> {
    within(&format!("connecting to {addr}"), link.connect_to(addr)).await
}

async fn status(ch: tonic::transport::Channel) -> Result<pb::StatusReply, tonic::Status> {
    let mut client = pb::governance_client::GovernanceClient::new(ch);
    let call = client.status(pb::StatusRequest::default());
    within("Status", call).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_link_refuses_plaintext_and_keys_outside_its_set() {
    let mut h = Harness::start(LocalOptions {
        agents: 2,
        ..fleet_options()
    })
    .await;
    h.status(0, None).await; // serving, over TLS
    let v0 = h.cluster.nodes[0].addr.to_string();
    let a0 = h.cluster.agents[0].addr.to_string();

    // Requester -> validator: plaintext refused.
    let plain = connect(&Link::Plaintext, &v0).await;
    let refused = match plain {
        Ok(ch) => status(ch).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a plaintext call to a TLS validator must fail");

    // Requester -> validator: a server key other than the one pinned is refused by the client,
    // naming the key it saw.
    let wrong_pin = Dial::tls(
        &v0,
        PinnedKeys::new([h.cluster.validator_keys[1]], "validator 1"),
    )
    .expect("dial");
    let e = within("dialing with the wrong pin", wrong_pin.connect())
        .await
        .err()
        .map(|e| e.to_string());
    let e = e.unwrap_or_default();
    assert!(
        e.contains(&h.cluster.validator_keys[0].to_hex()) && e.contains("is not validator 1"),
        "{e}"
    );

    // Validator <-> validator: a certificate for a key outside the validator set is refused at
    // the handshake; without a certificate the consensus stream is refused before it is read.
    let to_v0 = |t: Transport| {
        t.link_to(h.cluster.validator_keys[0], "validator 0")
            .expect("link")
    };
    let outsider = match connect(&to_v0(stranger()), &v0).await {
        Ok(ch) => status(ch).await.map(|_| ()).map_err(|s| s.to_string()),
        Err(e) => Err(e),
    };
    assert!(
        outsider.is_err(),
        "a stranger's certificate must be refused"
    );
    let anonymous = within("an anonymous channel", h.cluster.channel(0))
        .await
        .expect("anonymous TLS is fine for reads");
    status(anonymous.clone())
        .await
        .expect("a requester reads status");
    let mut consensus = pb::consensus_client::ConsensusClient::new(anonymous);
    let stream = within(
        "an anonymous consensus stream",
        consensus.stream(tokio_stream::iter(vec![])),
    )
    .await
    .expect_err("no validator certificate");
    assert_eq!(stream.code(), tonic::Code::Unauthenticated, "{stream:?}");
    let ch = within("a second anonymous channel", h.cluster.channel(0))
        .await
        .expect("ch");
    let mut orders = pb::orders_client::OrdersClient::new(ch);
    let endorse = within(
        "an anonymous endorsement",
        orders.endorse(pb::EndorseRequest::default()),
    )
    .await
    .expect_err("no validator certificate");
    assert_eq!(endorse.code(), tonic::Code::Unauthenticated, "{endorse:?}");

    // Validator -> agent: plaintext refused; a stranger's certificate, or none, gets no orders
    // or health streams through; Describe answers anyone.
    let plain = connect(&Link::Plaintext, &a0).await;
    let plain_answered = match plain {
        Ok(ch) => {
            let mut agent = pb::fleet_agent_client::FleetAgentClient::new(ch);
            within(
                "a plaintext Describe",
                agent.describe(pb::DescribeRequest {}),
            )
            .await
            .is_ok()
        }
        Err(_) => false,
    };
    assert!(!plain_answered, "a plaintext call to a TLS agent must fail");
    // A stranger's certificate completes the handshake (an agent admits a re-keyed validator
    // once its call's chain proves the key), but with no chain that proves it, its orders and
    // health streams are refused.
    let agent_key = h.cluster.agent_keys[0];
    let to_agent = stranger().link_to(agent_key, "agent-00").expect("link");
    let mut outsider = pb::fleet_agent_client::FleetAgentClient::new(
        connect(&to_agent, &a0)
            .await
            .expect("any key completes the handshake"),
    );
    refuses_orders_and_health(&mut outsider, tonic::Code::PermissionDenied).await;
    let anonymous = Link::Tls(
        scbe_wire::tls::client_config(None, PinnedKeys::new([agent_key], "agent-00"))
            .expect("config"),
    );
    let mut agent = pb::fleet_agent_client::FleetAgentClient::new(
        connect(&anonymous, &a0).await.expect("anonymous TLS"),
    );
    let d = within(
        "an anonymous Describe",
        agent.describe(pb::DescribeRequest {}),
    )
    .await
    .expect("Describe answers anyone")
    .into_inner();
    assert_eq!(d.agent, "agent-00");
    refuses_orders_and_health(&mut agent, tonic::Code::Unauthenticated).await;
    // ... and the validators themselves reach it: its health is in the summary.
    h.wait_summary(0, "agent-00 reports", Duration::from_secs(60), |s| {
        s.agents
            .iter()
            .any(|a| a.id == "agent-00" && a.health.is_some())
    })
    .await;

    // The daemons' own health checks (containers, Kubernetes exec probes): grpc.health.v1 over
    // TLS pinned to the daemon's own key; exit 1 once it is gone.
    let probe = |bin: &str, config: &std::path::Path| {
        let o = Command::new(scbe_tests::workspace_bin(bin))
            .args(["health", "--config"])
            .arg(config)
            .output()
            .expect("runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), text)
    };
    // Polled: agent-01 may still be starting (only agent-00 was waited for above).
    let serving = |bin: &str, config: &std::path::Path| {
        let start = std::time::Instant::now();
        loop {
            let (code, text) = probe(bin, config);
            if code == Some(0) || start.elapsed() > scbe_tests::DEADLINE {
                return (code, text);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (code, text) = serving("scbe-node", &h.cluster.nodes[0].config);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("SERVING"), "{text}");
    let (code, text) = serving("scbe-agent", &h.cluster.agents[1].config);
    assert_eq!(code, Some(0), "{text}");
    h.cluster.kill_agent(1);
    let (code, text) = probe("scbe-agent", &h.cluster.agents[1].config);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("unhealthy"), "{text}");
}

fn scbe(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut c = Command::new(scbe_tests::workspace_bin("scbe"));
    c.args(args).env_remove("SCBE_GENESIS");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("scbe runs");
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_checks_the_validators_certificate_against_the_cluster_keys() {
    let mut h = Harness::start(scbe_tests::fast()).await;
    h.status(0, None).await;
    let node = ("SCBE_NODE", h.cluster.url(0));
    assert!(node.1.starts_with("https://"), "{}", node.1);
    let genesis = (
        "SCBE_GENESIS",
        h.cluster.genesis_path().display().to_string(),
    );

    let (code, text) = scbe(&["status"], &[node.clone(), genesis]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("view 0"), "{text}");

    // Nothing to check the certificate against: refused before any call, saying what to give.
    let (code, text) = scbe(&["status"], std::slice::from_ref(&node));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--genesis"), "{text}");

    // The right key alone works; another key is refused, naming the key the server showed.
    let right = h.cluster.validator_keys[0].to_hex();
    let (code, text) = scbe(
        &["status", "--validator-key", &right],
        std::slice::from_ref(&node),
    );
    assert_eq!(code, Some(0), "{text}");
    let wrong = h.cluster.validator_keys[2].to_hex();
    let (code, text) = scbe(&["status", "--validator-key", &wrong], &[node]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains(&right), "names the key it refused: {text}");

    // A plaintext URL to a TLS validator does not get an answer.
    let plain = ("SCBE_NODE", h.cluster.url(0).replace("https://", "http://"));
    let (code, text) = scbe(&["status"], &[plain]);
    assert_ne!(code, Some(0), "{text}");
}

/// The agent behind `agent` refuses this caller's orders and health streams with `code`.
async fn refuses_orders_and_health(
    agent: &mut pb::fleet_agent_client::FleetAgentClient<tonic::transport::Channel>,
    code: tonic::Code,
) {
    let order = within("an order", agent.deploy(pb::SignedOrder::default()))
        .await
        .expect_err("orders only from a validator's certificate");
    assert_eq!(order.code(), code, "{order:?}");
    let health = within(
        "a health stream",
        agent.watch_health(pb::HealthRequest::default()),
    )
    .await
    .expect_err("health streams only to a validator's certificate");
    assert_eq!(health.code(), code, "{health:?}");
}
