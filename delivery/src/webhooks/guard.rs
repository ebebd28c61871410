//! The SSRF guard: a webhook connects only to public addresses (see
//! `rapat_domain::webhook::is_public_address`) unless the deployment allows
//! private ones. Enforced where the connection is made: the HTTP client resolves
//! every host through [`PublicOnly`], which drops private addresses from the
//! answer, so a name that resolved to a public address at registration and to a
//! private one now (DNS rebinding) is refused at the moment of sending; an
//! address literal in the URL is checked by [`check_literal`] before the request.

use std::error::Error as StdError;
use std::net::SocketAddr;

use rapat_domain::webhook::{Host, WebhookUrl, is_public_address};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a URL's host is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves only to private, loopback or otherwise non-public addresses (RAPAT_WEBHOOK_ALLOW_PRIVATE=true allows them)"
)]
pub struct PrivateAddress {
    pub host: String,
}

/// Resolves with the system resolver, keeping public addresses only unless
/// `allow_private`.
#[derive(Clone, Copy, Debug)]
pub struct PublicOnly {
    pub allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses = resolve(&host, 0, allow_private)
                .await
                .map_err(|error| -> Box<dyn StdError + Send + Sync> { Box::new(error) })?;
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Private(#[from] PrivateAddress),
}

/// The addresses of `host` a webhook may go to.
pub async fn resolve(host: &str, port: u16, allow_private: bool) -> Result<Vec<SocketAddr>, ResolveError> {
    let found = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ResolveError::Lookup { host: host.to_owned(), source })?;
    let allowed: Vec<SocketAddr> = found.filter(|address| allow_private || is_public_address(address.ip())).collect();
    if allowed.is_empty() {
        return Err(PrivateAddress { host: host.to_owned() }.into());
    }
    Ok(allowed)
}

/// Refuses a URL whose host is a non-public address literal (names are checked
/// when they are resolved).
pub fn check_literal(url: &WebhookUrl, allow_private: bool) -> Result<(), PrivateAddress> {
    match url.host() {
        Host::Address(address) if !allow_private && !is_public_address(address) => {
            Err(PrivateAddress { host: address.to_string() })
        }
        _ => Ok(()),
    }
}

/// Checks a URL at registration: its literal address, or every address its name
/// resolves to now.
pub async fn check_url(url: &WebhookUrl, allow_private: bool) -> Result<(), ResolveError> {
    check_literal(url, allow_private)?;
    if let Host::Name(name) = url.host() {
        resolve(&name, url.port(), allow_private).await?;
    }
    Ok(())
}
