//! The authenticated WebSocket v2's messages as types (Kraken's `executions` and `balances`
//! channels), parsed from the frame's text: amounts are exact `Decimal`s read from the JSON
//! number's own digits, never through `f64`; times are RFC 3339. Anything else the socket sends
//! (`status`, `heartbeat`, acks) is the public parser's [`WsMessage`]. Unknown fields are ignored.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::value::RawValue;

use super::error::PrivateError;
use super::types::{dec, opt_int};
use crate::parse::{WsMessage, parse_ws, rfc3339};
use nanotrader_market::{Side, Timestamp};

/// What an execution report says happened (Kraken's `exec_type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExecType {
    /// Received and validated, not live yet.
    PendingNew,
    /// Live in the engine (also every open order of a snapshot).
    New,
    /// A fill: [`ExecutionReport::trade`] holds it.
    Trade,
    /// Fully filled.
    Filled,
    IcebergRefill,
    Canceled,
    Expired,
    /// A user amend (price, quantity).
    Amended,
    /// An engine-initiated amend; see `reason`.
    Restated,
    /// A status update (e.g. a trigger price moved).
    Status,
    /// A kind Kraken added later, kept verbatim.
    Other(String),
}

impl ExecType {
    fn parse(text: &str) -> Self {
        match text {
            "pending_new" => Self::PendingNew,
            "new" => Self::New,
            "trade" => Self::Trade,
            "filled" => Self::Filled,
            "iceberg_refill" => Self::IcebergRefill,
            "canceled" => Self::Canceled,
            "expired" => Self::Expired,
            "amended" => Self::Amended,
            "restated" => Self::Restated,
            "status" => Self::Status,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The order's state after the event (Kraken's `order_status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExecOrderStatus {
    PendingNew,
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    /// A status Kraken added later, kept verbatim.
    Other(String),
}

impl ExecOrderStatus {
    fn parse(text: &str) -> Self {
        match text {
            "pending_new" => Self::PendingNew,
            "new" => Self::New,
            "partially_filled" => Self::PartiallyFilled,
            "filled" => Self::Filled,
            "canceled" => Self::Canceled,
            "expired" => Self::Expired,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Filled, canceled or expired: nothing more will happen to the order.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Filled | Self::Canceled | Self::Expired)
    }
}

/// Who provided the liquidity of a fill (`liquidity_ind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liquidity {
    Maker,
    Taker,
}

/// One fee of a fill, in its asset (Kraken: the quote currency for now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fee {
    /// WS v2 asset name, e.g. `USD`.
    pub asset: String,
    pub qty: Decimal,
}

/// A fill, exactly as the exchange reported it: what a broker records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeFill {
    /// Kraken's id of this execution, e.g. `TGBB7L-HT5LX-J3BZ4A`: the REST trade txid, unique.
    pub exec_id: String,
    /// The pair's integer trade sequence number, when given.
    pub trade_id: Option<u64>,
    pub last_qty: Decimal,
    pub last_price: Decimal,
    /// Value of this fill (quote currency).
    pub cost: Decimal,
    pub fees: Vec<Fee>,
    pub liquidity: Option<Liquidity>,
}

impl TradeFill {
    /// The fee paid in `asset` (zero when none is listed in it).
    pub fn fee_in(&self, asset: &str) -> Decimal {
        self.fees.iter().filter(|f| f.asset == asset).map(|f| f.qty).sum()
    }
}

/// One entry of the `executions` channel. Which fields are present depends on `exec_type`
/// (Kraken sends only what changed on `new`, `filled`, `canceled`): absent ones are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    pub exec_type: ExecType,
    pub order_id: String,
    pub cl_ord_id: Option<String>,
    pub order_userref: Option<i64>,
    pub order_status: Option<ExecOrderStatus>,
    /// WS v2 name, e.g. `BTC/USD`.
    pub symbol: Option<String>,
    pub side: Option<Side>,
    /// `limit`, `market`, ... as Kraken spells it.
    pub order_type: Option<String>,
    pub order_qty: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    pub cum_qty: Option<Decimal>,
    pub cum_cost: Option<Decimal>,
    pub avg_price: Option<Decimal>,
    /// Present exactly when `exec_type` is [`ExecType::Trade`].
    pub trade: Option<TradeFill>,
    /// Exchange time of the event.
    pub timestamp: Timestamp,
    /// Why it was canceled, expired or restated (`reason`, or the older `cancel_reason`).
    pub reason: Option<String>,
}

