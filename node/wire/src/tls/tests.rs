//! Handshakes between real sockets on loopback: pinned keys accepted, others refused.

use scbe_core::crypto::Keypair;
use tokio::net::TcpListener;

use super::*;

fn identity(label: &str) -> (Keypair, TlsIdentity) {
    let k = Keypair::from_label(label);
    let id = TlsIdentity::from_keypair(&k).expect("identity");
    (k, id)
}

#[test]
fn a_certificate_carries_the_key_it_was_made_from() {
    let (k, id) = identity("v0");
    assert_eq!(certificate_key(id.certificate()).expect("key"), k.public());
    let pinned = PinnedKeys::new([Keypair::from_label("v1").public()], "a validator");
    match pinned.check(id.certificate()) {
        Err(TlsError::NotPinned { key, expected }) => {
            assert_eq!(key, k.public().to_hex());
            assert_eq!(expected, "a validator");
        }
        other => panic!("expected NotPinned, got {other:?}"),
    }
}

/// A health server on loopback under `auth`; returns its address and the peer identities
/// the server saw (through the request extensions, as services read them).
async fn serve(
    server: &TlsIdentity,
    auth: ClientAuth,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<PeerIdentity>>,
) {
    use tonic_health::pb::health_server::{Health, HealthServer};
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
    struct Probe(tokio::sync::mpsc::UnboundedSender<Option<PeerIdentity>>);
    #[tonic::async_trait]
    impl Health for Probe {
        async fn check(
            &self,
            r: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
            let _ = self.0.send(r.extensions().get::<PeerIdentity>().cloned());
            Ok(tonic::Response::new(HealthCheckResponse { status: 1 }))
        }
        type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, tonic::Status>>;
        async fn watch(
            &self,
            _r: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
            Err(tonic::Status::unimplemented("watch"))
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = server_config(server, auth).expect("server config");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(Probe(tx)))
            .serve_with_incoming(incoming(
                listener,
                Some(ServerTls {
                    config,
                    trust: server.trust().clone(),
                }),
            )),
    );
    (addr, rx)
}

async fn check(link: &Link, addr: std::net::SocketAddr) -> Result<(), String> {
    let ch = link
        .connect(link.endpoint(&addr.to_string()).expect("endpoint"))
        .await
        .map_err(|e| error_chain(&e))?;
    tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|s| format!("{s:?}"))
}

#[tokio::test]
async fn mutual_tls_accepts_a_pinned_key_and_tells_the_service_who_called() {
    let (vk0, v0) = identity("v0");
    let (vk1, v1) = identity("v1");
    let validators = PinnedKeys::new([vk0.public(), vk1.public()], "a validator");
    let (addr, mut seen) = serve(&v0, ClientAuth::Required(validators.clone())).await;
    let link = Link::Tls(client_config(Some(&v1), validators).expect("client"));
    check(&link, addr)
        .await
        .expect("a validator reaches a validator");
    let peer = seen
        .recv()
        .await
        .flatten()
        .expect("identity in the extensions");
    assert_eq!(peer.key, Some(vk1.public()));
    assert!(peer.remote.ip().is_loopback());
}

#[tokio::test]
async fn a_client_certificate_outside_the_set_is_refused_and_so_is_none_where_required() {
    let (vk0, v0) = identity("v0");
    let (_, stranger) = identity("stranger");
    let validators = PinnedKeys::new([vk0.public()], "a validator");
    let (addr, _seen) = serve(&v0, ClientAuth::Required(validators.clone())).await;
    let with_stranger = Link::Tls(client_config(Some(&stranger), validators.clone()).expect("c"));
    assert!(check(&with_stranger, addr).await.is_err());
    let anonymous = Link::Tls(client_config(None, validators).expect("c"));
    assert!(check(&anonymous, addr).await.is_err());
}

/// An agent's server: any key may connect, and the service learns which one it is (it then
/// decides what that key may do); a client without a certificate is anonymous.
#[tokio::test]
async fn an_identified_server_admits_any_key_and_names_it() {
    let (vk0, v0) = identity("v0");
    let (stranger_key, stranger) = identity("re-keyed validator");
    let (addr, mut seen) = serve(&v0, ClientAuth::Identified).await;
    let pinned = PinnedKeys::new([vk0.public()], "the agent");
    let link = Link::Tls(client_config(Some(&stranger), pinned.clone()).expect("c"));
    check(&link, addr)
        .await
        .expect("any key completes the handshake");
    let peer = seen.recv().await.flatten().expect("identity");
    assert_eq!(peer.key, Some(stranger_key.public()));
    check(&Link::Tls(client_config(None, pinned).expect("c")), addr)
        .await
        .expect("anonymous over TLS");
    assert_eq!(seen.recv().await.flatten().expect("identity").key, None);
}

#[tokio::test]
async fn a_server_whose_key_is_not_pinned_is_refused_by_the_client() {
    let (_, impostor) = identity("impostor");
    let (addr, _seen) = serve(
        &impostor,
        ClientAuth::Optional(PinnedKeys::new([], "a requester")),
    )
    .await;
    let expected = PinnedKeys::new([Keypair::from_label("v0").public()], "validator 0");
    let link = Link::Tls(client_config(None, expected).expect("c"));
    let err = check(&link, addr).await.expect_err("refused");
    assert!(err.contains("is not validator 0"), "{err}");
}

