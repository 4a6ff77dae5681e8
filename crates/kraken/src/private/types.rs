//! Private requests and results as types, and the parsing of Kraken's answers into them.
//! Money is exact (`Decimal` from the text); where Kraken's types vary (README 4.4: `userref`,
//! `opentm` seen as strings or numbers) both are accepted. Unknown fields are ignored.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde_json::value::RawValue;

use super::error::{ApiError, PrivateError};
use nanotrader_market::parse::{decimal, secs_to_nanos};
use nanotrader_market::{Side, Timestamp};

/// How an order is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderType {
    Market,
    /// `post_only`: cancelled instead of taking liquidity (`oflags=post`).
    Limit {
        price: Decimal,
        post_only: bool,
    },
    /// Rests until the last trade price reaches `trigger`, then executes at market
    /// (`ordertype=stop-loss`, `price` = the trigger).
    StopLoss {
        trigger: Decimal,
    },
    /// Rests until the last trade price reaches `trigger` (a sell: rises to it), then executes
    /// at market (`ordertype=take-profit`).
    TakeProfit {
        trigger: Decimal,
    },
    /// Follows the best price since placement at `offset` behind it and executes at market
    /// once the price comes back by the offset (`ordertype=trailing-stop`, `price` relative:
    /// `+50` or `+1.5%`).
    TrailingStop {
        offset: TrailOffset,
    },
}

impl OrderType {
    /// Kraken's `ordertype`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit { .. } => "limit",
            OrderType::StopLoss { .. } => "stop-loss",
            OrderType::TakeProfit { .. } => "take-profit",
            OrderType::TrailingStop { .. } => "trailing-stop",
        }
    }

    /// Whether it waits for a trigger price (stop-loss, take-profit, trailing stop).
    pub fn is_triggered(&self) -> bool {
        matches!(
            self,
            OrderType::StopLoss { .. } | OrderType::TakeProfit { .. } | OrderType::TrailingStop { .. }
        )
    }
}

/// A trailing stop's distance behind the best price: an amount of the quote currency or a
/// percentage of that price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailOffset {
    Price(Decimal),
    Percent(Decimal),
}

impl fmt::Display for TrailOffset {
    /// Kraken's relative price: `+50`, `+1.5%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrailOffset::Price(p) => write!(f, "+{p}"),
            TrailOffset::Percent(p) => write!(f, "+{p}%"),
        }
    }
}

/// An AddOrder. `cl_ord_id` is what finds the order again when the outcome is unknown: set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// REST name or key, e.g. `XBTUSD`.
    pub pair: String,
    pub side: Side,
    pub order_type: OrderType,
    /// In the base asset.
    pub volume: Decimal,
    pub cl_ord_id: Option<String>,
    /// Kraken checks the order and places nothing.
    pub validate: bool,
}

impl OrderRequest {
    /// The body fields after the nonce, in the order sent; refused here when Kraken would
    /// refuse it anyway.
    pub fn fields(&self) -> Result<Vec<(&'static str, String)>, PrivateError> {
        let invalid = |why: String| Err(PrivateError::InvalidRequest(why));
        if self.pair.is_empty() {
            return invalid("empty pair".into());
        }
        if self.volume <= Decimal::ZERO {
            return invalid(format!("volume {} is not above zero", self.volume));
        }
        let mut fields = vec![
            ("pair", self.pair.clone()),
            ("type", self.side.as_str().to_owned()),
            ("ordertype", self.order_type.as_str().to_owned()),
            ("volume", self.volume.to_string()),
        ];
        match self.order_type {
            OrderType::Market => {}
            OrderType::Limit { price, post_only } => {
                if price <= Decimal::ZERO {
                    return invalid(format!("limit price {price} is not above zero"));
                }
                fields.push(("price", price.to_string()));
                if post_only {
                    fields.push(("oflags", "post".to_owned()));
                }
            }
            OrderType::StopLoss { trigger } | OrderType::TakeProfit { trigger } => {
                if trigger <= Decimal::ZERO {
                    return invalid(format!("trigger price {trigger} is not above zero"));
                }
                fields.push(("price", trigger.to_string()));
            }
            OrderType::TrailingStop { offset } => {
                let (TrailOffset::Price(v) | TrailOffset::Percent(v)) = offset;
                if v <= Decimal::ZERO {
                    return invalid(format!("trailing offset {offset} is not above zero"));
                }
                fields.push(("price", offset.to_string()));
            }
        }
        if let Some(id) = &self.cl_ord_id {
            if id.is_empty() {
                return invalid("empty cl_ord_id".into());
            }
            fields.push(("cl_ord_id", id.clone()));
        }
        if self.validate {
            fields.push(("validate", "true".to_owned()));
        }
        Ok(fields)
    }
}

