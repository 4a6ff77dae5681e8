//! Security of a real `nanotrader` process, over real HTTP and WebSocket on loopback with a real
//! SQLite store: no public bind without a token; control requests refused unless they carry the
//! token and come from our own page, and a refused one changes nothing; no secret in any output
//! (logs, responses, the page, the store); paper trading sends nothing to Kraken's private API.
//! (tests/dashboard.rs covers the basic token rules; these go further.)

mod common;
use common::running::{Running, drain};
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nanotrader_kraken_mock::{MockConfig, MockKraken};
use nanotrader_market::Timestamp;
use reqwest::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const REPLAY: &str = "assets/btcusd_1m_20170903_20170904.csv";
const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";
/// Recognisable fake secrets: found anywhere, in any encoding, they leaked.
const TOKEN: &str = "FAKETOKEN-7d1e5b9c3a2f4e60b8";
const API_KEY: &str = "FAKEKEY-9f3c1e7a5b2d4c6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c";
/// Shaped like a real Kraken secret (base64), so its URL encoding differs from it.
const API_SECRET: &str = "FAKESECRET+Qk9HVVMtc2VjcmV0/dGhhdC1tdXN0LW5ldmVy==";
/// The environment names a Kraken key could be given under.
const KEY_VARS: [&str; 2] = ["KRAKEN_API_KEY", "NANOTRADER_KRAKEN_API_KEY"];
const SECRET_VARS: [&str; 2] = ["KRAKEN_API_SECRET", "NANOTRADER_KRAKEN_API_SECRET"];

/// `run` replaying the built-in data at 60x (a bar a second: it runs for the whole test).
fn replay(dir: &Path, token: Option<&str>) -> Command {
    let mut cmd = bin();
    if let Some(token) = token {
        cmd.env("NANOTRADER_WEB_TOKEN", token);
    }
    let data = repo_file(REPLAY);
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["run", "--data", data.to_str().unwrap(), "--speed", "60"]);
    cmd
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Waits for the run to show on the dashboard; returns its `trading` state.
async fn trading(base: &str, token: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = get(&format!("{base}/api/status"), token).await;
        if response.status() == 200 {
            let status: Value = response.json().await.unwrap();
            return status["status"]["trading"]
                .as_str()
                .expect("a trading state")
                .to_owned();
        }
        assert!(Instant::now() < deadline, "the run never showed: {}", response.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request to `/api/control/{action}` with exactly these headers; its status.
async fn attempt(base: &str, method: Method, action: &str, token: Option<&str>, headers: &[(&str, &str)]) -> u16 {
    let mut request = http().request(method, format!("{base}/api/control/{action}")).body(
        if headers.iter().any(|(_, v)| v.contains("form")) {
            "action=pause"
        } else {
            "{}"
        },
    );
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// What our page sends with a control request.
const PAGE: [(&str, &str); 2] = [("X-Nanotrader-Control", "1"), ("Content-Type", "application/json")];

fn page_headers() -> reqwest::header::HeaderMap {
    PAGE.iter()
        .map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap()))
        .collect()
}

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    PAGE.iter().copied().chain(extra.iter().copied()).collect()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the page's stream with these headers; the refusal's HTTP status if refused.
async fn open_stream(url: &str, headers: &[(&str, &str)]) -> Result<(Ws, Vec<u8>), u16> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => Ok((ws, head_bytes(response.status().as_u16(), response.headers()))),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("{url}: {e}"),
    }
}

async fn next_text(ws: &mut Ws, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(text.as_str().to_owned()),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

fn head_bytes(status: u16, headers: &reqwest::header::HeaderMap) -> Vec<u8> {
    let mut head = format!("HTTP {status}\n").into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.push(b'\n');
    }
    head
}

// ---------------------------------------------------------------------------------------------
// 1. Binding beyond loopback.

