//! The private REST client and the authenticated WebSocket feed against the mock exchange, over
//! real loopback sockets. Conditions are awaited with generous deadlines (a loaded machine), never
//! timed tightly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rust_decimal::Decimal;
use tempfile::TempDir;
use tokio::time::Instant;

use nanotrader_kraken::private::{
    AddOrderOutcome, ApiErrorKind, Credentials, ExecOrderStatus, ExecType, ExecutionReport, Liquidity, NonceSource,
    OrderRequest, OrderStatus, OrderType, PrivateClient, PrivateError, PrivateEvent, PrivateFeed, PrivateWsConfig,
    PrivateWsError, Tier, TokenSource, WebSocketsToken,
};
use nanotrader_kraken_mock::{Faults, Limits, MockConfig, MockKraken, PrivateConfig};
use nanotrader_market::Side;

/// 2,672 real Kraken BTC/USD trades, 2019-07-01 00:00:03 .. 00:59:51 UTC.
const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/btcusd_trades_kraken_20190701.csv"
);
const KEY: &str = "nanotrader-mock-key";
/// Kraken's published example secret (64 bytes, base64).
const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
/// Market time all but stands still: orders trade at the data's first price.
const FROZEN: f64 = 1e-6;
/// How long any awaited condition may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn account() -> PrivateConfig {
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = dec("10000");
    account.btc = dec("0.5");
    account.fill_parts = 3;
    account
}

async fn start(account: PrivateConfig, faults: Faults) -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = MockConfig::new(DATA);
    config.speed = FROZEN;
    config.faults = faults;
    config.private = Some(account);
    MockKraken::start(config).await.expect("the mock starts")
}

/// A client of the mock's account, its nonce file in `dir`.
fn client(mock: &MockKraken, dir: &TempDir, tier: Tier) -> PrivateClient {
    let credentials = Credentials::new(KEY, SECRET).unwrap();
    let nonces = NonceSource::open(dir.path().join(NonceSource::file_name(&credentials))).unwrap();
    PrivateClient::new(&mock.rest_url(), credentials, nonces, tier, Duration::from_secs(10)).unwrap()
}

fn market(side: Side, volume: &str, cl_ord_id: &str) -> OrderRequest {
    OrderRequest {
        pair: "XBTUSD".into(),
        side,
        order_type: OrderType::Market,
        volume: dec(volume),
        cl_ord_id: Some(cl_ord_id.into()),
        validate: false,
    }
}

fn placed(outcome: AddOrderOutcome) -> String {
    match outcome {
        AddOrderOutcome::Accepted(added) => {
            assert_eq!(added.txids.len(), 1, "{added:?}");
            added.txids[0].clone()
        }
        other => panic!("not placed: {other:?}"),
    }
}

/// The mock's balances under WS v2 asset names.
fn ws_balances(mock: &MockKraken) -> BTreeMap<String, Decimal> {
    let rename = |asset: &str| match asset {
        "XXBT" => "BTC".to_owned(),
        "ZUSD" => "USD".to_owned(),
        other => other.to_owned(),
    };
    mock.balances().into_iter().map(|(k, v)| (rename(&k), v)).collect()
}

#[tokio::test]
async fn the_rest_client_trades_and_finds_everything_again_by_cl_ord_id() {
    let mock = start(account(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&mock, &dir, Tier::Starter);

    let balances = c.balance().await.unwrap();
    assert_eq!((balances["ZUSD"], balances["XXBT"]), (dec("10000"), dec("0.5")));

    let validate = OrderRequest {
        validate: true,
        ..market(Side::Buy, "0.01", "nt-validate")
    };
    match c.add_order(&validate).await {
        AddOrderOutcome::Accepted(added) => assert!(added.txids.is_empty(), "{added:?}"),
        other => panic!("{other:?}"),
    }
    assert!(mock.placed_orders().is_empty() && mock.executions().is_empty());

    let txid = placed(c.add_order(&market(Side::Buy, "0.01", "nt-e2e-1")).await);
    let fills: Vec<_> = mock.executions().into_iter().filter(|e| e.order_id == txid).collect();
    assert_eq!(fills.len(), 3, "fill_parts 3: {fills:?}");
    assert_eq!(fills.iter().map(|f| f.qty).sum::<Decimal>(), dec("0.01"));

    assert!(c.open_orders(Some("nt-e2e-1"), true).await.unwrap().is_empty());
    let closed = c.closed_orders(None, Some("nt-e2e-1"), None).await.unwrap();
    assert_eq!(closed.count, 1);
    let order = &closed.orders[0];
    assert_eq!(
        (order.txid.as_str(), order.cl_ord_id.as_deref()),
        (txid.as_str(), Some("nt-e2e-1"))
    );
    assert_eq!(
        (order.status.clone(), order.volume_executed),
        (OrderStatus::Closed, dec("0.01"))
    );
    assert_eq!(order.fee, fills.iter().map(|f| f.fee).sum::<Decimal>());

    let queried = c.query_orders(&[txid.as_str()]).await.unwrap();
    assert_eq!(queried.len(), 1);
    let mut ids = queried[0].trades.clone();
    let mut expected: Vec<String> = fills.iter().map(|f| f.trade_id.clone()).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);

    let mut trades = c.trades_history_all(None, None).await.unwrap();
    trades.retain(|t| t.ordertxid == txid);
    assert_eq!(trades.len(), 3);
    for fill in &fills {
        let trade = trades.iter().find(|t| t.txid == fill.trade_id).expect("listed");
        assert_eq!(
            (trade.volume, trade.price, trade.cost, trade.fee, trade.side),
            (fill.qty, fill.price, fill.cost, fill.fee, fill.side)
        );
        assert_eq!(trade.maker, Some(false));
    }
}