/// Which order a cancel means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderRef {
    Txid(String),
    ClOrdId(String),
}

impl OrderRef {
    /// The body field naming it.
    pub fn field(&self) -> (&'static str, String) {
        match self {
            Self::Txid(id) => ("txid", id.clone()),
            Self::ClOrdId(id) => ("cl_ord_id", id.clone()),
        }
    }
}

/// An accepted AddOrder: Kraken's description and the order ids (none with `validate`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AddedOrder {
    #[serde(rename = "descr")]
    pub description: AddedDescription,
    #[serde(rename = "txid", default)]
    pub txids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AddedDescription {
    /// e.g. `buy 1.45 XBTUSD @ limit 27500.0`.
    pub order: String,
    #[serde(default)]
    pub close: Option<String>,
}

/// One asset of BalanceEx. Available to trade = balance + credit - credit_used - hold_trade.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExtendedBalance {
    #[serde(deserialize_with = "dec")]
    pub balance: Decimal,
    #[serde(deserialize_with = "dec", default)]
    pub hold_trade: Decimal,
    #[serde(deserialize_with = "dec", default)]
    pub credit: Decimal,
    #[serde(deserialize_with = "dec", default)]
    pub credit_used: Decimal,
}

impl ExtendedBalance {
    pub fn available(&self) -> Decimal {
        self.balance + self.credit - self.credit_used - self.hold_trade
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CancelResult {
    /// Orders cancelled.
    pub count: u32,
    /// Cancellation is pending (the order was still being processed).
    #[serde(default)]
    pub pending: bool,
}

/// CancelAllOrdersAfter's answer: the server's time and when it will cancel (none when disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadManSwitch {
    pub current_time: Option<Timestamp>,
    pub trigger_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Open,
    Closed,
    Canceled,
    Expired,
    /// A status Kraken added later.
    #[serde(other)]
    Unknown,
}

/// An order as OpenOrders, ClosedOrders and QueryOrders describe it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Order {
    /// The map key Kraken lists the order under.
    #[serde(skip)]
    pub txid: String,
    #[serde(default)]
    pub refid: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    pub userref: Option<i64>,
    #[serde(default)]
    pub cl_ord_id: Option<String>,
    pub status: OrderStatus,
    #[serde(rename = "opentm", deserialize_with = "secs")]
    pub opened: Option<Timestamp>,
    #[serde(rename = "closetm", default, deserialize_with = "secs")]
    pub closed: Option<Timestamp>,
    #[serde(rename = "starttm", default, deserialize_with = "secs")]
    pub start: Option<Timestamp>,
    #[serde(rename = "expiretm", default, deserialize_with = "secs")]
    pub expire: Option<Timestamp>,
    pub descr: OrderDescription,
    #[serde(rename = "vol", deserialize_with = "dec")]
    pub volume: Decimal,
    #[serde(rename = "vol_exec", deserialize_with = "dec")]
    pub volume_executed: Decimal,
    #[serde(deserialize_with = "dec")]
    pub cost: Decimal,
    #[serde(deserialize_with = "dec")]
    pub fee: Decimal,
    /// Average fill price.
    #[serde(rename = "price", deserialize_with = "dec")]
    pub average_price: Decimal,
    #[serde(rename = "stopprice", default, deserialize_with = "dec")]
    pub stop_price: Decimal,
    #[serde(rename = "limitprice", default, deserialize_with = "dec")]
    pub limit_price: Decimal,
    #[serde(default)]
    pub misc: String,
    #[serde(default)]
    pub oflags: String,
    /// Fill ids, when asked for (`trades=true`).
    #[serde(default)]
    pub trades: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub trigger: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderDescription {
    /// The altname, e.g. `XBTUSD`.
    pub pair: String,
    #[serde(rename = "type")]
    pub side: Side,
    pub ordertype: String,
    /// The limit price or trigger; a relative one (a trailing stop's `+1.5%`, `+50`) as its
    /// number.
    #[serde(deserialize_with = "relative_dec")]
    pub price: Decimal,
    #[serde(default, deserialize_with = "relative_dec")]
    pub price2: Decimal,
    #[serde(default)]
    pub leverage: String,
    /// Kraken's text, e.g. `buy 1.25000000 XBTUSD @ limit 30010.0`.
    pub order: String,
    #[serde(default)]
    pub close: String,
}

/// One page of ClosedOrders; `count` is the total over all pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedOrdersPage {
    pub orders: Vec<Order>,
    pub count: u64,
}

