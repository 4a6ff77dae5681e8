//! `--source kraken`: WebSocket v2 `trade` and `ticker` streams, bars built from trades.
//!
//! The trade tape is kept exact across everything that can go wrong: after a disconnect or a
//! restart the missed trades are fetched from REST Trades (cursor = the last trade seen) before
//! live trades flow again, and trades are de-duplicated by Kraken's per-pair trade id. While the
//! socket is down, REST Trades is polled within the public budget, so bars keep coming.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::budget::Backoff;
use super::consts::{
    FEED_SILENCE_TIMEOUT, MAX_RETRIES, OHLC_INTERVALS_MINUTES, PUBLIC_REST_MIN_INTERVAL, RECONNECT_INITIAL,
    RECONNECT_JITTER, RECONNECT_MAX, REQUEST_TIMEOUT, TRADES_PAGE_MAX,
};
use super::ohlc_check::OhlcCheck;
use super::parse::{WsMessage, parse_ws, subscribe_request};
use super::rest::{RestClient, Retries};
use super::symbols::PairNames;
use crate::market::task_source::{EventSender, TaskSource};
use crate::market::{FeedStatus, Interval, MarketEvent, SourceError, SourceInfo, Timestamp, Trade};

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
/// Only the first few malformed messages are logged one by one; then every power of ten.
const MALFORMED_LOGGED: u64 = 3;

#[derive(Clone, Debug)]
pub struct WsFeedConfig {
    pub ws_url: String,
    pub silence_timeout: Duration,
    pub interval: Interval,
    /// Continue the tape from here (a resumed run: the end of its last stored bar). A new run
    /// starts at the next bar boundary, so its first bar is complete.
    pub start_at: Option<Timestamp>,
}

impl WsFeedConfig {
    pub fn new(ws_url: &str, interval: Interval, start_at: Option<Timestamp>) -> Self {
        Self {
            ws_url: ws_url.to_owned(),
            silence_timeout: FEED_SILENCE_TIMEOUT,
            interval,
            start_at,
        }
    }
}

/// `--source kraken`, fed by its WebSocket task.
pub struct KrakenWsSource;

impl KrakenWsSource {
    pub fn start(config: WsFeedConfig, rest: RestClient, pair: PairNames) -> TaskSource {
        let info = SourceInfo {
            kind: "kraken",
            identity: format!("kraken:{}", pair.user),
            pair: pair.user.clone(),
            finite: false,
            bar_interval: None,
        };
        let tape = Tape::new(config.start_at, config.interval);
        let minutes = config.interval.secs() / 60;
        let check = (config.interval.secs() % 60 == 0 && OHLC_INTERVALS_MINUTES.contains(&(minutes as u32)))
            .then(|| OhlcCheck::new(config.interval));
        TaskSource::spawn(info, QUEUE, |tx| {
            let feed = Feed {
                config,
                rest,
                pair,
                tx,
                tape,
                clock: None,
                check,
                malformed: 0,
                reconnects: 0,
                backfills: 0,
            };
            feed.run()
        })
    }
}

/// Where the forwarded trade tape stands: what has been handed on, and where to fetch from.
#[derive(Debug)]
struct Tape {
    /// Trades before this time are not forwarded: they belong to bars already stored, or, for a
    /// new run, to a bar that started before we were watching (set from the first trade seen, so
    /// the exchange's clock decides, not ours).
    forward_from: Option<Timestamp>,
    interval: Interval,
    last_id: Option<u64>,
    last_ts: Option<Timestamp>,
}

impl Tape {
    fn new(start_at: Option<Timestamp>, interval: Interval) -> Self {
        Self {
            forward_from: start_at,
            interval,
            last_id: None,
            last_ts: None,
        }
    }

