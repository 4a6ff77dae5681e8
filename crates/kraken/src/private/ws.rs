//! The authenticated WebSocket v2 feed: the account's executions and balances as typed events
//! on a bounded channel, kept going across drops.
//!
//! Each connection gets a fresh token (Kraken: tokens are short-lived, get one per connection),
//! subscribes `executions` (open orders and the last 50 fills in its snapshot) and `balances`,
//! and streams. A connection that ends (no close frame, an error, silence beyond the timeout
//! while heartbeats are due) is replaced after a back-off with jitter, with a new token and new
//! snapshots, which the consumer replaces its state from. `EAPI:Invalid token` fetches a new
//! token and reconnects, a bounded number of times in a row. The token is never logged.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::client::PrivateClient;
use super::error::{ApiErrorKind, PrivateError};
use super::types::WebSocketsToken;
use super::ws_messages::{ExecType, ExecutionReport, LedgerEntry, PrivateMessage, parse_private_ws};
use crate::budget::Backoff;
use crate::consts::{
    FEED_SILENCE_TIMEOUT, RECONNECT_INITIAL, RECONNECT_JITTER, RECONNECT_MAX, REQUEST_TIMEOUT, WS_AUTH_URL,
};
use crate::parse::WsMessage;

/// Events buffered for the consumer; the feed waits (and the socket with it) when it is full.
const QUEUE: usize = 1024;
/// `EAPI:Invalid token` this many times in a row (each with a fresh token) is fatal.
const INVALID_TOKEN_RETRIES: u32 = 3;
/// The subscriptions, each with the `req_id` that names it in Kraken's answer.
const SUBSCRIPTIONS: [(u64, &str); 2] = [(1, "executions"), (2, "balances")];

/// Where the WebSocket token comes from: [`PrivateClient::get_websockets_token`], or a test's.
pub trait TokenSource: Send + Sync + 'static {
    fn websockets_token(&self) -> impl Future<Output = Result<WebSocketsToken, PrivateError>> + Send;
}

impl TokenSource for PrivateClient {
    fn websockets_token(&self) -> impl Future<Output = Result<WebSocketsToken, PrivateError>> + Send {
        self.get_websockets_token()
    }
}

#[derive(Clone, Debug)]
pub struct PrivateWsConfig {
    /// `wss://ws-auth.kraken.com/v2` ([`WS_AUTH_URL`]) or a mock's.
    pub url: String,
    /// No frame for this long means the connection is dead (Kraken sends heartbeats).
    pub silence_timeout: Duration,
    /// First and longest delay between connection attempts (each with ±20 % jitter).
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// Fresh tokens tried after `EAPI:Invalid token` before the feed gives up.
    pub invalid_token_retries: u32,
    /// Events buffered for the consumer.
    pub queue: usize,
}

impl PrivateWsConfig {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            silence_timeout: FEED_SILENCE_TIMEOUT,
            reconnect_initial: RECONNECT_INITIAL,
            reconnect_max: RECONNECT_MAX,
            invalid_token_retries: INVALID_TOKEN_RETRIES,
            queue: QUEUE,
        }
    }
}

impl Default for PrivateWsConfig {
    fn default() -> Self {
        Self::new(WS_AUTH_URL)
    }
}

/// What the private feed tells its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateEvent {
    /// A new connection is subscribed: snapshots follow, replace the state from them.
    Connected,
    /// The `executions` snapshot: open orders (`exec_type` new) and the latest fills (trade).
    Snapshot {
        orders: Vec<ExecutionReport>,
        trades: Vec<ExecutionReport>,
    },
    /// One order event or fill, in the order Kraken sent them (boxed: it is by far the largest).
    Execution(Box<ExecutionReport>),
    /// `snapshot`: every asset's total balance (replace). Otherwise the assets the `ledger`
    /// transactions touched, each with its new total. Assets in WS v2 names (`BTC`, `USD`).
    Balances {
        snapshot: bool,
        balances: BTreeMap<String, Decimal>,
        ledger: Vec<LedgerEntry>,
        /// When the message arrived: a consumer that learns the account another way (REST) can
        /// tell an older message, still queued, from a newer one.
        received: std::time::Instant,
    },
    /// The connection ended; the feed reconnects by itself. State may be stale until the next
    /// `Connected` and its snapshots.
    Disconnected { reason: String },
    /// The feed stopped for good.
    Fatal(PrivateWsError),
}