#[tokio::test]
async fn a_lost_add_order_reply_is_unknown_and_found_once_by_cl_ord_id() {
    let faults = Faults {
        lose_addorder_reply: 1,
        ..Faults::default()
    };
    let mock = start(account(), faults).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&mock, &dir, Tier::Starter);

    let outcome = c.add_order(&market(Side::Buy, "0.01", "nt-lost-1")).await;
    assert!(matches!(outcome, AddOrderOutcome::Unknown(_)), "{outcome:?}");
    assert!(!outcome.is_not_placed());

    // The caller looks it up instead of sending it again.
    let closed = c.closed_orders(None, Some("nt-lost-1"), None).await.unwrap();
    assert_eq!(closed.count, 1);
    assert_eq!(closed.orders[0].status, OrderStatus::Closed);
    let placed: Vec<_> = mock
        .placed_orders()
        .into_iter()
        .filter(|o| o.cl_ord_id.as_deref() == Some("nt-lost-1"))
        .collect();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].txid, closed.orders[0].txid);
    assert_eq!(mock.private_calls()["AddOrder"], 1, "sent once");
}

#[tokio::test]
async fn an_invalid_nonce_is_signed_again_once_and_unavailable_is_typed() {
    let faults = Faults {
        invalid_nonce: 1,
        service_unavailable: 1,
        ..Faults::default()
    };
    let mock = start(account(), faults).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client(&mock, &dir, Tier::Starter);

    // The mock answers EService:Unavailable first (that fault is checked first), then the nonce.
    let err = c.balance().await.unwrap_err();
    assert_eq!(err.api_kind(), Some(ApiErrorKind::Unavailable), "{err}");
    assert!(err.is_retryable());
    assert!(matches!(err, PrivateError::Api(_)));
    assert_eq!(mock.private_calls()["Balance"], 1);

    let balances = c.balance().await.unwrap();
    assert_eq!(balances["ZUSD"], dec("10000"));
    assert_eq!(
        mock.private_calls()["Balance"],
        3,
        "one refused for its nonce, signed again once"
    );
    assert_eq!(mock.counters().faults.invalid_nonce, 1);
}

