//! Kraken's private REST methods, `POST /0/private/<Method>` with a form-encoded (or JSON) body
//! signed as reference 4.1 says, answered in Kraken's JSON (reference 4.2 to 4.8): decimal
//! strings, float-second times, `O…`/`T…` ids.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::account::{
    BTC, BTC_DECIMALS, Fill, NewOrder, Offset, Order, OrderStatus, OrderType, Pair, Selector, Trigger, USD,
    USD_DECIMALS,
};
use super::auth;
use super::{Private, State, take};
use crate::config::LostReply;
use crate::rest::{self, INVALID_KEY, RATE_LIMITED};
use crate::wire;
use crate::{App, Market};
use nanotrader_market::{Side, Timestamp};

const PRIVATE_PATH: &str = "/0/private/";
const INVALID_NONCE: &str = "EAPI:Invalid nonce";
const INVALID_SIGNATURE: &str = "EAPI:Invalid signature";
const UNAVAILABLE: &str = "EService:Unavailable";
/// Orders and trades per page of ClosedOrders and TradesHistory.
const PAGE: usize = 50;
/// REST text precision of costs, fees and trade prices (`"600.20000"`).
const COST_DECIMALS: u32 = 5;
/// Average prices are rounded to this before they are written.
const AVG_DECIMALS: u32 = 5;
/// Kraken caps the dead man's switch at a day.
const MAX_CANCEL_AFTER: u64 = 86_400;

pub(super) type Params = HashMap<String, String>;
type Answer = Result<Value, String>;

/// What to do with a request once the state has been dealt with (no lock held after it).
enum Outcome {
    Reply(Answer),
    /// The AddOrder was placed but the client must not learn it.
    LoseReply(LostReply),
    Http500,
}

