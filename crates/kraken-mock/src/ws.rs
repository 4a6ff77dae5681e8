//! One WebSocket v2 connection: greets with `status`, answers `ping`, `subscribe` and
//! `unsubscribe` (each for a list of symbols, as Kraken's), then streams updates as the market
//! clock passes trades, each market's in messages of its own symbol, with a heartbeat each idle
//! second while subscribed.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::Value;
use tokio::time::Instant;

use super::tape::{self, MINUTE};
use super::ws_messages::{self as msg, Channel, MALFORMED};
use super::{App, Market, faults};
use nanotrader_market::Timestamp;

const HEARTBEAT: Duration = Duration::from_secs(1);
/// Trades due within this much wall time share one update, which keeps fast replays cheap.
const MIN_UPDATE_GAP: Duration = Duration::from_millis(10);
const TRADE_SNAPSHOT: usize = 50;
/// How far back the ohlc snapshot reaches. Kraken does not document its size; this is REST's
/// 720 candles. Minutes without trades are left out, as Kraken's snapshots do.
const OHLC_SNAPSHOT_MINUTES: i64 = 720;
/// How long a closing session waits for a client that stopped reading.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) async fn upgrade(State(app): State<App>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        match Session::new(app, socket).run().await {
            Ok(why) => tracing::debug!("mock kraken ws session ended: {why}"),
            Err(e) => tracing::debug!("mock kraken ws session failed: {e}"),
        }
    })
}

/// A parsed `subscribe` or `unsubscribe`.
struct Request {
    channel: Channel,
    symbols: Vec<String>,
    snapshot: bool,
}

struct Session {
    app: App,
    market: Arc<Market>,
    socket: WebSocket,
    /// Each subscription: its channel and its market (an index in `Market::pairs`).
    subscribed: Vec<(Channel, usize)>,
    /// Per market, the tape index of its first trade not yet streamed.
    next_trade: Vec<usize>,
    opened: Instant,
    /// Frames this connection has tried to write, for the every-Nth faults.
    frames: u64,
    /// When a message was last due, sent or swallowed by a stall: paces heartbeats.
    last_out: Instant,
    last_update: Instant,
    /// The last silence counted, so each one is counted once.
    stall_counted: Option<u128>,
}

impl Session {
    fn new(app: App, socket: WebSocket) -> Self {
        let market = Arc::clone(&app.market);
        let now = Instant::now();
        Self {
            next_trade: (market.pairs.iter())
                .map(|pair| pair.tape.public(market.clock.now()).len())
                .collect(),
            app,
            market,
            socket,
            subscribed: Vec::new(),
            opened: now,
            frames: 0,
            last_out: now,
            last_update: now,
            stall_counted: None,
        }
    }