#[tokio::test]
async fn a_burst_waits_on_the_client_side_counter_instead_of_hitting_the_rate_limit() {
    let mut account = account();
    account.limits = Limits::tier(nanotrader_kraken_mock::Tier::Pro);
    let mock = start(account, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(client(&mock, &dir, Tier::Pro));

    // Pro: 20 on the counter, -1/s. 24 calls at once: the last few wait for the decay.
    let calls = (0..24).map(|_| {
        let c = Arc::clone(&c);
        tokio::spawn(async move { c.balance().await })
    });
    for call in calls {
        let result = call.await.unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(mock.private_calls()["Balance"], 24);
}

// ---- the authenticated WebSocket feed ----

/// What a consumer of the feed keeps: the event log and the state rebuilt from it.
#[derive(Default)]
struct Seen {
    events: Vec<PrivateEvent>,
    connected: usize,
    disconnected: Vec<String>,
    snapshots: usize,
    open_orders: Vec<ExecutionReport>,
    snapshot_trades: Vec<ExecutionReport>,
    executions: Vec<ExecutionReport>,
    balances: BTreeMap<String, Decimal>,
    balance_snapshots: usize,
    fatal: Option<PrivateWsError>,
}

impl Seen {
    fn apply(&mut self, event: PrivateEvent) {
        match &event {
            PrivateEvent::Connected => self.connected += 1,
            PrivateEvent::Disconnected { reason } => self.disconnected.push(reason.clone()),
            PrivateEvent::Snapshot { orders, trades } => {
                self.snapshots += 1;
                self.open_orders = orders.clone();
                self.snapshot_trades = trades.clone();
            }
            PrivateEvent::Execution(report) => self.executions.push((**report).clone()),
            PrivateEvent::Balances { snapshot, balances, .. } => {
                if *snapshot {
                    self.balance_snapshots += 1;
                    self.balances.clear();
                }
                self.balances.extend(balances.clone());
            }
            PrivateEvent::Fatal(e) => self.fatal = Some(e.clone()),
        }
        self.events.push(event);
    }

    fn fills_of(&self, order_id: &str) -> Vec<&ExecutionReport> {
        self.executions
            .iter()
            .filter(|r| r.order_id == order_id && r.exec_type == ExecType::Trade)
            .collect()
    }
}

/// Applies the feed's events until `done` holds; fails after the deadline or if the feed ends.
async fn until(feed: &mut PrivateFeed, seen: &mut Seen, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(seen) {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Ok(Some(event)) => seen.apply(event),
            Ok(None) => panic!("the feed ended while waiting for {what}: {:?}", seen.events),
            Err(_) => panic!("timed out waiting for {what}: {:?}", seen.events),
        }
    }
}

fn quick(mock: &MockKraken) -> PrivateWsConfig {
    let mut config = PrivateWsConfig::new(&mock.ws_auth_url());
    config.reconnect_initial = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(500);
    config
}

fn token_calls(mock: &MockKraken) -> u64 {
    mock.private_calls().get("GetWebSocketsToken").copied().unwrap_or(0)
}

#[tokio::test]
async fn the_feed_snapshots_then_streams_the_exchanges_fills_and_balances_exactly() {
    let mock = start(account(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(client(&mock, &dir, Tier::Starter));
    // For the snapshot: an earlier fill and a resting order.
    let earlier = placed(c.add_order(&market(Side::Buy, "0.002", "nt-earlier")).await);
    let resting = OrderRequest {
        order_type: OrderType::Limit {
            price: dec("10000.0"),
            post_only: true,
        },
        ..market(Side::Buy, "0.01", "nt-rest-1")
    };
    let resting = placed(c.add_order(&resting).await);

    let mut feed = PrivateFeed::spawn(Arc::clone(&c), quick(&mock));
    let mut seen = Seen::default();
    until(&mut feed, &mut seen, "both snapshots", |s| {
        s.snapshots == 1 && s.balance_snapshots == 1
    })
    .await;
    assert_eq!(seen.connected, 1);
    assert_eq!(token_calls(&mock), 1);
    assert_eq!(seen.open_orders.len(), 1, "{:?}", seen.open_orders);
    let open = &seen.open_orders[0];
    assert_eq!(
        (open.order_id.as_str(), open.cl_ord_id.as_deref()),
        (resting.as_str(), Some("nt-rest-1"))
    );
    assert_eq!(
        (open.limit_price, open.order_qty),
        (Some(dec("10000")), Some(dec("0.01")))
    );
    assert_eq!(open.order_status, Some(ExecOrderStatus::New));
    let earlier_fills: Vec<_> = mock
        .executions()
        .into_iter()
        .filter(|e| e.order_id == earlier)
        .collect();
    let snap_ids: Vec<&str> = seen
        .snapshot_trades
        .iter()
        .map(|r| r.trade.as_ref().unwrap().exec_id.as_str())
        .collect();
    let mock_ids: Vec<&str> = earlier_fills.iter().map(|e| e.trade_id.as_str()).collect();
    assert_eq!(snap_ids, mock_ids);
    assert_eq!(seen.balances, ws_balances(&mock));

    let sold = placed(c.add_order(&market(Side::Sell, "0.1", "nt-sell-1")).await);
    until(&mut feed, &mut seen, "the sale filled", |s| {
        s.executions
            .iter()
            .any(|r| r.order_id == sold && r.exec_type == ExecType::Filled)
    })
    .await;
    let kinds: Vec<ExecType> = seen
        .executions
        .iter()
        .filter(|r| r.order_id == sold)
        .map(|r| r.exec_type.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            ExecType::PendingNew,
            ExecType::New,
            ExecType::Trade,
            ExecType::Trade,
            ExecType::Trade,
            ExecType::Filled
        ]
    );
    let expected: Vec<_> = mock.executions().into_iter().filter(|e| e.order_id == sold).collect();
    let fills = seen.fills_of(&sold);
    assert_eq!(fills.len(), expected.len());
    for (report, fill) in fills.iter().zip(&expected) {
        let t = report.trade.as_ref().unwrap();
        assert_eq!(t.exec_id, fill.trade_id);
        assert_eq!((t.last_qty, t.last_price, t.cost), (fill.qty, fill.price, fill.cost));
        assert_eq!((t.fee_in("USD"), t.fees.len()), (fill.fee, 1));
        assert_eq!(t.liquidity, Some(Liquidity::Taker));
        assert!(t.trade_id.is_some());
        assert_eq!(
            (report.cl_ord_id.as_deref(), report.side),
            (Some("nt-sell-1"), Some(Side::Sell))
        );
        // WS v2 times are written to the microsecond.
        assert_eq!(report.timestamp.nanos(), fill.time.nanos() / 1000 * 1000);
    }
    let filled = seen
        .executions
        .iter()
        .find(|r| r.order_id == sold && r.exec_type == ExecType::Filled);
    let filled = filled.unwrap();
    assert_eq!(
        (filled.cum_qty, filled.order_status.clone()),
        (Some(dec("0.1")), Some(ExecOrderStatus::Filled))
    );
    assert!(filled.order_status.as_ref().is_some_and(ExecOrderStatus::is_final));

    // Every fill moved both balances; the feed's view ends exactly at the exchange's.
    until(&mut feed, &mut seen, "the balances to settle", |s| {
        s.balances == ws_balances(&mock)
    })
    .await;
    assert_eq!(feed.stats().malformed, 0);
    assert_eq!(feed.stats().sequence_gaps, 0);
    assert_eq!(seen.disconnected, Vec::<String>::new());
}

#[tokio::test]
async fn a_dropped_feed_reconnects_with_a_fresh_token_and_a_new_snapshot() {
    // status, two acks, two snapshots: the sixth message (a heartbeat) is never sent.
    let faults = Faults {
        drop_auth_ws_after: Some(5),
        ..Faults::default()
    };
    let mock = start(account(), faults).await;
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(client(&mock, &dir, Tier::Starter));
    let mut feed = PrivateFeed::spawn(c, quick(&mock));
    let mut seen = Seen::default();
    until(&mut feed, &mut seen, "three connections with their snapshots", |s| {
        s.snapshots >= 3 && s.balance_snapshots >= 3
    })
    .await;
    assert!(seen.disconnected.len() >= 2, "{:?}", seen.events);
    assert!(seen.connected >= 3);
    // A fresh token for every connection.
    assert_eq!(token_calls(&mock), feed.stats().connections);
    assert!(mock.counters().faults.dropped_auth_connections >= 2);
    // Each drop is followed by a new connection and its snapshot.
    let order: Vec<&str> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            PrivateEvent::Connected => Some("c"),
            PrivateEvent::Snapshot { .. } => Some("s"),
            PrivateEvent::Disconnected { .. } => Some("d"),
            _ => None,
        })
        .collect();
    assert!(order.join("").starts_with("csdcsdcs"), "{order:?}");
}

