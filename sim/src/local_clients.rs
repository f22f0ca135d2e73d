//! How clients reach a [`LocalCluster`]: validators over TLS pinned to the genesis keys (or
//! plaintext, when the cluster was made so), agents with validator 0's certificate (agents give
//! orders and health streams only to validators).

use std::time::Duration;

use scbe_core::crypto::PublicKey;
use scbe_wire::fleet_client::{self, FleetClientError};
use scbe_wire::key_file::read_key_file;
use scbe_wire::tls::{Dial, DialError, Link, PinnedKeys, Transport};
use tonic::transport::Channel;

use crate::local::{LocalCluster, LocalError};

impl LocalCluster {
    /// Validator `i`'s URL, as `scbe --node` takes it.
    pub fn url(&self, i: usize) -> String {
        let scheme = if self.plaintext { "http" } else { "https" };
        format!("{scheme}://{}", self.nodes[i].addr)
    }

    /// The cluster's genesis file (what `scbe --genesis` takes to check certificates).
    pub fn genesis_path(&self) -> std::path::PathBuf {
        self.dir.join(crate::local::GENESIS)
    }

    /// The keys a client accepts from this cluster's validators.
    pub fn validators_pinned(&self) -> PinnedKeys {
        PinnedKeys::new(
            self.validator_keys.iter().copied(),
            "a validator of this local cluster",
        )
    }

    /// How a requester reaches validator `i`.
    pub fn dial(&self, i: usize) -> Dial {
        let addr = self.nodes[i].addr.to_string();
        if self.plaintext {
            return Dial::plaintext(&addr);
        }
        let key = self.validator_keys[i];
        // A TLS client config from a valid key cannot fail to build.
        Dial::tls(&addr, PinnedKeys::new([key], format!("validator {i}")))
            .unwrap_or_else(|_| Dial::plaintext(&addr))
    }

    /// A channel to validator `i` (connected now).
    pub async fn channel(&self, i: usize) -> Result<Channel, DialError> {
        self.dial(i).connect().await
    }

    /// Validator `j`'s side of a link (its certificate), or plaintext.
    pub fn as_validator(&self, j: usize) -> Result<Transport, LocalError> {
        if self.plaintext {
            return Ok(Transport::Plaintext);
        }
        if j == 0 {
            if let Some(t) = self.validator0.get() {
                return Ok(t.clone());
            }
        }
        let key = read_key_file(&self.dir.join(format!("keys/node{j}.key")))?;
        let t = Transport::tls(&key)?;
        if j == 0 {
            let _ = self.validator0.set(t.clone());
        }
        Ok(t)
    }

    /// A link to the agent holding `key`, as validator 0.
    pub fn agent_link(&self, key: PublicKey) -> Result<Link, LocalError> {
        Ok(self.as_validator(0)?.link_to(key, "the agent's key")?)
    }

    /// A channel to validator `i` as validator `j` would open it (its certificate: the
    /// peer-only services answer), connected now.
    pub async fn peer_channel(&self, i: usize, j: usize) -> Result<Channel, DialError> {
        let unreachable = |detail: String| DialError::Unreachable {
            url: self.url(i),
            detail,
        };
        let link = self
            .as_validator(j)
            .and_then(|t| Ok(t.link_to(self.validator_keys[i], format!("validator {i}"))?))
            .map_err(|e| unreachable(e.to_string()))?;
        link.connect_to(&self.nodes[i].addr.to_string())
            .await
            .map_err(unreachable)
    }

    /// A lazily connecting channel to genesis agent `i`, as validator 0; calls time out after
    /// `timeout`.
    pub fn agent_channel(&self, i: usize, timeout: Duration) -> Result<Channel, FleetClientError> {
        let link =
            self.agent_link(self.agent_keys[i])
                .map_err(|e| FleetClientError::BadAddress {
                    addr: self.agents[i].addr.to_string(),
                    detail: e.to_string(),
                })?;
        fleet_client::channel(&link, &self.agents[i].addr.to_string(), timeout)
    }
}
