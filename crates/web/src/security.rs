//! Who may see and steer the dashboard. Loopback binds need nothing; any other bind needs a token,
//! which every route but the page itself then requires. Control requests must also prove they come
//! from our page (a custom header a cross-site form cannot send, and no cross-site origin), and
//! the Host header must name this server (no DNS rebinding onto a loopback dashboard).

use std::fmt;
use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Server;
use super::errors::ApiError;

/// Header a control request must carry (forces a CORS preflight cross-site, which we never grant).
pub const CONTROL_HEADER: &str = "x-nanotrader-control";
const MIN_TOKEN_LEN: usize = 16;

/// No inline script at all; inline style only the chart library's own, by hash.
pub static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self' {}; img-src 'self' data:; connect-src 'self'; \
         font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        nanotrader_charts::INLINE_STYLE_SOURCES
    );
    HeaderValue::from_str(&policy).expect("the content security policy is a valid header value")
});

/// The access token. Never printed: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// A token must be long enough to resist guessing and fit in a WebSocket subprotocol.
    pub fn parse(text: &str) -> Result<Self, SecurityError> {
        let text = text.trim();
        if text.len() < MIN_TOKEN_LEN {
            return Err(SecurityError::TokenTooShort);
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            return Err(SecurityError::TokenCharacters);
        }
        Ok(Self(text.to_owned()))
    }

    /// Constant-time comparison, so the time taken does not tell how much of a guess was right.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<hidden>)")
    }
}

/// Refuses to expose the dashboard beyond this machine without a token.
pub fn check_bind(addr: &SocketAddr, token: Option<&AccessToken>) -> Result<(), SecurityError> {
    if addr.ip().is_loopback() || token.is_some() {
        Ok(())
    } else {
        Err(SecurityError::ExposedWithoutToken(*addr))
    }
}

/// Why the dashboard's security settings were refused; each is one line for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecurityError {
    #[error("the web token must be at least {MIN_TOKEN_LEN} characters")]
    TokenTooShort,
    #[error("the web token may hold only letters, digits and - . _ ~")]
    TokenCharacters,
    #[error(
        "refusing to serve the dashboard on {0} without an access token: anyone who can reach it could \
         watch and control trading. Set --web-token (or NANOTRADER_WEB_TOKEN), or listen on 127.0.0.1"
    )]
    ExposedWithoutToken(SocketAddr),
}

/// The token a request presents: `Authorization: Bearer T`, or for a WebSocket (where browsers
/// cannot set headers) the subprotocol `bearer.T`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim());
    }
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| list.split(',').find_map(|p| p.trim().strip_prefix("bearer.")))
}

/// The pages themselves (they hold no data: what they show comes from the API and the streams,
/// which need the token).
fn is_public(path: &str) -> bool {
    path == "/"
        || path == "/index.html"
        || path.starts_with("/assets/")
        || path == "/favicon.svg"
        || path == "/runs"
        || path
            .strip_prefix("/runs/")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Host names a loopback-bound dashboard answers to: `localhost`, a loopback IPv4 address or
/// `[::1]`, with or without a port; names are case-insensitive (RFC 9110, 4.2.3).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Access rules for every request: the Host (DNS rebinding), the token, and streams only for
/// our own page. Refusals are in the one error shape (see `errors`).
pub async fn guard(State(server): State<std::sync::Arc<Server>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let path = request.uri().path();
    if server.loopback_only {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_loopback_host(host) {
            return ApiError::new(StatusCode::MISDIRECTED_REQUEST, "unknown host").into_response();
        }
    }
    if let Some(token) = &server.token
        && !is_public(path)
        && !presented_token(headers).is_some_and(|t| token.matches(t))
    {
        return ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong access token").into_response();
    }
    // Browsers let any site open a WebSocket to any host (no CORS): only our page may.
    if is_websocket_upgrade(headers) && !same_origin(headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-site streams are refused").into_response();
    }
    next.run(request).await
}

/// The control routes' own rule, run once the route and method matched (so a wrong method is a
/// 405, not this 403): the request must come from our page.
pub async fn control_from_our_page(request: Request, next: Next) -> Response {
    match same_site_control(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(message) => ApiError::new(StatusCode::FORBIDDEN, message).into_response(),
    }
}

/// The same security headers on every answer: pages, assets, API, errors and refusals.
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

/// A control request must come from our own page: it carries our header and JSON, and whatever
/// the browser says of its origin is this server.
fn same_site_control(headers: &HeaderMap) -> Result<(), &'static str> {
    if headers.get(CONTROL_HEADER).is_none_or(|v| v != "1") {
        return Err("control requests need the X-Nanotrader-Control: 1 header");
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err("control requests must be application/json");
    }
    if !same_origin(headers) {
        return Err("cross-site control requests are refused");
    }
    Ok(())
}

/// Whether whatever the browser says of the request's origin is this server (a request that
/// says nothing, like curl's, passes).
fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v != "same-origin" && v != "none")
    {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
            let origin = origin.to_str().unwrap_or("");
            !host.is_empty()
                && origin
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
        }
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        let token = AccessToken::parse("s3cret-token-0123456789").unwrap();
        assert!(token.matches("s3cret-token-0123456789"));
        assert!(!token.matches("s3cret-token-012345678"));
        assert!(!token.matches("s3cret-token-01234567890"));
        assert!(!token.matches(""));
        assert!(AccessToken::parse("short").is_err());
        assert!(AccessToken::parse("has spaces in it, too long").is_err());
        assert_eq!(format!("{token:?}"), "AccessToken(<hidden>)");
    }

    #[test]
    fn non_loopback_binds_need_a_token() {
        let token = AccessToken::parse("s3cret-token-0123456789").unwrap();
        assert!(check_bind(&"127.0.0.1:0".parse().unwrap(), None).is_ok());
        assert!(check_bind(&"[::1]:8080".parse().unwrap(), None).is_ok());
        assert!(check_bind(&"0.0.0.0:8080".parse().unwrap(), None).is_err());
        assert!(check_bind(&"0.0.0.0:8080".parse().unwrap(), Some(&token)).is_ok());
    }

    #[test]
    fn origins() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, HeaderValue::from_static(value));
            }
            h
        };
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[host, ("sec-fetch-site", "same-origin")])));
        // Host names are case-insensitive; browsers send the origin in lower case.
        assert!(same_origin(&headers(&[
            ("host", "LOCALHOST:8080"),
            ("origin", "http://localhost:8080")
        ])));
        for bad in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("origin", "http://127.0.0.1:8080.evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            assert!(!same_origin(&headers(&[host, bad])), "{bad:?}");
        }
        let mut odd = headers(&[host]);
        odd.insert(header::ORIGIN, HeaderValue::from_bytes(b"http://\xff").unwrap());
        assert!(!same_origin(&odd), "an unreadable origin is not ours");
        assert!(!same_origin(&headers(&[("origin", "http://")])), "no host, no match");
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost:8080",
            "LOCALHOST:8080",
            "LocalHost",
            "127.0.0.1:1234",
            "127.1.2.3",
            "[::1]:80",
            "[0:0:0:0:0:0:0:1]",
            "localhost",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.1.evil.example:80",
            "localhost.evil.example",
            "[::2]:80",
            "[::ffff:8.8.8.8]",
            "::1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
