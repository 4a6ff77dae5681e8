//! Kraken's public REST endpoints over the replayed tape, in Kraken's JSON: HTTP 200 with
//! `{"error":[],"result":…}` (or `{"error":["…"]}`), decimal strings, times in seconds.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

use super::markets::PairMarket;
use super::tape::{self, Candle, MINUTE, Stats};
use super::wire::{self, LOT_DECIMALS, PRICE_DECIMALS, TICK, TICKER_DECIMALS};
use super::{App, Market, faults};
use nanotrader_market::{Side, Timestamp};

const TIME: &str = "/0/public/Time";
const SYSTEM_STATUS: &str = "/0/public/SystemStatus";
const ASSET_PAIRS: &str = "/0/public/AssetPairs";
const TICKER: &str = "/0/public/Ticker";
const OHLC: &str = "/0/public/OHLC";
const TRADES: &str = "/0/public/Trades";
/// Kraken's private (account and trading) API: every method under it.
const PRIVATE_PREFIX: &str = "/0/private/";

/// Committed candles OHLC returns at most, whatever `since` says.
const OHLC_ROWS: i32 = 720;
const TRADES_MAX: usize = 1000;
/// The data does not say whether takers sent market or limit orders: all are called market.
const ORDER_TYPE: &str = "m";
/// Seconds stay below this until the year 33658; any recent nanosecond cursor is above it.
const NANOS_CURSOR_MIN: i64 = 1_000_000_000_000;

pub(super) const UNKNOWN_PAIR: &str = "EQuery:Unknown asset pair";
pub(super) const RATE_LIMITED: &str = "EAPI:Rate limit exceeded";
/// Kraken's answer to a private call without a valid `API-Key` (the mock accepts none).
pub(super) const INVALID_KEY: &str = "EAPI:Invalid key";

type Params = HashMap<String, String>;
type Answer = Result<Value, String>;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route(TIME, get(time))
        .route(SYSTEM_STATUS, get(system_status))
        .route(ASSET_PAIRS, get(asset_pairs))
        .route(TICKER, get(ticker))
        .route(OHLC, get(ohlc))
        .route(TRADES, get(trades))
        .route("/0/private/{*method}", any(private))
        .fallback(unknown_method)
}

/// Counts a request against its endpoint (a private one also as `private`).
pub(super) fn count(market: &Market, path: &str) {
    market.counters.bump(|c| {
        if let Some(method) = path.strip_prefix(PRIVATE_PREFIX) {
            c.rest.private += 1;
            *c.rest.private_methods.entry(method.to_owned()).or_default() += 1;
        }
        let counter = match path {
            TIME => &mut c.rest.time,
            SYSTEM_STATUS => &mut c.rest.system_status,
            ASSET_PAIRS => &mut c.rest.asset_pairs,
            TICKER => &mut c.rest.ticker,
            OHLC => &mut c.rest.ohlc,
            TRADES => &mut c.rest.trades,
            _ => &mut c.rest.other,
        };
        *counter += 1;
    });
}

/// Kraken's envelope around a result or an error, always HTTP 200.
pub(super) fn reply(market: &Market, answer: Answer) -> Response {
    let mut body = match answer {
        Ok(result) => json!({ "error": [], "result": result }),
        Err(error) => {
            tracing::debug!("mock kraken rest error: {error}");
            json!({ "error": [error] })
        }
    };
    faults::extra_fields(market, &mut body);
    Json(body).into_response()
}

type QueryResult = Result<Query<Params>, QueryRejection>;

fn answer(app: &App, query: QueryResult, endpoint: fn(&Market, &Params) -> Answer) -> Response {
    let outcome = match query {
        Ok(Query(params)) => endpoint(&app.market, &params),
        Err(rejection) => Err(format!("EGeneral:Invalid arguments:{rejection}")),
    };
    reply(&app.market, outcome)
}

async fn time(State(app): State<App>, query: QueryResult) -> Response {
    answer(&app, query, |market, _| {
        let now = market.clock.now();
        Ok(json!({ "unixtime": now.secs(), "rfc1123": wire::rfc1123(now) }))
    })
}

async fn system_status(State(app): State<App>, query: QueryResult) -> Response {
    answer(&app, query, |market, _| {
        let now = market.clock.now();
        Ok(json!({ "status": "online", "timestamp": wire::whole_secs(now) }))
    })
}

async fn asset_pairs(State(app): State<App>, query: QueryResult) -> Response {
    answer(&app, query, asset_pairs_result)
}

async fn ticker(State(app): State<App>, query: QueryResult) -> Response {
    answer(&app, query, ticker_result)
}