/// One of the account's fills (TradesHistory).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Trade {
    #[serde(skip)]
    pub txid: String,
    pub ordertxid: String,
    #[serde(default)]
    pub postxid: Option<String>,
    /// The pair key, e.g. `XXBTZUSD`.
    pub pair: String,
    #[serde(deserialize_with = "secs_required")]
    pub time: Timestamp,
    #[serde(rename = "type")]
    pub side: Side,
    pub ordertype: String,
    #[serde(deserialize_with = "dec")]
    pub price: Decimal,
    #[serde(deserialize_with = "dec")]
    pub cost: Decimal,
    #[serde(deserialize_with = "dec")]
    pub fee: Decimal,
    #[serde(rename = "vol", deserialize_with = "dec")]
    pub volume: Decimal,
    #[serde(default, deserialize_with = "dec")]
    pub margin: Decimal,
    #[serde(default)]
    pub misc: String,
    #[serde(default, deserialize_with = "opt_int")]
    pub trade_id: Option<i64>,
    #[serde(default)]
    pub maker: Option<bool>,
    #[serde(default)]
    pub ledgers: Vec<String>,
}

/// One page of TradesHistory (at most 50, newest first); `count` is the total over all pages
/// when Kraken gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradesPage {
    pub trades: Vec<Trade>,
    pub count: Option<u64>,
}

/// A token for the private WebSocket; valid `expires` seconds unless a subscription keeps it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct WebSocketsToken {
    pub token: String,
    pub expires: u64,
}

impl fmt::Debug for WebSocketsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketsToken")
            .field("token", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

// ---- parsing ----

fn malformed(what: &str, e: impl fmt::Display) -> PrivateError {
    PrivateError::Malformed(format!("{what}: {e}"))
}

/// The envelope's `result`, or Kraken's error (which wins over any `result`: on failure it may
/// be absent or `{}`). Warnings alone are not failures.
pub(crate) fn envelope<'a>(body: &'a [u8], what: &str) -> Result<&'a RawValue, PrivateError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(default)]
        error: Vec<String>,
        #[serde(borrow)]
        result: Option<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| malformed(what, e))?;
    if let Some(err) = ApiError::from_errors(&envelope.error) {
        return Err(PrivateError::Api(err));
    }
    envelope
        .result
        .ok_or_else(|| malformed(what, "neither result nor error"))
}

fn result<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, PrivateError> {
    let raw = envelope(body, what)?;
    serde_json::from_str(raw.get()).map_err(|e| malformed(what, e))
}

/// Balance: asset id -> amount (`XXBT`, `ZUSD`, `ETH2.S`, ...).
pub fn parse_balance(body: &[u8]) -> Result<BTreeMap<String, Decimal>, PrivateError> {
    #[derive(Deserialize)]
    struct D(#[serde(deserialize_with = "dec")] Decimal);
    let map: BTreeMap<String, D> = result(body, "Balance")?;
    Ok(map.into_iter().map(|(k, D(v))| (k, v)).collect())
}

pub fn parse_balance_ex(body: &[u8]) -> Result<BTreeMap<String, ExtendedBalance>, PrivateError> {
    result(body, "BalanceEx")
}

pub fn parse_add_order(body: &[u8]) -> Result<AddedOrder, PrivateError> {
    result(body, "AddOrder")
}

pub fn parse_cancel(body: &[u8]) -> Result<CancelResult, PrivateError> {
    result(body, "CancelOrder")
}

pub fn parse_cancel_all_after(body: &[u8]) -> Result<DeadManSwitch, PrivateError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        current_time: String,
        trigger_time: String,
    }
    let raw: Raw = result(body, "CancelAllOrdersAfter")?;
    // `triggerTime` is "0" when the switch is off.
    let time = |t: &str| crate::parse::rfc3339(t);
    Ok(DeadManSwitch {
        current_time: time(&raw.current_time),
        trigger_time: time(&raw.trigger_time),
    })
}

