//! `--source kraken`: WebSocket v2 `trade` and `ticker` streams, bars built from trades; one
//! connection carries every pair of a process, each message routed by its symbol.
//!
//! The trade tape is kept exact across everything that can go wrong: after a disconnect or a
//! restart the missed trades are fetched from REST Trades (cursor = the last trade seen) before
//! live trades flow again, and trades are de-duplicated by Kraken's per-pair trade id. While the
//! socket is down, REST Trades is polled within the public budget, so bars keep coming. A new
//! run starting mid-minute gets that minute's earlier trades the same way, so its first bar is
//! the whole minute.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::budget::Backoff;
use super::consts::{
    FEED_SILENCE_TIMEOUT, MAX_RETRIES, OHLC_INTERVALS_MINUTES, PUBLIC_REST_MIN_INTERVAL, RECONNECT_INITIAL,
    RECONNECT_JITTER, RECONNECT_MAX, REQUEST_TIMEOUT, TRADES_PAGE_MAX,
};
use super::ohlc_check::OhlcCheck;
use super::parse::{WsMessage, parse_ws, subscribe_request};
use super::reach::{self, Cause};
use super::rest::{RestClient, Retries};
use super::symbols::PairNames;
use nanotrader_market::{EventSender, TaskSource};
use nanotrader_market::{FeedStatus, Interval, MarketEvent, SourceError, Timestamp, Trade};

/// Events buffered between the feed task and the engine.
const QUEUE: usize = 4096;
/// A quiet minute is closed this long after it ends by the local clock, leaving room for a trade
/// stamped just before the minute's end that is still on its way.
const CLOCK_GRACE: Duration = Duration::from_secs(2);
/// The channels subscribed, each with the `req_id` that names it in Kraken's answer (an error
/// answer carries no channel).
const SUBSCRIPTIONS: [(u64, &str); 3] = [(1, "trade"), (2, "ticker"), (OHLC_REQ, "ohlc")];
/// The `ohlc` subscription only feeds a cross-check: its refusal is not fatal.
const OHLC_REQ: u64 = 3;
/// Tries of the first connection after the first, as for the start-up's AssetPairs call.
const START_RETRIES: u32 = 2;
/// Only the first few malformed messages are logged one by one; then every power of ten.
const MALFORMED_LOGGED: u64 = 3;

#[derive(Clone, Debug)]
pub struct WsFeedConfig {
    pub ws_url: String,
    pub silence_timeout: Duration,
    pub interval: Interval,
}

impl WsFeedConfig {
    pub fn new(ws_url: &str, interval: Interval) -> Self {
        Self {
            ws_url: ws_url.to_owned(),
            silence_timeout: FEED_SILENCE_TIMEOUT,
            interval,
        }
    }
}

/// One pair a connection carries.
#[derive(Clone, Debug)]
pub struct WsPair {
    pub names: PairNames,
    /// Continue the pair's tape from here (a resumed run: the end of its last stored bar). A
    /// new run starts with the bar the exchange is in when the feed subscribes, its earlier
    /// trades fetched from REST Trades, so its first bar is complete.
    pub start_at: Option<Timestamp>,
}

/// `--source kraken`, fed by its WebSocket task.
pub struct KrakenWsSource;