    /// Accounts for a trade and says what to do with it. Trades before the start are accounted
    /// for too (not forwarded), so a trade missed right after them is still noticed as a gap.
    fn take(&mut self, ts: Timestamp, id: Option<u64>) -> Take {
        let start = *self
            .forward_from
            .get_or_insert_with(|| ts.floor_to(self.interval).plus(self.interval));
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
    /// New, but in a bar that started before this run was watching.
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
    /// The engine dropped the source.
    EngineGone,
}

struct Feed {
    config: WsFeedConfig,
    rest: RestClient,
    pair: PairNames,
    tx: EventSender,
    tape: Tape,
    clock: Option<ExchangeClock>,
    /// Kraken's candles against our bars, when Kraken has candles of our interval.
    check: Option<OhlcCheck>,
    malformed: u64,
    reconnects: u64,
    backfills: u64,
}

impl Feed {
    async fn run(mut self) {
        let mut backoff = Backoff::new(RECONNECT_INITIAL, RECONNECT_MAX, RECONNECT_JITTER);
        loop {
            let connected_at = Instant::now();
            match self.session(&mut backoff).await {
                End::EngineGone => return,
                End::Fatal(e) => {
                    let _ = self.tx.send(Err(e)).await;
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
                    if !self
                        .send(MarketEvent::Status(FeedStatus::Disconnected { reason }))
                        .await
                    {
                        return;
                    }
                    if !self.poll_rest_until(Instant::now() + delay).await {
                        return;
                    }
                }
            }
        }
    }