/// Orders keyed by txid, oldest first.
fn orders(map: BTreeMap<String, Order>) -> Vec<Order> {
    let mut orders: Vec<Order> = map.into_iter().map(|(txid, order)| Order { txid, ..order }).collect();
    orders.sort_by(|a, b| (a.opened, &a.txid).cmp(&(b.opened, &b.txid)));
    orders
}

pub fn parse_open_orders(body: &[u8]) -> Result<Vec<Order>, PrivateError> {
    #[derive(Deserialize)]
    struct Open {
        open: BTreeMap<String, Order>,
    }
    Ok(orders(result::<Open>(body, "OpenOrders")?.open))
}

pub fn parse_closed_orders(body: &[u8]) -> Result<ClosedOrdersPage, PrivateError> {
    #[derive(Deserialize)]
    struct Closed {
        closed: BTreeMap<String, Order>,
        #[serde(default)]
        count: u64,
    }
    let page: Closed = result(body, "ClosedOrders")?;
    Ok(ClosedOrdersPage {
        orders: orders(page.closed),
        count: page.count,
    })
}

pub fn parse_query_orders(body: &[u8]) -> Result<Vec<Order>, PrivateError> {
    Ok(orders(result(body, "QueryOrders")?))
}

pub fn parse_trades_history(body: &[u8]) -> Result<TradesPage, PrivateError> {
    #[derive(Deserialize)]
    struct Page {
        trades: BTreeMap<String, Trade>,
        #[serde(default)]
        count: Option<u64>,
    }
    let page: Page = result(body, "TradesHistory")?;
    let mut trades: Vec<Trade> = page
        .trades
        .into_iter()
        .map(|(txid, trade)| Trade { txid, ..trade })
        .collect();
    trades.sort_by(|a, b| (b.time, &b.txid).cmp(&(a.time, &a.txid)));
    Ok(TradesPage {
        trades,
        count: page.count,
    })
}

pub fn parse_websockets_token(body: &[u8]) -> Result<WebSocketsToken, PrivateError> {
    result(body, "GetWebSocketsToken")
}

// ---- field readers: the JSON text itself, never through f64 ----

/// A JSON string or number without its quotes.
fn unquoted(raw: &RawValue) -> &str {
    let text = raw.get();
    text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text)
}

/// A decimal written as a string (`"30010.0"`, Kraken's REST) or as a number.
pub(super) fn dec<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let raw = <&RawValue>::deserialize(d)?;
    let text = unquoted(raw);
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        decimal(text.as_bytes())
    };
    parsed.ok_or_else(|| de::Error::custom(format!("expected a decimal, got {raw}")))
}

/// A price that may be relative (`+50`, `-1.5%`, `#20`): its number.
fn relative_dec<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let raw = <&RawValue>::deserialize(d)?;
    let text = unquoted(raw);
    let number = text.trim_start_matches(['+', '-', '#']).trim_end_matches('%');
    decimal(number.as_bytes()).ok_or_else(|| de::Error::custom(format!("expected a price, got {raw}")))
}

/// Unix seconds (`1688666559.8974`, or a string of it); 0 means none.
fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let raw = <&RawValue>::deserialize(d)?;
    if raw.get() == "null" {
        return Ok(None);
    }
    let ns = secs_to_nanos(unquoted(raw).as_bytes())
        .ok_or_else(|| de::Error::custom(format!("expected unix seconds, got {raw}")))?;
    Ok((ns != 0).then_some(Timestamp::from_nanos(ns)))
}

fn secs_required<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    secs(d)?.ok_or_else(|| de::Error::custom("a time is required"))
}

