//! Against the real NATS server with JetStream (127.0.0.1:4222, or NANOTRADER_NATS_URL): each
//! test has a stream and subject prefix of its own. Skipped with a loud message when no server
//! answers, unless NANOTRADER_REQUIRE_NATS=1 (CI) makes that a failure.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nanotrader_market::{Bar, Interval, MarketEvent, Source, Timestamp, Trade};
use rust_decimal::Decimal;

use super::*;

fn nats_url() -> String {
    std::env::var("NANOTRADER_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// The server's URL, or `None` (said loudly) when none answers and none is required.
async fn server() -> Option<String> {
    let url = nats_url();
    match connect(&url).await {
        Ok(_) => Some(url),
        Err(e) if std::env::var("NANOTRADER_REQUIRE_NATS").as_deref() == Ok("1") => {
            panic!("NANOTRADER_REQUIRE_NATS=1 but {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no NATS server ({e}); set NANOTRADER_REQUIRE_NATS=1 to require one");
            None
        }
    }
}

/// A stream and prefix no other test (or run) uses.
fn settings() -> StreamSettings {
    static N: AtomicU32 = AtomicU32::new(0);
    let tag = format!(
        "t{}x{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        Timestamp::now().nanos()
    );
    StreamSettings {
        name: format!("TEST_{tag}"),
        prefix: tag,
        max_age: Duration::from_secs(600),
        ..StreamSettings::default()
    }
}

async fn drop_stream(url: &str, name: &str) {
    let js = async_nats::jetstream::new(connect(url).await.unwrap());
    let _ = js.delete_stream(name).await;
}

fn bar(minute: i64, close: i64) -> Bar {
    let price = Decimal::from(close);
    Bar {
        ts: Timestamp::from_secs(1_700_000_000 + 17 + minute * 60),
        open: price,
        high: price + Decimal::new(5, 1),
        low: price - Decimal::new(25, 2),
        close: price,
        volume: Decimal::new(123_456_789, 8),
        trades: 3,
    }
}

fn source_config(url: &str, settings: &StreamSettings, after: Option<Timestamp>) -> NatsSourceConfig {
    NatsSourceConfig {
        url: url.to_owned(),
        stream: settings.name.clone(),
        prefix: settings.prefix.clone(),
        exchange: "kraken".into(),
        pair: "BTC/USD".into(),
        interval: Interval::ONE_MINUTE,
        after,
        since: None,
    }
}

/// The next `n` bars the source yields (statuses skipped), waiting as long as they take.
async fn bars(source: &mut impl Source, n: usize) -> Vec<Bar> {
    let mut out = Vec::new();
    while out.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(30), source.next_event())
            .await
            .expect("the next bar comes")
            .expect("no source error")
            .expect("the source goes on");
        if let MarketEvent::Bar(bar) = event {
            out.push(bar);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_published_twice_are_stored_once_and_read_back_exactly_in_order() {
    let Some(url) = server().await else { return };
    let settings = settings();
    let first = FeedPublisher::connect(&url, "kraken", &settings).await.unwrap();
    // A second feed for redundancy, publishing the same bars.
    let second = FeedPublisher::connect(&url, "kraken", &settings).await.unwrap();
    assert_eq!(first.last_bar("BTC/USD", 60).await.unwrap(), None);
    let published: Vec<Bar> = (0..5).map(|m| bar(m, 30_000 + m)).collect();
    for b in &published {
        assert!(first.publish_bar("BTC/USD", b, 60).await.unwrap(), "stored");
        assert!(!second.publish_bar("BTC/USD", b, 60).await.unwrap(), "a duplicate");
    }
    assert_eq!(first.last_bar("BTC/USD", 60).await.unwrap(), Some(published[4]));
    let mut source = NatsSource::open(source_config(&url, &settings, None)).await.unwrap();
    assert_eq!(bars(&mut source, 5).await, published, "every bar once, exactly");
    // Live: a bar published now reaches the consumer.
    let next = bar(5, 30_005);
    first.publish_bar("BTC/USD", &next, 60).await.unwrap();
    assert_eq!(bars(&mut source, 1).await, vec![next]);
    drop(source);
    // A restarted bot goes on after its last stored bar.
    let mut resumed = NatsSource::open(source_config(&url, &settings, Some(published[2].ts)))
        .await
        .unwrap();
    assert_eq!(bars(&mut resumed, 3).await, vec![published[3], published[4], next]);
    // A new bot with --since starts at that time (by the bars' own times).
    let mut since = source_config(&url, &settings, None);
    since.since = Some(published[4].ts);
    let mut late = NatsSource::open(since).await.unwrap();
    assert_eq!(bars(&mut late, 2).await, vec![published[4], next]);
    drop_stream(&url, &settings.name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_trades_get_their_own_ids_and_a_second_feed_adds_nothing() {
    let Some(url) = server().await else { return };
    let settings = settings();
    let mut first = FeedPublisher::connect(&url, "kraken", &settings).await.unwrap();
    let mut second = FeedPublisher::connect(&url, "kraken", &settings).await.unwrap();
    let trade = Trade {
        ts: Timestamp::from_secs(1_700_000_000),
        price: Decimal::from(30_000),
        size: Decimal::new(1, 3),
        side: None,
    };
    // The tape has the same trade twice: both are stored, each once.
    assert!(first.publish_trade("BTC/USD", &trade).await.unwrap());
    assert!(first.publish_trade("BTC/USD", &trade).await.unwrap());
    assert!(!second.publish_trade("BTC/USD", &trade).await.unwrap());
    assert!(!second.publish_trade("BTC/USD", &trade).await.unwrap());
    let js = async_nats::jetstream::new(connect(&url).await.unwrap());
    let mut stream = js.get_stream(&settings.name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    drop_stream(&url, &settings.name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_or_server_is_one_clear_error() {
    let Some(url) = server().await else { return };
    let settings = settings();
    let missing = NatsSource::open(source_config(&url, &settings, None)).await;
    let error = missing.err().expect("no such stream").to_string();
    assert!(
        error.contains(&settings.name) && error.contains("nanotrader feed"),
        "{error}"
    );
    let nowhere = connect("nats://127.0.0.1:1")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        nowhere
            .to_string()
            .starts_with("cannot reach NATS at nats://127.0.0.1:1"),
        "{nowhere}"
    );
}

#[test]
fn subjects_name_exchange_pair_and_kind() {
    assert_eq!(trade_subject("md", "kraken", "BTC/USD"), "md.kraken.BTC-USD.trade");
    assert_eq!(bar_subject("md", "kraken", "ETH/USD", 60), "md.kraken.ETH-USD.bar.60");
    assert_eq!(pair_token("A.B C/D*"), "A_B_C-D_");
}