/// One ledger transaction of a `balances` update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub ledger_id: String,
    /// For a trade, its `exec_id`.
    pub ref_id: String,
    /// WS v2 asset name, e.g. `BTC`, `USD`.
    pub asset: String,
    /// The change (negative for a debit).
    pub amount: Decimal,
    pub fee: Decimal,
    /// The asset's total balance after it.
    pub balance: Decimal,
    /// `trade`, `deposit`, ...
    pub kind: String,
    pub timestamp: Timestamp,
}

/// One frame of the authenticated socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateMessage {
    /// `executions`: reports in the order Kraken listed them.
    Executions {
        snapshot: bool,
        sequence: Option<u64>,
        reports: Vec<ExecutionReport>,
    },
    /// `balances` snapshot: asset -> total balance.
    BalancesSnapshot {
        sequence: Option<u64>,
        balances: BTreeMap<String, Decimal>,
    },
    /// `balances` update: the ledger transactions, each with the asset's new total.
    BalancesUpdate {
        sequence: Option<u64>,
        entries: Vec<LedgerEntry>,
    },
    /// Everything else (`status`, `heartbeat`, acks, pong), as the public parser reads it.
    Public(WsMessage),
}

fn malformed(what: &str, e: impl fmt::Display) -> PrivateError {
    PrivateError::Malformed(format!("WS {what}: {e}"))
}

/// Parses one text frame of the authenticated WebSocket.
pub fn parse_private_ws(text: &str) -> Result<PrivateMessage, PrivateError> {
    #[derive(Deserialize)]
    struct Frame<'a> {
        channel: Option<&'a str>,
        #[serde(rename = "type")]
        kind: Option<&'a str>,
        #[serde(borrow)]
        data: Option<&'a RawValue>,
        sequence: Option<u64>,
    }
    let frame: Frame = serde_json::from_str(text).map_err(|e| malformed("frame", e))?;
    let channel = match frame.channel {
        Some(channel @ ("executions" | "balances")) => channel,
        _ => {
            return parse_ws(text)
                .map(PrivateMessage::Public)
                .map_err(|e| malformed("frame", e));
        }
    };
    let snapshot = match frame.kind {
        Some("snapshot") => true,
        Some("update") => false,
        other => {
            return Err(malformed(
                channel,
                format!("type {other:?}, expected snapshot or update"),
            ));
        }
    };
    let data = frame.data.ok_or_else(|| malformed(channel, "no data"))?.get();
    let sequence = frame.sequence;
    match (channel, snapshot) {
        ("executions", _) => {
            let raw: Vec<RawReport> = serde_json::from_str(data).map_err(|e| malformed(channel, e))?;
            let reports = raw.into_iter().map(RawReport::into_report).collect::<Result<_, _>>()?;
            Ok(PrivateMessage::Executions {
                snapshot,
                sequence,
                reports,
            })
        }
        (_, true) => {
            #[derive(Deserialize)]
            struct Asset {
                asset: String,
                #[serde(deserialize_with = "dec")]
                balance: Decimal,
            }
            let assets: Vec<Asset> = serde_json::from_str(data).map_err(|e| malformed(channel, e))?;
            let mut balances = BTreeMap::new();
            for a in assets {
                if balances.insert(a.asset.clone(), a.balance).is_some() {
                    return Err(malformed(channel, format!("asset {} listed twice", a.asset)));
                }
            }
            Ok(PrivateMessage::BalancesSnapshot { sequence, balances })
        }
        (_, false) => {
            let raw: Vec<RawLedger> = serde_json::from_str(data).map_err(|e| malformed(channel, e))?;
            let entries = raw.into_iter().map(RawLedger::into_entry).collect::<Result<_, _>>()?;
            Ok(PrivateMessage::BalancesUpdate { sequence, entries })
        }
    }
}