/// Serves one private call (the REST layer has counted it already).
pub(crate) async fn handle(app: App, method: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let market = &app.market;
    let Some(private) = &market.private else {
        return rest::reply(market, Err(INVALID_KEY.into()));
    };
    match respond(market, private, method, headers, &body) {
        Outcome::Reply(answer) => rest::reply(market, answer),
        Outcome::Http500 => {
            tracing::debug!("mock kraken: AddOrder placed, answered HTTP 500 (fault)");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Outcome::LoseReply(mode) => {
            tracing::debug!("mock kraken: AddOrder placed, reply lost ({mode:?}, fault)");
            if mode == LostReply::Hold {
                let mut stop = app.stop.clone();
                let _ = stop.changed().await;
            }
            // Unwinding out of the handler ends the connection's task: the client sees the
            // connection close with no response at all. `resume_unwind` skips the panic hook,
            // so nothing is printed.
            std::panic::resume_unwind(Box::new("mock kraken: reply lost (fault)"))
        }
    }
}

fn respond(market: &Market, private: &Private, method: &str, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let mut state = private.lock();
    let counters = &market.counters;
    if take(&mut state.budget.service_unavailable) {
        counters.bump(|c| c.faults.service_unavailable += 1);
        return Outcome::Reply(Err(UNAVAILABLE.into()));
    }
    if take(&mut state.budget.invalid_nonce) {
        counters.bump(|c| c.faults.invalid_nonce += 1);
        return Outcome::Reply(Err(INVALID_NONCE.into()));
    }
    let config = &private.config;
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if header("API-Key") != Some(config.api_key.as_str()) {
        return Outcome::Reply(Err(INVALID_KEY.into()));
    }
    let Some(params) = parse_body(body) else {
        return Outcome::Reply(Err("EGeneral:Invalid arguments".into()));
    };
    let Some(nonce_text) = params.get("nonce") else {
        return Outcome::Reply(Err(INVALID_NONCE.into()));
    };
    let path = format!("{PRIVATE_PATH}{method}");
    let signature = header("API-Sign").unwrap_or_default();
    if !auth::verify(&config.api_secret, &path, nonce_text, body, signature) {
        return Outcome::Reply(Err(INVALID_SIGNATURE.into()));
    }
    let nonce = match nonce_text.parse::<u64>() {
        Ok(n) if state.last_nonce.is_none_or(|last| n > last) => n,
        _ => return Outcome::Reply(Err(INVALID_NONCE.into())),
    };
    state.last_nonce = Some(nonce);
    let api_cost = match method {
        "Balance" | "BalanceEx" | "OpenOrders" | "ClosedOrders" | "QueryOrders" | "GetWebSocketsToken" => 1.0,
        "TradesHistory" => 2.0,
        // The trading engine counts these instead (per pair).
        "AddOrder" | "CancelOrder" | "CancelAll" | "CancelAllOrdersAfter" => 0.0,
        _ => return Outcome::Reply(Err("EGeneral:Unknown method".into())),
    };
    let limits = config.limits;
    if api_cost > 0.0 && !state.api_counter.try_add(api_cost, limits.api_max, limits.api_decay) {
        return Outcome::Reply(Err(RATE_LIMITED.into()));
    }
    let now = market.clock.now();
    state.account.advance(market.tape(), now);
    if method == "AddOrder" {
        return add_order(market, &mut state, &params, now);
    }
    Outcome::Reply(match method {
        "Balance" => Ok(balance(&state)),
        "BalanceEx" => Ok(balance_ex(&state)),
        "OpenOrders" => open_orders(&state, &params),
        "ClosedOrders" => closed_orders(&state, &params),
        "QueryOrders" => query_orders(&state, &params),
        "TradesHistory" => trades_history(&state, &params),
        "GetWebSocketsToken" => Ok(json!({ "token": state.issue_token(), "expires": 900 })),
        "CancelOrder" => cancel_order(&mut state, &params, now),
        "CancelAll" => Ok(json!({ "count": state.account.cancel_all(super::account::USER_REASON, now) })),
        _ => cancel_all_orders_after(&mut state, &params, now),
    })
}

/// Form-encoded `k=v&…`, or a JSON object (Kraken accepts both; values become text).
fn parse_body(body: &[u8]) -> Option<Params> {
    if body.trim_ascii_start().starts_with(b"{") {
        let Value::Object(fields) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return Some(fields.into_iter().map(|(k, v)| (k, text(v))).collect());
    }
    Some(form_urlencoded::parse(body).into_owned().collect())
}

fn invalid(field: &str) -> String {
    format!("EGeneral:Invalid arguments:{field}")
}

fn flag(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true" || v == "1")
}

fn add_order(market: &Market, state: &mut State, params: &Params, now: Timestamp) -> Outcome {
    let parsed = parse_order(&state.account.pair, params);
    let order = match parsed {
        Ok(order) => order,
        Err(error) => return Outcome::Reply(Err(error)),
    };
    let validate = flag(params, "validate");
    let public = market.tape().public(now);
    let last = public.last().map(|t| t.price);
    let descr = json!({ "order": order_text(&state.account.pair, &order) });
    let placed = state.account.add_order(order, validate, now, last, public.len());
    let txid = match placed {
        Err(error) => return Outcome::Reply(Err(error)),
        Ok(None) => return Outcome::Reply(Ok(json!({ "descr": descr }))),
        Ok(Some(txid)) => txid,
    };
    if take(&mut state.budget.lose_addorder_reply) {
        market.counters.bump(|c| c.faults.lost_addorder_replies += 1);
        return Outcome::LoseReply(market.faults.lost_reply);
    }
    if take(&mut state.budget.addorder_http_500) {
        market.counters.bump(|c| c.faults.addorder_http_500 += 1);
        return Outcome::Http500;
    }
    Outcome::Reply(Ok(json!({ "descr": descr, "txid": [txid] })))
}

/// The AddOrder body as a `NewOrder`; the mock trades `market`, `limit`, `stop-loss`,
/// `take-profit` and `trailing-stop` orders (the trigger on the last trade price), GTC only.
pub(super) fn parse_order(pair: &Pair, params: &Params) -> Result<NewOrder, String> {
    let name = params.get("pair").ok_or_else(|| invalid("pair"))?;
    if !pair.named(name) {
        return Err(rest::UNKNOWN_PAIR.into());
    }
    let side = match params.get("type").map(String::as_str) {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        _ => return Err(invalid("type")),
    };
    let order_type = match params.get("ordertype").map(String::as_str) {
        Some("market") => OrderType::Market,
        Some("limit") => OrderType::Limit,
        Some("stop-loss") => OrderType::StopLoss,
        Some("take-profit") => OrderType::TakeProfit,
        Some("trailing-stop") => OrderType::TrailingStop,
        _ => return Err(invalid("ordertype")),
    };
    let volume = params
        .get("volume")
        .and_then(|v| v.parse::<Decimal>().ok())
        .filter(|v| *v > Decimal::ZERO)
        .ok_or_else(|| invalid("volume"))?;
    let absolute = || {
        params
            .get("price")
            .and_then(|p| p.parse::<Decimal>().ok())
            .filter(|p| *p > Decimal::ZERO)
            .ok_or_else(|| invalid("price"))
    };
    let (mut price, mut trigger, mut offset) = (None, None, None);
    match order_type {
        OrderType::Market => {}
        OrderType::Limit => price = Some(absolute()?),
        OrderType::StopLoss | OrderType::TakeProfit => trigger = Some(absolute()?),
        // Kraken takes a trailing stop's price only as relative: `+50` or `+1.5%`.
        OrderType::TrailingStop => {
            let text = params.get("price").ok_or_else(|| invalid("price"))?;
            let relative = text.strip_prefix('+').ok_or_else(|| invalid("price"))?;
            let (number, percent) = match relative.strip_suffix('%') {
                Some(n) => (n, true),
                None => (relative, false),
            };
            let value = number
                .parse::<Decimal>()
                .ok()
                .filter(|v| *v > Decimal::ZERO && (!percent || *v < Decimal::ONE_HUNDRED))
                .ok_or_else(|| invalid("price"))?;
            offset = Some(if percent {
                Offset::Percent(value)
            } else {
                Offset::Price(value)
            });
        }
    }
    let mut post_only = false;
    for oflag in params.get("oflags").iter().flat_map(|f| f.split(',')) {
        match oflag.trim() {
            "post" if order_type == OrderType::Limit => post_only = true,
            // Fee currency and market price protection change nothing here: fees are in USD.
            "fciq" | "fcib" | "nompp" | "" => {}
            _ => return Err(invalid("oflags")),
        }
    }
    if params.get("timeinforce").is_some_and(|t| t != "GTC") {
        return Err(invalid("timeinforce"));
    }
    let userref = params
        .get("userref")
        .map(|r| r.parse::<i32>().map_err(|_| invalid("userref")))
        .transpose()?;
    let cl_ord_id = params.get("cl_ord_id").cloned();
    if cl_ord_id.is_some() && userref.is_some() {
        return Err(invalid("cl_ord_id"));
    }
    if cl_ord_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 36) {
        return Err(invalid("cl_ord_id"));
    }
    Ok(NewOrder {
        side,
        order_type,
        volume,
        price,
        trigger,
        offset,
        post_only,
        userref,
        cl_ord_id,
    })
}

