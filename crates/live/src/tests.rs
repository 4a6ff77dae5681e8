//! The validate broker against the mock exchange over loopback, with a real store.

use std::path::Path;

use crate::real::*;
use nanotrader_broker::{BrokerConfig, Sizing};
use nanotrader_kraken::private::{Credentials, NonceSource, Tier};
use nanotrader_kraken_mock::{Faults, MockConfig, MockKraken, PrivateConfig};
use nanotrader_market::Interval;
use nanotrader_store::{DataDirLock, NewRun, Store};

use super::*;

const KEY: &str = "mock-api-key";
/// Kraken's published example secret (64 bytes, base64).
const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/btcusd_trades_kraken_20190701.csv"
);

async fn mock(faults: Faults) -> MockKraken {
    live_mock(faults, 1).await
}

struct Rig {
    _dir: tempfile::TempDir,
    _lock: DataDirLock,
    store: Store,
    broker: ValidateBroker,
}

fn rig(mock: &MockKraken, rails: Rails) -> Rig {
    let LiveRig {
        dir,
        lock,
        store,
        run_id,
    } = LiveRig::new();
    let client = client(mock, dir.path());
    let paper = PaperBroker::new(BrokerConfig {
        initial_cash: Decimal::from(1_000),
        fee_rate: Decimal::new(26, 4),
        sizing: Sizing::Fixed(Decimal::new(1, 3)),
        qty_step: Decimal::new(1, 8),
    });
    let journal = Store::open(&lock).unwrap();
    let broker = ValidateBroker::start(paper, client, journal, run_id, rules(), rails, Duration::from_secs(30));
    Rig {
        _dir: dir,
        _lock: lock,
        store,
        broker,
    }
}

fn client(mock: &MockKraken, dir: &Path) -> PrivateClient {
    let credentials = Credentials::new(KEY, SECRET).unwrap();
    let nonces = NonceSource::open(dir.join(NonceSource::file_name(&credentials))).unwrap();
    PrivateClient::new(
        &mock.rest_url(),
        credentials,
        nonces,
        Tier::Starter,
        Duration::from_secs(10),
    )
    .unwrap()
}

/// XBTUSD's lot (8 decimals) and minimum (0.0001 BTC).
fn rules() -> PairRules {
    PairRules {
        rest_pair: "XBTUSD".into(),
        lot_decimals: 8,
        ordermin: Some(Decimal::new(1, 4)),
        costmin: Some(Decimal::new(5, 1)),
        tick_size: Some(Decimal::new(1, 1)),
    }
}

fn rails() -> Rails {
    Rails {
        max_order_value: Decimal::from(100),
        max_orders_per_hour: 30,
        max_position: None,
        max_daily_loss: None,
    }
}

fn add_orders(mock: &MockKraken) -> u64 {
    mock.private_calls().get("AddOrder").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_order_is_journaled_validated_by_kraken_then_filled_on_paper() {
    let mock = mock(Faults::default()).await;
    let mut rig = rig(&mock, rails());
    let price = Decimal::from(10_000);
    let (order, fill) = rig
        .broker
        .follow(1, Timestamp::from_secs(60), price)
        .expect("validated and filled");
    assert_eq!(fill.qty, Decimal::new(1, 3));
    assert_eq!(rig.broker.account().position(), Decimal::new(1, 3));
    assert_eq!(add_orders(&mock), 1, "one AddOrder");
    assert!(mock.placed_orders().is_empty(), "validate places nothing");
    let journal = rig.store.sent_orders(1).unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].state, OrderState::Validated);
    assert_eq!(journal[0].order_id, order.id);
    assert!(journal[0].validate);
    assert_eq!(
        uuid::Uuid::parse_str(&journal[0].cl_ord_id).unwrap().get_version_num(),
        4
    );
    let (_, sold) = rig
        .broker
        .follow(-1, Timestamp::from_secs(120), price)
        .expect("the exit too");
    assert_eq!(sold.qty, Decimal::new(1, 3));
    assert_eq!(add_orders(&mock), 2);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kraken_validate_with_exchange_stops_has_kraken_check_each_exit_and_places_nothing() {
    let mock = mock(Faults::default()).await;
    let Rig {
        _dir,
        _lock,
        store,
        broker,
    } = rig(&mock, rails());
    let mut broker = broker.with_stops(
        true,
        "checked by Kraken (validate=true), watched by the bot: stop-loss 2%".into(),
    );
    broker.plan_exits(ExitPlan {
        stop_loss: Some(Decimal::new(980_004, 2)),
        take_profit: Some(Decimal::from(10_400)),
        trailing: Some(TrailDistance::Percent(Decimal::new(15, 1))),
    });
    let price = Decimal::from(10_000);
    let (_, fill) = broker
        .follow(1, Timestamp::from_secs(60), price)
        .expect("validated and filled");
    assert_eq!(fill.qty, Decimal::new(1, 3));
    // The entry, then its stop-loss, trailing stop and take-profit, each journaled and checked.
    assert_eq!(add_orders(&mock), 4);
    assert!(mock.placed_orders().is_empty(), "validate places nothing");
    let journal = store.sent_orders(1).unwrap();
    assert_eq!(journal.len(), 4, "{journal:?}");
    assert!(
        journal.iter().all(|o| o.validate && o.state == OrderState::Validated),
        "{journal:?}"
    );
    let venue = broker.venue().unwrap();
    let kinds: Vec<&str> = venue.orders.iter().map(|o| o.order_type.as_str()).collect();
    assert_eq!(kinds, ["take-profit", "trailing-stop", "stop-loss", "market"]);
    assert_eq!(venue.orders[2].limit_price, Some(Decimal::from(9_800)), "on the tick");
    assert!(venue.stops.unwrap().starts_with("checked by Kraken"));
    // Nothing rests: the position is the paper account's, its stops the bot's.
    assert_eq!(broker.account().position(), Decimal::new(1, 3));
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_past_a_rail_or_under_the_minimum_is_not_sent() {
    let mock = mock(Faults::default()).await;
    let small = Rails {
        max_order_value: Decimal::from(5),
        max_orders_per_hour: 30,
        max_position: None,
        max_daily_loss: None,
    };
    let mut rig = rig(&mock, small);
    // 0.001 BTC at 10,000 is 10 USD, over the 5 USD rail.
    assert!(
        rig.broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(10_000))
            .is_none()
    );
    assert_eq!(rig.broker.account().position(), Decimal::ZERO, "nothing filled");
    // At 1,000 USD a BTC, 0.001 BTC (1 USD) passes the rail and the exchange's minimum value
    // (0.5 USD), so the next refusal comes from the hourly rail.
    let mut rig2 = rig_with_hourly(&mock, 1);
    assert!(
        rig2.broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(1_000))
            .is_some()
    );
    assert!(
        rig2.broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(1_000))
            .is_none(),
        "one an hour"
    );
    assert_eq!(add_orders(&mock), 1, "refused orders never reach Kraken");
    assert!(rig.store.sent_orders(1).unwrap().is_empty(), "nor the journal");
    mock.shutdown().await;
}

