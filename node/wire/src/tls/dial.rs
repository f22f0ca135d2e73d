//! A client's view of one validator: its URL, and the keys its certificate must carry.

use tonic::transport::Channel;

use super::{client_config, client_config_trusting, Link, PinnedKeys, TlsError, Trust};

/// Why a validator URL cannot be dialled as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("{url} is not a validator URL: use https://HOST:PORT (or http://HOST:PORT for a plaintext test cluster on loopback)")]
    BadUrl { url: String },
    #[error("{url} is TLS, and its certificate is checked against the cluster's keys, never trusted on first use: give --genesis FILE (the cluster's genesis.toml; SCBE_GENESIS) or --validator-key HEX (SCBE_VALIDATOR_KEY)")]
    NothingToPin { url: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
}

/// A validator to call: `https://` is TLS with the server's key pinned, `http://` plaintext.
#[derive(Clone)]
pub struct Dial {
    url: String,
    addr: String,
    link: Link,
    /// The keys a TLS dial accepts (shared with its link's verifier).
    pins: Option<PinnedKeys>,
    /// How a TLS server's certificate names its key.
    trust: Trust,
}

impl Dial {
    /// `validators`: the keys the server's certificate may carry (from the genesis, or the one
    /// key an operator gave); needed for `https://`.
    pub fn new(url: &str, validators: Option<PinnedKeys>) -> Result<Self, DialError> {
        Self::new_trusting(url, validators, Trust::SelfSigned)
    }

    /// [`Dial::new`] for a cluster whose certificates a CA issued (`trust`).
    pub fn new_trusting(
        url: &str,
        validators: Option<PinnedKeys>,
        trust: Trust,
    ) -> Result<Self, DialError> {
        let bad = || DialError::BadUrl {
            url: url.to_string(),
        };
        let (tls, addr) = if let Some(a) = url.strip_prefix("https://") {
            (true, a)
        } else if let Some(a) = url.strip_prefix("http://") {
            (false, a)
        } else {
            return Err(bad());
        };
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') || !addr.contains(':') {
            return Err(bad());
        }
        let (link, pins) = if tls {
            let keys = validators.ok_or_else(|| DialError::NothingToPin {
                url: url.to_string(),
            })?;
            (
                Link::Tls(client_config_trusting(None, trust.clone(), keys.clone())?),
                Some(keys),
            )
        } else {
            (Link::Plaintext, None)
        };
        Ok(Dial {
            url: url.to_string(),
            addr: addr.to_string(),
            link,
            pins,
            trust,
        })
    }

    /// Plaintext to `host:port` (a test cluster on loopback).
    pub fn plaintext(addr: &str) -> Self {
        Dial {
            url: format!("http://{addr}"),
            addr: addr.to_string(),
            link: Link::Plaintext,
            pins: None,
            trust: Trust::SelfSigned,
        }
    }

    /// TLS to `host:port`, accepting only a certificate for one of `keys`.
    pub fn tls(addr: &str, keys: PinnedKeys) -> Result<Self, TlsError> {
        Ok(Dial {
            url: format!("https://{addr}"),
            addr: addr.to_string(),
            link: Link::Tls(client_config(None, keys.clone())?),
            pins: Some(keys),
            trust: Trust::SelfSigned,
        })
    }

    /// Another validator at `addr` (`host:port`), dialled the same way (same scheme, same
    /// pinned keys): how `scbe status` asks the peers of the validator it asked.
    pub fn to(&self, addr: &str) -> Dial {
        let scheme = if self.link.is_tls() { "https" } else { "http" };
        Dial {
            url: format!("{scheme}://{addr}"),
            addr: addr.to_string(),
            link: self.link.clone(),
            pins: self.pins.clone(),
            trust: self.trust.clone(),
        }
    }

    /// Another validator at `addr` dialled the same way, but accepting a certificate for any
    /// key ([`PinnedKeys::any_key`]): only to ask for the chain of validator sets, which is
    /// checked from the genesis (every validator of the genesis may have been re-keyed since).
    pub fn to_any_key(&self, addr: &str) -> Result<Dial, TlsError> {
        if !self.link.is_tls() {
            return Ok(self.to(addr));
        }
        let keys = PinnedKeys::any_key("a validator, to ask for its chain of validator sets");
        Ok(Dial {
            url: format!("https://{addr}"),
            addr: addr.to_string(),
            link: Link::Tls(client_config_trusting(
                None,
                self.trust.clone(),
                keys.clone(),
            )?),
            pins: Some(keys),
            trust: self.trust.clone(),
        })
    }

    /// The keys this dial (and every [`Self::to`] made from it) accepts under TLS; replacing
    /// them applies from the next handshake.
    pub fn pins(&self) -> Option<&PinnedKeys> {
        self.pins.as_ref()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connects now; a refused certificate is named in the error.
    pub async fn connect(&self) -> Result<Channel, DialError> {
        self.link
            .connect_to(&self.addr)
            .await
            .map_err(|detail| DialError::Unreachable {
                url: self.url.clone(),
                detail,
            })
    }
}