/// `descr.order`: `buy 1.25000000 XBTUSD @ limit 30010.0`, `sell 0.25000000 XBTUSD @ market`.
fn order_text(pair: &Pair, order: &NewOrder) -> String {
    let shown = order.price.or(order.trigger);
    describe(pair, order.side, order.order_type, order.volume, shown, order.offset)
}

/// Kraken's text: `buy 1.25000000 XBTUSD @ limit 30010.0`, `sell 0.25 XBTUSD @ stop loss
/// 27000.0`, `sell 0.25 XBTUSD @ take profit 33000.0`, `sell 0.25 XBTUSD @ trailing stop +1.5%`.
fn describe(
    pair: &Pair,
    side: Side,
    order_type: OrderType,
    volume: Decimal,
    price: Option<Decimal>,
    offset: Option<Offset>,
) -> String {
    let volume = wire::text(volume, pair.lot_decimals);
    let at = |what: &str| match (price, offset) {
        (_, Some(offset)) => format!("{side} {volume} {} @ {what} {}", pair.altname, offset.relative()),
        (Some(price), None) => {
            let price = wire::text(price, pair.pair_decimals);
            format!("{side} {volume} {} @ {what} {price}", pair.altname)
        }
        (None, None) => format!("{side} {volume} {} @ market", pair.altname),
    };
    match order_type {
        OrderType::Market => format!("{side} {volume} {} @ market", pair.altname),
        OrderType::Limit => at("limit"),
        OrderType::StopLoss => at("stop loss"),
        OrderType::TakeProfit => at("take profit"),
        OrderType::TrailingStop => at("trailing stop"),
    }
}