fn rig_with_hourly(mock: &MockKraken, per_hour: u32) -> Rig {
    rig(
        mock,
        Rails {
            max_order_value: Decimal::from(100),
            max_orders_per_hour: per_hour,
            max_position: None,
            max_daily_loss: None,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_kraken_refuses_is_journaled_as_rejected_and_not_filled() {
    let faults = Faults {
        service_unavailable: 1,
        ..Faults::default()
    };
    let mock = mock(faults).await;
    let mut rig = rig(&mock, rails());
    assert!(
        rig.broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(10_000))
            .is_none()
    );
    assert_eq!(rig.broker.account().position(), Decimal::ZERO);
    let journal = rig.store.sent_orders(1).unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].state, OrderState::Rejected);
    assert!(
        journal[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("EService:Unavailable")
    );
    // The next decision goes through: one refusal does not stop the broker.
    assert!(
        rig.broker
            .follow(1, Timestamp::from_secs(120), Decimal::from(10_000))
            .is_some()
    );
    mock.shutdown().await;
}

// ---- the real-money broker ----

async fn live_mock(faults: Faults, fill_parts: u32) -> MockKraken {
    mock_holding(faults, fill_parts, Decimal::new(5, 1)).await
}

/// A mock account holding `btc` (an exit sells all of it, so tests that exit start with none).
async fn mock_holding(faults: Faults, fill_parts: u32, btc: Decimal) -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = MockConfig::new(DATA);
    config.speed = 1.0;
    config.faults = faults;
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = Decimal::from(10_000);
    // Kraken checks a validated order against the balances too: enough of both to sell.
    account.btc = btc;
    account.fill_parts = fill_parts;
    config.private = Some(account);
    MockKraken::start(config).await.expect("the mock starts")
}

struct LiveRig {
    dir: tempfile::TempDir,
    lock: DataDirLock,
    store: Store,
    run_id: i64,
}

impl LiveRig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let store = Store::open(&lock).unwrap();
        let series = store
            .series_id("kraken:BTC/USD", "BTC/USD", Interval::ONE_MINUTE)
            .unwrap();
        let run = store
            .create_run(&NewRun {
                run_key: "k",
                series_id: series,
                config: "{}",
                source_params: "{}",
                initial_cash: Decimal::from(10_000),
            })
            .unwrap();
        Self {
            dir,
            lock,
            store,
            run_id: run.id,
        }
    }

    async fn broker(&self, mock: &MockKraken) -> LiveBroker {
        self.broker_with(mock, settings(mock, OrderKind::Market)).await
    }

    async fn broker_with(&self, mock: &MockKraken, settings: LiveSettings) -> LiveBroker {
        self.broker_on(client(mock, self.dir.path()), settings).await
    }

    async fn broker_on(&self, client: PrivateClient, settings: LiveSettings) -> LiveBroker {
        self.broker_resumed(client, settings, RunOrders::fresh()).await
    }

    /// A start of a run that had stored `stored` of its orders.
    async fn broker_resumed(&self, client: PrivateClient, settings: LiveSettings, stored: RunOrders) -> LiveBroker {
        LiveBroker::start(
            BrokerConfig {
                initial_cash: Decimal::from(10_000),
                fee_rate: Decimal::new(26, 4),
                sizing: Sizing::Fixed(Decimal::new(1, 3)),
                qty_step: Decimal::new(1, 8),
            },
            stored,
            client,
            Store::open(&self.lock).unwrap(),
            self.run_id,
            rules(),
            rails(),
            Assets {
                base: "XXBT".into(),
                quote: "ZUSD".into(),
            },
            settings,
        )
        .await
        .expect("the live broker starts")
    }
}

fn settings(mock: &MockKraken, order_kind: OrderKind) -> LiveSettings {
    LiveSettings {
        order_kind,
        cancel_on_exit: true,
        ws_auth_url: Some(mock.ws_auth_url()),
        ws_quote: "USD".into(),
        ws_base: "BTC".into(),
        stops_on_exchange: false,
        stop_rule: String::new(),
    }
}

fn exchange_stops(mock: &MockKraken) -> LiveSettings {
    LiveSettings {
        stops_on_exchange: true,
        stop_rule: "on Kraken: stop-loss 7%".into(),
        ..settings(mock, OrderKind::Market)
    }
}

/// Polls the broker until `done` holds of everything it gave so far (waiting on its wake-ups).
async fn poll_until(
    broker: &mut LiveBroker,
    what: &str,
    done: impl Fn(&[(Order, Fill)], &MockKraken) -> bool,
    mock: &MockKraken,
) -> Vec<(Order, Fill)> {
    let wake = broker.updates().expect("a live broker wakes its engine");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut fills = Vec::new();
    loop {
        fills.extend(broker.poll());
        if done(&fills, mock) {
            return fills;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {fills:?}\n{:?}",
            mock.placed_orders()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), wake.notified()).await;
    }
}

