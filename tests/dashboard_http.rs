//! The dashboard server by the rules of HTTP and WebSocket, against a real `nanotrader` process
//! over loopback: every error on every route is one JSON shape with the same security headers;
//! a wrong method is a 405 with `Allow`; a control's body is `{}` or a 400 that changes nothing;
//! the page, assets and JSON are compressed; a reload revalidates (304) instead of refetching;
//! the Host check ignores case; the stream answers a Close with a Close and an oversized message
//! with 1009.

mod common;
use common::running::Running;
use common::*;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const REPLAY: &str = "assets/btcusd_1m_20170903_20170904.csv";
const TOKEN: &str = "http-rules-token-4f8a2c9e1b";
/// What our page sends with a control request.
const PAGE: [(&str, &str); 2] = [("X-Nanotrader-Control", "1"), ("Content-Type", "application/json")];
/// Headers every answer carries, success or error.
const SECURITY_HEADERS: [&str; 6] = [
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
];

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

/// A running replay whose run already shows on the dashboard.
async fn started(dir: &Path, token: Option<&str>) -> Running {
    let app = Running::start(replay(dir, token));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut request = http().get(format!("{}/api/status", app.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if request.send().await.is_ok_and(|r| r.status() == 200) {
            return app;
        }
        assert!(Instant::now() < deadline, "the run never showed on the dashboard");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> reqwest::Response {
    let mut request = http().request(method, format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    request.send().await.unwrap()
}

fn security_headers(headers: &HeaderMap) -> Vec<(&'static str, Option<String>)> {
    SECURITY_HEADERS
        .iter()
        .map(|name| (*name, headers.get(*name).map(|v| v.to_str().unwrap().to_owned())))
        .collect()
}

/// Checks one error answer: its status, `Allow` when given, the JSON shape and the headers.
async fn assert_error(
    what: &str,
    response: reqwest::Response,
    status: u16,
    allow: Option<&str>,
    expected_headers: &[(&'static str, Option<String>)],
) {
    assert_eq!(response.status().as_u16(), status, "{what}");
    if let Some(allow) = allow {
        let got = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), Some(allow), "{what}: Allow");
    }
    assert_eq!(
        &security_headers(response.headers()),
        expected_headers,
        "{what}: security headers"
    );
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(kind.as_deref(), Some("application/json"), "{what}: content type");
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {body}"));
    assert_eq!(object.len(), 1, "{what}: only `error`: {body}");
    let message = object["error"].as_str().unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{what}: one line: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_on_every_route_is_one_json_shape_with_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let app = started(dir.path(), None).await;
    let base = app.url.as_str();
    let host = app.host();
    let page = send(base, Method::GET, "/", &[], None).await;
    assert_eq!(page.status(), 200);
    let expected = security_headers(page.headers());
    assert!(expected.iter().all(|(_, v)| v.is_some()), "{expected:?}");
    let api = send(base, Method::GET, "/api/status", &[], None).await;
    assert_eq!(
        security_headers(api.headers()),
        expected,
        "the API's headers are the page's"
    );

    let own_origin = format!("http://{host}");
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let with = |extra: &[(&'static str, &'static str)], base: &[(&'static str, &'static str)]| {
        base.iter().chain(extra).copied().collect::<Vec<_>>()
    };
    let cross_site_stream = with(&[("Origin", "https://evil.example")], &upgrade);
    type Case<'a> = (
        &'a str,
        Method,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        u16,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("unknown path", Method::GET, "/nowhere", vec![], None, 404, None),
        ("unknown API path", Method::GET, "/api/nothing", vec![], None, 404, None),
        ("unknown asset", Method::GET, "/assets/nope.js", vec![], None, 404, None),
        (
            "POST on a GET route",
            Method::POST,
            "/api/status",
            vec![],
            Some("{}"),
            405,
            Some("GET,HEAD"),
        ),
        (
            "POST on the page",
            Method::POST,
            "/",
            PAGE.to_vec(),
            Some("{}"),
            405,
            Some("GET,HEAD"),
        ),
        (
            "DELETE /metrics",
            Method::DELETE,
            "/metrics",
            vec![],
            None,
            405,
            Some("GET,HEAD"),
        ),
        (
            "PUT on an asset",
            Method::PUT,
            "/assets/app.js",
            vec![],
            None,
            405,
            Some("GET,HEAD"),
        ),
        (
            "GET on a control",
            Method::GET,
            "/api/control/pause",
            vec![],
            None,
            405,
            Some("POST"),
        ),
        (
            "PATCH on a control",
            Method::PATCH,
            "/api/control/pause",
            PAGE.to_vec(),
            Some("{}"),
            405,
            Some("POST"),
        ),
        ("bad limit", Method::GET, "/api/bars?limit=abc", vec![], None, 400, None),
        (
            "limit over the maximum",
            Method::GET,
            "/api/fills?limit=10001",
            vec![],
            None,
            400,
            None,
        ),
        (
            "bad before",
            Method::GET,
            "/api/fills?before=-1",
            vec![],
            None,
            400,
            None,
        ),
        (
            "bad from",
            Method::GET,
            "/api/bars?from=yesterday",
            vec![],
            None,
            400,
            None,
        ),
        (
            "bad pair",
            Method::GET,
            "/api/status?pair=nonsense",
            vec![],
            None,
            400,
            None,
        ),
        (
            "unknown pair",
            Method::GET,
            "/api/status?pair=ETH/USD",
            vec![],
            None,
            404,
            None,
        ),
        (
            "a stream without an upgrade",
            Method::GET,
            "/ws",
            vec![],
            None,
            400,
            None,
        ),
        (
            "a stream for an unknown pair",
            Method::GET,
            "/ws?pair=ETH/USD",
            upgrade.to_vec(),
            None,
            404,
            None,
        ),
        (
            "a cross-site stream",
            Method::GET,
            "/ws",
            cross_site_stream,
            None,
            403,
            None,
        ),
        (
            "foreign Host",
            Method::GET,
            "/api/status",
            vec![("Host", "attacker.example")],
            None,
            421,
            None,
        ),
        (
            "foreign Host for the page",
            Method::GET,
            "/",
            vec![("Host", "attacker.example")],
            None,
            421,
            None,
        ),
        (
            "control without our header",
            Method::POST,
            "/api/control/pause",
            vec![("Content-Type", "application/json")],
            Some("{}"),
            403,
            None,
        ),
        (
            "control from another site",
            Method::POST,
            "/api/control/pause",
            with(&[("Origin", "https://evil.example")], &PAGE),
            Some("{}"),
            403,
            None,
        ),
        (
            "control with an empty body",
            Method::POST,
            "/api/control/pause",
            PAGE.to_vec(),
            Some(""),
            400,
            None,
        ),
        (
            "unknown control",
            Method::POST,
            "/api/control/explode",
            PAGE.to_vec(),
            Some("{}"),
            404,
            None,
        ),
    ];
    for (what, method, path, headers, body, status, allow) in cases {
        let response = send(base, method, path, &headers, body).await;
        assert_error(what, response, status, allow, &expected).await;
    }
    // Our own page's stream still opens (the cases above are refusals, not a broken route).
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert("Origin", own_origin.parse().unwrap());
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "nanotrader.v1".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());

    // With a token: a missing or wrong one is a 401 in the same shape, the page is still public.
    let dir = tempfile::tempdir().unwrap();
    let app = started(dir.path(), Some(TOKEN)).await;
    let base = app.url.as_str();
    let bearer = format!("Bearer {TOKEN}X");
    for (what, path, headers) in [
        ("no token", "/api/status", vec![]),
        ("wrong token", "/api/account", vec![("Authorization", bearer.as_str())]),
        ("no token, unknown path", "/nowhere", vec![]),
        ("no token, metrics", "/metrics", vec![]),
    ] {
        let response = send(base, Method::GET, path, &headers, None).await;
        assert_error(what, response, 401, None, &expected).await;
    }
    let response = send(base, Method::POST, "/api/control/pause", &PAGE, Some("{}")).await;
    assert_error("control without the token", response, 401, None, &expected).await;
    assert_eq!(send(base, Method::GET, "/", &[], None).await.status(), 200);
}

async fn trading(base: &str) -> String {
    let status: Value = send(base, Method::GET, "/api/status", &[], None)
        .await
        .json()
        .await
        .unwrap();
    status["status"]["trading"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_body_other_than_an_empty_object_is_a_400_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = started(dir.path(), None).await;
    let base = app.url.as_str();
    assert_eq!(trading(base).await, "active");
    for body in [
        "",
        " ",
        "not json",
        "{",
        "[]",
        "null",
        "1",
        "\"pause\"",
        "{} {}",
        "{\"paused\":true}",
        "{\"action\":\"pause\"}",
        "{\"\":null}",
    ] {
        for action in ["pause", "flatten"] {
            let response = send(base, Method::POST, &format!("/api/control/{action}"), &PAGE, Some(body)).await;
            assert_eq!(response.status(), 400, "{action} with {body:?}");
            let answer: Value = response.json().await.unwrap();
            assert!(answer["error"].as_str().is_some_and(|e| e.contains("{}")), "{answer}");
        }
    }
    assert_eq!(trading(base).await, "active", "a refused control changed the engine");
    let metrics = send(base, Method::GET, "/metrics", &[], None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("nanotrader_trading_paused{pair=\"BTC/USD\"} 0"),
        "{metrics}"
    );
    // The valid body does pause (so the refusals above were the body's doing), with whitespace too.
    let paused = send(base, Method::POST, "/api/control/pause", &PAGE, Some(" { }\n")).await;
    assert_eq!(paused.status(), 200);
    assert_eq!(trading(base).await, "paused");
    let resumed = send(base, Method::POST, "/api/control/resume", &PAGE, Some("{}")).await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(trading(base).await, "active");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli_decompressor::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_assets_and_json_are_compressed_and_a_reload_revalidates() {
    let dir = tempfile::tempdir().unwrap();
    let app = started(dir.path(), None).await;
    let base = app.url.as_str();
    for path in [
        "/",
        "/assets/app.js",
        "/assets/style.css",
        "/assets/theme.css",
        "/assets/lightweight-charts.js",
        "/api/openapi.json",
        "/api/status",
        "/api/bars",
    ] {
        let plain = send(base, Method::GET, path, &[], None).await;
        assert_eq!(plain.status(), 200, "{path}");
        assert!(
            plain.headers().get("content-encoding").is_none(),
            "{path}: not asked for"
        );
        let plain = plain.bytes().await.unwrap();
        for (encoding, decode) in [("gzip", gunzip as fn(&[u8]) -> Vec<u8>), ("br", unbrotli)] {
            let response = send(base, Method::GET, path, &[("Accept-Encoding", encoding)], None).await;
            assert_eq!(response.status(), 200, "{path}");
            let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(header("content-encoding").as_deref(), Some(encoding), "{path}");
            assert!(header("vary").is_some_and(|v| v.contains("accept-encoding")), "{path}");
            let compressed = response.bytes().await.unwrap();
            // What is worth it shrinks a lot (a JSON answer of a few hundred bytes, less so).
            if plain.len() > 4096 {
                let (size, of) = (compressed.len(), plain.len());
                assert!(size < of / 2, "{path} {encoding}: {size} of {of} bytes");
            }
            let decoded = decode(&compressed);
            if path == "/api/status" || path == "/api/bars" {
                // The run moves on between the two requests: the same answer, with newer values.
                let keys = |body: &[u8]| -> Vec<String> {
                    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
                    value.as_object().unwrap().keys().cloned().collect()
                };
                assert_eq!(keys(&decoded), keys(&plain), "{path} {encoding}: the same answer");
            } else {
                assert_eq!(decoded, plain, "{path} {encoding}: the same content");
            }
        }
    }

    // The page and its assets carry a validator; a reload sending it back gets an empty 304.
    for path in [
        "/",
        "/index.html",
        "/assets/app.js",
        "/assets/style.css",
        "/assets/theme.css",
        "/assets/lightweight-charts.js",
    ] {
        let first = send(base, Method::GET, path, &[("Accept-Encoding", "gzip, br")], None).await;
        assert_eq!(first.status(), 200, "{path}");
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(first.headers()["cache-control"], "no-cache", "{path}");
        let reload = send(
            base,
            Method::GET,
            path,
            &[("If-None-Match", etag.as_str()), ("Accept-Encoding", "gzip, br")],
            None,
        )
        .await;
        assert_eq!(reload.status(), 304, "{path}: a reload revalidates");
        assert_eq!(reload.headers()["etag"].to_str().unwrap(), etag, "{path}");
        assert_eq!(reload.headers()["vary"], "accept-encoding", "{path}");
        assert!(reload.headers().get("content-security-policy").is_some(), "{path}");
        assert!(reload.bytes().await.unwrap().is_empty(), "{path}: nothing refetched");
        // A validator of other content (an older binary's page) gets the content again.
        let stale = send(
            base,
            Method::GET,
            path,
            &[("If-None-Match", "W/\"0123456789abcdef\"")],
            None,
        )
        .await;
        assert_eq!(stale.status(), 200, "{path}");
        assert!(!stale.bytes().await.unwrap().is_empty(), "{path}");
    }

    // The stream is not compressed: its upgrade works with Accept-Encoding and frames are JSON.
    let mut request = app.ws_url().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("Accept-Encoding", "gzip, br".parse().unwrap());
    headers.insert("Sec-WebSocket-Protocol", "nanotrader.v1".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert!(response.headers().get("content-encoding").is_none());
    let snapshot = next_text(&mut ws).await.expect("a snapshot");
    assert!(
        snapshot.starts_with(r#"{"type":"snapshot""#),
        "{}",
        &snapshot[..80.min(snapshot.len())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_check_ignores_case() {
    let dir = tempfile::tempdir().unwrap();
    let app = started(dir.path(), None).await;
    let base = app.url.as_str();
    let port = app.host().rsplit(':').next().unwrap().to_owned();
    for host in [
        format!("LOCALHOST:{port}"),
        format!("LocalHost:{port}"),
        "localhost".to_owned(),
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let response = send(base, Method::GET, "/api/status", &[("Host", host.as_str())], None).await;
        assert_eq!(response.status(), 200, "Host: {host}");
    }
    // A page opened at an upper-case host name may control (its Origin, in lower case, matches).
    let upper = format!("LOCALHOST:{port}");
    let origin = format!("http://localhost:{port}");
    let headers = [PAGE[0], PAGE[1], ("Host", upper.as_str()), ("Origin", origin.as_str())];
    let response = send(base, Method::POST, "/api/control/pause", &headers, Some("{}")).await;
    assert_eq!(response.status(), 200);
    for host in ["LOCALHOST.evil.example", "evil.example", "127.0.0.1.evil.example"] {
        let response = send(base, Method::GET, "/api/status", &[("Host", host)], None).await;
        assert_eq!(response.status(), 421, "Host: {host}");
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_stream(app: &Running) -> Ws {
    let mut request = app.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "nanotrader.v1".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws
}

/// The next text frame (skipping others), or `None` when the stream ends or 60 s pass.
async fn next_text(ws: &mut Ws) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(text.as_str().to_owned()),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// Reads past data frames until the server's Close frame; what ended the stream otherwise.
async fn server_close(ws: &mut Ws) -> Result<Option<CloseFrame>, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return Ok(frame),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(format!("the stream failed without a Close: {e}")),
            Ok(None) => return Err("the stream ended without a Close".into()),
            Err(_) => return Err("no Close within 60 s".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_answers_a_close_with_a_close_and_an_oversized_message_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let app = started(dir.path(), None).await;
    // A client's Close is answered with a Close echoing its code.
    for code in [CloseCode::Normal, CloseCode::Away, CloseCode::from(4000)] {
        let mut ws = open_stream(&app).await;
        assert!(next_text(&mut ws).await.is_some(), "a snapshot");
        let reason = "the page is closing";
        ws.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
        .unwrap();
        let reply = server_close(&mut ws)
            .await
            .unwrap_or_else(|e| panic!("close {code}: {e}"));
        assert_eq!(reply.map(|f| f.code), Some(code), "the server echoes the code");
    }
    // A small message is ignored: the stream goes on.
    let mut ws = open_stream(&app).await;
    assert!(next_text(&mut ws).await.is_some(), "a snapshot");
    ws.send(Message::text("x".repeat(100))).await.unwrap();
    assert!(next_text(&mut ws).await.is_some(), "frames after a small message");
    // A message over 4 KiB (text or binary) closes the stream with 1009.
    for message in [Message::text("x".repeat(4097)), Message::binary(vec![7u8; 64 * 1024])] {
        let mut ws = open_stream(&app).await;
        assert!(next_text(&mut ws).await.is_some(), "a snapshot");
        let kind = if message.is_text() { "text" } else { "binary" };
        ws.send(message).await.unwrap();
        let reply = server_close(&mut ws).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        let reply = reply.unwrap_or_else(|| panic!("{kind}: a Close without a code"));
        assert_eq!(reply.code, CloseCode::Size, "{kind}: {reply:?}");
    }
    // The server is fine after all that.
    let mut ws = open_stream(&app).await;
    assert!(next_text(&mut ws).await.is_some());
}

/// /metrics as a real Prometheus client reads it: Python's `prometheus_client` parser (pinned in
/// the test venv) takes the whole text, and every figure is there with its pair: the engine's
/// counters, the account's equity and position, the build and the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_with_each_pairs_account_and_the_process() {
    let Some(python) = python("metrics_parse_as_prometheus_text_with_each_pairs_account_and_the_process") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = started(dir.path(), None).await;
    let base = app.url.as_str();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (content_type, text) = loop {
        let response = send(base, Method::GET, "/metrics", &[], None).await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let text = response.text().await.unwrap();
        if text.contains("nanotrader_bars_closed_total{pair=\"BTC/USD\"} 3") {
            break (content_type, text);
        }
        assert!(Instant::now() < deadline, "three bars never closed:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for sample in family.samples:
        print(json.dumps([family.type, sample.name, sample.labels, str(sample.value)]))
"#;
    let out = run_python(&python, script, &[file.as_os_str()]);
    // Values as text: a gauge with no value yet is NaN, which JSON cannot hold.
    let samples: Vec<(String, String, Value, f64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (kind, name, labels, value): (String, String, Value, String) = serde_json::from_str(line).unwrap();
            (kind, name, labels, value.parse().unwrap())
        })
        .collect();
    let find = |name: &str| {
        samples
            .iter()
            .find(|(_, n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    let btc = serde_json::json!({"pair": "BTC/USD"});
    let (kind, _, labels, bars) = find("nanotrader_bars_closed_total");
    assert_eq!((kind.as_str(), labels, *bars), ("counter", &btc, 3.0));
    let (kind, _, labels, equity) = find("nanotrader_equity");
    assert_eq!((kind.as_str(), labels), ("gauge", &btc));
    // The replay starts with 100,000 USD and cannot lose it all in three bars.
    assert!(*equity > 90_000.0 && *equity < 110_000.0, "equity {equity}");
    let (kind, _, labels, position) = find("nanotrader_position");
    assert_eq!((kind.as_str(), labels), ("gauge", &btc));
    assert!(*position >= 0.0, "position {position}");
    let (_, _, labels, one) = find("nanotrader_build_info");
    assert_eq!(*one, 1.0);
    assert_eq!(labels["version"], env!("CARGO_PKG_VERSION"));
    let (_, _, _, resident) = find("process_resident_memory_bytes");
    assert!(*resident > 1e6, "resident memory {resident}");
    let (_, _, _, started_at) = find("process_start_time_seconds");
    assert!(*started_at > 1.6e9, "start time {started_at}");
    find("nanotrader_dashboard_clients");
    find("nanotrader_store_write_seconds_total");
}