fn balance(state: &State) -> Value {
    let account = &state.account;
    json!({
        USD: wire::text(account.balance(USD), USD_DECIMALS),
        BTC: wire::text(account.balance(BTC), BTC_DECIMALS),
    })
}

/// `{asset: {balance, hold_trade}}`: available = balance − hold_trade.
fn balance_ex(state: &State) -> Value {
    let account = &state.account;
    let (usd_held, btc_held) = account.holds();
    json!({
        USD: {
            "balance": wire::text(account.balance(USD), USD_DECIMALS),
            "hold_trade": wire::text(usd_held, USD_DECIMALS),
        },
        BTC: {
            "balance": wire::text(account.balance(BTC), BTC_DECIMALS),
            "hold_trade": wire::text(btc_held, BTC_DECIMALS),
        },
    })
}

/// An order object of OpenOrders / ClosedOrders / QueryOrders (reference 4.4, 4.6).
fn order_json(pair: &Pair, order: &Order, with_trades: bool) -> Value {
    let placed = &order.placed;
    let cost = |v| wire::text(v, COST_DECIMALS);
    let offset = placed.trigger.and_then(|t| t.trail).map(|(offset, _)| offset);
    // `descr.price`: the limit price, or the trigger (a trailing stop's relative offset).
    let price = match (placed.price, placed.trigger, offset) {
        (_, _, Some(offset)) => offset.relative(),
        (Some(p), _, None) | (None, Some(Trigger { price: p, .. }), None) => wire::text(p, pair.pair_decimals),
        (None, None, None) => "0".to_owned(),
    };
    // `stopprice`: the trade price that triggered it, once it did.
    let stopprice = placed
        .trigger
        .and_then(|t| t.triggered_at)
        .map_or_else(|| "0.00000".to_owned(), |p| wire::text(p, pair.pair_decimals));
    let avg = order.avg_price().map_or_else(
        || cost(Decimal::ZERO),
        |p| wire::text(p.round_dp(AVG_DECIMALS).normalize(), pair.pair_decimals),
    );
    let oflags = if placed.post_only { "post,fciq" } else { "fciq" };
    let mut fields = Map::new();
    fields.insert("refid".into(), Value::Null);
    fields.insert("userref".into(), placed.userref.unwrap_or(0).into());
    if let Some(id) = &placed.cl_ord_id {
        fields.insert("cl_ord_id".into(), id.as_str().into());
    }
    fields.insert("status".into(), placed.status.as_str().into());
    if placed.status != OrderStatus::Open {
        fields.insert(
            "reason".into(),
            order.reason.as_deref().map_or(Value::Null, Value::from),
        );
    }
    fields.insert("opentm".into(), wire::float_secs(placed.placed_at));
    if let Some(closed) = order.closed_at {
        fields.insert("closetm".into(), wire::float_secs(closed));
    }
    fields.insert("starttm".into(), 0.into());
    fields.insert("expiretm".into(), 0.into());
    fields.insert(
        "descr".into(),
        json!({
            "pair": pair.altname,
            "type": placed.side.as_str(),
            "ordertype": placed.order_type.as_str(),
            "price": price,
            "price2": "0",
            "leverage": "none",
            "order": describe(
                pair,
                placed.side,
                placed.order_type,
                placed.volume,
                placed.price.or(placed.trigger.map(|t| t.price)),
                offset,
            ),
            "close": "",
        }),
    );
    fields.insert("vol".into(), wire::text(placed.volume, pair.lot_decimals).into());
    fields.insert("vol_exec".into(), wire::text(placed.vol_exec, pair.lot_decimals).into());
    fields.insert("cost".into(), cost(order.cost).into());
    fields.insert("fee".into(), cost(order.fee).into());
    fields.insert("price".into(), avg.into());
    fields.insert("stopprice".into(), stopprice.into());
    fields.insert("limitprice".into(), "0.00000".into());
    fields.insert("misc".into(), "".into());
    fields.insert("oflags".into(), oflags.into());
    if placed.trigger.is_some() {
        fields.insert("trigger".into(), "last".into());
    }
    if with_trades && !order.trades.is_empty() {
        fields.insert("trades".into(), json!(order.trades));
    }
    Value::Object(fields)
}

