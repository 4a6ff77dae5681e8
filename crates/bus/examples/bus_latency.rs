//! BENCHMARKS.md section 11 (issue 19, point 6): one feed to ten bots over NATS JetStream on
//! loopback. Latency: bars published at a steady 200 a second, each timed from just before its
//! publish to its arrival as a `MarketEvent::Bar` at each bot's source (where the engine's
//! decision follows). Throughput: bars published back to back (each acknowledged by the stream
//! before the next, as the feed does), and the time until every bot has them all.
//!
//! `cargo run --release -p nanotrader-bus --example bus_latency [BOTS] [BARS]`
//! Needs nats-server with JetStream at 127.0.0.1:4222 (or NANOTRADER_NATS_URL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nanotrader_bus::{FeedPublisher, NatsSource, NatsSourceConfig, StreamSettings};
use nanotrader_market::{Bar, Interval, MarketEvent, Source, Timestamp};
use rust_decimal::Decimal;

fn bar(i: i64) -> Bar {
    let price = Decimal::from(30_000 + i % 100);
    Bar {
        ts: Timestamp::from_secs(1_700_000_000 + i * 60),
        open: price,
        high: price,
        low: price,
        close: price,
        volume: Decimal::new(12_345, 4),
        trades: 7,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bots: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let bars: i64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let url = std::env::var("NANOTRADER_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let tag = format!("bench{}", Timestamp::now().nanos());
    let settings = StreamSettings {
        name: format!("BENCH_{tag}"),
        prefix: tag,
        ..StreamSettings::default()
    };
    let publisher = FeedPublisher::connect(&url, "kraken", &settings).await.unwrap();
    let published: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(usize, i64, Instant)>();
    for bot in 0..bots {
        let mut source = NatsSource::open(NatsSourceConfig {
            url: url.clone(),
            stream: settings.name.clone(),
            prefix: settings.prefix.clone(),
            exchange: "kraken".into(),
            pair: "BTC/USD".into(),
            interval: Interval::ONE_MINUTE,
            after: None,
            since: None,
        })
        .await
        .unwrap();
        let arrived_tx = arrived_tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(event)) = source.next_event().await {
                if let MarketEvent::Bar(bar) = event
                    && arrived_tx.send((bot, bar.ts.nanos(), Instant::now())).is_err()
                {
                    return;
                }
            }
        });
    }
    drop(arrived_tx);
    // Let every consumer subscribe before the first bar.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Latency at a steady pace.
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    for i in 0..bars {
        pace.tick().await;
        let b = bar(i);
        published.lock().unwrap().insert(b.ts.nanos(), Instant::now());
        publisher.publish_bar("BTC/USD", &b, 60).await.unwrap();
    }
    let mut latencies = Vec::with_capacity(bars as usize * bots);
    while latencies.len() < bars as usize * bots {
        let (_, ts, at) = tokio::time::timeout(Duration::from_secs(30), arrived.recv())
            .await
            .expect("every bot gets every bar")
            .unwrap();
        let sent = published.lock().unwrap()[&ts];
        latencies.push(at - sent);
    }
    latencies.sort();
    println!(
        "{bots} bots, {bars} bars at 200/s: publish -> each bot's source p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );

    // Throughput: back to back, each stored before the next.
    let burst = bars * 5;
    let started = Instant::now();
    for i in bars..bars + burst {
        publisher.publish_bar("BTC/USD", &bar(i), 60).await.unwrap();
    }
    let published_in = started.elapsed();
    let mut got = 0;
    while got < burst as usize * bots {
        tokio::time::timeout(Duration::from_secs(60), arrived.recv())
            .await
            .expect("every bot gets the burst")
            .unwrap();
        got += 1;
    }
    let delivered_in = started.elapsed();
    println!(
        "burst of {burst} bars: published (each acknowledged) in {:.3} s = {:.0} bars/s; all {bots} bots had them all after {:.3} s = {:.0} bar deliveries/s",
        published_in.as_secs_f64(),
        burst as f64 / published_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
        (burst as usize * bots) as f64 / delivered_in.as_secs_f64()
    );
    let client = async_nats::connect(&url).await.unwrap();
    let _ = async_nats::jetstream::new(client).delete_stream(&settings.name).await;
}