#[tokio::test]
async fn an_anonymous_client_reaches_an_optional_server_and_plaintext_is_refused() {
    let (vk0, v0) = identity("v0");
    let (addr, mut seen) = serve(
        &v0,
        ClientAuth::Optional(PinnedKeys::new([vk0.public()], "a validator")),
    )
    .await;
    let pinned = PinnedKeys::new([vk0.public()], "validator 0");
    check(&Link::Tls(client_config(None, pinned).expect("c")), addr)
        .await
        .expect("anonymous over TLS");
    assert_eq!(seen.recv().await.flatten().expect("identity").key, None);
    assert!(
        check(&Link::Plaintext, addr).await.is_err(),
        "a plaintext call to a TLS server must fail"
    );
}

#[test]
fn plaintext_only_on_loopback() {
    let ok = [
        "127.0.0.1:7000",
        "[::1]:7000",
        "localhost:7001",
        "127.9.9.9:1",
    ];
    assert!(plaintext_on_loopback("tls.plaintext", ok.map(String::from)).is_ok());
    for bad in ["10.0.0.1:7000", "validator-2.scbe:7000", "0.0.0.0:7000"] {
        let e = plaintext_on_loopback("tls.plaintext", ["127.0.0.1:1".into(), bad.into()])
            .expect_err(bad)
            .to_string();
        assert!(e.contains("tls.plaintext") && e.contains(bad), "{e}");
    }
}

/// A certificate authority of an operator, and certificates it issues for nodes (a P-256 key,
/// the node's ed25519 key named in a URI SAN, valid for 127.0.0.1), written as PEM files.
struct Authority {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: tempfile::TempDir,
}

impl Authority {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "operators' CA");
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
                .expect("CA");
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("ca.pem");
        Authority { issuer, dir }
    }

    /// PEM files for a node whose ed25519 key is `named`; returns (cert, key, ca) paths.
    fn issue(
        &self,
        name: &str,
        named: &scbe_core::crypto::PublicKey,
    ) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![
            rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")),
            rcgen::SanType::URI(key_uri(named).try_into().expect("uri")),
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("issued");
        let (c, k) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("cert");
        std::fs::write(&k, key.serialize_pem()).expect("key");
        (c, k, self.dir.path().join("ca.pem"))
    }

    fn identity(&self, name: &str, node: &Keypair) -> TlsIdentity {
        let (c, k, ca) = self.issue(name, &node.public());
        TlsIdentity::from_pem_files(&c, &k, &ca, &node.public()).expect("identity")
    }
}

#[tokio::test]
async fn a_ca_issued_certificate_identifies_the_key_it_names() {
    let ca = Authority::new();
    let (v0, v1) = (Keypair::from_label("v0"), Keypair::from_label("v1"));
    let validators = PinnedKeys::new([v0.public(), v1.public()], "a validator");
    let server = ca.identity("v0", &v0);
    let (addr, mut seen) = serve(&server, ClientAuth::Required(validators.clone())).await;
    let client = ca.identity("v1", &v1);
    let link = Link::Tls(client_config(Some(&client), validators).expect("client"));
    check(&link, addr)
        .await
        .expect("a validator reaches a validator under the CA");
    let peer = seen.recv().await.flatten().expect("identity");
    assert_eq!(peer.key, Some(v1.public()), "the key the certificate names");

    // A server whose certificate names another key than the one pinned: refused.
    let only_v1 = PinnedKeys::new([v1.public()], "validator 1");
    let link = Link::Tls(client_config(Some(&client), only_v1).expect("client"));
    let e = check(&link, addr).await.expect_err("refused");
    assert!(e.contains("is not validator 1"), "{e}");
}

#[tokio::test]
async fn under_a_ca_a_self_signed_or_foreign_certificate_is_refused_whatever_key_it_claims() {
    let ca = Authority::new();
    let v0 = Keypair::from_label("v0");
    let v1 = Keypair::from_label("v1");
    let validators = PinnedKeys::new([v0.public(), v1.public()], "a validator");
    let (addr, _seen) = serve(
        &ca.identity("v0", &v0),
        ClientAuth::Required(validators.clone()),
    )
    .await;
    // Another CA vouching for v1's key.
    let other = Authority::new();
    let foreign = other.identity("v1", &v1);
    let link = Link::Tls(
        client_config_trusting(
            Some(&foreign),
            ca.identity("v1", &v1).trust().clone(),
            validators.clone(),
        )
        .expect("client"),
    );
    assert!(
        check(&link, addr).await.is_err(),
        "another CA's certificate"
    );
    // A self-signed certificate made from v1's real key: not issued by the CA.
    let own = TlsIdentity::from_keypair(&v1).expect("identity");
    let link = Link::Tls(
        client_config_trusting(
            Some(&own),
            ca.identity("v1b", &v1).trust().clone(),
            validators,
        )
        .expect("client"),
    );
    assert!(
        check(&link, addr).await.is_err(),
        "a self-signed certificate"
    );
}

#[test]
fn a_ca_certificate_for_another_key_is_refused_at_start_up() {
    let ca = Authority::new();
    let (v0, v1) = (Keypair::from_label("v0"), Keypair::from_label("v1"));
    let (c, k, root) = ca.issue("v1", &v1.public());
    let e = TlsIdentity::from_pem_files(&c, &k, &root, &v0.public())
        .expect_err("names v1, not v0")
        .to_string();
    assert!(
        e.contains(&v1.public().to_hex()) && e.contains(&v0.public().to_hex()),
        "{e}"
    );
}
