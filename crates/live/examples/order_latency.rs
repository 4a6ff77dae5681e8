//! BENCHMARKS.md section 10 (issue 18, point 9): from a decision (the engine calling the broker
//! at a bar's close) to the AddOrder request's first bytes on the wire, over loopback against
//! the mock exchange. A TCP relay in front of the mock notes when each AddOrder request's first
//! bytes reach it; the decision time is taken just before `follow`. Also the journal's commit
//! alone (the durable write that must come before an order leaves).
//!
//! `cargo run --release -p nanotrader-live --example order_latency [ORDERS]`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nanotrader_broker::{Broker, BrokerConfig, PaperBroker, Sizing};
use nanotrader_kraken::private::{Credentials, NonceSource, PrivateClient, Tier};
use nanotrader_kraken_mock::{Limits, MockConfig, MockKraken, PrivateConfig};
use nanotrader_live::{PairRules, Rails, ValidateBroker};
use nanotrader_market::{Interval, Side, Timestamp};
use nanotrader_store::{DataDirLock, NewRun, OrderState, SentOrder, Store};
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "mock-api-key";
const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

/// Relays loopback TCP to `target`, noting when each AddOrder request's first bytes arrive.
async fn relay(target: String, seen: Arc<Mutex<Vec<Instant>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let mut server = TcpStream::connect(&target).await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        if buf[..n].starts_with(b"POST /0/private/AddOrder") {
                            seen.lock().unwrap().push(Instant::now());
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let orders: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(150);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/btcusd_trades_kraken_20190701.csv"
    );
    let mut config = MockConfig::new(data);
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = Decimal::from(1_000_000);
    account.btc = Decimal::from(100);
    // The trading counter is the exchange's business, not this measurement's.
    account.limits = Limits {
        trading_max: 1e9,
        ..Limits::tier(nanotrader_kraken_mock::Tier::Pro)
    };
    config.private = Some(account);
    let mock = MockKraken::start(config).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let target = mock.rest_url().trim_start_matches("http://").to_owned();
    let url = relay(target, seen.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let lock = DataDirLock::acquire(dir.path()).unwrap();
    let store = Store::open(&lock).unwrap();
    let series = store
        .series_id("kraken:BTC/USD", "BTC/USD", Interval::ONE_MINUTE)
        .unwrap();
    let run = store
        .create_run(&NewRun {
            run_key: "bench",
            series_id: series,
            config: "{}",
            source_params: "{}",
            initial_cash: Decimal::from(1_000_000),
        })
        .unwrap();
    let credentials = Credentials::new(KEY, SECRET).unwrap();
    let nonces = NonceSource::open(dir.path().join(NonceSource::file_name(&credentials))).unwrap();
    let client = PrivateClient::new(&url, credentials, nonces, Tier::Pro, Duration::from_secs(10)).unwrap();
    let paper = PaperBroker::new(BrokerConfig {
        initial_cash: Decimal::from(1_000_000),
        fee_rate: Decimal::ZERO,
        sizing: Sizing::Fixed(Decimal::new(1, 3)),
        qty_step: Decimal::new(1, 8),
    });
    let mut rails = Rails::new(Decimal::from(1_000_000));
    rails.max_orders_per_hour = u32::MAX;
    let rules = PairRules {
        rest_pair: "XBTUSD".into(),
        lot_decimals: 8,
        ordermin: None,
        ..PairRules::default()
    };
    let mut broker = ValidateBroker::start(
        paper,
        client,
        Store::open(&lock).unwrap(),
        run.id,
        rules,
        rails,
        Duration::from_secs(30),
    );

    // Warm: the connection open, the statements prepared.
    let price = Decimal::from(10_749);
    let mut change = 1;
    for _ in 0..10 {
        broker.follow(change, Timestamp::from_secs(60), price);
        change = -change;
    }
    let mut wire = Vec::with_capacity(orders);
    for i in 0..orders {
        let before = seen.lock().unwrap().len();
        let decided = Instant::now();
        broker
            .follow(change, Timestamp::from_secs(120 + i as i64), price)
            .expect("validated");
        change = -change;
        let sent = seen.lock().unwrap()[before];
        wire.push(sent - decided);
    }
    // The journal's commit alone (synchronous=FULL: one fsync of the WAL).
    let mut commits = Vec::with_capacity(orders);
    for i in 0..orders {
        let t = Instant::now();
        store
            .journal_order(&SentOrder {
                cl_ord_id: format!("bench-{i}"),
                run_id: run.id,
                order_id: 1_000_000 + i as u64,
                ts: Timestamp::from_secs(60),
                side: Side::Buy,
                volume: Decimal::new(1, 3),
                validate: true,
                state: OrderState::Sending,
                txid: None,
                detail: None,
            })
            .unwrap();
        commits.push(t.elapsed());
    }
    wire.sort();
    commits.sort();
    println!("orders: {orders}");
    println!(
        "decision -> AddOrder bytes on the wire: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&wire, 0.5),
        percentile(&wire, 0.99),
        wire[wire.len() - 1]
    );
    println!(
        "of which the journal's commit alone: p50 {:?}, p99 {:?}",
        percentile(&commits, 0.5),
        percentile(&commits, 0.99)
    );
    mock.shutdown().await;
}
