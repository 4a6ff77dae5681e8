//! The private REST API over loopback: authentication, counters, orders, fills, balances and
//! the private faults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::private::auth;
use crate::{Limits, LostReply, OrderStatus, PrivateConfig};

/// Kraken's published known answer for `API-Sign`.
const AUTH_VECTOR: &str = include_str!("../../../../tests/fixtures/kraken/vectors/auth_vector.json");
pub(super) const KEY: &str = "mock-api-key";
/// The published example secret (64 bytes, base64).
pub(super) const SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
/// Price of the data's first trade: the market price while the clock is frozen.
pub(super) const FIRST_PRICE: &str = "10749.4";
/// How long a condition may take to come true on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

pub(super) fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

pub(super) fn account() -> PrivateConfig {
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = dec("10000");
    account.btc = dec("0.5");
    account
}

pub(super) async fn start_private(speed: f64, account: PrivateConfig, faults: Faults) -> MockKraken {
    let mut config = MockConfig::new(DATA);
    config.speed = speed;
    config.faults = faults;
    config.private = Some(account);
    MockKraken::start(config).await.expect("mock starts")
}

/// A client that signs like Kraken's docs say, with increasing millisecond-ish nonces.
pub(super) struct Trader {
    http: reqwest::Client,
    base: String,
    nonce: AtomicU64,
}