/// An integer as a number or a string; `null` or `""` is none.
pub(super) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let raw = <&RawValue>::deserialize(d)?;
    match unquoted(raw) {
        "null" | "" => Ok(None),
        text => text
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected an integer, got {raw}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{d, fixture};
    use crate::private::error::ApiErrorKind;

    fn ts(secs: i64, frac_ns: i64) -> Option<Timestamp> {
        Some(Timestamp::from_nanos(secs * 1_000_000_000 + frac_ns))
    }

    #[test]
    fn balance_fixture() {
        let balances = parse_balance(fixture("private_balance.json").as_bytes()).unwrap();
        assert_eq!(balances.len(), 10);
        assert_eq!(balances["ZUSD"], d("171288.6158"));
        assert_eq!(balances["XXBT"].to_string(), "1011.1908877900");
        assert_eq!(balances["ETH2.S"], d("198.3970800000"));
        assert_eq!(balances["USD.M"], d("1213029.2780"));
    }

    #[test]
    fn balance_ex_and_what_is_available() {
        let body = br#"{"error":[],"result":{
            "ZUSD":{"balance":"25435.21","hold_trade":"8249.76"},
            "XXBT":{"balance":"1.2435","hold_trade":"0.8423","credit":"0.5","credit_used":"0.1"}}}"#;
        let b = parse_balance_ex(body).unwrap();
        assert_eq!(b["ZUSD"].available(), d("17185.45"));
        assert_eq!(b["XXBT"].available(), d("0.8012"));
    }

    #[test]
    fn add_order_fixtures() {
        let placed = parse_add_order(fixture("private_addorder.json").as_bytes()).unwrap();
        assert_eq!(placed.txids, ["OU22CG-KLAF2-FWUDD7"]);
        assert_eq!(placed.description.order, "buy 1.45 XBTUSD @ limit 27500.0");
        assert_eq!(placed.description.close, None);

        let close = parse_add_order(fixture("private_addorder_conditional_close.json").as_bytes()).unwrap();
        assert_eq!(close.txids, ["OUF4EM-FRGI2-MQMWZD"]);
        assert_eq!(
            close.description.close.as_deref(),
            Some("close position @ stop loss 22000.0 -> limit 21000.0")
        );

        let validated = parse_add_order(fixture("private_addorder_validate.json").as_bytes()).unwrap();
        assert!(validated.txids.is_empty());
        assert_eq!(validated.description.order, "buy 0.00010000 XBTUSD @ limit 37500.0");

        let refused = parse_add_order(fixture("private_addorder_insufficient_funds.json").as_bytes());
        assert_eq!(refused.unwrap_err().api_kind(), Some(ApiErrorKind::InsufficientFunds));
    }

    #[test]
    fn open_orders_fixture() {
        let open = parse_open_orders(fixture("private_openorders.json").as_bytes()).unwrap();
        assert_eq!(open.len(), 2);
        let (a, b) = (&open[0], &open[1]);
        // Oldest first.
        assert_eq!(a.txid, "OB5VMB-B4U2U-DK2WRW");
        assert_eq!(a.userref, Some(45326));
        assert_eq!(a.descr.leverage, "5:1");
        assert_eq!(a.volume_executed, d("0.00000000"));
        assert!(a.trades.is_empty());
        assert_eq!(b.txid, "OQCLML-BW3P3-BUCMWZ");
        assert_eq!(b.status, OrderStatus::Open);
        assert_eq!(b.opened, ts(1_688_666_559, 897_400_000));
        assert_eq!((b.start, b.expire, b.closed), (None, None, None));
        assert_eq!(b.descr.side, Side::Buy);
        assert_eq!(b.descr.ordertype, "limit");
        assert_eq!(b.descr.price, d("30010.0"));
        assert_eq!(b.volume, d("1.25000000"));
        assert_eq!(b.volume_executed, d("0.37500000"));
        assert_eq!(b.cost, d("11253.7"));
        assert_eq!(b.average_price, d("30010.0"));
        assert_eq!(b.oflags, "fciq");
        assert_eq!(b.trades, ["TCCCTY-WE2O6-P3NB37"]);
        assert_eq!(b.refid, None);
        assert_eq!(b.cl_ord_id, None);
    }

    #[test]
    fn query_orders_fixture() {
        let orders = parse_query_orders(fixture("private_queryorders.json").as_bytes()).unwrap();
        assert_eq!(orders.len(), 2);
        let (sell, stop) = (&orders[0], &orders[1]);
        assert_eq!(sell.txid, "OMMDB2-FSB6Z-7W3HPO");
        assert_eq!(sell.status, OrderStatus::Closed);
        assert_eq!(sell.descr.side, Side::Sell);
        assert_eq!(sell.descr.ordertype, "market");
        assert_eq!(sell.average_price, d("30000.0"));
        assert_eq!(sell.closed, ts(1_688_592_012, 233_500_000));
        assert_eq!(sell.trigger, None);
        assert_eq!(stop.txid, "OBCMZD-JIEE7-77TH3F");
        assert_eq!(stop.descr.ordertype, "stop-loss-limit");
        // A trailing stop's price is relative (`+1.5%`): read as its number.
        let trailing = br#"{"error":[],"result":{"O1":{"status":"open","opentm":1688666559.5,
            "descr":{"pair":"XBTUSD","type":"sell","ordertype":"trailing-stop","price":"+1.5%",
            "price2":"0","order":"sell 0.1 XBTUSD @ trailing stop +1.5%"},"vol":"0.1","vol_exec":"0",
            "cost":"0","fee":"0","price":"0","stopprice":"0","limitprice":"0"}}}"#;
        let orders = parse_query_orders(trailing).unwrap();
        assert_eq!(
            (orders[0].descr.ordertype.as_str(), orders[0].descr.price),
            ("trailing-stop", d("1.5"))
        );
        assert_eq!(stop.fee, d("26.2"));
        assert_eq!(stop.trigger.as_deref(), Some("index"));
        assert_eq!(stop.reason, None);
    }

    #[test]
    fn cancel_and_token_fixtures() {
        let cancel = parse_cancel(fixture("private_cancelorder.json").as_bytes()).unwrap();
        assert_eq!(
            cancel,
            CancelResult {
                count: 1,
                pending: false
            }
        );
        let token = parse_websockets_token(fixture("private_getwebsocketstoken.json").as_bytes()).unwrap();
        assert_eq!(token.token, "1Dwc4lzSwNWOAwkMdqhssNNFhs1ed606d1WcF3XfEMw");
        assert_eq!(token.expires, 900);
        assert!(!format!("{token:?}").contains("1Dwc4"));
    }

    #[test]
    fn trades_history_fixture() {
        let page = parse_trades_history(fixture("private_tradeshistory.json").as_bytes()).unwrap();
        assert_eq!(page.count, None);
        let t: Vec<&str> = page.trades.iter().map(|t| t.txid.as_str()).collect();
        assert_eq!(t, ["THVRQM-33VKH-UCI7BS", "TCWJEG-FL4SZ-3FKGH6"], "newest first");
        let first = &page.trades[0];
        assert_eq!(first.ordertxid, "OQCLML-BW3P3-BUCMWZ");
        assert_eq!(first.pair, "XXBTZUSD");
        assert_eq!(Some(first.time), ts(1_688_667_796, 880_200_000));
        assert_eq!(first.side, Side::Buy);
        assert_eq!(first.price, d("30010.00000"));
        assert_eq!(first.cost, d("600.20000"));
        assert_eq!(first.volume, d("0.02000000"));
        assert_eq!(first.trade_id, Some(40_274_859));
        assert_eq!(first.maker, Some(true));
    }

    #[test]
    fn types_that_vary_are_accepted_both_ways() {
        // ccxt's recorded OpenOrders has userref and opentm as strings; numbers may be bare.
        let body = br#"{"error":[],"result":{"open":{"O1":{"userref":"7","status":"pending",
            "opentm":"1688666559.5","descr":{"pair":"XBTUSD","type":"sell","ordertype":"market",
            "price":0,"order":"sell 1 XBTUSD @ market"},"vol":1.5,"vol_exec":"0","cost":"0",
            "fee":"0","price":"0","cl_ord_id":"bot-1","new_field":[1,2]}}}}"#;
        let open = parse_open_orders(body).unwrap();
        assert_eq!(open[0].userref, Some(7));
        assert_eq!(open[0].opened, ts(1_688_666_559, 500_000_000));
        assert_eq!(open[0].volume, d("1.5"));
        assert_eq!(open[0].status, OrderStatus::Pending);
        assert_eq!(open[0].cl_ord_id.as_deref(), Some("bot-1"));
    }

    #[test]
    fn closed_orders_and_dead_man_switch() {
        let body = br#"{"error":[],"result":{"closed":{"O2":{"status":"canceled","reason":"User requested",
            "opentm":1688666559,"closetm":1688666600,"descr":{"pair":"XBTUSD","type":"buy",
            "ordertype":"limit","price":"30000.0","order":"buy"},"vol":"1","vol_exec":"0",
            "cost":"0","fee":"0","price":"0"}},"count":11}}"#;
        let page = parse_closed_orders(body).unwrap();
        assert_eq!(page.count, 11);
        assert_eq!(page.orders[0].status, OrderStatus::Canceled);
        assert_eq!(page.orders[0].reason.as_deref(), Some("User requested"));

        let on =
            br#"{"error":[],"result":{"currentTime":"2023-03-24T17:41:56Z","triggerTime":"2023-03-24T17:42:56Z"}}"#;
        let switch = parse_cancel_all_after(on).unwrap();
        assert_eq!(switch.current_time, ts(1_679_679_716, 0));
        assert_eq!(switch.trigger_time, ts(1_679_679_776, 0));
        let off = br#"{"error":[],"result":{"currentTime":"2023-03-24T17:41:56Z","triggerTime":"0"}}"#;
        assert_eq!(parse_cancel_all_after(off).unwrap().trigger_time, None);
    }

    #[test]
    fn unreadable_bodies_are_malformed_not_panics() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"{\"error\":[]}",
            b"{\"error\":[],\"result\":{\"ZUSD\":12.5e}}",
            b"{\"error\":[],\"result\":{\"ZUSD\":null}}",
        ] {
            let got = parse_balance(body);
            assert!(matches!(got, Err(PrivateError::Malformed(_))), "{got:?}");
        }
    }

    #[test]
    fn order_request_fields_in_order() {
        let limit = OrderRequest {
            pair: "XBTUSD".into(),
            side: Side::Buy,
            order_type: OrderType::Limit {
                price: d("37500.0"),
                post_only: true,
            },
            volume: d("0.00010000"),
            cl_ord_id: Some("nt-1".into()),
            validate: true,
        };
        let fields = limit.fields().unwrap();
        let expected: Vec<(&str, String)> = [
            ("pair", "XBTUSD"),
            ("type", "buy"),
            ("ordertype", "limit"),
            ("volume", "0.00010000"),
            ("price", "37500.0"),
            ("oflags", "post"),
            ("cl_ord_id", "nt-1"),
            ("validate", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        assert_eq!(fields, expected);

        let market = OrderRequest {
            side: Side::Sell,
            order_type: OrderType::Market,
            cl_ord_id: None,
            validate: false,
            ..limit.clone()
        };
        assert_eq!(market.fields().unwrap().len(), 4);

        let field = |order_type| {
            let r = OrderRequest {
                side: Side::Sell,
                order_type,
                cl_ord_id: None,
                validate: false,
                ..limit.clone()
            };
            r.fields().unwrap()[2..].to_vec()
        };
        let pairs = |v: &[(&'static str, &str)]| v.iter().map(|(k, v)| (*k, (*v).to_owned())).collect::<Vec<_>>();
        assert_eq!(
            field(OrderType::StopLoss { trigger: d("36000.5") }),
            pairs(&[
                ("ordertype", "stop-loss"),
                ("volume", "0.00010000"),
                ("price", "36000.5")
            ])
        );
        assert_eq!(
            field(OrderType::TakeProfit { trigger: d("39000") }),
            pairs(&[
                ("ordertype", "take-profit"),
                ("volume", "0.00010000"),
                ("price", "39000")
            ])
        );
        assert_eq!(
            field(OrderType::TrailingStop {
                offset: TrailOffset::Percent(d("1.5"))
            }),
            pairs(&[
                ("ordertype", "trailing-stop"),
                ("volume", "0.00010000"),
                ("price", "+1.5%")
            ])
        );
        assert_eq!(
            field(OrderType::TrailingStop {
                offset: TrailOffset::Price(d("250.0"))
            }),
            pairs(&[
                ("ordertype", "trailing-stop"),
                ("volume", "0.00010000"),
                ("price", "+250.0")
            ])
        );

        for bad in [
            OrderRequest {
                volume: Decimal::ZERO,
                ..limit.clone()
            },
            OrderRequest {
                order_type: OrderType::Limit {
                    price: d("-1"),
                    post_only: false,
                },
                ..limit.clone()
            },
            OrderRequest {
                pair: String::new(),
                ..limit.clone()
            },
        ] {
            assert!(matches!(bad.fields(), Err(PrivateError::InvalidRequest(_))), "{bad:?}");
        }
    }
}