#[test]
fn no_address_beyond_loopback_is_served_without_a_good_token() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("store");
    let refused = |listen: &str, token: Option<&str>, why: &str| {
        let mut cmd = bin();
        if let Some(token) = token {
            cmd.env("NANOTRADER_WEB_TOKEN", token);
        }
        let out = cmd
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["run", "--source", "sim", "--sim-duration", "1h", "--listen", listen])
            .output()
            .unwrap();
        let case = format!("--listen {listen} with token {token:?}");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{case}: {err}");
        assert_eq!(err.lines().count(), 1, "{case}: one line: {err}");
        assert!(err.contains(why), "{case}: {err}");
        assert!(!stdout(&out).contains("dashboard:"), "{case} served: {}", stdout(&out));
        assert!(!data_dir.exists(), "{case}: a refused run must not even open the store");
        if let Some(token) = token.filter(|t| t.trim().len() > 3) {
            assert!(!err.contains(token.trim()), "{case}: the error repeats the token");
        }
    };
    // A port taken by us: had the refused run tried to bind it, it would say so instead.
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let held_addr = format!("0.0.0.0:{}", held.local_addr().unwrap().port());
    for listen in [
        "0.0.0.0:0",
        "[::]:0",
        "192.0.2.10:8080",
        "[2001:db8::10]:8080",
        &held_addr,
    ] {
        // No token, or one that is empty or blank, is no token.
        for token in [None, Some(""), Some("   ")] {
            refused(listen, token, "without an access token");
        }
        refused(listen, Some("too-short-tok"), "at least 16 characters");
        refused(listen, Some("has spaces in it but long enough"), "only letters, digits");
        refused(listen, Some(API_SECRET), "only letters, digits");
    }

    drop(held);
    // With a good token a public address is served, and only the page without the token.
    let mut cmd = replay(&data_dir, Some(TOKEN));
    cmd.args(["--listen", "0.0.0.0:0"]);
    let app = Running::start(cmd);
    let port = app.url.rsplit(':').next().unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = format!("http://127.0.0.1:{port}");
        assert_eq!(trading(&base, Some(TOKEN)).await, "active");
        assert_eq!(get(&format!("{base}/"), None).await.status(), 200);
        for path in ["/api/status", "/api/config", "/metrics", "/api/openapi.json"] {
            assert_eq!(get(&format!("{base}{path}"), None).await.status(), 401, "{path}");
        }
        assert_eq!(attempt(&base, Method::POST, "pause", None, &PAGE).await, 401);
        assert_eq!(trading(&base, Some(TOKEN)).await, "active");
    });
    let out = app.interrupt();
    assert!(String::from_utf8_lossy(&out.stdout).contains("listening on every interface"));
}

// ---------------------------------------------------------------------------------------------
// 2. Control requests.

/// What a case is, how it is sent, with which token and headers, and the statuses that refuse it.
type Case<'a> = (
    &'a str,
    Method,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    &'static [u16],
);