/// A TradesHistory entry (reference 4.7).
fn trade_json(pair: &Pair, fill: &Fill) -> Value {
    let e = &fill.execution;
    json!({
        "ordertxid": e.order_id,
        "postxid": fill.postxid,
        "pair": pair.key,
        "time": wire::float_secs(e.time),
        "type": e.side.as_str(),
        "ordertype": fill.order_type.as_str(),
        "price": wire::text(e.price, COST_DECIMALS),
        "cost": wire::text(e.cost, COST_DECIMALS),
        "fee": wire::text(e.fee, COST_DECIMALS),
        "vol": wire::text(e.qty, pair.lot_decimals),
        "margin": "0.00000",
        "misc": "",
        "trade_id": fill.trade_seq,
        "maker": e.maker,
    })
}

/// Whether an order passes the `userref` / `cl_ord_id` filters.
fn client_filter(params: &Params) -> Result<impl Fn(&Order) -> bool + '_, String> {
    let userref = params
        .get("userref")
        .map(|r| r.parse::<i32>().map_err(|_| invalid("userref")))
        .transpose()?;
    let cl_ord_id = params.get("cl_ord_id");
    Ok(move |order: &Order| {
        userref.is_none_or(|r| order.placed.userref == Some(r))
            && cl_ord_id.is_none_or(|id| order.placed.cl_ord_id.as_ref() == Some(id))
    })
}

fn open_orders(state: &State, params: &Params) -> Answer {
    let account = &state.account;
    let wanted = client_filter(params)?;
    let trades = flag(params, "trades");
    let open: Map<String, Value> = account
        .orders()
        .iter()
        .filter(|o| o.is_open() && wanted(o))
        .map(|o| (o.placed.txid.clone(), order_json(&account.pair, o, trades)))
        .collect();
    Ok(json!({ "open": open }))
}

/// `start`/`end`: Unix seconds or an id (`resolve` gives its time); start exclusive, end
/// inclusive.
fn bound(
    params: &Params,
    name: &str,
    resolve: impl Fn(&str) -> Option<Timestamp>,
) -> Result<Option<Timestamp>, String> {
    let Some(text) = params.get(name).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Some(ts) = resolve(text) {
        return Ok(Some(ts));
    }
    let secs: Decimal = text.parse().map_err(|_| invalid(name))?;
    let nanos = (secs * Decimal::from(1_000_000_000)).trunc();
    i64::try_from(nanos)
        .map(|n| Some(Timestamp::from_nanos(n)))
        .map_err(|_| invalid(name))
}

fn offset(params: &Params) -> Result<usize, String> {
    params
        .get("ofs")
        .map_or(Ok(0), |o| o.parse::<usize>().map_err(|_| invalid("ofs")))
}

fn in_window(ts: Timestamp, start: Option<Timestamp>, end: Option<Timestamp>) -> bool {
    start.is_none_or(|s| ts > s) && end.is_none_or(|e| ts <= e)
}

