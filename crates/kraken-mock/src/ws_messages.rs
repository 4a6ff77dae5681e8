//! WebSocket v2 message shapes as Kraken writes them (fixtures `ws_*.json`): channel messages
//! with JSON numbers and RFC 3339 times; method responses with `method`, `success`, the
//! `req_id` echo and `time_in`/`time_out`.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::tape::{self, Candle, MINUTE, Stats};
use super::wire::{self, PRICE_DECIMALS, TICK, TICKER_DECIMALS};
use nanotrader_market::{Side, Timestamp, Trade};

/// The account's market, in WS v2 spelling (the executions channel's symbol).
pub(super) const SYMBOL: &str = super::markets::BTC_SYMBOL;
pub(super) const MALFORMED: &str = "Malformed request";

/// The channels the mock serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Channel {
    Ticker,
    Trade,
    Ohlc,
}

impl Channel {
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name {
            "ticker" => Some(Self::Ticker),
            "trade" => Some(Self::Trade),
            "ohlc" => Some(Self::Ohlc),
            _ => None,
        }
    }

    /// Kraken sends snapshots unless told not to, except on `trade`.
    pub(super) fn default_snapshot(self) -> bool {
        self != Self::Trade
    }

    /// The keying fields of acks: channel, symbol and the channel's own parameters.
    fn keys(self, symbol: &str) -> Map<String, Value> {
        let mut keys = Map::new();
        let name = match self {
            Self::Ticker => {
                keys.insert("event_trigger".into(), "trades".into());
                "ticker"
            }
            Self::Trade => "trade",
            Self::Ohlc => {
                keys.insert("interval".into(), 1.into());
                "ohlc"
            }
        };
        keys.insert("channel".into(), name.into());
        keys.insert("symbol".into(), symbol.into());
        keys
    }
}

/// Sent right after the connection opens.
pub(super) fn status(connection_id: u64) -> Value {
    json!({
        "channel": "status",
        "type": "update",
        "data": [{
            "api_version": "v2",
            "connection_id": connection_id,
            "system": "online",
            "version": "2.0.0",
        }],
    })
}

pub(super) fn heartbeat() -> Value {
    json!({ "channel": "heartbeat" })
}

/// The common part of every method response.
fn response(method: &str, req_id: Option<&Value>, time_in: Timestamp, time_out: Timestamp) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("method".into(), method.into());
    if let Some(id) = req_id {
        fields.insert("req_id".into(), id.clone());
    }
    fields.insert("time_in".into(), wire::micros(time_in).into());
    fields.insert("time_out".into(), wire::micros(time_out).into());
    fields
}

pub(super) fn pong(req_id: Option<&Value>, time_in: Timestamp, time_out: Timestamp) -> Value {
    Value::Object(response("pong", req_id, time_in, time_out))
}

pub(super) fn subscribed(
    channel: Channel,
    symbol: &str,
    snapshot: bool,
    req_id: Option<&Value>,
    time_in: Timestamp,
    time_out: Timestamp,
) -> Value {
    let mut result = channel.keys(symbol);
    result.insert("snapshot".into(), snapshot.into());
    if channel == Channel::Ohlc {
        result.insert(
            "warnings".into(),
            json!(["timestamp is deprecated, use interval_begin"]),
        );
    }
    success("subscribe", result, req_id, time_in, time_out)
}

pub(super) fn unsubscribed(
    channel: Channel,
    symbol: &str,
    req_id: Option<&Value>,
    time_in: Timestamp,
    time_out: Timestamp,
) -> Value {
    success("unsubscribe", channel.keys(symbol), req_id, time_in, time_out)
}

pub(super) fn success(
    method: &str,
    result: Map<String, Value>,
    req_id: Option<&Value>,
    time_in: Timestamp,
    time_out: Timestamp,
) -> Value {
    let mut fields = response(method, req_id, time_in, time_out);
    fields.insert("result".into(), Value::Object(result));
    fields.insert("success".into(), true.into());
    Value::Object(fields)
}

/// A refusal: `error` is a string, `symbol` names the refused symbol when there is one.
pub(super) fn failure(
    method: &str,
    error: &str,
    symbol: Option<&str>,
    req_id: Option<&Value>,
    time_in: Timestamp,
    time_out: Timestamp,
) -> Value {
    let mut fields = response(method, req_id, time_in, time_out);
    fields.insert("error".into(), error.into());
    fields.insert("success".into(), false.into());
    if let Some(symbol) = symbol {
        fields.insert("symbol".into(), symbol.into());
    }
    Value::Object(fields)
}

/// Kraken's text for a symbol it does not list.
pub(super) fn unsupported(symbol: &str) -> String {
    format!("Currency pair not supported {symbol}")
}

/// `trades` are consecutive on the tape, the first at index `first`.
pub(super) fn trades(kind: &str, symbol: &str, trades: &[Trade], first: usize) -> Value {
    let data: Vec<Value> = trades
        .iter()
        .zip(first + 1..)
        .map(|(t, id)| {
            json!({
                "symbol": symbol,
                "side": t.side.unwrap_or(Side::Buy).as_str(),
                "price": wire::number(t.price),
                "qty": wire::number(t.size),
                "ord_type": "market",
                "trade_id": id,
                "timestamp": wire::micros(t.ts),
            })
        })
        .collect();
    json!({ "channel": "trade", "type": kind, "data": data })
}

/// The ticker after the last public trade, 24-hour figures over the rolling window.
pub(super) fn ticker(kind: &str, symbol: &str, public: &[Trade], now: Timestamp) -> Option<Value> {
    let last = public.last()?;
    let day = tape::stats(tape::last_day(public, now)).unwrap_or(Stats::flat(last.price));
    let change = last.price - day.open;
    let change_pct = (change * Decimal::ONE_HUNDRED)
        .checked_div(day.open)
        .unwrap_or_default()
        .round_dp(2);
    Some(json!({
        "channel": "ticker",
        "type": kind,
        "data": [{
            "symbol": symbol,
            "bid": wire::number(last.price - TICK),
            "bid_qty": wire::number(Decimal::ONE),
            "ask": wire::number(last.price + TICK),
            "ask_qty": wire::number(Decimal::ONE),
            "last": wire::number(last.price),
            "volume": wire::number(day.volume),
            "vwap": wire::number(day.vwap.round_dp(TICKER_DECIMALS)),
            "low": wire::number(day.low),
            "high": wire::number(day.high),
            "change": wire::number(change),
            "change_pct": wire::number(change_pct),
            "timestamp": wire::micros(last.ts),
        }],
    }))
}

/// 1-minute candles; `timestamp` (deprecated by Kraken) is the candle's end, as Kraken sends it.
pub(super) fn ohlc(kind: &str, symbol: &str, candles: &[Candle], now: Timestamp) -> Value {
    let data: Vec<Value> = candles
        .iter()
        .map(|Candle { bar, vwap }| {
            json!({
                "symbol": symbol,
                "open": wire::number(bar.open),
                "high": wire::number(bar.high),
                "low": wire::number(bar.low),
                "close": wire::number(bar.close),
                "trades": bar.trades,
                "volume": wire::number(bar.volume),
                "vwap": wire::number(vwap.round_dp(PRICE_DECIMALS)),
                "interval_begin": wire::nanos(bar.ts),
                "interval": 1,
                "timestamp": wire::micros(bar.ts.plus(MINUTE)),
            })
        })
        .collect();
    json!({ "channel": "ohlc", "type": kind, "timestamp": wire::nanos(now), "data": data })
}