/// Requests a cross-site page (or a DNS-rebinding one) could make, each refused with one of
/// `expected`, for pause and flatten; afterwards the run is still trading.
async fn assert_all_refused(app: &Running, token: Option<&str>) {
    let base = app.url.as_str();
    let host = app.host();
    let port = host.rsplit(':').next().unwrap();
    let own_origin = format!("http://{host}");
    let look_alike = format!("http://{host}.evil.example");
    let rebound_host = format!("attacker.example:{port}");
    let rebound_origin = format!("http://attacker.example:{port}");
    let auth = token; // what our page would present
    let full = token.unwrap_or("-");
    let same_length = format!("{}X", &full[..full.len() - 1]);
    let shorter = &full[..full.len() - 1];
    let longer = format!("{full}0");
    let mut cases: Vec<Case> = vec![
        (
            "cross-site Origin",
            Method::POST,
            auth,
            with(&[("Origin", "https://evil.example")]),
            &[403],
        ),
        (
            "opaque Origin (sandboxed frame, file:)",
            Method::POST,
            auth,
            with(&[("Origin", "null")]),
            &[403],
        ),
        (
            "look-alike Origin",
            Method::POST,
            auth,
            with(&[("Origin", look_alike.as_str())]),
            &[403],
        ),
        (
            "Origin of another port",
            Method::POST,
            auth,
            with(&[("Origin", "http://127.0.0.1:1")]),
            &[403],
        ),
        (
            "Sec-Fetch-Site: cross-site",
            Method::POST,
            auth,
            with(&[("Sec-Fetch-Site", "cross-site")]),
            &[403],
        ),
        (
            "Sec-Fetch-Site: same-site",
            Method::POST,
            auth,
            with(&[("Sec-Fetch-Site", "same-site")]),
            &[403],
        ),
        (
            "own Origin but cross-site fetch metadata",
            Method::POST,
            auth,
            with(&[("Origin", own_origin.as_str()), ("Sec-Fetch-Site", "cross-site")]),
            &[403],
        ),
        (
            "no control header",
            Method::POST,
            auth,
            vec![("Content-Type", "application/json")],
            &[403],
        ),
        (
            "control header not 1",
            Method::POST,
            auth,
            vec![("X-Nanotrader-Control", "true"), ("Content-Type", "application/json")],
            &[403],
        ),
        (
            "not JSON",
            Method::POST,
            auth,
            vec![("X-Nanotrader-Control", "1"), ("Content-Type", "text/plain")],
            &[403],
        ),
        (
            "a CSRF form post",
            Method::POST,
            None,
            vec![
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", "https://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            &[401, 403],
        ),
        (
            "a no-cors text/plain fetch",
            Method::POST,
            None,
            vec![
                ("Content-Type", "text/plain;charset=UTF-8"),
                ("Origin", "https://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            &[401, 403],
        ),
        (
            "DNS rebinding: foreign Host",
            Method::POST,
            auth,
            with(&[("Host", rebound_host.as_str())]),
            &[421],
        ),
        (
            "DNS rebinding: Host and Origin agree",
            Method::POST,
            auth,
            with(&[
                ("Host", rebound_host.as_str()),
                ("Origin", rebound_origin.as_str()),
                ("Sec-Fetch-Site", "same-origin"),
            ]),
            &[421],
        ),
        ("GET", Method::GET, auth, with(&[]), &[405]),
        ("PUT", Method::PUT, auth, with(&[]), &[405]),
        ("DELETE", Method::DELETE, auth, with(&[]), &[405]),
    ];
    if token.is_some() {
        for (what, wrong) in [
            ("no token", None),
            ("wrong token of the same length", Some(same_length.as_str())),
            ("the token minus its last character", Some(shorter)),
            ("the token plus a character", Some(longer.as_str())),
            ("one character of the token", Some(&full[..1])),
        ] {
            cases.push((what, Method::POST, wrong, with(&[]), &[401]));
        }
    }
    for action in ["pause", "flatten"] {
        for (what, method, token, headers, expected) in &cases {
            let status = attempt(base, method.clone(), action, *token, headers).await;
            assert!(
                expected.contains(&status),
                "{action}, {what}: answered {status}, not {expected:?}"
            );
        }
    }
    // The token in the query string is not a token.
    if let Some(token) = token {
        let url = format!("{base}/api/control/pause?token={token}&access_token={token}");
        let response = http()
            .post(url)
            .headers(page_headers())
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "a token in the URL");
    }
    assert_eq!(
        trading(base, token).await,
        "active",
        "a refused request changed the engine"
    );
}

/// Stream upgrades from another site (or a rebinding page) are refused; our page's is not.
async fn assert_cross_site_streams_refused(app: &Running, token: Option<&str>) {
    let host = app.host();
    let port = host.rsplit(':').next().unwrap();
    let protocol = match token {
        Some(t) => format!("nanotrader.v1, bearer.{t}"),
        None => "nanotrader.v1".to_owned(),
    };
    let own_origin = format!("http://{host}");
    let rebound_host = format!("attacker.example:{port}");
    let rebound_origin = format!("http://attacker.example:{port}");
    let url = app.ws_url();
    let p = ("Sec-WebSocket-Protocol", protocol.as_str());
    for (what, headers, expected) in [
        ("cross-site Origin", vec![p, ("Origin", "https://evil.example")], 403),
        ("opaque Origin", vec![p, ("Origin", "null")], 403),
        (
            "Sec-Fetch-Site: cross-site",
            vec![p, ("Sec-Fetch-Site", "cross-site")],
            403,
        ),
        (
            "DNS rebinding",
            vec![p, ("Host", rebound_host.as_str()), ("Origin", rebound_origin.as_str())],
            421,
        ),
    ] {
        match open_stream(&url, &headers).await {
            Ok(_) => panic!("a stream was opened with {what}"),
            Err(status) => assert_eq!(status, expected, "{what}"),
        }
    }
    // Our own page's upgrade still works and gets the snapshot.
    let (mut ws, _) = open_stream(&url, &[p, ("Origin", own_origin.as_str())])
        .await
        .expect("our page's stream opens");
    let first = next_text(&mut ws, Duration::from_secs(10)).await.expect("a snapshot");
    assert!(first.starts_with(r#"{"type":"snapshot""#), "{first}");
}

/// After everything refused, our page's own request does pause: the check above can fail.
async fn assert_page_can_pause(app: &Running, token: Option<&str>) {
    let own_origin = format!("http://{}", app.host());
    let headers = with(&[("Origin", own_origin.as_str()), ("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(attempt(&app.url, Method::POST, "pause", token, &headers).await, 200);
    assert_eq!(trading(&app.url, token).await, "paused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_control_needs_it_and_our_page_and_a_refusal_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(replay(dir.path(), Some(TOKEN)));
    assert_eq!(trading(&app.url, Some(TOKEN)).await, "active");
    assert_all_refused(&app, Some(TOKEN)).await;
    assert_cross_site_streams_refused(&app, Some(TOKEN)).await;
    assert_page_can_pause(&app, Some(TOKEN)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_without_a_token_other_sites_still_cannot_control_or_watch() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(replay(dir.path(), None));
    assert_eq!(trading(&app.url, None).await, "active");
    assert_all_refused(&app, None).await;
    assert_cross_site_streams_refused(&app, None).await;
    assert_page_can_pause(&app, None).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Secrets.

const BASE64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

fn percent_encode(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ if upper => format!("%{b:02X}"),
            _ => format!("%{b:02x}"),
        })
        .collect()
}

/// Every spelling of `secret` worth looking for: as is, URL-encoded, JSON-escaped, hex, and
/// base64 (standard and URL-safe) at each of the three alignments it could have inside a
/// longer encoded text (the stable middle of the encoding).
fn spellings(secret: &str) -> Vec<(String, Vec<u8>)> {
    let mut url_safe = *BASE64_STD;
    url_safe[62] = b'-';
    url_safe[63] = b'_';
    let mut found = vec![
        ("plain".to_owned(), secret.as_bytes().to_vec()),
        ("url-encoded".to_owned(), percent_encode(secret, true).into_bytes()),
        (
            "url-encoded, lower-case".to_owned(),
            percent_encode(secret, false).into_bytes(),
        ),
        ("json-escaped".to_owned(), secret.replace('/', "\\/").into_bytes()),
        (
            "hex".to_owned(),
            secret
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
    ];
    for (name, alphabet) in [("base64", BASE64_STD), ("base64url", &url_safe)] {
        for pad in 0..3 {
            let mut bytes = vec![b'#'; pad];
            bytes.extend_from_slice(secret.as_bytes());
            let encoded = base64(&bytes, alphabet);
            // Characters that depend on the bytes around the secret are left out.
            let skip = if pad == 0 { 0 } else { (pad * 8).div_ceil(6) };
            let middle = &encoded[skip..encoded.len() - 4];
            found.push((format!("{name} (offset {pad})"), middle.as_bytes().to_vec()));
        }
    }
    found
}

struct Needle {
    what: String,
    /// ASCII.
    bytes: Vec<u8>,
}

fn needles() -> Vec<Needle> {
    [
        ("the web token", TOKEN),
        ("the API key", API_KEY),
        ("the API secret", API_SECRET),
    ]
    .into_iter()
    .flat_map(|(what, secret)| {
        spellings(secret).into_iter().map(move |(how, bytes)| Needle {
            what: format!("{what} ({how})"),
            bytes,
        })
    })
    .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which secrets, in which spelling, appear in which output. The needles are ASCII, which a
/// lossy UTF-8 reading keeps byte for byte, so std's (optimised) `str::contains` searches bytes.
fn leaks(outputs: &[(String, Vec<u8>)], needles: &[Needle]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, bytes) in outputs {
        let text = String::from_utf8_lossy(bytes);
        for needle in needles {
            let ascii = std::str::from_utf8(&needle.bytes).expect("needles are ASCII");
            if text.contains(ascii) {
                found.push(format!("{} in {name}", needle.what));
            }
        }
    }
    found
}

/// Every file under `dir` (the store, its -wal and -shm included), as raw bytes.
fn files_under(dir: &Path, label: &str, into: &mut Vec<(String, Vec<u8>)>) {
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path) {
            into.push((format!("{label} {}", path.display()), bytes));
        }
    }
}

#[test]
fn the_leak_detector_finds_secrets_in_every_spelling() {
    let needles = needles();
    for secret in [TOKEN, API_KEY, API_SECRET] {
        let planted = [
            format!("Authorization: Bearer {secret}\n"),
            format!("{{\"key\":\"{}\"}}", percent_encode(secret, true)),
            base64(format!("Basic user:{secret}").as_bytes(), BASE64_STD),
            base64(format!("u:{secret}").as_bytes(), BASE64_STD),
            base64(format!("{secret}!").as_bytes(), BASE64_STD),
        ];
        for text in planted {
            let found = leaks(&[("sample".into(), text.clone().into_bytes())], &needles);
            assert!(!found.is_empty(), "{text} not caught");
        }
    }
    let clean = leaks(
        &[("sample".into(), b"FAKETOKEN-7d1e FAKEKEY FAKESECRET".to_vec())],
        &needles,
    );
    assert!(clean.is_empty(), "{clean:?}");
}

fn start_mock_config() -> MockConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    MockConfig {
        speed: 600.0,
        market_start: Some(Timestamp::now()),
        ..MockConfig::new(repo_file(TRADES))
    }
}

/// `run --source kraken` against `mock`, trading a fast SMA cross (2/3) so it trades in seconds.
fn trading_kraken_run(dir: &Path, mock: &MockKraken) -> Command {
    let mut cmd = kraken_run(dir, mock);
    cmd.args(["--status-secs", "1", "--short", "2", "--long", "3"]);
    cmd
}

/// The same environment as the run (secrets included) for the read commands.
fn with_secrets(mut cmd: Command) -> Command {
    cmd.env("NANOTRADER_WEB_TOKEN", TOKEN);
    for var in KEY_VARS {
        cmd.env(var, API_KEY);
    }
    for var in SECRET_VARS {
        cmd.env(var, API_SECRET);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_a_response_the_page_or_the_store() {
    let mock = MockKraken::start(start_mock_config()).await.expect("the mock starts");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = with_secrets(trading_kraken_run(dir.path(), &mock));
    // Trace logging for every crate, our own at -vv too.
    cmd.arg("-vv").env("NANOTRADER_LOG", "trace");
    let app = Running::start(cmd);
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();

    // The secrets did reach the process, so not finding them means something.
    let environ = std::fs::read(format!("/proc/{}/environ", app.child.id())).unwrap_or_default();
    if !environ.is_empty() {
        for (var, value) in [
            ("NANOTRADER_WEB_TOKEN", TOKEN),
            (KEY_VARS[0], API_KEY),
            (SECRET_VARS[1], API_SECRET),
        ] {
            assert!(
                contains(&environ, format!("{var}={value}").as_bytes()),
                "{var} not given"
            );
        }
    }
    let base = app.url.clone();
    assert_eq!(trading(&base, Some(TOKEN)).await, "active");
    // The page, then every asset it names, then everything those name.
    let mut queue = vec!["/".to_owned(), "/index.html".to_owned(), "/favicon.svg".to_owned()];
    let mut fetched = std::collections::HashSet::new();
    while let Some(path) = queue.pop() {
        if !fetched.insert(path.clone()) {
            continue;
        }
        let response = get(&format!("{base}{path}"), None).await;
        let mut bytes = head_bytes(response.status().as_u16(), response.headers());
        let body = response.bytes().await.unwrap();
        let text = String::from_utf8_lossy(&body).into_owned();
        for piece in text.split("/assets/").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            if name.contains('.') {
                queue.push(format!("/assets/{name}"));
            }
        }
        bytes.extend_from_slice(&body);
        outputs.push((format!("GET {path}"), bytes));
    }
    for asset in [
        "/assets/app.js",
        "/assets/lightweight-charts.js",
        "/assets/style.css",
        "/assets/theme.css",
    ] {
        assert!(fetched.contains(asset), "the page does not name {asset}: {fetched:?}");
    }
    // Every GET the API describes, and the answers a client gets wrong.
    let openapi: Value = get(&format!("{base}/api/openapi.json"), Some(TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let mut paths: Vec<String> = openapi["paths"]
        .as_object()
        .expect("openapi paths")
        .iter()
        .filter(|(_, ops)| ops.get("get").is_some())
        .map(|(path, _)| path.clone())
        .collect();
    assert!(paths.len() >= 7, "{paths:?}");
    paths.extend(
        [
            "/api/status?pair=BTC/USD",
            "/api/fills?limit=5",
            "/api/bars?limit=10",
            "/api/bars?limit=nonsense",
            "/api/status?pair=ETH/USD",
            "/nowhere",
        ]
        .map(str::to_owned),
    );
    // Let it trade a little first, so the fills and the account hold something.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for path in &paths {
        for (label, token) in [("with the token", Some(TOKEN)), ("without it", None)] {
            let response = get(&format!("{base}{path}"), token).await;
            let mut bytes = head_bytes(response.status().as_u16(), response.headers());
            bytes.extend_from_slice(&response.bytes().await.unwrap());
            outputs.push((format!("GET {path} {label}"), bytes));
        }
    }
    let wrong = get(&format!("{base}/api/status"), Some("FAKETOKEN-7d1e5b9c3a2f4e60bX")).await;
    assert_eq!(wrong.status(), 401, "the token is in force");
    // Control answers, right and wrong.
    for (action, token) in [("pause", Some(TOKEN)), ("resume", Some(TOKEN)), ("pause", Some("nope"))] {
        let response = http()
            .post(format!("{base}/api/control/{action}"))
            .bearer_auth(token.unwrap())
            .header("X-Nanotrader-Control", "1")
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let mut bytes = head_bytes(response.status().as_u16(), response.headers());
        bytes.extend_from_slice(&response.bytes().await.unwrap());
        outputs.push((format!("POST /api/control/{action}"), bytes));
    }
    // The stream: its handshake, the snapshot and some deltas.
    let protocol = format!("nanotrader.v1, bearer.{TOKEN}");
    let (mut ws, handshake) = open_stream(&app.ws_url(), &[("Sec-WebSocket-Protocol", protocol.as_str())])
        .await
        .expect("the stream opens with the token");
    outputs.push(("the stream's handshake".into(), handshake));
    let snapshot = next_text(&mut ws, Duration::from_secs(10)).await.expect("a snapshot");
    assert!(snapshot.contains(r#""type":"snapshot""#), "{snapshot}");
    outputs.push(("the stream's snapshot".into(), snapshot.into_bytes()));
    let mut deltas = 0;
    while deltas < 5 {
        let Some(frame) = next_text(&mut ws, Duration::from_secs(5)).await else {
            break;
        };
        outputs.push((format!("stream frame {deltas}"), frame.into_bytes()));
        deltas += 1;
    }
    assert!(deltas >= 1, "no delta on the stream");
    // The store while it is open (its -wal and -shm exist now).
    files_under(dir.path(), "(running)", &mut outputs);
    let stopped = app.interrupt();
    assert!(stopped.status.success(), "{:?}", stopped.status);
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(
        log.contains("TRACE"),
        "trace logging was on: {}",
        &log[..log.len().min(2000)]
    );
    assert!(log.contains("BUY") || log.contains("SELL"), "the run traded");
    outputs.push(("the run's stdout".into(), stopped.stdout));
    outputs.push(("the run's stderr".into(), stopped.stderr));

    // The read commands, with the same environment.
    let read_commands: [&[&str]; 7] = [
        &["runs"],
        &["fills"],
        &["fills", "--csv"],
        &["bars"],
        &["bars", "--csv"],
        &["help", "run"],
        &["run", "--help"],
    ];
    for args in read_commands {
        let mut cmd = with_secrets(bin());
        let out = cmd.arg("--data-dir").arg(dir.path()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        outputs.push((format!("`{}` stdout", args.join(" ")), out.stdout));
        outputs.push((format!("`{}` stderr", args.join(" ")), out.stderr));
    }
    let bars = stdout(&nanotrader(dir.path(), &["bars", "--csv"]))
        .lines()
        .count()
        .saturating_sub(1);
    assert!(bars >= 10, "only {bars} bars stored: the grep would prove little");
    assert!(!fills_csv(dir.path(), None).is_empty(), "no fills stored");
    files_under(dir.path(), "(stopped)", &mut outputs);
    assert!(
        outputs
            .iter()
            .any(|(name, _)| name.ends_with(".db") || name.contains("sqlite")),
        "no store file found: {:?}",
        outputs.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let total: usize = outputs.iter().map(|(_, b)| b.len()).sum();
    let searching = Instant::now();
    let found = leaks(&outputs, &needles());
    eprintln!(
        "searched {} outputs, {total} bytes, in {:?}",
        outputs.len(),
        searching.elapsed()
    );
    assert!(found.is_empty(), "secrets leaked (searched {total} bytes): {found:#?}");
    assert_eq!(mock.counters().private_requests(), 0);
    mock.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Paper trading never calls the private API.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_trading_never_calls_the_private_api() {
    let mock = MockKraken::start(start_mock_config()).await.expect("the mock starts");
    let dir = tempfile::tempdir().unwrap();
    // Even with credentials in the environment.
    let mut cmd = with_secrets(trading_kraken_run(dir.path(), &mock));
    cmd.arg("--no-web");
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let drained = drain(stderr_pipe, Arc::clone(&log));
    // Until it has traded both ways (or 15 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        if (text.contains(" BUY ") && text.contains(" SELL ")) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    drained.join().unwrap();
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(status.success(), "{status:?}: {log}");
    let fills = fills_csv(dir.path(), None);
    assert!(
        fills.iter().any(|f| f.contains(",buy,")) && fills.iter().any(|f| f.contains(",sell,")),
        "the run must buy and sell for the check to mean anything: {fills:?}\n{log}"
    );
    let counters = mock.counters();
    assert!(
        counters.subscriptions >= 1 && counters.ws_messages_sent > 0,
        "{counters:?}"
    );
    assert_eq!(
        counters.private_requests(),
        0,
        "paper trading called the private API: {counters:?}"
    );

    // The counter does count: an order placed on the mock is refused and counted.
    let response = http()
        .post(format!("{}/0/private/AddOrder", mock.rest_url()))
        .header("API-Key", API_KEY)
        .header("API-Sign", "c2lnbmF0dXJl")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("nonce=1&ordertype=market&type=buy&volume=0.01&pair=XBTUSD")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "error": ["EAPI:Invalid key"] }));
    let after = mock.counters();
    assert_eq!(after.private_requests(), 1);
    assert_eq!(after.public_requests(), counters.public_requests());
    let _ = http()
        .get(format!("{}/0/private/Balance", mock.rest_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(mock.counters().private_requests(), 2);
    mock.shutdown().await;
}