impl KrakenWsSource {
    /// Connects one WebSocket for every pair (Kraken prefers one connection carrying many
    /// symbols to one per symbol), then hands it to the feed task, which keeps it going and
    /// routes each message by its symbol to that pair's source (one per `pairs` entry, in
    /// order). A first connection that cannot be made (after `START_RETRIES` more tries) is the
    /// caller's to report, with its cause; later disconnects are reconnected, and every pair is
    /// back-filled from its own last trade.
    pub async fn connect(config: WsFeedConfig, rest: RestClient, pairs: Vec<WsPair>) -> Result<Vec<TaskSource>, Cause> {
        let mut backoff = Backoff::new(RECONNECT_INITIAL, RECONNECT_MAX, RECONNECT_JITTER);
        let socket = loop {
            let failure = match open(&config.ws_url).await {
                Ok(socket) => break socket,
                Err(failure) => failure,
            };
            if backoff.attempts() >= START_RETRIES {
                return Err(match failure {
                    OpenError::Failed(e) => reach::connect_cause(&config.ws_url, &e).await,
                    OpenError::TimedOut => {
                        let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "the WebSocket handshake timed out");
                        reach::connect_cause(&config.ws_url, &e).await
                    }
                });
            }
            let delay = backoff.next_delay();
            tracing::debug!("Kraken WebSocket: {}; trying again in {delay:?}", failure.reason());
            tokio::time::sleep(delay).await;
        };
        let minutes = config.interval.secs() / 60;
        let checked = config.interval.secs() % 60 == 0 && OHLC_INTERVALS_MINUTES.contains(&(minutes as u32));
        let infos = pairs.iter().map(|p| p.names.feed_info("kraken")).collect();
        Ok(TaskSource::spawn_shared(infos, QUEUE, |senders| {
            let pairs = pairs
                .into_iter()
                .zip(senders)
                .map(|(pair, tx)| PairFeed {
                    tape: Tape::new(pair.start_at, config.interval),
                    names: pair.names,
                    tx,
                    gone: false,
                    caught_up: false,
                    clock: None,
                    check: checked.then(|| OhlcCheck::new(config.interval)),
                    backfills: 0,
                })
                .collect();
            let feed = Feed {
                config,
                rest,
                pairs,
                malformed: 0,
                reconnects: 0,
            };
            feed.run(socket)
        }))
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a WebSocket could not be opened.
enum OpenError {
    Failed(tokio_tungstenite::tungstenite::Error),
    TimedOut,
}

impl OpenError {
    fn reason(&self) -> String {
        match self {
            OpenError::Failed(e) => format!("connect failed: {e}"),
            OpenError::TimedOut => "connect timed out".into(),
        }
    }
}

/// Connects and upgrades to a WebSocket, within the request timeout.
async fn open(url: &str) -> Result<Socket, OpenError> {
    match timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(OpenError::Failed(e)),
        Err(_) => Err(OpenError::TimedOut),
    }
}

/// Where the forwarded trade tape stands: what has been handed on, and where to fetch from.
#[derive(Debug)]
struct Tape {
    /// Trades before this time are not forwarded: they belong to bars already stored, or, for a
    /// new run, to bars before the one the exchange was in when we subscribed (set by
    /// `start_with_bar_of` from the exchange's time, not ours).
    forward_from: Option<Timestamp>,
    /// No bar of this run is stored yet: its start is ours to choose.
    new_run: bool,
    interval: Interval,
    last_id: Option<u64>,
    last_ts: Option<Timestamp>,
}

impl Tape {
    fn new(start_at: Option<Timestamp>, interval: Interval) -> Self {
        Self {
            new_run: start_at.is_none(),
            forward_from: start_at,
            interval,
            last_id: None,
            last_ts: None,
        }
    }

    /// A new run starts with the bar holding `now` (exchange time); a resumed one keeps its start.
    fn start_with_bar_of(&mut self, now: Timestamp) {
        self.forward_from.get_or_insert(now.floor_to(self.interval));
    }

    /// A new run whose first bar could not be completed from REST starts with the next bar
    /// instead, so it never stores a partial one.
    fn start_with_next_bar(&mut self) {
        if self.new_run
            && self.last_ts.is_none()
            && let Some(start) = &mut self.forward_from
        {
            *start = start.plus(self.interval);
        }
    }

    /// Accounts for a trade and says what to do with it. Trades before the start are accounted
    /// for too (not forwarded), so a trade missed right after them is still noticed as a gap.
    fn take(&mut self, ts: Timestamp, id: Option<u64>) -> Take {
        let start = *self.forward_from.get_or_insert(ts.floor_to(self.interval));
        let new = match (id, self.last_id) {
            (Some(id), Some(last)) => id > last,
            _ => self.last_ts.is_none_or(|last| ts >= last),
        };
        if !new {
            return Take::Duplicate;
        }
        self.last_ts = Some(ts);
        if id.is_some() {
            self.last_id = id;
        }
        if ts < start { Take::BeforeStart } else { Take::Forward }
    }