#[derive(Deserialize)]
struct RawFee {
    asset: String,
    #[serde(deserialize_with = "dec")]
    qty: Decimal,
}

#[derive(Deserialize)]
struct RawReport {
    exec_type: String,
    order_id: String,
    #[serde(default)]
    cl_ord_id: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    order_userref: Option<i64>,
    #[serde(default)]
    order_status: Option<String>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    side: Option<Side>,
    #[serde(default)]
    order_type: Option<String>,
    #[serde(default, deserialize_with = "opt_dec")]
    order_qty: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    limit_price: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    cum_qty: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    cum_cost: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    avg_price: Option<Decimal>,
    #[serde(default)]
    exec_id: Option<String>,
    #[serde(default)]
    trade_id: Option<u64>,
    #[serde(default, deserialize_with = "opt_dec")]
    last_qty: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    last_price: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_dec")]
    cost: Option<Decimal>,
    #[serde(default)]
    fees: Vec<RawFee>,
    #[serde(default)]
    liquidity_ind: Option<String>,
    timestamp: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    cancel_reason: Option<String>,
}

impl RawReport {
    fn into_report(self) -> Result<ExecutionReport, PrivateError> {
        let what = "executions";
        let timestamp = rfc3339(&self.timestamp)
            .ok_or_else(|| malformed(what, format!("bad timestamp '{}' of {}", self.timestamp, self.order_id)))?;
        let exec_type = ExecType::parse(&self.exec_type);
        let trade = if exec_type == ExecType::Trade {
            // A fill without its id, quantity, price or value cannot be recorded: refuse it.
            let missing = |field: &str| malformed(what, format!("trade of {} without {field}", self.order_id));
            let liquidity = match self.liquidity_ind.as_deref() {
                None => None,
                Some("m") => Some(Liquidity::Maker),
                Some("t") => Some(Liquidity::Taker),
                Some(other) => return Err(malformed(what, format!("liquidity_ind '{other}'"))),
            };
            let last_qty = self.last_qty.ok_or_else(|| missing("last_qty"))?;
            let last_price = self.last_price.ok_or_else(|| missing("last_price"))?;
            if last_qty <= Decimal::ZERO || last_price <= Decimal::ZERO {
                return Err(malformed(
                    what,
                    format!("trade of {}: last_qty and last_price must be above zero", self.order_id),
                ));
            }
            Some(TradeFill {
                exec_id: self.exec_id.clone().ok_or_else(|| missing("exec_id"))?,
                trade_id: self.trade_id,
                last_qty,
                last_price,
                cost: self.cost.ok_or_else(|| missing("cost"))?,
                fees: self
                    .fees
                    .into_iter()
                    .map(|f| Fee {
                        asset: f.asset,
                        qty: f.qty,
                    })
                    .collect(),
                liquidity,
            })
        } else {
            None
        };
        Ok(ExecutionReport {
            exec_type,
            order_id: self.order_id,
            cl_ord_id: self.cl_ord_id,
            order_userref: self.order_userref,
            order_status: self.order_status.as_deref().map(ExecOrderStatus::parse),
            symbol: self.symbol,
            side: self.side,
            order_type: self.order_type,
            order_qty: self.order_qty,
            limit_price: self.limit_price,
            cum_qty: self.cum_qty,
            cum_cost: self.cum_cost,
            avg_price: self.avg_price,
            trade,
            timestamp,
            reason: self.reason.or(self.cancel_reason),
        })
    }
}

#[derive(Deserialize)]
struct RawLedger {
    ledger_id: String,
    #[serde(default)]
    ref_id: String,
    asset: String,
    #[serde(deserialize_with = "dec")]
    amount: Decimal,
    #[serde(default, deserialize_with = "dec")]
    fee: Decimal,
    #[serde(deserialize_with = "dec")]
    balance: Decimal,
    #[serde(rename = "type", default)]
    kind: String,
    timestamp: String,
}

impl RawLedger {
    fn into_entry(self) -> Result<LedgerEntry, PrivateError> {
        let timestamp = rfc3339(&self.timestamp)
            .ok_or_else(|| malformed("balances", format!("bad timestamp '{}'", self.timestamp)))?;
        Ok(LedgerEntry {
            ledger_id: self.ledger_id,
            ref_id: self.ref_id,
            asset: self.asset,
            amount: self.amount,
            fee: self.fee,
            balance: self.balance,
            kind: self.kind,
            timestamp,
        })
    }
}

