//! The validate broker against the mock exchange over loopback, with a real store.

use std::path::Path;

use nanotrader_broker::{BrokerConfig, Sizing};
use nanotrader_kraken::private::{Credentials, NonceSource, Tier};
use nanotrader_kraken_mock::{Faults, MockConfig, MockKraken, PrivateConfig};
use nanotrader_market::Interval;
use nanotrader_store::{DataDirLock, NewRun};

use super::*;

const KEY: &str = "mock-api-key";
/// Kraken's published example secret (64 bytes, base64).
const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/btcusd_trades_kraken_20190701.csv"
);

async fn mock(faults: Faults) -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = MockConfig::new(DATA);
    config.speed = 1.0;
    config.faults = faults;
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = Decimal::from(10_000);
    // Kraken checks a validated order against the balances too: enough of both to sell.
    account.btc = Decimal::new(5, 1);
    config.private = Some(account);
    MockKraken::start(config).await.expect("the mock starts")
}

struct Rig {
    _dir: tempfile::TempDir,
    _lock: DataDirLock,
    store: Store,
    broker: ValidateBroker,
}

fn rig(mock: &MockKraken, rails: Rails) -> Rig {
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
            initial_cash: Decimal::from(1_000),
        })
        .unwrap();
    let client = client(mock, dir.path());
    let paper = PaperBroker::new(BrokerConfig {
        initial_cash: Decimal::from(1_000),
        fee_rate: Decimal::new(26, 4),
        sizing: Sizing::Fixed(Decimal::new(1, 3)),
        qty_step: Decimal::new(1, 8),
    });
    let rules = PairRules {
        rest_pair: "XBTUSD".into(),
        lot_decimals: 8,
        ordermin: Some(Decimal::new(1, 4)),
    };
    let journal = Store::open(&lock).unwrap();
    let broker = ValidateBroker::start(paper, client, journal, run.id, rules, rails, Duration::from_secs(30));
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

fn rails() -> Rails {
    Rails {
        max_order_value: Decimal::from(100),
        max_orders_per_hour: 30,
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
async fn an_order_past_a_rail_or_under_the_minimum_is_not_sent() {
    let mock = mock(Faults::default()).await;
    let small = Rails {
        max_order_value: Decimal::from(5),
        max_orders_per_hour: 30,
    };
    let mut rig = rig(&mock, small);
    // 0.001 BTC at 10,000 is 10 USD, over the 5 USD rail.
    assert!(
        rig.broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(10_000))
            .is_none()
    );
    assert_eq!(rig.broker.account().position(), Decimal::ZERO, "nothing filled");
    // At 10 USD a BTC, 0.001 BTC passes the rail; at 1 USD it is 0.001 USD... still above the
    // minimum volume, so the next refusal comes from the hourly rail.
    let mut rig2 = rig_with_hourly(&mock, 1);
    assert!(
        rig2.broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(10))
            .is_some()
    );
    assert!(
        rig2.broker
            .follow(-1, Timestamp::from_secs(120), Decimal::from(10))
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