async fn ohlc(State(app): State<App>, query: QueryResult) -> Response {
    answer(&app, query, ohlc_result)
}

async fn trades(State(app): State<App>, query: QueryResult) -> Response {
    answer(&app, query, trades_result)
}

async fn unknown_method(State(app): State<App>) -> Response {
    reply(&app.market, Err("EGeneral:Unknown method".into()))
}

/// A private call (counted by the REST layer): private methods are POSTs, anything else is an
/// unknown method. Without a configured account every POST is refused as Kraken refuses an
/// unknown key.
async fn private(
    State(app): State<App>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        tracing::debug!("mock kraken: refused a private {method} request");
        return reply(&app.market, Err("EGeneral:Unknown method".into()));
    }
    crate::private::rest::handle(app, &name, &headers, body).await
}

/// Every pair, or those `pair=` names (comma list) by key, altname or WS name.
fn asset_pairs_result(market: &Market, params: &Params) -> Answer {
    let Some(list) = params.get("pair") else {
        return Ok(Value::Object(market.asset_pairs.clone()));
    };
    let mut found = Map::new();
    for name in list.split(',').map(str::trim) {
        let (key, info) = market
            .asset_pairs
            .iter()
            .find(|(key, info)| pair_names(key, info).any(|n| n.eq_ignore_ascii_case(name)))
            .ok_or(UNKNOWN_PAIR)?;
        found.insert(key.clone(), info.clone());
    }
    Ok(Value::Object(found))
}

/// The names an AssetPairs entry answers to; the WS v2 symbol spells XBT as BTC.
fn pair_names<'a>(key: &'a str, info: &'a Value) -> impl Iterator<Item = String> + 'a {
    let field = |name| info.get(name).and_then(Value::as_str).map(str::to_owned);
    let v2 = field("wsname").map(|ws| ws.replace("XBT", "BTC"));
    [Some(key.to_owned()), field("altname"), field("wsname"), v2]
        .into_iter()
        .flatten()
}

/// The markets `pair=` (a comma list) names, BTC/USD without it unless `required` (OHLC and
/// Trades); a name the mock does not serve is Kraken's unknown pair.
fn market_pairs<'m>(market: &'m Market, params: &Params, required: bool) -> Result<Vec<&'m PairMarket>, String> {
    match params.get("pair") {
        None if required => Err("EGeneral:Invalid arguments:pair".into()),
        None => Ok(vec![&market.pairs[0]]),
        Some(list) => list
            .split(',')
            .map(|name| market.pair_named(name).ok_or_else(|| UNKNOWN_PAIR.to_owned()))
            .collect(),
    }
}

/// The one market OHLC and Trades answer for.
fn market_pair<'m>(market: &'m Market, params: &Params) -> Result<&'m PairMarket, String> {
    let pairs = market_pairs(market, params, true)?;
    match pairs.as_slice() {
        [one] => Ok(one),
        _ => Err("EGeneral:Invalid arguments:pair".into()),
    }
}

fn ticker_result(market: &Market, params: &Params) -> Answer {
    let now = market.clock.now();
    let mut result = Map::new();
    for pair in market_pairs(market, params, false)? {
        result.insert(pair.key.clone(), ticker_of(pair.tape.public(now), now)?);
    }
    Ok(Value::Object(result))
}

fn ticker_of(public: &[nanotrader_market::Trade], now: Timestamp) -> Answer {
    let last = public.last().ok_or("EService:Unavailable")?;
    let flat = Stats::flat(last.price);
    let today = tape::stats(tape::today(public, now)).unwrap_or(flat);
    let day = tape::stats(tape::last_day(public, now)).unwrap_or(flat);
    let price = |p| wire::text(p, TICKER_DECIMALS);
    let volume = |v| wire::text(v, LOT_DECIMALS);
    let vwap = |p| wire::rounded(p, TICKER_DECIMALS);
    Ok(json!({
        // Kraken's a/b volumes are placeholders too ("1", "1.000"); use Depth for sizes.
        "a": [price(last.price + TICK), "1", "1.000"],
        "b": [price(last.price - TICK), "1", "1.000"],
        "c": [price(last.price), volume(last.size)],
        "v": [volume(today.volume), volume(day.volume)],
        "p": [vwap(today.vwap), vwap(day.vwap)],
        "t": [today.count, day.count],
        "l": [price(today.low), price(day.low)],
        "h": [price(today.high), price(day.high)],
        "o": price(today.open),
    }))
}