    /// One connection: connect, subscribe, catch up from REST, then stream until it ends.
    async fn session(&mut self, backoff: &mut Backoff) -> End {
        let connect = timeout(
            REQUEST_TIMEOUT,
            tokio_tungstenite::connect_async(self.config.ws_url.as_str()),
        )
        .await;
        let socket = match connect {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(e)) => return End::Disconnected(format!("connect failed: {e}")),
            Err(_) => return End::Disconnected("connect timed out".into()),
        };
        let (mut sink, mut stream) = socket.split();
        for (req_id, channel) in SUBSCRIPTIONS {
            let interval = match channel {
                "ohlc" if self.check.is_some() => Some(self.config.interval.secs() as u32 / 60),
                "ohlc" => continue,
                _ => None,
            };
            let request = subscribe_request(channel, &[self.pair.ws.as_str()], req_id, interval);
            if let Err(e) = sink.send(Message::text(request)).await {
                return End::Disconnected(format!("subscribe failed: {e}"));
            }
        }
        let mut caught_up = false;
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
            let ok = match message {
                WsMessage::SubscribeResult {
                    success: false,
                    req_id: Some(OHLC_REQ),
                    error,
                    ..
                } => {
                    tracing::warn!(
                        "Kraken refused the ohlc subscription ({}): bars are not cross-checked",
                        error.as_deref().unwrap_or("no reason given")
                    );
                    self.check = None;
                    true
                }
                WsMessage::SubscribeResult {
                    success: false,
                    error,
                    channel,
                    req_id,
                    ..
                } => {
                    let by_req = SUBSCRIPTIONS
                        .iter()
                        .find(|(id, _)| Some(*id) == req_id)
                        .map(|(_, c)| *c);
                    return End::Fatal(SourceError::Input(format!(
                        "Kraken refused the {} subscription for {}: {}",
                        channel.as_deref().or(by_req).unwrap_or("market data"),
                        self.pair.ws,
                        error.as_deref().unwrap_or("no reason given")
                    )));
                }
                WsMessage::SubscribeResult { channel, .. } if channel.as_deref() == Some("trade") => {
                    self.send(MarketEvent::Status(FeedStatus::Connected)).await
                }
                WsMessage::Trades { trades, .. } => {
                    // Trade ids count up by one per pair: a jump means trades were missed (a
                    // reconnect, a frame that could not be read). Fetch them from REST first.
                    let missed = match (trades.first(), self.tape.last_id) {
                        (Some(first), Some(last)) => first.trade_id > last + 1,
                        _ => false,
                    };
                    if (!caught_up || missed) && !self.backfill(!caught_up).await {
                        return End::EngineGone;
                    }
                    if !caught_up {
                        caught_up = true;
                        backoff.reset();
                    }
                    let mut ok = true;
                    for t in trades {
                        ok &= self.forward(t.trade, Some(t.trade_id)).await.is_some();
                    }
                    ok
                }
                ref ticker @ WsMessage::Ticker { .. } => match ticker.quote(Timestamp::now()) {
                    Some(quote) => self.send(MarketEvent::Quote(quote)).await,
                    None => true,
                },
                WsMessage::Heartbeat if caught_up => match self.clock {
                    Some(clock) => self.send(MarketEvent::Clock(clock.now())).await,
                    None => true,
                },
                WsMessage::Ohlc { bars, .. } => {
                    if let Some(check) = &mut self.check {
                        bars.iter().for_each(|c| check.on_candle(&c.bar));
                    }
                    true
                }
                WsMessage::Status { system, .. } if system != "online" => {
                    tracing::warn!("Kraken reports its system as '{system}'");
                    true
                }
                _ => true,
            };
            if !ok {
                return End::EngineGone;
            }
        }
    }

    /// Fetches from REST Trades everything after the tape, up to the exchange's latest trade:
    /// one fetch covers every gap seen so far, and the live trades it overlaps are de-duplicated
    /// by id. `after_reconnect` says whether this is the catch-up of a new connection (logged) or
    /// a gap inside one (counted). False when the engine is gone.
    async fn backfill(&mut self, after_reconnect: bool) -> bool {
        let mut fetched = 0u64;
        // A new run has nothing before its first bar to catch up on (no cursor yet).
        while let Some(cursor) = self.tape.cursor() {
            let page = match self
                .rest
                .trades(&self.pair.rest_altname, Some(&cursor), Retries::UpTo(MAX_RETRIES))
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!("back-fill from REST Trades failed, bars may have a gap: {e}");
                    return true;
                }
            };
            let before = self.tape.last_id;
            let full_page = page.trades.len() >= TRADES_PAGE_MAX;
            for t in page.trades {
                match self.forward(t.trade, t.id).await {
                    None => return false,
                    Some(Take::Forward) => fetched += 1,
                    Some(_) => {}
                }
            }
            // A page short of the maximum reached the end of the tape; one with nothing new too.
            if !full_page || self.tape.last_id == before {
                break;
            }
        }
        if fetched == 0 {
            return true;
        }
        self.backfills += 1;
        if after_reconnect {
            tracing::info!(
                trades = fetched,
                backfills = self.backfills,
                "back-filled {fetched} trades from REST after reconnecting"
            );
        } else {
            tracing::debug!(
                trades = fetched,
                backfills = self.backfills,
                "back-filled {fetched} missed trades from REST"
            );
        }
        self.send(MarketEvent::Status(FeedStatus::Backfilled { trades: fetched }))
            .await
    }

    /// While the socket is down: REST Trades, one request per budget slot, until `until`.
    async fn poll_rest_until(&mut self, until: Instant) -> bool {
        while Instant::now() < until {
            if let Some(cursor) = self.tape.cursor() {
                match self
                    .rest
                    .trades(&self.pair.rest_altname, Some(&cursor), Retries::None)
                    .await
                {
                    Ok(page) => {
                        for t in page.trades {
                            if self.forward(t.trade, t.id).await.is_none() {
                                return false;
                            }
                        }
                    }
                    Err(e) => tracing::debug!("REST Trades fallback poll failed: {e}"),
                }
            }
            tokio::time::sleep(PUBLIC_REST_MIN_INTERVAL.min(until.saturating_duration_since(Instant::now()))).await;
        }
        true
    }

    /// Hands a new trade to the engine; `None` when the engine is gone.
    async fn forward(&mut self, trade: Trade, id: Option<u64>) -> Option<Take> {
        let take = self.tape.take(trade.ts, id);
        if take == Take::Forward {
            if let Some(check) = &mut self.check {
                check.on_trade(&trade);
            }
            self.clock = Some(ExchangeClock {
                seen: trade.ts,
                at: Instant::now(),
            });
            if !self.send(MarketEvent::Trade(trade)).await {
                return None;
            }
        }
        Some(take)
    }

    async fn send(&self, event: MarketEvent) -> bool {
        self.tx.send(Ok(event)).await.is_ok()
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
    fn a_new_tape_starts_at_the_first_full_bar_after_the_first_trade() {
        let at = |s| Timestamp::from_secs(s);
        let mut tape = Tape::new(None, Interval::ONE_MINUTE);
        assert_eq!(tape.cursor(), None, "nothing to back-fill before the first trade");
        assert_eq!(
            tape.take(at(1_030), Some(1)),
            Take::BeforeStart,
            "its bar started before we watched"
        );
        assert_eq!(
            tape.last_id,
            Some(1),
            "but it is accounted for, so a missed next trade shows"
        );
        assert_eq!(tape.take(at(1_080), Some(2)), Take::Forward);
    }
}