fn of_type(
    mock: &MockKraken,
    order_type: nanotrader_kraken_mock::OrderType,
) -> Vec<nanotrader_kraken_mock::PlacedOrder> {
    mock.placed_orders()
        .into_iter()
        .filter(|o| o.order_type == order_type)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_stops_rest_after_the_entry_and_the_strategys_exit_cancels_them_before_it_sells() {
    use nanotrader_kraken_mock::{OrderStatus, OrderType as Mock};
    let mock = mock_holding(Faults::default(), 1, Decimal::ZERO).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker_with(&mock, exchange_stops(&mock)).await;
    broker.mark(Decimal::from(PRICE));
    broker.plan_exits(ExitPlan {
        stop_loss: Some(Decimal::new(1_000_004, 2)),
        take_profit: Some(Decimal::from(12_000)),
        trailing: None,
    });
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let entry = settle(&mut broker).await;
    assert_eq!(entry.len(), 1);
    // The stop-loss rests at Kraken for the bought volume, its trigger on the tick; the
    // take-profit for the same volume is refused (Kraken holds the volume of the open stop).
    poll_until(
        &mut broker,
        "the stop rests",
        |_, mock| {
            of_type(mock, Mock::StopLoss)
                .first()
                .is_some_and(|o| o.status == OrderStatus::Open)
                && rig
                    .store
                    .sent_orders(rig.run_id)
                    .unwrap()
                    .iter()
                    .any(|o| o.state == OrderState::Rejected)
        },
        &mock,
    )
    .await;
    let stop = of_type(&mock, Mock::StopLoss).remove(0);
    assert_eq!((stop.side, stop.volume), (Side::Sell, Decimal::new(1, 3)));
    assert_eq!(stop.trigger.unwrap().price, Decimal::from(10_000));
    assert!(of_type(&mock, Mock::TakeProfit).is_empty());
    let journal = rig.store.sent_orders(rig.run_id).unwrap();
    assert_eq!(
        journal.len(),
        3,
        "entry, stop-loss, take-profit, each journaled: {journal:?}"
    );
    assert_eq!(journal.iter().filter(|o| o.state == OrderState::Rejected).count(), 1);
    let venue = broker.venue().unwrap();
    assert_eq!(venue.stops.as_deref(), Some("on Kraken: stop-loss 7%"));
    let shown = venue
        .orders
        .iter()
        .find(|o| o.order_type == "stop-loss")
        .expect("listed");
    assert_eq!(
        (shown.state.as_str(), shown.limit_price),
        ("open", Some(Decimal::from(10_000)))
    );

    // The strategy exits: the stop is cancelled first, then what is left is sold at market.
    assert!(
        broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(PRICE))
            .is_none()
    );
    assert!(broker.is_working(), "the exit waits for the stop's end");
    let exit = settle(&mut broker).await;
    assert_eq!(exit.len(), 1, "{exit:?}");
    assert_eq!((exit[0].1.side, exit[0].1.qty), (Side::Sell, Decimal::new(1, 3)));
    let stop = of_type(&mock, Mock::StopLoss).remove(0);
    assert_eq!((stop.status, stop.vol_exec), (OrderStatus::Canceled, Decimal::ZERO));
    let sells = of_type(&mock, Mock::Market)
        .into_iter()
        .filter(|o| o.side == Side::Sell)
        .count();
    assert_eq!(sells, 1, "sold once");
    assert_eq!(mock.balances()["XXBT"], Decimal::ZERO);
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_fills_at_the_exchange_is_the_exit_its_sibling_is_cancelled_and_nothing_is_sold_twice() {
    use nanotrader_kraken_mock::{OrderStatus, OrderType as Mock};
    // Holding 0.001 BTC already: both exits of the 0.001 bought fit in the balance.
    let mock = mock_holding(Faults::default(), 2, Decimal::new(1, 3)).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker_with(&mock, exchange_stops(&mock)).await;
    broker.mark(Decimal::from(PRICE));
    // A stop above the market: Kraken executes it as soon as it is placed.
    broker.plan_exits(ExitPlan {
        stop_loss: Some(Decimal::from(11_000)),
        take_profit: Some(Decimal::from(12_000)),
        trailing: None,
    });
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    // The entry, then the stop's exit (it may come while the entry is still being settled).
    let fills = poll_until(
        &mut broker,
        "the stop's exit and the take-profit cancelled",
        |fills, mock| {
            fills.iter().any(|(_, f)| f.side == Side::Sell)
                && of_type(mock, Mock::TakeProfit)
                    .first()
                    .is_some_and(|o| o.status == OrderStatus::Canceled)
        },
        &mock,
    )
    .await;
    assert_eq!(fills.iter().filter(|(_, f)| f.side == Side::Buy).count(), 1);
    let exit: Vec<_> = fills.iter().filter(|(_, f)| f.side == Side::Sell).collect();
    assert_eq!(exit.len(), 1, "{fills:?}");
    let (order, fill) = exit[0];
    assert_eq!((order.reason, fill.qty), (OrderReason::Exit, Decimal::new(1, 3)));
    let executed: Vec<_> = mock
        .executions()
        .into_iter()
        .filter(|e| e.order_id == of_type(&mock, Mock::StopLoss)[0].txid)
        .collect();
    assert_eq!(executed.len(), 2, "the stop's two trades");
    assert_eq!(fill.fee, executed.iter().map(|e| e.fee).sum::<Decimal>());
    assert_eq!(of_type(&mock, Mock::TakeProfit)[0].vol_exec, Decimal::ZERO);
    assert_eq!(of_type(&mock, Mock::Market).len(), 1, "only the entry at market");
    assert_eq!(
        mock.balances()["XXBT"],
        Decimal::new(1, 3),
        "the stop sold what was bought, once"
    );
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_restarted_in_a_trade_without_its_stop_places_it_once() {
    use nanotrader_kraken_mock::{OrderStatus, OrderType as Mock};
    let mock = mock_holding(Faults::default(), 1, Decimal::new(1, 3)).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker_with(&mock, exchange_stops(&mock)).await;
    let plan = ExitPlan {
        stop_loss: Some(Decimal::from(9_000)),
        ..ExitPlan::default()
    };
    broker.guard_position(plan, Timestamp::from_secs(60), Decimal::from(PRICE));
    poll_until(
        &mut broker,
        "the stop rests",
        |_, mock| {
            of_type(mock, Mock::StopLoss)
                .first()
                .is_some_and(|o| o.status == OrderStatus::Open)
        },
        &mock,
    )
    .await;
    // Once guarded, again is nothing.
    broker.guard_position(plan, Timestamp::from_secs(60), Decimal::from(PRICE));
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.poll();
    let stops = of_type(&mock, Mock::StopLoss);
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].volume, Decimal::new(1, 3), "the position's volume");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_stop_outlives_the_run_and_the_next_start_adopts_it_instead_of_placing_it_again() {
    use nanotrader_kraken_mock::{OrderStatus, OrderType as Mock};
    let mock = mock_holding(Faults::default(), 1, Decimal::ZERO).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker_with(&mock, exchange_stops(&mock)).await;
    broker.mark(Decimal::from(PRICE));
    broker.plan_exits(ExitPlan {
        stop_loss: Some(Decimal::from(9_000)),
        ..ExitPlan::default()
    });
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let entry = settle(&mut broker).await;
    poll_until(
        &mut broker,
        "the stop rests",
        |_, mock| {
            of_type(mock, Mock::StopLoss)
                .first()
                .is_some_and(|o| o.status == OrderStatus::Open)
        },
        &mock,
    )
    .await;
    // Ctrl-C: the stop stays at Kraken, guarding the position.
    tokio::task::block_in_place(|| broker.stop());
    assert_eq!(of_type(&mock, Mock::StopLoss)[0].status, OrderStatus::Open);
    // What the run stored: the entry's fill, and its next order id (past the stop's).
    let stored = RunOrders {
        next_order_id: broker.next_order_id(),
        booked: entry.iter().map(|(order, _)| order.id).collect(),
    };
    drop(broker);
    // The next start adopts it: followed again, not placed again; an exit then cancels it. (Its
    // own nonce file: the stopped broker's task may still hold the first one's lock a moment.)
    let again = tempfile::tempdir().unwrap();
    let mut broker = rig
        .broker_resumed(client(&mock, again.path()), exchange_stops(&mock), stored)
        .await;
    let venue = broker.venue().unwrap();
    let adopted = venue
        .orders
        .iter()
        .find(|o| o.order_type == "stop-loss")
        .expect("listed");
    assert_eq!(
        (adopted.state.as_str(), adopted.limit_price),
        ("open", Some(Decimal::from(9_000)))
    );
    assert_eq!(of_type(&mock, Mock::StopLoss).len(), 1);
    broker.mark(Decimal::from(PRICE));
    assert!(
        broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(PRICE))
            .is_none()
    );
    let exit = settle(&mut broker).await;
    assert_eq!(exit.len(), 1, "{exit:?}");
    assert_eq!(of_type(&mock, Mock::StopLoss)[0].status, OrderStatus::Canceled);
    assert_eq!(of_type(&mock, Mock::StopLoss).len(), 1, "never placed twice");
    assert_eq!(mock.balances()["XXBT"], Decimal::ZERO);
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

/// A process killed after its entry filled at Kraken but before the run stored the decision's
/// step: the next start stores the exchange's fill as the run's, and when the strategy takes the
/// same entry again on the replayed bars, it is not sent again. Killed after the decision's
/// step but before its fill's: the fill is stored at the start all the same, and the next
/// decisions are sent as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_lost_with_a_killed_process_is_recorded_at_start_and_never_sent_twice() {
    let mock = mock_holding(Faults::default(), 2, Decimal::ZERO).await;
    let rig = LiveRig::new();
    let mut crashed = rig.broker(&mock).await;
    crashed.mark(Decimal::from(PRICE));
    assert!(
        crashed
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let fills = settle(&mut crashed).await;
    assert_eq!(fills.len(), 1, "{fills:?}");
    // Killed: the engine stored neither the decision's step nor the fill. (A crash runs no
    // destructor; each start gets a nonce file of its own, as the crashed one never let go.)
    std::mem::forget(crashed);
    let bought = mock.balances()["XXBT"];
    assert_eq!(bought, Decimal::new(1, 3));

    let again = tempfile::tempdir().unwrap();
    let settings_now = settings(&mock, OrderKind::Market);
    let mut broker = rig
        .broker_resumed(client(&mock, again.path()), settings_now.clone(), RunOrders::fresh())
        .await;
    assert_eq!(broker.next_order_id(), 2, "the lost order keeps its id");
    let recorded = poll_until(&mut broker, "the lost fill", |fills, _| !fills.is_empty(), &mock).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (order, fill) = &recorded[0];
    let fee: Decimal = mock.executions().iter().map(|e| e.fee).sum();
    assert_eq!(
        (order.id, fill.side, fill.qty, fill.fee, fill.position_after),
        (1, nanotrader_market::Side::Buy, bought, fee, bought),
        "the exchange's fill, as the run's"
    );
    // The replayed bars make the same decision: not sent again.
    broker.mark(Decimal::from(PRICE));
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    assert!(!broker.is_working(), "nothing sent");
    assert_eq!(mock.placed_orders().len(), 1, "never placed twice");
    assert_eq!(broker.next_order_id(), 2);
    // The exit that follows is sent as usual.
    assert!(
        broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(PRICE))
            .is_none()
    );
    let exit = settle(&mut broker).await;
    assert_eq!(exit.len(), 1, "{exit:?}");
    assert_eq!(exit[0].0.id, 2);
    assert_eq!(mock.balances()["XXBT"], Decimal::ZERO);
    assert_books_are_the_exchanges(&rig, &broker, &mock);

    // Now killed after the next entry's step was stored (the run's next order id is past it)
    // but before its fill's: recorded at the start, and the next exit and entry are sent.
    assert!(
        broker
            .follow(1, Timestamp::from_secs(180), Decimal::from(PRICE))
            .is_none()
    );
    assert_eq!(settle(&mut broker).await.len(), 1);
    // (Stopped rather than forgotten: a killed process's traffic ends, and a forgotten broker's
    // would share the key's rate counter with the next start's. What the run stored is `stored`.)
    tokio::task::block_in_place(|| broker.stop());
    drop(broker);
    let third = tempfile::tempdir().unwrap();
    let stored = RunOrders {
        next_order_id: 4,
        booked: [1, 2].into_iter().collect(),
    };
    let mut broker = rig
        .broker_resumed(client(&mock, third.path()), settings_now, stored)
        .await;
    let recorded = poll_until(&mut broker, "the lost fill", |fills, _| !fills.is_empty(), &mock).await;
    assert_eq!(
        recorded.iter().map(|(o, f)| (o.id, f.side)).collect::<Vec<_>>(),
        vec![(3, nanotrader_market::Side::Buy)]
    );
    assert!(
        broker
            .follow(-1, Timestamp::from_secs(240), Decimal::from(PRICE))
            .is_none()
    );
    assert_eq!(settle(&mut broker).await.len(), 1, "the exit is sent");
    assert!(
        broker
            .follow(1, Timestamp::from_secs(300), Decimal::from(PRICE))
            .is_none()
    );
    assert_eq!(settle(&mut broker).await.len(), 1, "a later entry is sent");
    let sides: Vec<_> = mock.placed_orders().iter().map(|o| o.side).collect();
    use nanotrader_market::Side::{Buy, Sell};
    assert_eq!(sides, vec![Buy, Sell, Buy, Sell, Buy]);
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

/// Polls the broker, waiting on its wake-ups (as the engine does), until its order is done
/// and no decision waits; the fills it gave.
async fn settle(broker: &mut LiveBroker) -> Vec<(Order, Fill)> {
    let wake = broker.updates().expect("a live broker wakes its engine");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut fills = Vec::new();
    loop {
        fills.extend(broker.poll());
        if !broker.is_working() {
            return fills;
        }
        assert!(Instant::now() < deadline, "the order ends");
        let _ = tokio::time::timeout(Duration::from_millis(200), wake.notified()).await;
    }
}

/// The mock's market price now (its tape at its clock): what a market order fills near.
const PRICE: i64 = 10_749;

/// The recorded exchange fills equal the mock's executions exactly, the account equals the
/// mock's balances exactly, and no client id was placed twice.
fn assert_books_are_the_exchanges(rig: &LiveRig, broker: &LiveBroker, mock: &MockKraken) {
    let recorded = rig.store.exchange_fills(rig.run_id).unwrap();
    let executions = mock.executions();
    assert_eq!(recorded.len(), executions.len(), "{recorded:?}\n{executions:?}");
    for e in &executions {
        let r = recorded
            .iter()
            .find(|r| r.trade_id == e.trade_id)
            .unwrap_or_else(|| panic!("trade {} recorded", e.trade_id));
        assert_eq!(
            (r.txid.as_str(), r.qty, r.price, r.cost, r.fee),
            (e.order_id.as_str(), e.qty, e.price, e.cost, e.fee)
        );
        assert_eq!(Some(r.cl_ord_id.as_str()), e.cl_ord_id.as_deref());
    }
    let balances = mock.balances();
    assert_eq!(broker.account().cash(), balances["ZUSD"]);
    assert_eq!(broker.account().position(), balances["XXBT"]);
    let mut ids: Vec<String> = mock.placed_orders().into_iter().filter_map(|o| o.cl_ord_id).collect();
    let placed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), placed, "no client id placed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_order_is_placed_once_and_booked_as_the_exchange_reports_it() {
    let mock = live_mock(Faults::default(), 3).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker(&mock).await;
    assert_eq!(
        broker.account().position(),
        Decimal::new(5, 1),
        "the account is the exchange's"
    );
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none(),
        "the engine never waits for the exchange"
    );
    assert_eq!(broker.next_order_id(), 2, "the order was handed over");
    let fills = settle(&mut broker).await;
    assert_eq!(fills.len(), 1, "one run fill for the order: {fills:?}");
    let (order, fill) = fills.into_iter().next().unwrap();
    assert_eq!(fill.qty, Decimal::new(1, 3));
    assert_eq!(mock.placed_orders().len(), 1);
    assert_eq!(mock.executions().len(), 3, "three partial fills");
    let fee: Decimal = mock.executions().iter().map(|e| e.fee).sum();
    assert_eq!(fill.fee, fee, "the fee as the exchange charged it");
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    let journal = rig.store.sent_orders(rig.run_id).unwrap();
    assert_eq!(journal[0].state, OrderState::Closed);
    assert_eq!(journal[0].txid.as_deref(), Some(mock.placed_orders()[0].txid.as_str()));
    assert_eq!(journal[0].order_id, order.id);
    let venue = broker.venue().expect("the exchange's side");
    assert!(venue.live);
    assert_eq!(venue.balances["XXBT"], mock.balances()["XXBT"]);
    assert_eq!(venue.orders[0].state, "filled");
    assert_eq!(venue.orders[0].filled, Decimal::new(1, 3));
    // The exit sells the whole position: the exchange's 0.501 BTC is over the 100 USD rail.
    assert!(
        broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(PRICE))
            .is_none()
    );
    assert!(!broker.is_working());
    assert_eq!(mock.placed_orders().len(), 1, "a refused order never leaves");
    mock.shutdown().await;
}

