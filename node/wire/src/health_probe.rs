//! `scbe-node health` and `scbe-agent health`: a daemon's own gRPC health service
//! (`grpc.health.v1`), asked over the link the daemon itself serves (TLS pinned to its own key,
//! or loopback plaintext), for container health checks and Kubernetes exec probes (whose
//! built-in gRPC probe cannot speak TLS).

use std::net::SocketAddr;
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use std::process::ExitCode;

use scbe_core::crypto::PublicKey;

use crate::tls::{Link, Transport};

/// Why the daemon is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot reach {addr}: {detail}")]
    Unreachable { addr: String, detail: String },
    #[error("{addr} answers {status:?}")]
    NotServing { addr: String, status: ServingStatus },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// Where a daemon listening on `listen` is reached from its own host: loopback when it listens
/// on every interface.
pub fn own_address(listen: SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        if listen.is_ipv4() {
            "127.0.0.1".to_string()
        } else {
            "[::1]".to_string()
        }
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    format!("{ip}:{}", listen.port())
}

/// Asks the health service at `addr` over `link` about the whole server ("").
pub async fn probe(link: &Link, addr: &str, timeout: Duration) -> Result<(), ProbeError> {
    let ask = async {
        let unreachable = |detail: String| ProbeError::Unreachable {
            addr: addr.to_string(),
            detail,
        };
        let ch = link.connect_to(addr).await.map_err(unreachable)?;
        match serving(ch).await {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(status) => Err(ProbeError::NotServing {
                addr: addr.to_string(),
                status,
            }),
            Err(s) => Err(unreachable(format!("{:?}: {}", s.code(), s.message()))),
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| {
            Err(ProbeError::Timeout {
                addr: addr.to_string(),
                timeout,
            })
        })
}

/// What the health service on `ch` says of the whole server (""). An answer also proves the
/// server accepted the connection: under TLS 1.3 a client's handshake completes before the
/// server has checked the client's certificate, so a connection the server refused looks made
/// until something is read from it (`scbe_validator`'s peer links ask this before streaming).
/// No deadline of its own: callers bound it.
pub async fn serving(ch: tonic::transport::Channel) -> Result<ServingStatus, tonic::Status> {
    let reply = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    Ok(reply.status())
}

/// The `health` subcommand's body for a daemon with this `transport`, own `key` and `listen`
/// address: asks it over TLS pinned to its own key, presenting no certificate (an agent's
/// server accepts only validators' ones). Exit 0 when serving, 1 (with why) otherwise.
pub fn probe_own(transport: &Transport, key: PublicKey, listen: SocketAddr, who: &str) -> ExitCode {
    let link = match transport.anonymous_link_to(key, who) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match crate::daemon::runtime(Some(1)) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let addr = own_address(listen);
    match rt.block_on(probe(&link, &addr, Duration::from_secs(5))) {
        Ok(()) => {
            println!("SERVING {addr}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