/// `{closed: {txid: order}, count}`: newest first, 50 from `ofs`.
fn closed_orders(state: &State, params: &Params) -> Answer {
    let account = &state.account;
    let closed_time = |txid: &str| account.order(txid).and_then(|o| o.closed_at);
    let start = bound(params, "start", closed_time)?;
    let end = bound(params, "end", closed_time)?;
    let ofs = offset(params)?;
    let wanted = client_filter(params)?;
    let trades = flag(params, "trades");
    let mut closed: Vec<&Order> = account
        .orders()
        .iter()
        .filter(|o| !o.is_open() && wanted(o))
        .filter(|o| o.closed_at.is_some_and(|t| in_window(t, start, end)))
        .collect();
    closed.sort_by_key(|o| std::cmp::Reverse(o.closed_at));
    let count = closed.len();
    let page: Map<String, Value> = closed
        .into_iter()
        .skip(ofs)
        .take(PAGE)
        .map(|o| (o.placed.txid.clone(), order_json(&account.pair, o, trades)))
        .collect();
    Ok(json!({ "closed": page, "count": count }))
}

/// `{txid: order}` for a comma list of up to 50 txids.
fn query_orders(state: &State, params: &Params) -> Answer {
    let account = &state.account;
    let list = params
        .get("txid")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("txid"))?;
    let trades = flag(params, "trades");
    let txids: Vec<&str> = list.split(',').map(str::trim).collect();
    if txids.len() > PAGE {
        return Err(invalid("txid"));
    }
    let mut found = Map::new();
    for txid in txids {
        let order = account.order(txid).ok_or("EOrder:Invalid order")?;
        found.insert(txid.to_owned(), order_json(&account.pair, order, trades));
    }
    Ok(Value::Object(found))
}

/// `{trades: {txid: trade}, count}`: newest first, 50 from `ofs`.
fn trades_history(state: &State, params: &Params) -> Answer {
    let account = &state.account;
    let fills = account.fills();
    let trade_time = |id: &str| {
        fills
            .iter()
            .find(|f| f.execution.trade_id == id)
            .map(|f| f.execution.time)
    };
    let start = bound(params, "start", trade_time)?;
    let end = bound(params, "end", trade_time)?;
    let ofs = offset(params)?;
    // Newest first; fills are recorded in time order.
    let matching: Vec<&Fill> = fills
        .iter()
        .rev()
        .filter(|f| in_window(f.execution.time, start, end))
        .collect();
    let count = matching.len();
    let page: Map<String, Value> = matching
        .into_iter()
        .skip(ofs)
        .take(PAGE)
        .map(|f| (f.execution.trade_id.clone(), trade_json(&account.pair, f)))
        .collect();
    Ok(json!({ "trades": page, "count": count }))
}

/// `txid` is an order id or a `userref` (all its orders); or `cl_ord_id`.
fn cancel_order(state: &mut State, params: &Params, now: Timestamp) -> Answer {
    let selector = match (params.get("txid"), params.get("cl_ord_id")) {
        (Some(txid), _) => match txid.parse::<i32>() {
            Ok(userref) => Selector::Userref(userref),
            Err(_) => Selector::Txid(txid.clone()),
        },
        (None, Some(id)) => Selector::ClOrdId(id.clone()),
        (None, None) => return Err(invalid("txid")),
    };
    let count = state.account.cancel(&selector, now)?;
    Ok(json!({ "count": count }))
}

/// The dead man's switch: `timeout` seconds from now (wall time), 0 disables it.
fn cancel_all_orders_after(state: &mut State, params: &Params, now: Timestamp) -> Answer {
    let timeout = params
        .get("timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t <= MAX_CANCEL_AFTER)
        .ok_or_else(|| invalid("timeout"))?;
    let armed = (timeout > 0).then(|| Duration::from_secs(timeout));
    state.account.cancel_after(armed);
    let trigger = match armed {
        Some(_) => wire::whole_secs(now.add_secs(timeout as i64)),
        None => "0".to_owned(),
    };
    Ok(json!({ "currentTime": wire::whole_secs(now), "triggerTime": trigger }))
}
