//! The notifier against a real HTTP receiver on 127.0.0.1. Tests wait on conditions with generous
//! deadlines, never on tight wall-clock bounds: the machine may be loaded.

use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use nanotrader_notify::{Event, Notifier, NotifyConfig, NotifyFormat, Side, redact_url};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

fn init() {
    // The binary installs ring at start; tests do it themselves (once per process is enough).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What the receiver answers to one request.
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooMany(u64),
    /// Bad Request, with an answer that repeats a secret (as some receivers echo the input).
    BadRequest(&'static str),
    /// Never answers.
    Hang,
}

#[derive(Clone, Debug)]
struct Hit {
    uri: String,
    content_type: String,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Replies in turn; 200 once they run out, or `then` if set.
    script: Arc<Mutex<VecDeque<Reply>>>,
    then: Arc<Mutex<Option<Reply>>>,
}

impl Receiver {
    async fn start(script: &[Reply]) -> (Self, SocketAddr) {
        let receiver = Receiver::default();
        receiver.script.lock().unwrap().extend(script.iter().copied());
        let app = Router::new().fallback(answer).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, addr)
    }

    fn otherwise(&self, reply: Reply) {
        *self.then.lock().unwrap() = Some(reply);
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<Value> {
        self.hits().into_iter().map(|h| h.body).collect()
    }
}

async fn answer(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    r.hits.lock().unwrap().push(Hit {
        uri: uri.to_string(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let scripted = r.script.lock().unwrap().pop_front();
    let reply = scripted.or(*r.then.lock().unwrap()).unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::TooMany(secs) => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())]).into_response()
        }
        Reply::BadRequest(answer) => (StatusCode::BAD_REQUEST, answer).into_response(),
        Reply::Hang => std::future::pending().await,
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn config(url: &str, format: NotifyFormat) -> NotifyConfig {
    let mut config = NotifyConfig::new(url, format).unwrap();
    // Retries within a test's time; the doubling and jitter are unit-tested.
    config.first_backoff = Duration::from_millis(10);
    config
}

fn stopped(run: i64) -> Event {
    Event::Stopped {
        run,
        pair: "BTC/USD".into(),
        reason: "ctrl-c".into(),
    }
}

fn fill() -> Event {
    Event::Fill {
        run: 7,
        pair: "BTC/USD".into(),
        side: Side::Buy,
        qty: "0.01".parse().unwrap(),
        price: "60000.00".parse().unwrap(),
        fee: "1.56".parse().unwrap(),
        order_id: "O1".into(),
        trade_id: "T1".into(),
        ts: "2024-05-01T12:00:00Z".parse().unwrap(),
    }
}

#[tokio::test]
async fn each_format_posts_its_exact_body() {
    init();
    let (receiver, addr) = Receiver::start(&[]).await;
    let text = "BUY 0.01 BTC/USD at 60,000.00 (fee 1.56)";
    let cases = [
        (NotifyFormat::Slack, "/services/T1/B2/x", json!({ "text": text })),
        (NotifyFormat::Discord, "/api/webhooks/1/x", json!({ "content": text })),
        (
            NotifyFormat::Telegram,
            "/bot1:x/sendMessage?chat_id=-100123",
            json!({ "text": text, "chat_id": "-100123" }),
        ),
        (
            NotifyFormat::Json,
            "/hook",
            json!({
                "event": "fill", "run": 7, "pair": "BTC/USD", "side": "buy",
                "qty": "0.01", "price": "60000.00", "fee": "1.56",
                "order_id": "O1", "trade_id": "T1", "ts": "2024-05-01T12:00:00Z",
                "text": text
            }),
        ),
    ];
    for (i, (format, path, want)) in cases.into_iter().enumerate() {
        let notifier = Notifier::spawn(config(&format!("http://{addr}{path}"), format)).unwrap();
        notifier.notify(fill());
        let stats = within("shutdown", notifier.shutdown(DEADLINE)).await;
        assert_eq!((stats.sent, stats.failed), (1, 0), "{format}");
        let hit = &receiver.hits()[i];
        assert_eq!(hit.uri, path, "{format}");
        assert_eq!(hit.content_type, "application/json", "{format}");
        assert_eq!(hit.body, want, "{format}");
    }
}

#[tokio::test]
async fn json_body_stamps_events_without_a_time() {
    init();
    let (receiver, addr) = Receiver::start(&[]).await;
    let notifier = Notifier::spawn(config(&format!("http://{addr}/"), NotifyFormat::Json)).unwrap();
    let before = chrono::Utc::now();
    notifier.notify(Event::FeedDown {
        pair: "BTC/USD".into(),
        detail: "no trade for 60 s".into(),
    });
    within("shutdown", notifier.shutdown(DEADLINE)).await;
    let mut body = receiver.bodies().remove(0);
    let ts = body.as_object_mut().unwrap().remove("ts").unwrap();
    let ts = chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap()).unwrap();
    assert!(ts >= before, "{ts} < {before}");
    assert_eq!(
        body,
        json!({
            "event": "feed_down", "pair": "BTC/USD", "detail": "no trade for 60 s",
            "text": "Feed down for BTC/USD: no trade for 60 s"
        })
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_delivered_once() {
    init();
    let (receiver, addr) = Receiver::start(&[Reply::Status(500), Reply::Status(500)]).await;
    let notifier = Notifier::spawn(config(&format!("http://{addr}/"), NotifyFormat::Slack)).unwrap();
    notifier.notify(stopped(1));
    wait_until("the delivery", || notifier.sent() == 1).await;
    assert_eq!(receiver.hits().len(), 3);
    assert_eq!(notifier.failed(), 0);
    let stats = within("shutdown", notifier.shutdown(DEADLINE)).await;
    assert_eq!((stats.sent, stats.failed, stats.dropped, stats.abandoned), (1, 0, 0, 0));
}

#[tokio::test]
async fn events_go_out_in_order_across_retries() {
    init();
    let (receiver, addr) = Receiver::start(&[Reply::Status(503), Reply::Status(502)]).await;
    let notifier = Notifier::spawn(config(&format!("http://{addr}/"), NotifyFormat::Discord)).unwrap();
    for run in 1..=3 {
        notifier.notify(stopped(run));
    }
    let stats = within("shutdown", notifier.shutdown(DEADLINE)).await;
    assert_eq!((stats.sent, stats.failed), (3, 0));
    let runs: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| b["content"].as_str().unwrap()[12..13].to_owned())
        .collect();
    assert_eq!(runs, ["1", "1", "1", "2", "3"]);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    init();
    let (receiver, addr) = Receiver::start(&[Reply::TooMany(1)]).await;
    let notifier = Notifier::spawn(config(&format!("http://{addr}/"), NotifyFormat::Slack)).unwrap();
    let start = Instant::now();
    notifier.notify(stopped(1));
    wait_until("the delivery", || notifier.sent() == 1).await;
    // A lower bound only: the back-off alone would have waited ~10 ms.
    assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    init();
    let (receiver, addr) = Receiver::start(&[Reply::Status(400)]).await;
    let notifier = Notifier::spawn(config(&format!("http://{addr}/"), NotifyFormat::Slack)).unwrap();
    notifier.notify(stopped(1));
    notifier.notify(stopped(2));
    // The queue is posted in order, so a retry of the first would come before the second.
    let stats = within("shutdown", notifier.shutdown(DEADLINE)).await;
    assert_eq!((stats.sent, stats.failed), (1, 1));
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    init();
    let (receiver, addr) = Receiver::start(&[]).await;
    receiver.otherwise(Reply::Status(500));
    let mut config = config(&format!("http://{addr}/"), NotifyFormat::Slack);
    config.max_attempts = 3;
    let notifier = Notifier::spawn(config).unwrap();
    notifier.notify(stopped(1));
    wait_until("the give-up", || notifier.failed() == 1).await;
    assert_eq!(receiver.hits().len(), 3);
    assert_eq!(notifier.sent(), 0);
}

#[tokio::test]
async fn a_hanging_receiver_never_blocks_notify() {
    init();
    let logs = Logs::capture();
    let (receiver, addr) = Receiver::start(&[]).await;
    receiver.otherwise(Reply::Hang);
    let mut config = config(&format!("http://{addr}/"), NotifyFormat::Slack);
    config.timeout = Duration::from_secs(600);
    let notifier = Notifier::spawn(config).unwrap();
    notifier.notify(stopped(0));
    wait_until("the first request", || receiver.hits().len() == 1).await;

    // The sender is stuck in that request; on this single-threaded runtime it could not even
    // run during the loop, so notify() must neither wait for it nor yield to it.
    let start = Instant::now();
    for run in 1..=10_000 {
        notifier.notify(stopped(run));
    }
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    assert_eq!(notifier.dropped(), 10_000 - 256);
    assert_eq!(logs.count("alert queue full"), 1, "{}", logs.text());

    let stats = within("shutdown", notifier.shutdown(Duration::from_millis(200))).await;
    assert_eq!(stats.sent, 0);
    assert_eq!(stats.abandoned, 256 + 1);
    assert_eq!(logs.count("alerts not sent before shutdown"), 1, "{}", logs.text());
}

#[tokio::test]
async fn shutdown_flushes_the_queue() {
    init();
    let (receiver, addr) = Receiver::start(&[Reply::Status(500)]).await;
    let notifier = Notifier::spawn(config(&format!("http://{addr}/"), NotifyFormat::Json)).unwrap();
    let handle = notifier.handle();
    notifier.notify(Event::Started {
        run: 9,
        pair: "BTC/USD".into(),
        broker: "kraken".into(),
        live: true,
    });
    for _ in 0..20 {
        handle.notify(fill());
    }
    notifier.notify(stopped(9));
    let stats = within("shutdown", notifier.shutdown(DEADLINE)).await;
    assert_eq!(stats.sent, 22);
    assert_eq!(stats.abandoned, 0);
    let kinds: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| b["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds.len(), 23);
    assert_eq!(kinds.first().unwrap(), "started");
    assert_eq!(kinds.last().unwrap(), "stopped");

    // After shutdown, a handle's events are dropped and counted.
    handle.notify(stopped(9));
    assert_eq!(handle.dropped(), 1);
}

#[tokio::test]
async fn a_dropped_notifier_still_posts_its_queue() {
    init();
    let (receiver, addr) = Receiver::start(&[]).await;
    let notifier = Notifier::spawn(config(&format!("http://{addr}/"), NotifyFormat::Slack)).unwrap();
    notifier.notify(stopped(1));
    notifier.notify(stopped(2));
    drop(notifier);
    wait_until("both alerts", || receiver.hits().len() == 2).await;
}

#[tokio::test]
async fn logs_never_show_a_secret() {
    init();
    let logs = Logs::capture();
    let (receiver, addr) =
        Receiver::start(&[Reply::BadRequest("bad request: token tok-secret-value is not valid")]).await;
    receiver.otherwise(Reply::Status(503));
    let secrets = ["pa55word", "123456:SECRETTOKEN", "tok-secret-value"];
    let path = "/bot123456:SECRETTOKEN/sendMessage?chat_id=42&token=tok-secret-value";
    let url = format!("http://user:pa55word@{addr}{path}");

    // Refused (400, with the secret echoed in the answer), then 503 until given up.
    let mut live = config(&url, NotifyFormat::Telegram);
    live.max_attempts = 2;
    let notifier = Notifier::spawn(live.clone()).unwrap();
    notifier.notify(stopped(1));
    notifier.notify(stopped(2));
    let stats = within("shutdown", notifier.shutdown(DEADLINE)).await;
    assert_eq!(stats.failed, 2);
    assert_eq!(receiver.hits()[0].body["chat_id"], "42");

    // A transport error: nobody listens on that port any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut dead = config(&format!("http://user:pa55word@{closed}{path}"), NotifyFormat::Telegram);
    dead.max_attempts = 2;
    let notifier = Notifier::spawn(dead).unwrap();
    notifier.notify(stopped(3));
    let stats = within("shutdown", notifier.shutdown(DEADLINE)).await;
    assert_eq!(stats.failed, 1);

    // Even the settings and errors print redacted.
    tracing::info!(config = ?live, "settings");
    let error = NotifyConfig::new(&url.replace("http", "ftp"), NotifyFormat::Json).unwrap_err();
    tracing::info!(%error, "error");

    let text = logs.text();
    assert!(text.contains("alert refused by the webhook"), "{text}");
    assert!(text.contains("giving up"), "{text}");
    assert!(text.contains(&redact_url(&url)), "{text}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
}

/// What the crate logs, seen by the test that caused it. One global subscriber (thread-local
/// ones race with tracing's per-callsite interest cache when tests run in parallel) writes each
/// line to a buffer of the thread that logged it: the tests' runtimes are single-threaded, so the
/// sender task's lines land in its test's buffer.
struct Logs;

thread_local! {
    static LOGGED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Logs {
    fn capture() -> Logs {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing_subscriber::fmt()
                .with_writer(|| ThreadBuffer)
                .with_max_level(tracing::Level::TRACE)
                .init();
        });
        LOGGED.with(|b| b.borrow_mut().clear());
        Logs
    }

    fn text(&self) -> String {
        LOGGED.with(|b| String::from_utf8_lossy(&b.borrow()).into_owned())
    }

    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

struct ThreadBuffer;

impl Write for ThreadBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGGED.with(|b| b.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