impl Trader {
    pub(super) fn new(mock: &MockKraken) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::new(),
            base: mock.rest_url(),
            nonce: AtomicU64::new(1_616_492_376_594),
        }
    }

    pub(super) fn next_nonce(&self) -> u64 {
        self.nonce.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The body (nonce first) and its signature.
    fn signed(&self, method: &str, params: &[(&str, &str)], nonce: u64) -> (String, String) {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("nonce", &nonce.to_string());
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let path = format!("/0/private/{method}");
        let sign = auth::api_sign(SECRET, &path, &nonce.to_string(), body.as_bytes());
        (body, sign)
    }

    /// POSTs with explicit key, signature and body: HTTP status and text, or the transport error.
    async fn raw(
        &self,
        method: &str,
        key: &str,
        sign: &str,
        body: String,
        timeout: Option<Duration>,
    ) -> Result<(u16, String), reqwest::Error> {
        let mut request = self
            .http
            .post(format!("{}/0/private/{method}", self.base))
            .header("API-Key", key)
            .header("API-Sign", sign)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// A correctly signed call: the parsed JSON body (HTTP 200 expected).
    pub(super) async fn call(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let (status, text) = self.try_call(method, params, None).await.expect("request");
        assert_eq!(status, 200, "{method}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: {e}: {text}"))
    }

    async fn try_call(
        &self,
        method: &str,
        params: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<(u16, String), reqwest::Error> {
        let (body, sign) = self.signed(method, params, self.next_nonce());
        self.raw(method, KEY, &sign, body, timeout).await
    }

    /// A call expected to succeed: its `result`.
    pub(super) async fn ok(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let body = self.call(method, params).await;
        assert_eq!(body["error"], json!([]), "{method}: {body}");
        body["result"].clone()
    }

    /// A call expected to fail with exactly `error`.
    async fn fails(&self, method: &str, params: &[(&str, &str)], error: &str) {
        let body = self.call(method, params).await;
        assert_eq!(body, json!({ "error": [error] }), "{method} {params:?}");
    }
}

/// Polls `check` until it holds; fails after a generous deadline.
pub(super) async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let begin = Instant::now();
    while !check().await {
        assert!(begin.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fee(cost: Decimal, rate: &str) -> Decimal {
    (cost * dec(rate)).round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
}

fn single_txid(result: &Value) -> String {
    let txids = result["txid"].as_array().expect("txid array");
    assert_eq!(txids.len(), 1, "{result}");
    txids[0].as_str().unwrap().to_owned()
}

/// `OU22CG-KLAF2-FWUDD7`-shaped, with the given first letter.
fn assert_kraken_id(id: &str, prefix: char) {
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [6, 5, 6], "{id}");
    assert!(id.starts_with(prefix), "{id}");
    assert!(
        id.chars()
            .all(|c| c == '-' || c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{id}"
    );
}

#[test]
fn api_sign_matches_krakens_known_answer() {
    let vector: Value = serde_json::from_str(AUTH_VECTOR).unwrap();
    let field = |name: &str| vector[name].as_str().unwrap();
    let sign = auth::api_sign(
        field("secret"),
        field("uri_path"),
        field("nonce"),
        field("post_data").as_bytes(),
    );
    assert_eq!(sign, field("expected_api_sign"));
    assert!(auth::verify(
        field("secret"),
        field("uri_path"),
        field("nonce"),
        field("post_data").as_bytes(),
        &sign
    ));
    assert!(!auth::verify(
        field("secret"),
        "/0/private/Balance",
        field("nonce"),
        field("post_data").as_bytes(),
        &sign
    ));
}

#[tokio::test]
async fn requests_need_the_key_a_valid_signature_and_a_growing_nonce() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let (body, sign) = trader.signed("Balance", &[], trader.next_nonce());
    let (_, text) = trader
        .raw("Balance", "other-key", &sign, body.clone(), None)
        .await
        .unwrap();
    assert_eq!(text, r#"{"error":["EAPI:Invalid key"]}"#);
    let (_, text) = trader.raw("Balance", KEY, "AAAA", body.clone(), None).await.unwrap();
    assert_eq!(text, r#"{"error":["EAPI:Invalid signature"]}"#);
    // The signature covers the body: another body with the same signature fails.
    let tampered = body.replace("nonce=", "nonce=9");
    let (_, text) = trader.raw("Balance", KEY, &sign, tampered, None).await.unwrap();
    assert_eq!(text, r#"{"error":["EAPI:Invalid signature"]}"#);
    let (_, text) = trader.raw("Balance", KEY, &sign, body.clone(), None).await.unwrap();
    assert!(text.starts_with(r#"{"error":[],"result":"#), "{text}");
    // The same nonce again, and a smaller one, are refused.
    let (_, text) = trader.raw("Balance", KEY, &sign, body, None).await.unwrap();
    assert_eq!(text, r#"{"error":["EAPI:Invalid nonce"]}"#);
    let (old, old_sign) = trader.signed("Balance", &[], 5);
    let (_, text) = trader.raw("Balance", KEY, &old_sign, old, None).await.unwrap();
    assert_eq!(text, r#"{"error":["EAPI:Invalid nonce"]}"#);
    let balance = trader.ok("Balance", &[]).await;
    assert_eq!(balance, json!({ "ZUSD": "10000.0000", "XXBT": "0.5000000000" }));
    trader.fails("NoSuchMethod", &[], "EGeneral:Unknown method").await;
    let counts = mock.private_calls();
    assert_eq!(counts.get("Balance"), Some(&7));
    assert_eq!(mock.counters().private_requests(), 8);
}

#[tokio::test]
async fn a_mock_without_an_account_refuses_every_private_call() {
    let mock = start(FROZEN, Faults::default()).await;
    let trader = Trader::new(&mock);
    trader.fails("Balance", &[], "EAPI:Invalid key").await;
    assert!(mock.placed_orders().is_empty() && mock.balances().is_empty());
    assert_eq!(mock.private_calls(), BTreeMap::from([("Balance".to_owned(), 1)]));
}

#[tokio::test]
async fn the_api_counter_trips_and_decays() {
    let mut config = account();
    config.limits = Limits {
        api_max: 4.0,
        api_decay: 2.0,
        ..Limits::tier(crate::Tier::Starter)
    };
    let mock = start_private(FROZEN, config, Faults::default()).await;
    let trader = Trader::new(&mock);
    // Balance and OpenOrders cost 1, TradesHistory 2; orders use the trading counter instead.
    trader.ok("Balance", &[]).await;
    trader.ok("OpenOrders", &[]).await;
    let mut tripped = false;
    for _ in 0..20 {
        let body = trader.call("TradesHistory", &[]).await;
        if body == json!({ "error": ["EAPI:Rate limit exceeded"] }) {
            tripped = true;
            break;
        }
    }
    assert!(tripped, "the counter never tripped");
    let before = Instant::now();
    eventually("the counter to decay", || async {
        trader.call("Balance", &[]).await["error"] == json!([])
    })
    .await;
    assert!(before.elapsed() < DEADLINE);
}

#[tokio::test]
async fn validate_checks_the_order_and_places_nothing() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let params = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "limit"),
        ("price", "10000.0"),
        ("volume", "0.0001"),
        ("validate", "true"),
    ];
    let result = trader.ok("AddOrder", &params).await;
    assert_eq!(
        result,
        json!({ "descr": { "order": "buy 0.00010000 XBTUSD @ limit 10000.0" } })
    );
    assert!(mock.placed_orders().is_empty());
    assert!(mock.executions().is_empty());
    assert_eq!(mock.balances()["ZUSD"], dec("10000"));
    // Validation still checks: too small is refused.
    let mut small = params;
    small[4] = ("volume", "0.00001");
    trader.fails("AddOrder", &small, "EOrder:Order minimum not met").await;
}

#[tokio::test]
async fn orders_are_checked_against_the_pair_rules_and_the_funds() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let order = |pair: &'static str,
                 side: &'static str,
                 kind: &'static str,
                 volume: &'static str,
                 price: &'static str|
     -> Vec<(&str, &str)> {
        let mut params = vec![("pair", pair), ("type", side), ("ordertype", kind), ("volume", volume)];
        if !price.is_empty() {
            params.push(("price", price));
        }
        params
    };
    for (params, error) in [
        (
            order("ETHUSD", "buy", "market", "0.01", ""),
            "EQuery:Unknown asset pair",
        ),
        (
            order("XBTUSD", "hold", "market", "0.01", ""),
            "EGeneral:Invalid arguments:type",
        ),
        (
            order("XBTUSD", "buy", "iceberg", "0.01", "9000"),
            "EGeneral:Invalid arguments:ordertype",
        ),
        (
            order("XBTUSD", "sell", "stop-loss", "0.01", "9000.05"),
            "EOrder:Tick size check failed",
        ),
        (
            order("XBTUSD", "buy", "market", "abc", ""),
            "EGeneral:Invalid arguments:volume",
        ),
        (
            order("XBTUSD", "buy", "market", "0.000000001", ""),
            "EGeneral:Invalid arguments:volume",
        ),
        (
            order("XBTUSD", "buy", "limit", "0.01", ""),
            "EGeneral:Invalid arguments:price",
        ),
        (
            order("XBTUSD", "buy", "market", "0.00009", ""),
            "EOrder:Order minimum not met",
        ),
        (
            order("XBTUSD", "buy", "limit", "0.0001", "100.0"),
            "EOrder:Cost minimum not met",
        ),
        (
            order("XBTUSD", "buy", "limit", "0.01", "10000.05"),
            "EOrder:Tick size check failed",
        ),
        (order("XBTUSD", "buy", "market", "1", ""), "EOrder:Insufficient funds"),
        (
            order("XBTUSD", "sell", "market", "0.6", ""),
            "EOrder:Insufficient funds",
        ),
    ] {
        trader.fails("AddOrder", &params, error).await;
    }
    // 0.93 BTC at 10749.4 costs 9996.942 plus a 25.9920 fee: more than the 10,000 USD.
    trader
        .fails(
            "AddOrder",
            &order("XBTUSD", "buy", "market", "0.93", ""),
            "EOrder:Insufficient funds",
        )
        .await;
    // Resting orders hold their funds: a sell of all the BTC, then any other sell is refused.
    trader
        .ok("AddOrder", &order("XBTUSD", "sell", "limit", "0.5", "11000.0"))
        .await;
    trader
        .fails(
            "AddOrder",
            &order("XBTUSD", "sell", "market", "0.001", ""),
            "EOrder:Insufficient funds",
        )
        .await;
    let balance_ex = trader.ok("BalanceEx", &[]).await;
    assert_eq!(
        balance_ex["XXBT"],
        json!({ "balance": "0.5000000000", "hold_trade": "0.5000000000" })
    );
    assert_eq!(mock.placed_orders().len(), 1);
}

#[tokio::test]
async fn a_market_order_fills_in_parts_at_the_market_price_and_moves_the_balances_exactly() {
    let mut config = account();
    config.fill_parts = 3;
    let mock = start_private(FROZEN, config, Faults::default()).await;
    let trader = Trader::new(&mock);
    let params = [
        ("pair", "XXBTZUSD"),
        ("type", "buy"),
        ("ordertype", "market"),
        ("volume", "0.01"),
        ("cl_ord_id", "buy-1"),
    ];
    let result = trader.ok("AddOrder", &params).await;
    let txid = single_txid(&result);
    assert_kraken_id(&txid, 'O');
    assert_eq!(result["descr"], json!({ "order": "buy 0.01000000 XBTUSD @ market" }));

    let fills = mock.executions();
    assert_eq!(fills.len(), 3);
    let price = dec(FIRST_PRICE);
    let mut cost_and_fees = Decimal::ZERO;
    for fill in &fills {
        assert_eq!(
            (fill.order_id.as_str(), fill.cl_ord_id.as_deref()),
            (txid.as_str(), Some("buy-1"))
        );
        assert_kraken_id(&fill.trade_id, 'T');
        assert_eq!(fill.price, price);
        assert_eq!(fill.cost, fill.qty * price);
        assert_eq!(fill.fee, fee(fill.cost, "0.0026"));
        assert!(!fill.maker);
        cost_and_fees += fill.cost + fill.fee;
    }
    assert_eq!(fills.iter().map(|f| f.qty).sum::<Decimal>(), dec("0.01"));
    let mut ids: Vec<&str> = fills.iter().map(|f| f.trade_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let balances = mock.balances();
    assert_eq!(balances["ZUSD"], dec("10000") - cost_and_fees);
    assert_eq!(balances["XXBT"], dec("0.51"));

    let order = &trader.ok("QueryOrders", &[("txid", &txid), ("trades", "true")]).await[&txid];
    assert_eq!(order["status"], "closed");
    assert_eq!(order["cl_ord_id"], "buy-1");
    assert_eq!(order["vol"], "0.01000000");
    assert_eq!(order["vol_exec"], "0.01000000");
    assert_eq!(order["price"], "10749.4");
    assert_eq!(order["descr"]["ordertype"], "market");
    assert_eq!(order["trades"].as_array().unwrap().len(), 3);
    let total_cost: Decimal = fills.iter().map(|f| f.cost).sum();
    assert_eq!(super::dec(&order["cost"]), total_cost);

    let history = trader.ok("TradesHistory", &[]).await;
    assert_eq!(history["count"], 3);
    let trades = history["trades"].as_object().unwrap();
    for fill in &fills {
        let trade = &trades[&fill.trade_id];
        assert_eq!(trade["ordertxid"], txid.as_str());
        assert_eq!(trade["pair"], "XXBTZUSD");
        assert_eq!((&trade["type"], &trade["ordertype"]), (&json!("buy"), &json!("market")));
        assert_eq!(trade["price"], "10749.40000");
        assert_eq!(super::dec(&trade["vol"]), fill.qty);
        assert_eq!(super::dec(&trade["cost"]), fill.cost);
        assert_eq!(super::dec(&trade["fee"]), fill.fee);
        assert_eq!(trade["maker"], false);
        assert!(trade["trade_id"].is_u64() && trade["time"].is_f64());
        assert_kraken_id(trade["postxid"].as_str().unwrap(), 'T');
    }
    let balance = trader.ok("Balance", &[]).await;
    assert_eq!(super::dec(&balance["ZUSD"]), balances["ZUSD"]);
    assert_eq!(super::dec(&balance["XXBT"]), dec("0.51"));
    let placed = mock.placed_orders();
    assert_eq!(placed.len(), 1);
    assert_eq!(
        (placed[0].status, placed[0].vol_exec),
        (OrderStatus::Closed, dec("0.01"))
    );
}

#[tokio::test]
async fn a_post_only_limit_that_would_take_is_canceled() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let params = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "limit"),
        ("price", "10800.0"),
        ("volume", "0.01"),
        ("oflags", "post"),
    ];
    let txid = single_txid(&trader.ok("AddOrder", &params).await);
    let order = &trader.ok("QueryOrders", &[("txid", &txid)]).await[&txid];
    assert_eq!(
        (&order["status"], &order["reason"]),
        (&json!("canceled"), &json!("Post only order"))
    );
    assert_eq!(order["oflags"], "post,fciq");
    assert!(mock.executions().is_empty());
    assert_eq!(mock.balances()["ZUSD"], dec("10000"));
    // Without `post` the same order takes at once, at the market price.
    let taker = single_txid(&trader.ok("AddOrder", &params[..5]).await);
    let fills = mock.executions();
    assert_eq!((fills.len(), fills[0].order_id.as_str()), (1, taker.as_str()));
    assert_eq!(fills[0].price, dec(FIRST_PRICE));
}

#[tokio::test]
async fn a_resting_limit_fills_as_maker_when_the_tape_reaches_it() {
    let mut config = account();
    config.fill_parts = 2;
    // One market minute per wall second: the hour of data takes an hour, the test minutes.
    let mock = start_private(60.0, config, Faults::default()).await;
    let trader = Trader::new(&mock);
    let data = data_trades();
    let now = mock.market_time();
    let near_until = now.add_secs(300);
    let last_now = data.iter().rfind(|t| t.ts <= now).unwrap().price;
    let near_low = data
        .iter()
        .filter(|t| t.ts > now && t.ts <= near_until)
        .map(|t| t.price)
        .fold(last_now, Decimal::min);
    let later_low = data
        .iter()
        .filter(|t| t.ts > near_until && t.ts <= now.add_secs(1200))
        .map(|t| t.price)
        .min()
        .unwrap();
    assert!(later_low < near_low, "the data falls later: {later_low} < {near_low}");
    // A buy the next five market minutes do not reach, but the following ones do.
    let price = (later_low * Decimal::TEN).ceil() / Decimal::TEN;
    assert!(price < near_low);
    let price_text = price.to_string();
    let params = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "limit"),
        ("price", price_text.as_str()),
        ("volume", "0.02"),
        ("oflags", "post"),
        ("userref", "42"),
    ];
    let txid = single_txid(&trader.ok("AddOrder", &params).await);
    let open = trader.ok("OpenOrders", &[("userref", "42")]).await;
    assert_eq!(open["open"][&txid]["status"], "open", "{open}");
    eventually("the limit to fill", || async { mock.executions().len() == 2 }).await;
    let fills = mock.executions();
    let hold = fills.iter().map(|f| f.cost + f.fee).sum::<Decimal>();
    for fill in &fills {
        assert!(fill.maker);
        assert_eq!(fill.price, price);
        assert_eq!(fill.fee, fee(fill.cost, "0.0016"));
    }
    assert_eq!(fills.iter().map(|f| f.qty).sum::<Decimal>(), dec("0.02"));
    assert_eq!(mock.balances()["ZUSD"], dec("10000") - hold);
    let closed = trader.ok("ClosedOrders", &[]).await;
    assert_eq!(closed["count"], 1);
    assert_eq!(closed["closed"][&txid]["status"], "closed");
    assert_eq!(closed["closed"][&txid]["userref"], 42);
    assert!(
        trader.ok("OpenOrders", &[]).await["open"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn a_stop_loss_rests_until_a_trade_reaches_its_trigger_then_fills_at_market() {
    let mut config = account();
    config.fill_parts = 1;
    let mock = start_private(60.0, config, Faults::default()).await;
    let trader = Trader::new(&mock);
    let data = data_trades();
    let now = mock.market_time();
    let near_until = now.add_secs(300);
    let last_now = data.iter().rfind(|t| t.ts <= now).unwrap().price;
    let near_low = data
        .iter()
        .filter(|t| t.ts > now && t.ts <= near_until)
        .map(|t| t.price)
        .fold(last_now, Decimal::min);
    let later_low = data
        .iter()
        .filter(|t| t.ts > near_until && t.ts <= now.add_secs(1200))
        .map(|t| t.price)
        .min()
        .unwrap();
    // A stop the next five market minutes do not reach, but the following ones do.
    let trigger = (later_low * Decimal::TEN).ceil() / Decimal::TEN;
    assert!(trigger < near_low);
    let trigger_text = trigger.to_string();
    let stop = [
        ("pair", "XBTUSD"),
        ("type", "sell"),
        ("ordertype", "stop-loss"),
        ("price", trigger_text.as_str()),
        ("volume", "0.2"),
        ("cl_ord_id", "stop-1"),
    ];
    let stop_txid = single_txid(&trader.ok("AddOrder", &stop).await);
    // Far above the market: it rests all along. Each open sell holds its volume, as Kraken's do.
    let target = (last_now * Decimal::TWO).round_dp(1).to_string();
    let take = |volume| {
        [
            ("pair", "XBTUSD"),
            ("type", "sell"),
            ("ordertype", "take-profit"),
            ("price", target.as_str()),
            ("volume", volume),
        ]
    };
    let take_txid = single_txid(&trader.ok("AddOrder", &take("0.3")).await);
    trader
        .fails("AddOrder", &take("0.01"), "EOrder:Insufficient funds")
        .await;
    let trail = [
        ("pair", "XBTUSD"),
        ("type", "sell"),
        ("ordertype", "trailing-stop"),
        ("price", "1.5%"),
        ("volume", "0.01"),
    ];
    trader
        .fails("AddOrder", &trail, "EGeneral:Invalid arguments:price")
        .await;

    let open = trader.ok("OpenOrders", &[("cl_ord_id", "stop-1")]).await;
    let order = &open["open"][&stop_txid];
    assert_eq!(order["descr"]["ordertype"], "stop-loss", "{open}");
    // Prices as Kraken writes them: at the pair's decimals.
    let shown = format!("{trigger:.1}");
    assert_eq!(order["descr"]["price"], shown.as_str());
    assert_eq!(
        order["descr"]["order"],
        format!("sell 0.20000000 XBTUSD @ stop loss {shown}").as_str()
    );
    assert_eq!(
        (order["stopprice"].as_str(), order["trigger"].as_str()),
        (Some("0.00000"), Some("last"))
    );
    assert!(mock.executions().is_empty(), "nothing triggered yet");

    eventually("the stop to trigger", || async { mock.executions().len() == 1 }).await;
    let fill = &mock.executions()[0];
    assert_eq!(fill.order_id, stop_txid);
    assert!(!fill.maker, "a triggered stop executes at market");
    assert!(fill.price <= trigger, "{} reached {trigger}", fill.price);
    assert_eq!((fill.qty, fill.fee), (dec("0.2"), fee(fill.cost, "0.0026")));
    let closed = trader.ok("QueryOrders", &[("txid", stop_txid.as_str())]).await;
    let order = &closed[&stop_txid];
    assert_eq!(
        (order["status"].as_str(), order["vol_exec"].as_str()),
        (Some("closed"), Some("0.20000000"))
    );
    assert_eq!(order["stopprice"], format!("{:.1}", fill.price).as_str(), "{order}");
    let trades = trader.ok("TradesHistory", &[]).await;
    let trade = &trades["trades"][&fill.trade_id];
    assert_eq!(
        (trade["ordertype"].as_str(), trade["ordertxid"].as_str()),
        (Some("stop-loss"), Some(stop_txid.as_str()))
    );
    // The take-profit still rests, untouched.
    let open = trader.ok("OpenOrders", &[]).await;
    assert_eq!(open["open"][&take_txid]["descr"]["ordertype"], "take-profit");
    assert_eq!(mock.balances()["XXBT"], dec("0.3"));
    mock.shutdown().await;
}

#[tokio::test]
async fn a_trailing_stop_follows_the_best_price_and_a_reached_trigger_fills_at_once() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let trail = [
        ("pair", "XBTUSD"),
        ("type", "sell"),
        ("ordertype", "trailing-stop"),
        ("price", "+1.5%"),
        ("volume", "0.1"),
    ];
    let txid = single_txid(&trader.ok("AddOrder", &trail).await);
    let open = trader.ok("OpenOrders", &[]).await;
    let order = &open["open"][&txid];
    assert_eq!(order["descr"]["ordertype"], "trailing-stop", "{open}");
    assert_eq!(order["descr"]["price"], "+1.5%");
    assert_eq!(order["descr"]["order"], "sell 0.10000000 XBTUSD @ trailing stop +1.5%");
    let placed = mock.placed_orders();
    let trigger = placed[0].trigger.expect("a trigger");
    assert_eq!(
        trigger.trail,
        Some((crate::Offset::Percent(dec("1.5")), dec(FIRST_PRICE)))
    );
    assert_eq!(trigger.price, dec(FIRST_PRICE) * dec("0.985"));
    // A take-profit (a sell) already under the market executes at once, at the market price.
    let take = [
        ("pair", "XBTUSD"),
        ("type", "sell"),
        ("ordertype", "take-profit"),
        ("price", "10000"),
        ("volume", "0.1"),
    ];
    let taken = single_txid(&trader.ok("AddOrder", &take).await);
    let fills = mock.executions();
    assert_eq!((fills.len(), fills[0].order_id.as_str()), (1, taken.as_str()));
    assert_eq!(fills[0].price, dec(FIRST_PRICE));
    mock.shutdown().await;
}

fn limit(price: &str, cl_ord_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("pair", "XBTUSD".into()),
        ("type", "buy".into()),
        ("ordertype", "limit".into()),
        ("price", price.into()),
        ("volume", "0.01".into()),
        ("oflags", "post".into()),
        ("cl_ord_id", cl_ord_id.into()),
    ]
}

fn borrowed<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn orders_are_canceled_by_txid_client_id_or_all_at_once() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let mut txids = Vec::new();
    for (price, id) in [("10000.0", "a"), ("10001.0", "b"), ("10002.0", "c"), ("10003.0", "d")] {
        txids.push(single_txid(&trader.ok("AddOrder", &borrowed(&limit(price, id))).await));
    }
    let open = trader.ok("OpenOrders", &[("cl_ord_id", "b")]).await;
    assert_eq!(
        open["open"].as_object().unwrap().keys().collect::<Vec<_>>(),
        [&txids[1]]
    );
    assert_eq!(
        trader.ok("CancelOrder", &[("txid", &txids[0])]).await,
        json!({ "count": 1 })
    );
    assert_eq!(
        trader.ok("CancelOrder", &[("cl_ord_id", "b")]).await,
        json!({ "count": 1 })
    );
    trader
        .fails("CancelOrder", &[("txid", &txids[0])], "EOrder:Unknown order")
        .await;
    trader
        .fails("CancelOrder", &[("cl_ord_id", "zz")], "EOrder:Unknown order")
        .await;
    assert_eq!(trader.ok("CancelAll", &[]).await, json!({ "count": 2 }));
    let closed = trader.ok("ClosedOrders", &[]).await;
    assert_eq!(closed["count"], 4);
    for txid in &txids {
        assert_eq!(closed["closed"][txid]["status"], "canceled");
        assert_eq!(closed["closed"][txid]["reason"], "User requested");
    }
    let one = trader.ok("ClosedOrders", &[("cl_ord_id", "c")]).await;
    assert_eq!(one["count"], 1);
    let placed = mock.placed_orders();
    let ids: Vec<_> = placed.iter().map(|o| o.cl_ord_id.as_deref().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert!(placed.iter().all(|o| o.status == OrderStatus::Canceled));
}

#[tokio::test]
async fn cancels_of_young_orders_trip_the_trading_counter() {
    let mut config = account();
    config.limits = Limits {
        trading_max: 12.0,
        trading_decay: 0.01,
        ..Limits::tier(crate::Tier::Starter)
    };
    let mock = start_private(FROZEN, config, Faults::default()).await;
    let trader = Trader::new(&mock);
    // +1 (add) +8 (cancel under 5 s) +1 (add): 10; another young cancel would make 18.
    let first = single_txid(&trader.ok("AddOrder", &borrowed(&limit("10000.0", "x"))).await);
    trader.ok("CancelOrder", &[("txid", &first)]).await;
    let second = single_txid(&trader.ok("AddOrder", &borrowed(&limit("10000.0", "y"))).await);
    trader
        .fails("CancelOrder", &[("txid", &second)], "EOrder:Rate limit exceeded")
        .await;
    trader.ok("AddOrder", &borrowed(&limit("10000.0", "z"))).await;
    trader.ok("AddOrder", &borrowed(&limit("10000.0", "w"))).await;
    trader
        .fails(
            "AddOrder",
            &borrowed(&limit("10000.0", "v")),
            "EOrder:Rate limit exceeded",
        )
        .await;
    assert_eq!(mock.placed_orders().len(), 4);
}

#[tokio::test]
async fn the_dead_mans_switch_cancels_everything_when_it_expires() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    trader.ok("AddOrder", &borrowed(&limit("10000.0", "a"))).await;
    let disarmed = trader.ok("CancelAllOrdersAfter", &[("timeout", "0")]).await;
    assert_eq!(disarmed["triggerTime"], "0");
    assert_eq!(disarmed["currentTime"], "2019-07-01T00:00:03Z");
    let armed = trader.ok("CancelAllOrdersAfter", &[("timeout", "60")]).await;
    assert_eq!(armed["triggerTime"], "2019-07-01T00:01:03Z");
    // Re-arming moves the deadline: now one second.
    trader.ok("CancelAllOrdersAfter", &[("timeout", "1")]).await;
    eventually("the switch to cancel", || async {
        mock.placed_orders().iter().all(|o| o.status == OrderStatus::Canceled)
    })
    .await;
    let closed = trader.ok("ClosedOrders", &[]).await;
    assert_eq!(closed["count"], 1);
    trader
        .fails("CancelAllOrdersAfter", &[], "EGeneral:Invalid arguments:timeout")
        .await;
}

#[tokio::test]
async fn service_unavailable_and_invalid_nonce_faults_do_nothing() {
    let faults = Faults {
        service_unavailable: 1,
        invalid_nonce: 2,
        ..Faults::default()
    };
    let mock = start_private(FROZEN, account(), faults).await;
    let trader = Trader::new(&mock);
    let market = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "market"),
        ("volume", "0.001"),
    ];
    trader.fails("AddOrder", &market, "EService:Unavailable").await;
    trader.fails("AddOrder", &market, "EAPI:Invalid nonce").await;
    trader.fails("Balance", &[], "EAPI:Invalid nonce").await;
    assert!(mock.placed_orders().is_empty());
    trader.ok("AddOrder", &market).await;
    assert_eq!(mock.placed_orders().len(), 1);
    let faults = mock.counters().faults;
    assert_eq!((faults.service_unavailable, faults.invalid_nonce), (1, 2));
}