/// Why the private feed stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrivateWsError {
    /// GetWebSocketsToken failed in a way waiting will not fix (key, permission, signature).
    #[error("cannot get a WebSocket token: {0}")]
    Token(PrivateError),
    #[error("Kraken refused {attempts} fresh WebSocket tokens in a row: {error}")]
    InvalidToken { attempts: u32, error: String },
    #[error("Kraken refused the {channel} subscription: {error}")]
    Refused { channel: String, error: String },
    /// A close frame Kraken means as final (policy violation).
    #[error("Kraken closed the private feed: {0}")]
    Closed(String),
}

/// Counters of a running feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrivateFeedStats {
    /// Connections that reached their subscriptions.
    pub connections: u64,
    /// Connections that ended and were replaced.
    pub disconnects: u64,
    /// Frames that could not be read (skipped).
    pub malformed: u64,
    /// Updates whose `sequence` did not follow the previous one on their channel.
    pub sequence_gaps: u64,
}

#[derive(Debug, Default)]
struct Stats {
    connections: AtomicU64,
    disconnects: AtomicU64,
    malformed: AtomicU64,
    sequence_gaps: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The running feed. Dropping it stops the task.
#[derive(Debug)]
pub struct PrivateFeed {
    events: mpsc::Receiver<PrivateEvent>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl PrivateFeed {
    /// Starts the feed task; the first connection is made in it (failures are retried there).
    pub fn spawn<T: TokenSource>(tokens: Arc<T>, config: PrivateWsConfig) -> Self {
        let (tx, events) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(Stats::default());
        let feed = Feed {
            backoff: Backoff::new(config.reconnect_initial, config.reconnect_max, RECONNECT_JITTER),
            config,
            tokens,
            tx,
            stats: Arc::clone(&stats),
            invalid_tokens: 0,
        };
        let task = tokio::spawn(feed.run());
        Self { events, stats, task }
    }

    /// The next event; `None` once the feed has stopped (after its `Fatal`).
    pub async fn recv(&mut self) -> Option<PrivateEvent> {
        self.events.recv().await
    }

    pub fn stats(&self) -> PrivateFeedStats {
        let s = &self.stats;
        PrivateFeedStats {
            connections: s.connections.load(Ordering::Relaxed),
            disconnects: s.disconnects.load(Ordering::Relaxed),
            malformed: s.malformed.load(Ordering::Relaxed),
            sequence_gaps: s.sequence_gaps.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PrivateFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a session ended.
enum End {
    /// Try again after a back-off; `connected` says whether the consumer saw `Connected`.
    Retry {
        reason: String,
        connected: bool,
    },
    Fatal(PrivateWsError),
    /// The consumer dropped the feed.
    ConsumerGone,
}

struct Feed<T> {
    config: PrivateWsConfig,
    tokens: Arc<T>,
    tx: mpsc::Sender<PrivateEvent>,
    stats: Arc<Stats>,
    backoff: Backoff,
    /// `EAPI:Invalid token` refusals since the last accepted subscription.
    invalid_tokens: u32,
}

impl<T: TokenSource> Feed<T> {
    async fn run(mut self) {
        loop {
            let started = Instant::now();
            let (reason, connected) = match self.session().await {
                End::ConsumerGone => return,
                End::Fatal(e) => {
                    tracing::error!("Kraken private feed stopped: {e}");
                    let _ = self.tx.send(PrivateEvent::Fatal(e)).await;
                    return;
                }
                End::Retry { reason, connected } => (reason, connected),
            };
            // A connection that lived a while earns a fresh back-off.
            if started.elapsed() > self.config.reconnect_max {
                self.backoff.reset();
            }
            let delay = self.backoff.next_delay();
            if connected {
                Stats::bump(&self.stats.disconnects);
                tracing::warn!(
                    "Kraken private feed down ({reason}); reconnecting in {:.1} s",
                    delay.as_secs_f64()
                );
                if !self.send(PrivateEvent::Disconnected { reason }).await {
                    return;
                }
            } else {
                tracing::debug!(
                    "Kraken private feed: {reason}; trying again in {:.1} s",
                    delay.as_secs_f64()
                );
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.tx.closed() => return,
            }
        }
    }

    /// One connection: a fresh token, connect, subscribe, stream until it ends.
    async fn session(&mut self) -> End {
        let retry = |reason: String| End::Retry {
            reason,
            connected: false,
        };
        let token = match self.tokens.websockets_token().await {
            Ok(token) => token,
            Err(e) if e.is_retryable() => return retry(format!("no WebSocket token: {e}")),
            Err(e) => return End::Fatal(PrivateWsError::Token(e)),
        };
        let socket = match timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(&self.config.url)).await {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(e)) => return retry(format!("connect failed: {e}")),
            Err(_) => return retry("connect timed out".into()),
        };
        let (mut sink, mut stream) = socket.split();
        for (req_id, channel) in SUBSCRIPTIONS {
            // The request holds the token: only the error is reported, never the request.
            let request = subscribe_request(channel, &token.token, req_id);
            if let Err(e) = sink.send(Message::text(request)).await {
                return retry(format!("subscribe failed: {e}"));
            }
        }
        drop(token);
        Stats::bump(&self.stats.connections);
        if !self.send(PrivateEvent::Connected).await {
            return End::ConsumerGone;
        }
        let mut session = Session::default();
        loop {
            let retry = |reason: String| End::Retry {
                reason,
                connected: true,
            };
            let silence = self.config.silence_timeout;
            let frame = match timeout(silence, stream.next()).await {
                Err(_) => return retry(format!("silent for {:.1} s", silence.as_secs_f64())),
                Ok(None) => return retry("connection closed without a close frame".into()),
                Ok(Some(Err(e))) => return retry(e.to_string()),
                Ok(Some(Ok(frame))) => frame,
            };
            let text = match frame {
                Message::Text(text) => text,
                // Kraken's SDK treats policy violation (1008) as final, every other close as transient.
                Message::Close(Some(close)) if close.code == CloseCode::Policy => {
                    return End::Fatal(PrivateWsError::Closed(close.reason.to_string()));
                }
                Message::Close(_) => return retry("closed by Kraken".into()),
                _ => continue,
            };
            let message = match parse_private_ws(&text) {
                Ok(message) => message,
                Err(e) => {
                    self.malformed(&e);
                    continue;
                }
            };
            let delivered = match message {
                PrivateMessage::Public(message) => match self.on_public(message, &mut session) {
                    Ok(()) => true,
                    Err(end) => return end,
                },
                PrivateMessage::Executions {
                    snapshot,
                    sequence,
                    reports,
                } => {
                    session.follow(0, snapshot, sequence, &self.stats);
                    if snapshot {
                        let (trades, orders) = reports.into_iter().partition(|r| r.exec_type == ExecType::Trade);
                        self.send(PrivateEvent::Snapshot { orders, trades }).await
                    } else {
                        let mut ok = true;
                        for report in reports {
                            ok = ok && self.send(PrivateEvent::Execution(Box::new(report))).await;
                        }
                        ok
                    }
                }
                PrivateMessage::BalancesSnapshot { sequence, balances } => {
                    session.follow(1, true, sequence, &self.stats);
                    let ledger = Vec::new();
                    self.send(PrivateEvent::Balances {
                        snapshot: true,
                        balances,
                        ledger,
                        received: std::time::Instant::now(),
                    })
                    .await
                }
                PrivateMessage::BalancesUpdate { sequence, entries } => {
                    session.follow(1, false, sequence, &self.stats);
                    // Each entry carries its asset's total after it: the last one per asset wins.
                    let balances = entries.iter().map(|e| (e.asset.clone(), e.balance)).collect();
                    self.send(PrivateEvent::Balances {
                        snapshot: false,
                        balances,
                        ledger: entries,
                        received: std::time::Instant::now(),
                    })
                    .await
                }
            };
            if !delivered {
                return End::ConsumerGone;
            }
        }
    }

    /// Acks, status and heartbeats; `Err` ends the session.
    fn on_public(&mut self, message: WsMessage, session: &mut Session) -> Result<(), End> {
        match message {
            WsMessage::SubscribeResult {
                success: true, req_id, ..
            } => {
                self.invalid_tokens = 0;
                session.subscribed += 1;
                if session.subscribed == SUBSCRIPTIONS.len() {
                    self.backoff.reset();
                }
                tracing::debug!(?req_id, "Kraken private feed subscribed");
                Ok(())
            }
            WsMessage::SubscribeResult {
                success: false,
                error,
                channel,
                req_id,
                ..
            } => {
                let error = error.unwrap_or_else(|| "no reason given".into());
                if ApiErrorKind::classify(&error) == ApiErrorKind::Session {
                    self.invalid_tokens += 1;
                    if self.invalid_tokens > self.config.invalid_token_retries {
                        return Err(End::Fatal(PrivateWsError::InvalidToken {
                            attempts: self.invalid_tokens,
                            error,
                        }));
                    }
                    return Err(End::Retry {
                        reason: format!("token refused ({error}); reconnecting with a new one"),
                        connected: true,
                    });
                }
                let by_req = SUBSCRIPTIONS
                    .iter()
                    .find(|(id, _)| Some(*id) == req_id)
                    .map(|(_, c)| *c);
                let channel = channel.as_deref().or(by_req).unwrap_or("private").to_owned();
                Err(End::Fatal(PrivateWsError::Refused { channel, error }))
            }
            WsMessage::Status { system, .. } if system != "online" => {
                tracing::warn!("Kraken reports its system as '{system}'");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Counts a frame that could not be read; only the first is logged as a warning.
    fn malformed(&self, e: &PrivateError) {
        let count = Stats::bump(&self.stats.malformed);
        if count == 1 {
            tracing::warn!("skipping a malformed Kraken private message (later ones are counted, not logged): {e}");
        } else {
            tracing::debug!(malformed = count, "skipping a malformed Kraken private message: {e}");
        }
    }

    async fn send(&self, event: PrivateEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }
}

/// What one connection has seen.
#[derive(Default)]
struct Session {
    subscribed: usize,
    /// The last `sequence` per channel (executions, balances).
    sequence: [Option<u64>; 2],
}

impl Session {
    /// Notes a channel message's sequence; a jump is counted (a message was missed or skipped).
    fn follow(&mut self, channel: usize, snapshot: bool, sequence: Option<u64>, stats: &Stats) {
        let Some(sequence) = sequence else {
            return;
        };
        if let Some(last) = self.sequence[channel]
            && !snapshot
            && sequence != last + 1
        {
            let gaps = Stats::bump(&stats.sequence_gaps);
            tracing::warn!(gaps, "Kraken private feed: sequence went from {last} to {sequence}");
        }
        self.sequence[channel] = Some(sequence);
    }
}

/// The subscribe request of a private channel, with snapshots (open orders and the last 50
/// fills for `executions`). The token is in it: never log the result.
fn subscribe_request(channel: &str, token: &str, req_id: u64) -> String {
    let mut params = serde_json::json!({ "channel": channel, "token": token });
    if channel == "executions" {
        params["snap_orders"] = true.into();
        params["snap_trades"] = true.into();
    } else {
        params["snapshot"] = true.into();
    }
    serde_json::json!({ "method": "subscribe", "params": params, "req_id": req_id }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_requests_ask_for_snapshots() {
        let exec: serde_json::Value = serde_json::from_str(&subscribe_request("executions", "tok", 1)).unwrap();
        assert_eq!(
            exec,
            serde_json::json!({"method":"subscribe","req_id":1,
                "params":{"channel":"executions","token":"tok","snap_orders":true,"snap_trades":true}})
        );
        let bal: serde_json::Value = serde_json::from_str(&subscribe_request("balances", "tok", 2)).unwrap();
        assert_eq!(bal["params"]["snapshot"], true);
    }

    /// Hands out `tok-1`, `tok-2`, ...
    struct Counted(AtomicU64);

    impl TokenSource for Counted {
        async fn websockets_token(&self) -> Result<WebSocketsToken, PrivateError> {
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            Ok(WebSocketsToken {
                token: format!("tok-{n}"),
                expires: 900,
            })
        }
    }

    /// A scripted server: per connection, reads the two subscribe requests (their tokens are
    /// reported), acks them, sends `frames`, then stays open and silent.
    async fn silent_server(frames: Vec<&'static str>) -> (String, mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (seen, tokens) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                for req_id in [1, 2] {
                    let Some(Ok(Message::Text(text))) = ws.next().await else {
                        panic!("no subscribe request")
                    };
                    let request: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let _ = seen.send(request["params"]["token"].as_str().unwrap_or_default().to_owned());
                    let ack = format!(r#"{{"method":"subscribe","req_id":{req_id},"success":true,"result":{{}}}}"#);
                    ws.send(Message::text(ack)).await.unwrap();
                }
                for frame in &frames {
                    ws.send(Message::text(*frame)).await.unwrap();
                }
                // Kept open without a word: only the silence timeout notices.
                open.push(ws);
            }
        });
        (url, tokens)
    }

    #[tokio::test]
    async fn silence_reconnects_with_a_new_token_and_a_malformed_frame_is_skipped() {
        let frames = vec![
            "not json at all",
            r#"{"channel":"executions","type":"snapshot","data":[],"sequence":1}"#,
            r#"{"channel":"executions","type":"update","data":[{"exec_type":"trade"}],"sequence":2}"#,
            r#"{"channel":"balances","type":"snapshot","data":[{"asset":"USD","balance":12.5}],"sequence":1}"#,
        ];
        let (url, mut tokens) = silent_server(frames).await;
        let mut config = PrivateWsConfig::new(&url);
        config.silence_timeout = Duration::from_millis(300);
        config.reconnect_initial = Duration::from_millis(10);
        let mut feed = PrivateFeed::spawn(Arc::new(Counted(AtomicU64::new(0))), config);
        let mut events = Vec::new();
        while events.iter().filter(|e| matches!(e, PrivateEvent::Connected)).count() < 2 {
            let event = timeout(Duration::from_secs(30), feed.recv()).await.unwrap().unwrap();
            events.push(event);
        }
        assert!(matches!(events[0], PrivateEvent::Connected), "{events:?}");
        assert_eq!(
            events[1],
            PrivateEvent::Snapshot {
                orders: vec![],
                trades: vec![]
            }
        );
        let PrivateEvent::Balances { snapshot, balances, .. } = &events[2] else {
            panic!("{events:?}")
        };
        assert!(*snapshot);
        assert_eq!(balances["USD"].to_string(), "12.5");
        let PrivateEvent::Disconnected { reason } = &events[3] else {
            panic!("{events:?}")
        };
        assert!(reason.starts_with("silent for"), "{reason}");
        assert!(!reason.contains("tok-"));
        let stats = feed.stats();
        // Garbage and a trade without its fields: counted, skipped, the feed went on.
        assert_eq!((stats.malformed, stats.connections, stats.disconnects), (2, 2, 1));
        // Each connection subscribed with its own, fresh token.
        let mut seen = Vec::new();
        while seen.len() < 4 {
            seen.push(timeout(Duration::from_secs(30), tokens.recv()).await.unwrap().unwrap());
        }
        assert_eq!(seen, ["tok-1", "tok-1", "tok-2", "tok-2"]);
    }
}