async fn lost_answer_case(faults: Faults) {
    let mock = live_mock(faults, 2).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker(&mock).await;
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let filled = settle(&mut broker).await;
    assert_eq!(filled.len(), 1, "found by its client id and booked");
    assert_eq!(mock.private_calls()["AddOrder"], 1, "never sent again");
    assert_eq!(mock.placed_orders().len(), 1);
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    assert_eq!(rig.store.sent_orders(rig.run_id).unwrap()[0].state, OrderState::Closed);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_resolved_by_looking_the_order_up_never_by_resending() {
    lost_answer_case(Faults {
        lose_addorder_reply: 1,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_500_after_placing_is_resolved_the_same_way() {
    lost_answer_case(Faults {
        addorder_http_500: 1,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_is_not_placed_and_a_journaled_unknown_one_is_reconciled_at_start() {
    let mock = live_mock(
        Faults {
            service_unavailable: 5,
            ..Faults::default()
        },
        1,
    )
    .await;
    let rig = LiveRig::new();
    // Balance at start answers EService:Unavailable every time it is asked (five times): the
    // start fails with one line, nothing is sent.
    assert!(
        LiveBroker::start(
            BrokerConfig::default(),
            RunOrders::fresh(),
            client(&mock, rig.dir.path()),
            Store::open(&rig.lock).unwrap(),
            rig.run_id,
            PairRules {
                rest_pair: "XBTUSD".into(),
                lot_decimals: 8,
                ..PairRules::default()
            },
            rails(),
            Assets {
                base: "XXBT".into(),
                quote: "ZUSD".into(),
            },
            settings(&mock, OrderKind::Market),
        )
        .await
        .is_err()
    );
    // An order journaled by a run that was killed before it learned the outcome, and one that
    // was placed: the next start finds the first absent and the second placed.
    rig.store
        .journal_order(&SentOrder {
            cl_ord_id: "00000000-0000-4000-8000-000000000001".into(),
            run_id: rig.run_id,
            order_id: 1,
            ts: Timestamp::from_secs(60),
            side: nanotrader_market::Side::Buy,
            volume: Decimal::new(1, 3),
            validate: false,
            state: OrderState::Sending,
            txid: None,
            detail: None,
        })
        .unwrap();
    let mut broker = rig.broker(&mock).await;
    let placed_id = {
        assert!(
            broker
                .follow(1, Timestamp::from_secs(120), Decimal::from(PRICE))
                .is_none()
        );
        assert_eq!(settle(&mut broker).await.len(), 1);
        rig.store.sent_orders(rig.run_id).unwrap()[1].cl_ord_id.clone()
    };
    // Pretend the run died before it learned the second order's outcome.
    rig.store
        .set_order_state(&placed_id, OrderState::Unknown, None, Some("killed"))
        .unwrap();
    drop(broker);
    // The stopped broker's task lets go of the key's nonce file a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    let credentials = Credentials::new(KEY, SECRET).unwrap();
    let nonce_file = rig.dir.path().join(NonceSource::file_name(&credentials));
    while NonceSource::open(&nonce_file).is_err() {
        assert!(Instant::now() < deadline, "the nonce file stays locked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _again = rig.broker(&mock).await;
    let journal = rig.store.sent_orders(rig.run_id).unwrap();
    assert_eq!(journal[0].state, OrderState::NotPlaced, "{journal:?}");
    assert_eq!(journal[1].state, OrderState::Closed, "{journal:?}");
    assert_eq!(journal[1].txid.as_deref(), Some(mock.placed_orders()[0].txid.as_str()));
    assert_eq!(mock.placed_orders().len(), 1, "reconciling sends nothing");
    mock.shutdown().await;
}

fn limit(timeout_secs: u64, fallback: LimitFallback) -> OrderKind {
    OrderKind::Limit {
        timeout: Duration::from_secs(timeout_secs),
        fallback,
    }
}

fn calls(mock: &MockKraken, name: &str) -> u64 {
    mock.private_calls().get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_taken_while_an_order_works_waits_for_it_and_is_not_doubled() {
    let mock = mock_holding(Faults::default(), 1, Decimal::ZERO).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker(&mock).await;
    broker.mark(Decimal::from(PRICE));
    let at = Decimal::from(PRICE);
    // Entry, then exit and entry again while the entry works: the run wants to be long, and is
    // once the entry is done, so only the entry is sent.
    assert!(broker.follow(1, Timestamp::from_secs(60), at).is_none());
    assert!(broker.follow(-1, Timestamp::from_secs(120), at).is_none());
    assert!(broker.follow(1, Timestamp::from_secs(180), at).is_none());
    let fills = settle(&mut broker).await;
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(mock.placed_orders().len(), 1);
    // An exit while an entry works: sent once the entry is done.
    assert!(broker.follow(-1, Timestamp::from_secs(240), at).is_none());
    let fills = settle(&mut broker).await;
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].1.side, nanotrader_market::Side::Sell);
    assert!(broker.follow(1, Timestamp::from_secs(300), at).is_none());
    assert!(broker.follow(-1, Timestamp::from_secs(360), at).is_none());
    let fills = settle(&mut broker).await;
    assert_eq!(fills.len(), 2, "the entry, then the exit that waited for it: {fills:?}");
    assert_eq!(mock.placed_orders().len(), 4);
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_only_order_that_would_take_is_repriced_then_sent_at_market() {
    let mock = live_mock(Faults::default(), 1).await;
    let rig = LiveRig::new();
    let mut broker = rig
        .broker_with(&mock, settings(&mock, limit(60, LimitFallback::Market)))
        .await;
    // A bid far over the market: a post-only buy there would take, so Kraken cancels it.
    broker.quote(Decimal::from(20_000), Decimal::from(20_001));
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let fills = settle(&mut broker).await;
    assert_eq!(
        fills.len(),
        1,
        "{:?} {:?} {:?}",
        rig.store.sent_orders(rig.run_id),
        broker.venue(),
        mock.private_calls()
    );
    let placed = mock.placed_orders();
    let limits: Vec<_> = placed.iter().filter(|o| o.price.is_some()).collect();
    assert_eq!(limits.len(), 1 + REPRICES_FOR_TESTS as usize, "{placed:?}");
    assert!(
        limits
            .iter()
            .all(|o| o.post_only && o.price == Some(Decimal::from(20_000)))
    );
    assert_eq!(placed.len(), limits.len() + 1, "then the rest at market");
    assert_eq!(fills[0].1.qty, Decimal::new(1, 3));
    let journal = rig.store.sent_orders(rig.run_id).unwrap();
    assert_eq!(journal.len(), placed.len(), "each leg journaled before it left");
    assert!(journal.iter().all(|o| o.state == OrderState::Closed), "{journal:?}");
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_limit_order_is_cancelled_after_its_time_under_the_dead_mans_switch() {
    let mock = live_mock(Faults::default(), 1).await;
    let rig = LiveRig::new();
    let mut broker = rig
        .broker_with(&mock, settings(&mock, limit(2, LimitFallback::Skip)))
        .await;
    // A bid far under the market rests, on the tick (0.1), rounded down.
    broker.quote(Decimal::new(500_037, 2), Decimal::from(11_000));
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let fills = settle(&mut broker).await;
    assert!(fills.is_empty(), "nothing filled, the rest given up: {fills:?}");
    let placed = mock.placed_orders();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].price, Some(Decimal::new(50_003, 1)));
    // Armed while it rested, disarmed a moment after it ended.
    let deadline = Instant::now() + Duration::from_secs(30);
    while calls(&mock, "CancelAllOrdersAfter") < 2 {
        assert!(Instant::now() < deadline, "the dead man's switch armed, then disarmed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls(&mock, "CancelOrder") >= 1);
    let venue = broker.venue().unwrap();
    assert_eq!(venue.orders[0].state, "canceled");
    assert_eq!(rig.store.sent_orders(rig.run_id).unwrap()[0].state, OrderState::Closed);
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_cancels_a_resting_order_and_a_halt_cancels_a_resting_entry() {
    let mock = live_mock(Faults::default(), 1).await;
    let rig = LiveRig::new();
    let mut broker = rig
        .broker_with(&mock, settings(&mock, limit(600, LimitFallback::Skip)))
        .await;
    broker.mark(Decimal::from(PRICE));
    broker.quote(Decimal::from(5_000), Decimal::from(11_000));
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.venue().unwrap().orders.first().map(|o| o.state.as_str()) != Some("open") {
        assert!(Instant::now() < deadline, "the order rests");
        broker.poll();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The market falls: today's loss passes 5 % of the day's equity and the entry is cancelled.
    broker.mark(Decimal::from(1_000));
    assert!(broker.venue().unwrap().halted.is_some(), "halted");
    let fills = settle(&mut broker).await;
    assert!(fills.is_empty());
    assert_eq!(mock.placed_orders().len(), 1);
    broker.resume();
    assert!(broker.venue().unwrap().halted.is_none(), "a person's Resume lifts it");
    // Resting again; stopping the run (Ctrl-C) cancels it.
    broker.mark(Decimal::from(PRICE));
    assert!(
        broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(PRICE))
            .is_none()
    );
    broker.quote(Decimal::from(5_000), Decimal::from(30_000));
    assert!(
        broker
            .follow(1, Timestamp::from_secs(180), Decimal::from(PRICE))
            .is_none()
    );
    while mock.placed_orders().len() < 2 {
        assert!(Instant::now() < deadline + Duration::from_secs(30), "the orders rest");
        broker.poll();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| broker.stop());
    let journal = rig.store.sent_orders(rig.run_id).unwrap();
    assert!(journal.iter().all(|o| o.state == OrderState::Closed), "{journal:?}");
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_lost_with_the_authenticated_socket_are_found_over_rest() {
    let faults = Faults {
        // Each authenticated connection drops after a few messages (acks, snapshots, a fill).
        drop_auth_ws_after: Some(5),
        ..Faults::default()
    };
    let mock = mock_holding(faults, 3, Decimal::ZERO).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker(&mock).await;
    broker.mark(Decimal::from(PRICE));
    for (i, change) in [1, -1, 1].into_iter().enumerate() {
        let ts = Timestamp::from_secs(60 * (i as i64 + 1));
        assert!(broker.follow(change, ts, Decimal::from(PRICE)).is_none());
        assert_eq!(settle(&mut broker).await.len(), 1, "order {i} filled");
    }
    assert_eq!(mock.placed_orders().len(), 3);
    assert_eq!(mock.executions().len(), 9, "three partial fills each");
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_between_orders_reaches_the_account_from_the_balances_channel() {
    let mock = mock_holding(Faults::default(), 1, Decimal::ZERO).await;
    let rig = LiveRig::new();
    let mut broker = rig.broker(&mock).await;
    assert_eq!(broker.account().cash(), Decimal::from(10_000));
    // The feed is up once the desk has asked for its token; then a person deposits 500 USD.
    let deadline = Instant::now() + Duration::from_secs(30);
    while calls(&mock, "GetWebSocketsToken") == 0 {
        assert!(Instant::now() < deadline, "the authenticated feed connects");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    mock.deposit("ZUSD", Decimal::from(500));
    while broker.account().cash() != Decimal::from(10_500) {
        assert!(Instant::now() < deadline, "the deposit reaches the account");
        broker.poll();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(broker.venue().unwrap().balances["ZUSD"], Decimal::from(10_500));
    assert!(calls(&mock, "BalanceEx") <= 1, "from the channel, not a REST read");
    mock.shutdown().await;
}

/// `REPRICES` in real.rs.
const REPRICES_FOR_TESTS: u32 = 5;

// ---- client ids committed ahead ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_id_sent_before_a_crash_is_found_at_start_and_the_unsent_ones_are_retired() {
    let mock = mock_holding(Faults::default(), 2, Decimal::ZERO).await;
    let rig = LiveRig::new();
    let crashed = rig.broker(&mock).await;
    // The broker committed a batch of client ids ahead at its start.
    let reserved = rig.store.reserved_client_ids(rig.run_id).unwrap();
    assert_eq!(reserved.len(), nanotrader_store::RESERVE_BATCH);
    // Its first one is sent (as the broker does, with the signed client), then the process dies
    // before the order is recorded: a crash runs no destructor, so nothing is written or retired.
    let nonces = tempfile::tempdir().unwrap();
    let sender = client(&mock, nonces.path());
    let request = OrderRequest {
        pair: "XBTUSD".into(),
        side: nanotrader_market::Side::Buy,
        order_type: OrderType::Market,
        volume: Decimal::new(1, 3),
        cl_ord_id: Some(reserved[0].clone()),
        validate: false,
    };
    assert!(matches!(sender.add_order(&request).await, AddOrderOutcome::Accepted(_)));
    drop(sender);
    std::mem::forget(crashed);
    assert!(rig.store.sent_orders(rig.run_id).unwrap().is_empty(), "never recorded");

    // The next start (its own nonce file: the crashed process never let go of the first).
    let again = tempfile::tempdir().unwrap();
    let broker = rig
        .broker_on(client(&mock, again.path()), settings(&mock, OrderKind::Market))
        .await;
    let placed = mock.placed_orders();
    assert_eq!(placed.len(), 1, "found, never sent again");
    let journal = rig.store.sent_orders(rig.run_id).unwrap();
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0].cl_ord_id, reserved[0]);
    assert_eq!(journal[0].state, OrderState::Closed);
    assert_eq!(journal[0].txid.as_deref(), Some(placed[0].txid.as_str()));
    assert_eq!(
        (journal[0].side, journal[0].volume),
        (nanotrader_market::Side::Buy, Decimal::new(1, 3)),
        "the details as the exchange has them"
    );
    let recorded = rig.store.exchange_fills(rig.run_id).unwrap();
    let executions = mock.executions();
    assert_eq!(executions.len(), 2, "two partial fills");
    assert_eq!(recorded.len(), executions.len(), "{recorded:?}");
    for e in &executions {
        assert!(
            recorded
                .iter()
                .any(|r| r.trade_id == e.trade_id && r.qty == e.qty && r.price == e.price && r.fee == e.fee),
            "trade {} recorded as the exchange reported it",
            e.trade_id
        );
    }
    assert_eq!(
        broker.account().position(),
        mock.balances()["XXBT"],
        "the account is the exchange's"
    );
    // The ones never sent: proven absent, retired, never used.
    for id in &reserved[1..] {
        assert_eq!(rig.store.sent_order(id).unwrap().as_deref(), Some("retired"), "{id}");
    }
    let fresh = rig.store.reserved_client_ids(rig.run_id).unwrap();
    assert_eq!(fresh.len(), nanotrader_store::RESERVE_BATCH, "a fresh batch ahead");
    assert!(fresh.iter().all(|id| !reserved.contains(id)));

    // Its fill is the run's, under a run order id of its own (the one it had was never written).
    let mut broker = broker;
    let found = poll_until(
        &mut broker,
        "the found order's fill",
        |fills, _| !fills.is_empty(),
        &mock,
    )
    .await;
    assert_eq!(
        found.iter().map(|(o, f)| (o.id, f.side, f.qty)).collect::<Vec<_>>(),
        vec![(1, nanotrader_market::Side::Buy, Decimal::new(1, 3))]
    );
    assert_eq!(broker.next_order_id(), 2);
    // It was the entry the run decided last: taken again on the replayed bars, not sent again.
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    assert_eq!(mock.placed_orders().len(), 1);
    // The next order takes a fresh id.
    assert!(
        broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(PRICE))
            .is_none()
    );
    assert_eq!(settle(&mut broker).await.len(), 1);
    let placed = mock.placed_orders();
    assert_eq!(placed.len(), 2);
    let used = placed[1].cl_ord_id.clone().unwrap_or_default();
    assert!(!reserved.contains(&used), "a retired id is never reused");
    assert_eq!(Some(&used), fresh.first());
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validate_broker_retires_the_ids_reserved_for_validations_at_start_and_reserves_its_own() {
    let mock = mock(Faults::default()).await;
    let LiveRig {
        dir,
        lock,
        store,
        run_id,
    } = LiveRig::new();
    // Left by an earlier validate process, and by a live process of the same run.
    let earlier = Store::open(&lock).unwrap();
    earlier.reserve_for_validation();
    let left = earlier.reserve_client_ids(run_id, 3).unwrap();
    std::mem::forget(earlier);
    let live = store.reserve_client_ids(run_id, 1).unwrap();
    let paper = PaperBroker::new(BrokerConfig {
        initial_cash: Decimal::from(1_000),
        fee_rate: Decimal::new(26, 4),
        sizing: Sizing::Fixed(Decimal::new(1, 3)),
        qty_step: Decimal::new(1, 8),
    });
    let mut broker = ValidateBroker::start(
        paper,
        client(&mock, dir.path()),
        Store::open(&lock).unwrap(),
        run_id,
        rules(),
        rails(),
        Duration::from_secs(30),
    );
    for id in &left {
        assert_eq!(store.sent_order(id).unwrap().as_deref(), Some("retired"));
    }
    assert_eq!(
        store.sent_order(&live[0]).unwrap().as_deref(),
        Some("reserved"),
        "a live run's id is left for a live start to look up"
    );
    let ahead = store.reserved_for_validation(run_id).unwrap();
    assert_eq!(ahead.len(), nanotrader_store::RESERVE_BATCH);
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(10_000))
            .is_some()
    );
    let journal = store.sent_orders(run_id).unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].cl_ord_id, ahead[0], "the first id committed ahead");
    assert_eq!(journal[0].state, OrderState::Validated);
    mock.shutdown().await;
}

// ---- the rails ----

fn gate(rails: Rails) -> Gate {
    Gate::new(
        PairRules {
            rest_pair: "XBTUSD".into(),
            lot_decimals: 8,
            ..PairRules::default()
        },
        rails,
    )
}

fn order(side: nanotrader_market::Side, qty: &str, price: i64, day: i64) -> Fill {
    Fill {
        order_id: 1,
        ts: Timestamp::from_secs(day * 86_400 + 3_600),
        side,
        qty: qty.parse().unwrap(),
        price: Decimal::from(price),
        fee: Decimal::ZERO,
        cash_after: Decimal::ZERO,
        position_after: Decimal::ZERO,
        realized_pnl: Decimal::ZERO,
    }
}

#[test]
fn a_position_over_the_limit_is_not_entered() {
    use nanotrader_market::Side::{Buy, Sell};
    let mut rails = Rails::new(Decimal::from(1_000));
    rails.max_position = Some(Decimal::new(2, 3));
    let mut gate = gate(rails);
    let equity = Decimal::from(1_000);
    assert!(
        gate.check(&order(Buy, "0.001", 100, 1), Decimal::new(1, 3), equity)
            .is_ok()
    );
    assert!(matches!(
        gate.check(&order(Buy, "0.002", 100, 1), Decimal::new(1, 3), equity),
        Err(Refused::OverMaxPosition { .. })
    ));
    assert!(
        gate.check(&order(Sell, "0.003", 100, 1), Decimal::new(3, 3), equity)
            .is_ok(),
        "exits always pass"
    );
}

#[test]
fn a_days_loss_halts_entries_until_the_next_utc_day() {
    use nanotrader_market::Side::{Buy, Sell};
    let mut gate = gate(Rails::new(Decimal::from(1_000)));
    let position = Decimal::ZERO;
    // The day starts at 1,000: 5 % is 50.
    assert!(
        gate.check(&order(Buy, "0.001", 100, 1), position, Decimal::from(1_000))
            .is_ok()
    );
    assert!(
        gate.check(&order(Buy, "0.001", 100, 1), position, Decimal::from(960))
            .is_ok()
    );
    let halted = gate.check(&order(Buy, "0.001", 100, 1), position, Decimal::from(950));
    assert_eq!(
        halted.unwrap_err().to_string(),
        "today's loss of 50 reached the daily limit of 50.00: new entries halted until the next UTC day"
    );
    assert!(
        gate.check(&order(Sell, "0.001", 100, 1), position, Decimal::from(940))
            .is_ok(),
        "exits still go"
    );
    // The next UTC day starts from its own equity.
    assert!(
        gate.check(&order(Buy, "0.001", 100, 2), position, Decimal::from(940))
            .is_ok()
    );
    // An explicit limit.
    let mut rails = Rails::new(Decimal::from(1_000));
    rails.max_daily_loss = Some(Decimal::from(10));
    let mut gate = super::Gate::new(
        PairRules {
            rest_pair: "XBTUSD".into(),
            lot_decimals: 8,
            ..PairRules::default()
        },
        rails,
    );
    assert!(
        gate.check(&order(Buy, "0.001", 100, 1), position, Decimal::from(1_000))
            .is_ok()
    );
    assert!(
        gate.check(&order(Buy, "0.001", 100, 1), position, Decimal::from(990))
            .is_err()
    );
}

mod one_thread;