    /// REST Trades `since` for the next fetch: just before the last trade (ids remove the overlap).
    fn cursor(&self) -> Option<String> {
        let from = self.last_ts.or(self.forward_from)?;
        Some((from.nanos() - 1).to_string())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Take {
    /// New and ours: hand it to the engine.
    Forward,
    /// Already handed on (a snapshot or back-fill overlap).
    Duplicate,
    /// New, but in a bar before this run's first.
    BeforeStart,
}

/// The exchange's clock as last seen (a trade's time) moved on by our monotonic clock: quiet
/// bars close on exchange time, whatever the offset between the exchange's clock and ours.
#[derive(Copy, Clone, Debug)]
struct ExchangeClock {
    seen: Timestamp,
    at: Instant,
}

impl ExchangeClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.at.elapsed().saturating_sub(CLOCK_GRACE);
        Timestamp::from_nanos(self.seen.nanos().saturating_add(elapsed.as_nanos() as i64))
    }
}

/// Why a WebSocket session ended.
enum End {
    /// Reconnect after a back-off.
    Disconnected(String),
    /// Cannot go on (a refused subscription): the run stops with this error.
    Fatal(SourceError),
    /// Every pair's engine dropped its source.
    EngineGone,
}

/// The connection and the pairs it carries.
struct Feed {
    config: WsFeedConfig,
    rest: RestClient,
    pairs: Vec<PairFeed>,
    malformed: u64,
    reconnects: u64,
}

/// One pair's side of the connection: its tape and its source.
struct PairFeed {
    names: PairNames,
    tx: EventSender,
    /// Its engine dropped the source: nothing more is sent to it.
    gone: bool,
    tape: Tape,
    /// Caught up on this connection: its gap since the last trade handed on is back-filled.
    caught_up: bool,
    clock: Option<ExchangeClock>,
    /// Kraken's candles against our bars, when Kraken has candles of our interval.
    check: Option<OhlcCheck>,
    backfills: u64,
}

impl Feed {
    /// Streams from `socket`, then from every reconnection, until every engine is gone.
    async fn run(mut self, socket: Socket) {
        let mut backoff = Backoff::new(RECONNECT_INITIAL, RECONNECT_MAX, RECONNECT_JITTER);
        let mut socket = Some(socket);
        loop {
            let connected_at = Instant::now();
            match self.session(&mut backoff, socket.take()).await {
                End::EngineGone => return,
                End::Fatal(e) => {
                    for pair in &self.pairs {
                        let _ = pair.tx.send(Err(e.clone())).await;
                    }
                    return;
                }
                End::Disconnected(reason) => {
                    self.reconnects += 1;
                    // A session that lived a while earns a fresh back-off.
                    if connected_at.elapsed() > RECONNECT_MAX {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        reconnects = self.reconnects,
                        "Kraken WebSocket down ({reason}); reconnecting in {:.1} s, REST Trades meanwhile",
                        delay.as_secs_f64()
                    );
                    for pair in &mut self.pairs {
                        pair.caught_up = false;
                        let status = MarketEvent::Status(FeedStatus::Disconnected { reason: reason.clone() });
                        pair.send(status).await;
                    }
                    if !self.poll_rest_until(Instant::now() + delay).await {
                        return;
                    }
                }
            }
        }
    }

    /// The pair a message names by its WS v2 symbol.
    fn pair_of(&mut self, symbol: &str) -> Option<&mut PairFeed> {
        self.pairs.iter_mut().find(|p| p.names.ws == symbol)
    }

    fn all_gone(&self) -> bool {
        self.pairs.iter().all(|p| p.gone)
    }