/// An optional decimal (number or string); `null` is none.
fn opt_dec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let raw = <&RawValue>::deserialize(d)?;
    if raw.get() == "null" {
        return Ok(None);
    }
    dec(raw).map(Some).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::d;

    /// Kraken's documented examples (docs.kraken.com websocket-v2/executions): pending, live, fill.
    const PENDING: &str = r#"{"channel":"executions","type":"update","data":[{"order_id":"OK4GJX-KSTLS-7DZZO5",
        "order_userref":3,"symbol":"BTC/USD","order_qty":0.005,"cum_cost":0.0,"time_in_force":"GTC",
        "exec_type":"pending_new","side":"sell","order_type":"limit","limit_price_type":"static",
        "limit_price":26500.0,"stop_price":0.0,"order_status":"pending_new","fee_usd_equiv":0.0,
        "fee_ccy_pref":"fciq","timestamp":"2023-09-22T10:33:05.709950Z"}],"sequence":8}"#;
    const LIVE: &str = r#"{"channel":"executions","type":"update","data":[{"timestamp":"2023-09-22T10:33:05.709982Z",
        "order_status":"new","exec_type":"new","order_userref":3,"order_id":"OK4GJX-KSTLS-7DZZO5"}],"sequence":9}"#;
    const FILL: &str = r#"{"channel":"executions","type":"update","data":[{"order_id":"OK4GJX-KSTLS-7DZZO5",
        "order_userref":3,"exec_id":"TGBB7L-HT5LX-J3BZ4A","exec_type":"trade","trade_id":62887576,
        "symbol":"BTC/USD","side":"sell","last_qty":0.005,"last_price":26599.9,"liquidity_ind":"t",
        "cost":132.9995,"order_type":"limit","timestamp":"2023-09-22T10:33:05.709993Z",
        "order_status":"partially_filled","cum_qty":0.005,"cum_cost":132.9995,"avg_price":26599.9,
        "fee_usd_equiv":0.3458,"fees":[{"asset":"USD","qty":0.3458}]}],"sequence":10}"#;

    fn reports(text: &str) -> (bool, Option<u64>, Vec<ExecutionReport>) {
        match parse_private_ws(text).unwrap() {
            PrivateMessage::Executions {
                snapshot,
                sequence,
                reports,
            } => (snapshot, sequence, reports),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn krakens_execution_examples() {
        let (snapshot, sequence, pending) = reports(PENDING);
        assert_eq!((snapshot, sequence), (false, Some(8)));
        let p = &pending[0];
        assert_eq!(p.exec_type, ExecType::PendingNew);
        assert_eq!(p.order_status, Some(ExecOrderStatus::PendingNew));
        assert_eq!((p.side, p.order_type.as_deref()), (Some(Side::Sell), Some("limit")));
        assert_eq!((p.order_qty, p.limit_price), (Some(d("0.005")), Some(d("26500.0"))));
        assert_eq!(p.order_userref, Some(3));
        assert_eq!(p.trade, None);

        let (_, _, live) = reports(LIVE);
        assert_eq!(live[0].exec_type, ExecType::New);
        assert_eq!((live[0].symbol.as_ref(), live[0].side), (None, None));

        let (_, _, fill) = reports(FILL);
        let f = &fill[0];
        assert_eq!(f.exec_type, ExecType::Trade);
        assert_eq!(f.order_status, Some(ExecOrderStatus::PartiallyFilled));
        assert_eq!(f.timestamp, rfc3339("2023-09-22T10:33:05.709993Z").unwrap());
        let t = f.trade.as_ref().unwrap();
        assert_eq!(t.exec_id, "TGBB7L-HT5LX-J3BZ4A");
        assert_eq!(t.trade_id, Some(62_887_576));
        assert_eq!(
            (t.last_qty, t.last_price, t.cost),
            (d("0.005"), d("26599.9"), d("132.9995"))
        );
        // The JSON text's digits, not an f64's: 0.3458 stays 0.3458.
        assert_eq!(
            t.fees,
            [Fee {
                asset: "USD".into(),
                qty: d("0.3458")
            }]
        );
        assert_eq!(t.fee_in("USD").to_string(), "0.3458");
        assert_eq!(t.liquidity, Some(Liquidity::Taker));
        assert_eq!(f.cum_qty, Some(d("0.005")));
    }

    #[test]
    fn amounts_keep_every_written_digit() {
        let text = FILL
            .replace("132.9995", "132.99950000000000001")
            .replace("0.3458", "3.458e-1");
        let (_, _, fill) = reports(&text);
        let t = fill[0].trade.as_ref().unwrap();
        assert_eq!(t.cost.to_string(), "132.99950000000000001");
        assert_eq!(t.fees[0].qty, d("0.3458"));
    }

    #[test]
    fn a_trade_without_what_a_broker_records_is_malformed() {
        for field in [
            "\"exec_id\":\"TGBB7L-HT5LX-J3BZ4A\",",
            "\"last_qty\":0.005,",
            "\"cost\":132.9995,",
        ] {
            let text = FILL.replace(field, "");
            assert!(
                matches!(parse_private_ws(&text), Err(PrivateError::Malformed(_))),
                "{field}"
            );
        }
        for bad in [
            FILL.replace("\"t\"", "\"x\""),
            FILL.replace("26599.9", "\"abc\""),
            FILL.replace("26599.9", "-1"),
            FILL.replace("2023-09-22T10:33:05.709993Z", "yesterday"),
            FILL.replace("\"update\"", "\"delta\""),
            r#"{"channel":"executions","type":"update"}"#.into(),
            "not json".into(),
        ] {
            assert!(
                matches!(parse_private_ws(&bad), Err(PrivateError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn balances_snapshot_and_update() {
        let snapshot = r#"{"channel":"balances","type":"snapshot","data":[
            {"asset":"BTC","asset_class":"currency","balance":1.2,"wallets":[{"type":"spot","id":"main","balance":1.2}]},
            {"asset":"USD","asset_class":"currency","balance":10000.1234,"wallets":[]}],"sequence":1}"#;
        let PrivateMessage::BalancesSnapshot { sequence, balances } = parse_private_ws(snapshot).unwrap() else {
            panic!()
        };
        assert_eq!(sequence, Some(1));
        assert_eq!(balances["USD"].to_string(), "10000.1234");
        assert_eq!(balances["BTC"], d("1.2"));

        let update = r#"{"channel":"balances","type":"update","data":[
            {"ledger_id":"DATKX6-PEHL1-HZKND8","ref_id":"LKAKN2-N3DP2-5H5TWP","timestamp":"2023-09-22T10:33:05.709993Z",
             "type":"trade","asset":"USD","asset_class":"currency","category":"trade","wallet_type":"spot",
             "wallet_id":"main","amount":132.9995,"fee":0.3458,"balance":10132.7771}],"sequence":2}"#;
        let PrivateMessage::BalancesUpdate { entries, .. } = parse_private_ws(update).unwrap() else {
            panic!()
        };
        let e = &entries[0];
        assert_eq!(
            (e.amount, e.fee, e.balance),
            (d("132.9995"), d("0.3458"), d("10132.7771"))
        );
        assert_eq!((e.asset.as_str(), e.kind.as_str()), ("USD", "trade"));
    }

    #[test]
    fn other_frames_are_the_public_parsers() {
        let heartbeat = parse_private_ws(r#"{"channel":"heartbeat"}"#).unwrap();
        assert_eq!(heartbeat, PrivateMessage::Public(WsMessage::Heartbeat));
        let refused = r#"{"method":"subscribe","req_id":1,"success":false,"error":"EAPI:Invalid token",
            "time_in":"2023-10-16T13:18:35.303171Z","time_out":"2023-10-16T13:18:35.318297Z"}"#;
        let PrivateMessage::Public(WsMessage::SubscribeResult {
            success, error, req_id, ..
        }) = parse_private_ws(refused).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (success, error.as_deref(), req_id),
            (false, Some("EAPI:Invalid token"), Some(1))
        );
    }
}