/// Up to 720 committed 1-minute candles after `since`, quiet minutes filled flat at the
/// previous close, then the forming candle; `last` = the newest committed candle's start.
fn ohlc_result(market: &Market, params: &Params) -> Answer {
    let pair = market_pair(market, params)?;
    if params.get("interval").is_some_and(|i| i != "1") {
        return Err("EGeneral:Invalid arguments:interval".into());
    }
    let since = cursor(params)?;
    let now = market.clock.now();
    let public = pair.tape.public(now);
    let forming = now.floor_to(MINUTE);
    let oldest = Timestamp::from_secs(forming.secs() - i64::from(OHLC_ROWS) * MINUTE.secs());
    let first_traded = pair.tape.first_ts().floor_to(MINUTE);
    let mut from = oldest.max(first_traded);
    if let Some(since) = since {
        // `since` is exclusive: the candle starting at it was already seen.
        from = from.max(since.floor_to(MINUTE).plus(MINUTE));
    }
    let before = &public[..public.partition_point(|t| t.ts < from)];
    let mut close = before.last().map(|t| t.price);
    let mut rows = Vec::new();
    // A `since` at or past the forming candle still gets the forming candle.
    let mut minute = from.min(forming);
    loop {
        let candle = tape::candle(public, minute);
        close = candle.map(|c| c.bar.close).or(close);
        if let Some(close) = close {
            rows.push(ohlc_row(minute, candle, close));
        }
        if minute >= forming {
            break;
        }
        minute = minute.plus(MINUTE);
    }
    let last = forming.secs() - MINUTE.secs();
    Ok(json!({ pair.key.as_str(): rows, "last": last }))
}

/// `[time, open, high, low, close, vwap, volume, count]`; a quiet minute is flat at `close`.
fn ohlc_row(start: Timestamp, candle: Option<Candle>, close: Decimal) -> Value {
    let price = |p| wire::text(p, PRICE_DECIMALS);
    match candle {
        Some(Candle { bar, vwap }) => json!([
            start.secs(),
            price(bar.open),
            price(bar.high),
            price(bar.low),
            price(bar.close),
            wire::rounded(vwap, PRICE_DECIMALS),
            wire::text(bar.volume, LOT_DECIMALS),
            bar.trades,
        ]),
        None => json!([
            start.secs(),
            price(close),
            price(close),
            price(close),
            price(close),
            wire::rounded(Decimal::ZERO, PRICE_DECIMALS),
            wire::rounded(Decimal::ZERO, LOT_DECIMALS),
            0,
        ]),
    }
}

/// Up to `count` (1000) trades after `since` (seconds or the ns cursor), or the newest ones
/// without it; `last` = the newest returned trade's time in ns, the cursor for the next call.
fn trades_result(market: &Market, params: &Params) -> Answer {
    let pair = market_pair(market, params)?;
    let limit = match params.get("count") {
        None => TRADES_MAX,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=TRADES_MAX).contains(n))
            .ok_or("EGeneral:Invalid arguments:count")?,
    };
    let since = cursor(params)?;
    let public = pair.tape.public(market.clock.now());
    let start = match since {
        Some(since) => public.partition_point(|t| t.ts <= since),
        None => public.len().saturating_sub(limit),
    };
    let batch = &public[start..(start + limit).min(public.len())];
    let rows: Vec<Value> = batch
        .iter()
        .zip(start + 1..)
        .map(|(t, id)| {
            let side = if t.side == Some(Side::Sell) { "s" } else { "b" };
            json!([
                wire::text(t.price, TICKER_DECIMALS),
                wire::text(t.size, LOT_DECIMALS),
                wire::float_secs(t.ts),
                side,
                ORDER_TYPE,
                "",
                id,
            ])
        })
        .collect();
    let last = batch.last().map(|t| t.ts).or(since).unwrap_or_default();
    Ok(json!({ pair.key.as_str(): rows, "last": last.nanos().to_string() }))
}

/// `since=`: Unix seconds (maybe fractional) or a nanosecond cursor; empty means absent.
fn cursor(params: &Params) -> Result<Option<Timestamp>, String> {
    let Some(text) = params.get("since").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let invalid = || "EGeneral:Invalid arguments:since".to_string();
    if let Ok(n) = text.parse::<i64>() {
        return match n {
            ..0 => Err(invalid()),
            NANOS_CURSOR_MIN.. => Ok(Some(Timestamp::from_nanos(n))),
            secs => Ok(Some(Timestamp::from_secs(secs))),
        };
    }
    let secs: Decimal = text.parse().map_err(|_| invalid())?;
    secs.checked_mul(Decimal::from(1_000_000_000))
        .and_then(|ns| ns.trunc().to_i64())
        .filter(|ns| *ns >= 0)
        .map(|ns| Some(Timestamp::from_nanos(ns)))
        .ok_or_else(invalid)
}