    /// One connection (`socket`, or a new one): subscribe every pair, catch each up from REST,
    /// then stream until it ends.
    async fn session(&mut self, backoff: &mut Backoff, socket: Option<Socket>) -> End {
        let socket = match socket {
            Some(socket) => socket,
            None => match open(&self.config.ws_url).await {
                Ok(socket) => socket,
                Err(failure) => return End::Disconnected(failure.reason()),
            },
        };
        let (mut sink, mut stream) = socket.split();
        // One request per channel, naming every pair's symbol.
        for (req_id, channel) in SUBSCRIPTIONS {
            let (symbols, interval): (Vec<&str>, _) = match channel {
                "ohlc" => (
                    self.pairs
                        .iter()
                        .filter(|p| p.check.is_some())
                        .map(|p| p.names.ws.as_str())
                        .collect(),
                    Some(self.config.interval.secs() as u32 / 60),
                ),
                _ => (self.pairs.iter().map(|p| p.names.ws.as_str()).collect(), None),
            };
            if symbols.is_empty() {
                continue;
            }
            let request = subscribe_request(channel, &symbols, req_id, interval);
            if let Err(e) = sink.send(Message::text(request)).await {
                return End::Disconnected(format!("subscribe failed: {e}"));
            }
        }
        for pair in &mut self.pairs {
            pair.caught_up = false;
        }
        loop {
            let frame = match timeout(self.config.silence_timeout, stream.next()).await {
                Err(_) => {
                    return End::Disconnected(format!("silent for {} s", self.config.silence_timeout.as_secs()));
                }
                Ok(None) => return End::Disconnected("connection closed".into()),
                Ok(Some(Err(e))) => return End::Disconnected(e.to_string()),
                Ok(Some(Ok(frame))) => frame,
            };
            let text = match frame {
                Message::Text(text) => text,
                // Kraken's SDK treats policy violation (1008) as final, every other close as transient.
                Message::Close(Some(close)) if close.code == CloseCode::Policy => {
                    return End::Fatal(SourceError::Fatal(format!("Kraken closed the feed: {}", close.reason)));
                }
                Message::Close(_) => return End::Disconnected("closed by Kraken".into()),
                _ => continue,
            };
            let message = match parse_ws(&text) {
                Ok(message) => message,
                Err(e) => {
                    self.malformed += 1;
                    if self.malformed <= MALFORMED_LOGGED || self.malformed.is_power_of_two() {
                        tracing::warn!(malformed = self.malformed, "skipping a malformed Kraken message: {e}");
                    }
                    continue;
                }
            };
            if let Some(end) = self.on_message(message, backoff).await {
                return end;
            }
            if self.all_gone() {
                return End::EngineGone;
            }
        }
    }