/// Hands out a bogus token `bad` times, then real ones.
struct BadTokens {
    client: PrivateClient,
    bad: u32,
    handed: AtomicU32,
}

impl TokenSource for BadTokens {
    async fn websockets_token(&self) -> Result<WebSocketsToken, PrivateError> {
        if self.handed.fetch_add(1, Ordering::Relaxed) < self.bad {
            return Ok(WebSocketsToken {
                token: "not-a-token".into(),
                expires: 900,
            });
        }
        self.client.get_websockets_token().await
    }
}

#[tokio::test]
async fn an_invalid_token_is_replaced_by_a_fresh_one_a_bounded_number_of_times() {
    let mock = start(account(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = Arc::new(BadTokens {
        client: client(&mock, &dir, Tier::Starter),
        bad: 1,
        handed: AtomicU32::new(0),
    });
    let mut feed = PrivateFeed::spawn(Arc::clone(&tokens), quick(&mock));
    let mut seen = Seen::default();
    until(&mut feed, &mut seen, "a snapshot after the refused token", |s| {
        s.snapshots == 1
    })
    .await;
    assert_eq!(seen.disconnected.len(), 1);
    assert!(
        seen.disconnected[0].contains("EAPI:Invalid token"),
        "{:?}",
        seen.disconnected
    );
    assert_eq!(tokens.handed.load(Ordering::Relaxed), 2);
    assert_eq!(token_calls(&mock), 1);
    drop(feed);

    // Never a good token: a few fresh ones are tried, then the feed stops with a typed error.
    let dir = tempfile::tempdir().unwrap();
    let tokens = Arc::new(BadTokens {
        client: client(&mock, &dir, Tier::Starter),
        bad: u32::MAX,
        handed: AtomicU32::new(0),
    });
    let mut config = quick(&mock);
    config.invalid_token_retries = 2;
    let mut feed = PrivateFeed::spawn(Arc::clone(&tokens), config);
    let mut seen = Seen::default();
    until(&mut feed, &mut seen, "the fatal event", |s| s.fatal.is_some()).await;
    match seen.fatal {
        Some(PrivateWsError::InvalidToken { attempts, ref error }) => {
            assert_eq!((attempts, error.as_str()), (3, "EAPI:Invalid token"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(tokens.handed.load(Ordering::Relaxed), 3);
    assert!(feed.recv().await.is_none(), "the feed has stopped");
}