    async fn run(&mut self) -> Result<&'static str, axum::Error> {
        self.market.counters.bump(|c| c.ws_connections += 1);
        let mut stop = self.app.stop.clone();
        let drop_at = self.market.faults.drop_after.map(|after| self.opened + after);
        self.send(msg::status(rand::random())).await?;
        loop {
            let update_at = self.update_due();
            let heartbeat_at = (!self.subscribed.is_empty()).then(|| self.last_out + HEARTBEAT);
            tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None => return Ok("client closed"),
                    Some(Ok(Message::Text(text))) => self.on_request(text.as_str()).await?,
                    Some(Ok(other)) => tracing::debug!("mock kraken ws: ignored {other:?}"),
                    Some(Err(e)) => return Err(e),
                },
                () = sleep_until(update_at) => self.update(self.market.clock.now()).await?,
                () = sleep_until(heartbeat_at) => self.send(msg::heartbeat()).await?,
                () = sleep_until(drop_at) => {
                    self.market.counters.bump(|c| c.faults.dropped_connections += 1);
                    // Returning drops the socket: the client sees the TCP connection end
                    // without a close frame.
                    return Ok("dropped (fault)");
                }
                _ = stop.changed() => {
                    let close = self.socket.send(Message::Close(None));
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
                    return Ok("mock stopped");
                }
            }
        }
    }

    /// When the next trade's update is due: the earliest next trade of a subscribed market.
    fn update_due(&self) -> Option<Instant> {
        let next = (self.subscribed.iter())
            .filter_map(|(_, pair)| self.market.pairs[*pair].tape.get(self.next_trade[*pair]))
            .map(|trade| trade.ts)
            .min()?;
        Some(self.market.clock.wall_at(next).max(self.last_update + MIN_UPDATE_GAP))
    }

    /// Streams the trades that became public up to `now` to every subscribed channel, market by
    /// market; a market nothing subscribes to just moves on.
    async fn update(&mut self, now: Timestamp) -> Result<(), axum::Error> {
        let market = Arc::clone(&self.market);
        self.last_update = Instant::now();
        for (index, pair) in market.pairs.iter().enumerate() {
            let public = pair.tape.public(now);
            let first = self.next_trade[index].min(public.len());
            let fresh = &public[first..];
            self.next_trade[index] = public.len();
            if fresh.is_empty() {
                continue;
            }
            let channels: Vec<Channel> = (self.subscribed.iter())
                .filter(|(_, p)| *p == index)
                .map(|(c, _)| *c)
                .collect();
            let symbol = pair.symbol.as_str();
            for channel in channels {
                match channel {
                    Channel::Trade => self.send(msg::trades("update", symbol, fresh, first)).await?,
                    Channel::Ticker => {
                        if let Some(ticker) = msg::ticker("update", symbol, public, now) {
                            self.send(ticker).await?;
                        }
                    }
                    // One update per minute touched, so a minute's final state is sent before
                    // the next minute starts.
                    Channel::Ohlc => {
                        for minute in tape::minutes(fresh) {
                            if let Some(candle) = tape::candle(public, minute) {
                                self.send(msg::ohlc("update", symbol, &[candle], now)).await?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_request(&mut self, text: &str) -> Result<(), axum::Error> {
        let time_in = self.market.clock.now();
        let request = match serde_json::from_str::<Value>(text) {
            Ok(request @ Value::Object(_)) => request,
            _ => {
                tracing::debug!("mock kraken ws: malformed request {text:?}");
                let reply = msg::failure("error", MALFORMED, None, None, time_in, time_in);
                return self.send(reply).await;
            }
        };
        let req_id = request.get("req_id");
        let params = request.get("params");
        let method = request.get("method").and_then(Value::as_str);
        match method {
            Some("ping") => {
                let pong = msg::pong(req_id, time_in, self.market.clock.now());
                self.send(pong).await
            }
            Some("subscribe") => self.subscribe(params, req_id, time_in).await,
            Some("unsubscribe") => self.unsubscribe(params, req_id, time_in).await,
            _ => {
                tracing::debug!("mock kraken ws: unsupported method {method:?}");
                let name = method.unwrap_or("error");
                let reply = msg::failure(name, MALFORMED, None, req_id, time_in, time_in);
                self.send(reply).await
            }
        }
    }

    /// One ack per symbol; then, for an accepted one, the snapshot.
    async fn subscribe(
        &mut self,
        params: Option<&Value>,
        req_id: Option<&Value>,
        time_in: Timestamp,
    ) -> Result<(), axum::Error> {
        let request = match parse(params) {
            Ok(request) => request,
            Err(error) => {
                let reply = msg::failure("subscribe", error, None, req_id, time_in, time_in);
                return self.send(reply).await;
            }
        };
        for symbol in &request.symbols {
            let pair = self.market.pair_index(symbol);
            let refusal = match pair {
                _ if self.market.faults.reject_subscriptions => {
                    self.market.counters.bump(|c| c.faults.rejected_subscriptions += 1);
                    Some(msg::unsupported(symbol))
                }
                None => Some(msg::unsupported(symbol)),
                Some(pair) if self.subscribed.contains(&(request.channel, pair)) => {
                    Some("Already subscribed".to_owned())
                }
                Some(_) => None,
            };
            let now = self.market.clock.now();
            let pair = match (refusal, pair) {
                (None, Some(pair)) => pair,
                (refusal, _) => {
                    let error = refusal.unwrap_or_default();
                    let reply = msg::failure("subscribe", &error, Some(symbol), req_id, time_in, now);
                    self.send(reply).await?;
                    continue;
                }
            };
            // Bring earlier subscriptions up to `now` first: the snapshot then ends exactly
            // where the next update starts.
            self.update(now).await?;
            let ack = msg::subscribed(request.channel, symbol, request.snapshot, req_id, time_in, now);
            self.send(ack).await?;
            self.market.counters.bump(|c| {
                c.subscriptions += 1;
                if request.channel == Channel::Trade {
                    c.trade_subscribed_at = Some(now);
                }
            });
            self.subscribed.push((request.channel, pair));
            if request.snapshot
                && let Some(snapshot) = self.snapshot(request.channel, pair, now)
            {
                self.send(snapshot).await?;
            }
        }
        Ok(())
    }

    async fn unsubscribe(
        &mut self,
        params: Option<&Value>,
        req_id: Option<&Value>,
        time_in: Timestamp,
    ) -> Result<(), axum::Error> {
        let request = match parse(params) {
            Ok(request) => request,
            Err(error) => {
                let reply = msg::failure("unsubscribe", error, None, req_id, time_in, time_in);
                return self.send(reply).await;
            }
        };
        for symbol in &request.symbols {
            let now = self.market.clock.now();
            let pair = self.market.pair_index(symbol);
            let position = (self.subscribed.iter()).position(|s| Some(*s) == pair.map(|p| (request.channel, p)));
            let reply = match position {
                Some(index) => {
                    self.subscribed.remove(index);
                    msg::unsubscribed(request.channel, symbol, req_id, time_in, now)
                }
                // Kraken was seen answering this with `method: subscribe`; mirrored.
                _ => msg::failure(
                    "subscribe",
                    "Subscription Not Found",
                    Some(symbol),
                    req_id,
                    time_in,
                    now,
                ),
            };
            self.send(reply).await?;
        }
        Ok(())
    }

    fn snapshot(&self, channel: Channel, pair: usize, now: Timestamp) -> Option<Value> {
        let pair = &self.market.pairs[pair];
        let (public, symbol) = (pair.tape.public(now), pair.symbol.as_str());
        match channel {
            Channel::Trade => {
                let first = public.len().saturating_sub(TRADE_SNAPSHOT);
                Some(msg::trades("snapshot", symbol, &public[first..], first))
            }
            Channel::Ticker => msg::ticker("snapshot", symbol, public, now),
            Channel::Ohlc => {
                let window = OHLC_SNAPSHOT_MINUTES * MINUTE.secs();
                let from = Timestamp::from_secs(now.floor_to(MINUTE).secs() - window);
                let recent = tape::since(public, from);
                let candles: Vec<_> = tape::minutes(recent)
                    .into_iter()
                    .filter_map(|minute| tape::candle(recent, minute))
                    .collect();
                Some(msg::ohlc("snapshot", symbol, &candles, now))
            }
        }
    }

    /// Writes one message, unless a stall swallows it; faults may damage the frame.
    async fn send(&mut self, mut message: Value) -> Result<(), axum::Error> {
        let now = Instant::now();
        self.last_out = now;
        let stall = faults::stall_window(self.market.faults.stall, now - self.opened);
        if let Some(window) = stall {
            if self.stall_counted != Some(window) {
                self.stall_counted = Some(window);
                self.market.counters.bump(|c| c.faults.stalls += 1);
            }
            return Ok(());
        }
        self.frames += 1;
        faults::extra_fields(&self.market, &mut message);
        let text = faults::frame(&self.market, self.frames, message.to_string());
        self.socket.send(Message::text(text)).await?;
        self.market.counters.bump(|c| c.ws_messages_sent += 1);
        Ok(())
    }
}

/// Reads `params` of a (un)subscribe: channel, symbol list, snapshot flag; ohlc interval 1.
fn parse(params: Option<&Value>) -> Result<Request, &'static str> {
    let params = params.and_then(Value::as_object).ok_or(MALFORMED)?;
    let channel = params.get("channel").and_then(Value::as_str).ok_or(MALFORMED)?;
    let channel = Channel::parse(channel).ok_or("Subscription name invalid")?;
    let symbols: Vec<String> = params
        .get("symbol")
        .and_then(Value::as_array)
        .ok_or(MALFORMED)?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .filter(|s: &Vec<String>| !s.is_empty())
        .ok_or(MALFORMED)?;
    if channel == Channel::Ohlc && params.get("interval").and_then(Value::as_u64) != Some(1) {
        return Err("Malformed request: the mock serves ohlc interval 1 only");
    }
    let snapshot = match params.get("snapshot") {
        None => channel.default_snapshot(),
        Some(flag) => flag.as_bool().ok_or(MALFORMED)?,
    };
    Ok(Request {
        channel,
        symbols,
        snapshot,
    })
}

/// Sleeps until `at`, or forever without one (a disabled `select!` branch).
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
