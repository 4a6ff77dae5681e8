//! Why Kraken cannot be reached at start-up, in words a person can act on: the name lookup, the
//! TCP connection or the TLS handshake. A TLS failure is read from the failed call's error chain
//! (rustls says why); the others are told apart by trying the lookup and the connection once
//! more, whatever the HTTP or WebSocket library made of them.

use std::error::Error;
use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;

use tokio::net::{TcpStream, lookup_host};
use tokio::time::timeout;

use super::consts::REQUEST_TIMEOUT;
use super::error::KrakenError;

/// What stands between us and a Kraken endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The host name does not resolve: no network, no DNS server, or a typo in the URL.
    Dns {
        host: String,
    },
    /// Nothing listens there (or a firewall says so).
    Refused {
        addr: String,
    },
    /// Nothing answers there (a firewall that drops, no route).
    TimedOut {
        addr: String,
    },
    Tls {
        host: String,
        reason: String,
    },
    /// Connected, yet the call failed: its own error.
    Other(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Dns { host } => write!(f, "DNS lookup failed for {host}"),
            Cause::Refused { addr } => write!(f, "connection refused by {addr}"),
            Cause::TimedOut { addr } => write!(f, "connection to {addr} timed out"),
            Cause::Tls { host, reason } => write!(f, "TLS handshake with {host} failed: {reason}"),
            Cause::Other(message) => f.write_str(message),
        }
    }
}

/// The rustls error in an error's chain, when the failure was the TLS handshake.
pub fn tls_failure(error: &(dyn Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // `io::Error::source` skips the error it wraps (tokio-rustls wraps rustls' in one,
        // hyper-rustls that in another): go through the wrapped one instead.
        next = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// Why a REST call to `base_url` failed, when the network is to blame (`None` when Kraken, or
/// something in front of it, answered).
pub async fn rest_cause(base_url: &str, error: &KrakenError) -> Option<Cause> {
    match error {
        KrakenError::Tls(reason) => Some(Cause::Tls {
            host: endpoint(base_url).map_or_else(|| base_url.to_owned(), |(host, _)| host),
            reason: reason.clone(),
        }),
        KrakenError::Transport(_) | KrakenError::Timeout => Some(probe(base_url, error.to_string()).await),
        _ => None,
    }
}

/// Why connecting to `url` failed with `error`.
pub async fn connect_cause(url: &str, error: &(dyn Error + 'static)) -> Cause {
    match tls_failure(error) {
        Some(reason) => Cause::Tls {
            host: endpoint(url).map_or_else(|| url.to_owned(), |(host, _)| host),
            reason,
        },
        None => probe(url, error.to_string()).await,
    }
}

/// Looks `url`'s host up and connects to it once; `failure` is the answer when both work.
async fn probe(url: &str, failure: String) -> Cause {
    let Some((host, port)) = endpoint(url) else {
        return Cause::Other(failure);
    };
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addrs: Vec<SocketAddr> = match timeout(REQUEST_TIMEOUT, lookup_host((host.as_str(), port))).await {
        Ok(Ok(found)) => found.collect(),
        _ => Vec::new(),
    };
    if addrs.is_empty() {
        return Cause::Dns { host };
    }
    match timeout(REQUEST_TIMEOUT, TcpStream::connect(&addrs[..])).await {
        Err(_) => Cause::TimedOut { addr },
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => Cause::Refused { addr },
        Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => Cause::TimedOut { addr },
        Ok(Err(e)) => Cause::Other(format!("connection to {addr} failed: {e}")),
        Ok(Ok(_)) => Cause::Other(failure),
    }
}

/// The host (IPv6 without brackets) and port of an http(s) or ws(s) URL.
fn endpoint(url: &str) -> Option<(String, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Some((host, parsed.port_or_known_default()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lookup_and_connection_failures_are_told_apart() {
        // The .invalid top-level domain never resolves (RFC 6761).
        let cause = probe("https://nonexistent.invalid/0/public", "x".into()).await;
        assert_eq!(cause.to_string(), "DNS lookup failed for nonexistent.invalid");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let cause = probe(&format!("ws://127.0.0.1:{port}/v2"), "x".into()).await;
        assert_eq!(cause.to_string(), format!("connection refused by 127.0.0.1:{port}"));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cause = probe(&url, "HTTP went wrong".into()).await;
        assert_eq!(
            cause,
            Cause::Other("HTTP went wrong".into()),
            "reachable: the call's own error"
        );
    }

    #[test]
    fn a_tls_failure_is_found_inside_io_errors() {
        let tls = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let io = std::io::Error::new(ErrorKind::InvalidData, tls.clone());
        assert_eq!(tls_failure(&io), Some(tls.to_string()));
        let twice = std::io::Error::other(io);
        assert_eq!(tls_failure(&twice), Some(tls.to_string()), "as hyper-rustls wraps it");
        let plain = std::io::Error::new(ErrorKind::ConnectionReset, "reset");
        assert_eq!(tls_failure(&plain), None);
    }
}