    /// Acts on one message; `Some` ends the session.
    async fn on_message(&mut self, message: WsMessage, backoff: &mut Backoff) -> Option<End> {
        match message {
            WsMessage::SubscribeResult {
                success: false,
                req_id: Some(OHLC_REQ),
                error,
                symbol,
                ..
            } => {
                tracing::warn!(
                    "Kraken refused the ohlc subscription{} ({}): bars are not cross-checked",
                    symbol.as_deref().map(|s| format!(" for {s}")).unwrap_or_default(),
                    error.as_deref().unwrap_or("no reason given")
                );
                for pair in &mut self.pairs {
                    if symbol.as_deref().is_none_or(|s| s == pair.names.ws) {
                        pair.check = None;
                    }
                }
            }
            WsMessage::SubscribeResult {
                success: false,
                error,
                channel,
                req_id,
                symbol,
                ..
            } => {
                let by_req = SUBSCRIPTIONS
                    .iter()
                    .find(|(id, _)| Some(*id) == req_id)
                    .map(|(_, c)| *c);
                let all = || {
                    self.pairs
                        .iter()
                        .map(|p| p.names.ws.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Some(End::Fatal(SourceError::Input(format!(
                    "Kraken refused the {} subscription for {}: {}",
                    channel.as_deref().or(by_req).unwrap_or("market data"),
                    symbol.unwrap_or_else(all),
                    error.as_deref().unwrap_or("no reason given")
                ))));
            }
            WsMessage::SubscribeResult {
                channel,
                time_out,
                symbol,
                ..
            } if channel.as_deref() == Some("trade") => {
                // The exchange's time of the answer: a new run starts with the bar it is in.
                for pair in &mut self.pairs {
                    if symbol.as_deref().is_none_or(|s| s == pair.names.ws) {
                        if let Some(now) = time_out {
                            pair.tape.start_with_bar_of(now);
                        }
                        pair.send(MarketEvent::Status(FeedStatus::Connected)).await;
                    }
                }
            }
            WsMessage::Trades {
                symbol,
                trades,
                snapshot,
            } => {
                let reconnects = self.reconnects;
                // Fields apart: the pair is borrowed mutably beside the REST client.
                let Some(pair) = self.pairs.iter_mut().find(|p| p.names.ws == symbol) else {
                    tracing::debug!("Kraken sent trades of {symbol}, which this feed did not ask for");
                    return None;
                };
                // Without the answer's time, a new run starts with the bar of the latest
                // trade a snapshot holds (the first of an update).
                let latest = if snapshot { trades.last() } else { trades.first() };
                if let Some(t) = latest {
                    pair.tape.start_with_bar_of(t.trade.ts);
                }
                // Trade ids count up by one per pair: a jump means trades were missed (a
                // reconnect, a frame that could not be read). Fetch them from REST first;
                // a new run fetches its first bar's trades before this message.
                let missed = match (trades.first(), pair.tape.last_id) {
                    (Some(first), Some(last)) => first.trade_id > last + 1,
                    _ => false,
                };
                let catching_up = !pair.caught_up;
                if catching_up || missed {
                    pair.backfill(&self.rest, reconnects, catching_up).await;
                }
                if catching_up {
                    pair.caught_up = true;
                    backoff.reset();
                }
                for t in trades {
                    pair.forward(t.trade, Some(t.trade_id)).await;
                }
            }
            ref ticker @ WsMessage::Ticker { ref symbol, .. } => {
                let quote = ticker.quote(Timestamp::now());
                if let (Some(quote), Some(pair)) = (quote, self.pair_of(symbol)) {
                    pair.send(MarketEvent::Quote(quote)).await;
                }
            }
            WsMessage::Heartbeat => {
                for pair in &mut self.pairs {
                    if let (true, Some(clock)) = (pair.caught_up, pair.clock) {
                        pair.send(MarketEvent::Clock(clock.now())).await;
                    }
                }
            }
            WsMessage::Ohlc { symbol, bars, .. } => {
                if let Some(check) = self.pair_of(&symbol).and_then(|p| p.check.as_mut()) {
                    bars.iter().for_each(|c| check.on_candle(&c.bar));
                }
            }
            WsMessage::Status { system, .. } if system != "online" => {
                tracing::warn!("Kraken reports its system as '{system}'");
            }
            _ => {}
        }
        None
    }

    /// While the socket is down: REST Trades for each pair in turn, within the public budget,
    /// until `until`. False when every engine is gone.
    async fn poll_rest_until(&mut self, until: Instant) -> bool {
        while Instant::now() < until {
            for pair in &mut self.pairs {
                if pair.gone {
                    continue;
                }
                let Some(cursor) = pair.tape.cursor() else {
                    continue;
                };
                match self
                    .rest
                    .trades(&pair.names.rest_altname, Some(&cursor), Retries::None)
                    .await
                {
                    Ok(page) => {
                        for t in page.trades {
                            pair.forward(t.trade, t.id).await;
                        }
                    }
                    Err(e) => tracing::debug!("REST Trades fallback poll of {} failed: {e}", pair.names.user),
                }
            }
            if self.all_gone() {
                return false;
            }
            tokio::time::sleep(PUBLIC_REST_MIN_INTERVAL.min(until.saturating_duration_since(Instant::now()))).await;
        }
        true
    }
}

impl PairFeed {
    /// Fetches from REST Trades everything after the tape, up to the exchange's latest trade:
    /// one fetch covers every gap seen so far, and the live trades it overlaps are de-duplicated
    /// by id. `after_reconnect` says whether this is the catch-up of a new connection (logged) or
    /// a gap inside one (counted).
    async fn backfill(&mut self, rest: &RestClient, reconnects: u64, after_reconnect: bool) {
        let mut fetched = 0u64;
        let pair = self.names.user.clone();
        while let Some(cursor) = self.tape.cursor() {
            let page = match rest
                .trades(&self.names.rest_altname, Some(&cursor), Retries::UpTo(MAX_RETRIES))
                .await
            {
                Ok(page) => page,
                Err(e) if self.tape.new_run && self.tape.last_ts.is_none() => {
                    self.tape.start_with_next_bar();
                    tracing::warn!(
                        "{pair}: the first bar's earlier trades could not be fetched from REST Trades ({e}); starting with the next bar"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!("{pair}: back-fill from REST Trades failed, bars may have a gap: {e}");
                    return;
                }
            };
            let before = self.tape.last_id;
            let full_page = page.trades.len() >= TRADES_PAGE_MAX;
            for t in page.trades {
                if self.forward(t.trade, t.id).await == Take::Forward {
                    fetched += 1;
                }
            }
            if self.gone {
                return;
            }
            // A page short of the maximum reached the end of the tape; one with nothing new too.
            if !full_page || self.tape.last_id == before {
                break;
            }
        }
        if fetched == 0 {
            return;
        }
        self.backfills += 1;
        if after_reconnect {
            let when = match (reconnects, self.tape.new_run) {
                (0, true) => "to complete the run's first bar",
                (0, false) => "since the run's last stored bar",
                _ => "after reconnecting",
            };
            tracing::info!(
                trades = fetched,
                backfills = self.backfills,
                "back-filled {fetched} {pair} trades from REST {when}"
            );
        } else {
            tracing::debug!(
                trades = fetched,
                backfills = self.backfills,
                "back-filled {fetched} missed {pair} trades from REST"
            );
        }
        self.send(MarketEvent::Status(FeedStatus::Backfilled { trades: fetched }))
            .await;
    }

    /// Hands a new trade to the engine.
    async fn forward(&mut self, trade: Trade, id: Option<u64>) -> Take {
        let take = self.tape.take(trade.ts, id);
        if take == Take::Forward {
            if let Some(check) = &mut self.check {
                check.on_trade(&trade);
            }
            self.clock = Some(ExchangeClock {
                seen: trade.ts,
                at: Instant::now(),
            });
            self.send(MarketEvent::Trade(trade)).await;
        }
        take
    }

    /// Sends to the pair's engine, unless it is gone (then it is marked so).
    async fn send(&mut self, event: MarketEvent) {
        if !self.gone && self.tx.send(Ok(event)).await.is_err() {
            self.gone = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tape_takes_each_trade_once_and_nothing_before_its_start() {
        let at = |s| Timestamp::from_secs(s);
        let mut tape = Tape::new(Some(at(1_020)), Interval::ONE_MINUTE);
        assert_eq!(tape.take(at(1_019), Some(4)), Take::BeforeStart);
        assert_eq!(tape.take(at(1_020), Some(5)), Take::Forward);
        assert_eq!(tape.take(at(1_021), Some(5)), Take::Duplicate, "same id again");
        assert_eq!(tape.take(at(1_021), Some(4)), Take::Duplicate, "older id");
        assert_eq!(tape.take(at(1_021), Some(6)), Take::Forward);
        assert_eq!(tape.cursor(), Some((at(1_021).nanos() - 1).to_string()));
    }

    #[test]
    fn a_new_tape_starts_with_the_whole_bar_the_exchange_is_in() {
        let at = |s| Timestamp::from_secs(s);
        let mut tape = Tape::new(None, Interval::ONE_MINUTE);
        assert_eq!(tape.cursor(), None, "nothing to back-fill before the start is known");
        tape.start_with_bar_of(at(1_030));
        assert_eq!(
            tape.cursor(),
            Some((at(1_020).nanos() - 1).to_string()),
            "the bar's earlier trades are fetched from its start"
        );
        assert_eq!(
            tape.take(at(1_019), Some(1)),
            Take::BeforeStart,
            "the bar before is not ours"
        );
        assert_eq!(
            tape.last_id,
            Some(1),
            "but it is accounted for, so a missed next trade shows"
        );
        assert_eq!(tape.take(at(1_021), Some(2)), Take::Forward);
        tape.start_with_bar_of(at(1_090));
        assert_eq!(tape.forward_from, Some(at(1_020)), "the start is set once");
    }

    #[test]
    fn a_first_bar_that_cannot_be_completed_is_skipped() {
        let at = |s| Timestamp::from_secs(s);
        let mut tape = Tape::new(None, Interval::ONE_MINUTE);
        tape.start_with_bar_of(at(1_030));
        tape.start_with_next_bar();
        assert_eq!(tape.take(at(1_050), Some(1)), Take::BeforeStart);
        assert_eq!(tape.take(at(1_080), Some(2)), Take::Forward);
        let mut resumed = Tape::new(Some(at(1_020)), Interval::ONE_MINUTE);
        resumed.start_with_next_bar();
        assert_eq!(resumed.forward_from, Some(at(1_020)), "a resumed run keeps its start");
    }
}