#[tokio::test]
async fn addorder_http_500_places_the_order_anyway() {
    let faults = Faults {
        addorder_http_500: 1,
        ..Faults::default()
    };
    let mock = start_private(FROZEN, account(), faults).await;
    let trader = Trader::new(&mock);
    let order = limit("10000.0", "five-hundred");
    let params = borrowed(&order);
    let (status, text) = trader.try_call("AddOrder", &params, None).await.unwrap();
    assert_eq!(status, 500, "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let open = trader.ok("OpenOrders", &[("cl_ord_id", "five-hundred")]).await;
    assert_eq!(open["open"].as_object().unwrap().len(), 1);
    assert_eq!(mock.counters().faults.addorder_http_500, 1);
}

#[tokio::test]
async fn a_lost_reply_closes_the_connection_but_the_order_is_placed() {
    let faults = Faults {
        lose_addorder_reply: 1,
        ..Faults::default()
    };
    let mock = start_private(FROZEN, account(), faults).await;
    let trader = Trader::new(&mock);
    let market = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "market"),
        ("volume", "0.001"),
        ("cl_ord_id", "lost"),
    ];
    let outcome = trader.try_call("AddOrder", &market, None).await;
    assert!(outcome.is_err(), "no response expected: {outcome:?}");
    assert_eq!(mock.executions().len(), 1);
    assert_eq!(mock.counters().faults.lost_addorder_replies, 1);
    // The next one is answered, and the first can be found by its client id.
    let closed = trader.ok("ClosedOrders", &[("cl_ord_id", "lost")]).await;
    assert_eq!(closed["count"], 1);
    trader.ok("AddOrder", &market).await;
    assert_eq!(mock.placed_orders().len(), 2);
}

#[tokio::test]
async fn a_held_reply_never_comes() {
    let faults = Faults {
        lose_addorder_reply: 1,
        lost_reply: LostReply::Hold,
        ..Faults::default()
    };
    let mock = start_private(FROZEN, account(), faults).await;
    let trader = Trader::new(&mock);
    let order = limit("10000.0", "held");
    let params = borrowed(&order);
    let outcome = trader.try_call("AddOrder", &params, Some(Duration::from_secs(1))).await;
    assert!(outcome.as_ref().is_err_and(reqwest::Error::is_timeout), "{outcome:?}");
    assert_eq!(mock.placed_orders()[0].cl_ord_id.as_deref(), Some("held"));
    // Shutting down ends the held request too.
    tokio::time::timeout(Duration::from_secs(10), mock.shutdown())
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn get_websockets_token_hands_out_a_token() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let result = trader.ok("GetWebSocketsToken", &[]).await;
    assert_eq!(result["expires"], 900);
    assert_eq!(result["token"].as_str().unwrap().len(), 43);
}
