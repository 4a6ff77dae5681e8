//! Publishes simulated days of market data to NATS JetStream as `nanotrader feed` does (each
//! trade, then each closed one-minute bar made of them, every message acknowledged by the stream
//! before the next), for bench/feed_soak.sh (BENCHMARKS.md section 14: ten bots through 24-hour
//! days, their memory sampled). Deterministic: day D is always the same, so a day published
//! twice is dropped by the stream as duplicates.
//!
//! `cargo run --release -p nanotrader-bus --example feed_day -- STREAM PREFIX FIRST_DAY DAYS [TRADES_PER_BAR]`
//! `DAYS` 0 only makes the stream (so bots can subscribe before the first bar), `-1` deletes it. Needs
//! nats-server with JetStream at 127.0.0.1:4222 (or NANOTRADER_NATS_URL).

use std::time::{Duration, Instant};

use nanotrader_bus::{FeedPublisher, StreamSettings};
use nanotrader_market::{Bar, Side, Timestamp, Trade};
use rust_decimal::Decimal;

/// 2026-01-01 00:00 UTC: the first simulated day.
const FIRST_DAY_SECS: i64 = 1_767_225_600;
const MINUTES_PER_DAY: i64 = 1_440;

/// A small deterministic generator (SplitMix64): the same trades for the same day every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One minute's trades: a random walk in cents around the day's price, sizes in 1e-8 BTC.
fn minute(rng: &mut Rng, cents: &mut i64, start_ms: i64, trades: usize) -> (Vec<Trade>, Bar) {
    let mut out = Vec::with_capacity(trades);
    for i in 0..trades {
        // A slow swing (hours) plus noise, so crossovers and RSI thresholds are met during a day.
        let step = rng.below(2_001) as i64 - 1_000;
        *cents = (*cents + step).clamp(1_000_000, 10_000_000);
        let ms = start_ms + (i as i64 * 60_000) / trades as i64 + rng.below(50) as i64;
        out.push(Trade {
            ts: Timestamp::from_millis(ms),
            price: Decimal::new(*cents, 2),
            size: Decimal::new(1 + rng.below(50_000_000) as i64, 8),
            side: Some(if rng.below(2) == 0 { Side::Buy } else { Side::Sell }),
        });
    }
    let first = &out[0];
    let mut bar = Bar {
        ts: Timestamp::from_millis(start_ms),
        open: first.price,
        high: first.price,
        low: first.price,
        close: first.price,
        volume: Decimal::ZERO,
        trades: out.len() as u32,
    };
    for t in &out {
        bar.high = bar.high.max(t.price);
        bar.low = bar.low.min(t.price);
        bar.close = t.price;
        bar.volume += t.size;
    }
    (out, bar)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: feed_day STREAM PREFIX FIRST_DAY DAYS [TRADES_PER_BAR]");
        std::process::exit(2);
    }
    let number = |i: usize, what: &str| -> i64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("feed_day: {what} must be a whole number, got '{}'", args[i]);
            std::process::exit(2);
        })
    };
    let (first_day, days) = (number(2, "FIRST_DAY"), number(3, "DAYS"));
    let trades_per_bar = if args.len() > 4 {
        number(4, "TRADES_PER_BAR")
    } else {
        10
    }
    .max(1) as usize;
    let url = std::env::var("NANOTRADER_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    if days < 0 {
        let deleted = match async_nats::connect(&url).await {
            Ok(client) => async_nats::jetstream::new(client).delete_stream(&args[0]).await.is_ok(),
            Err(_) => false,
        };
        println!("stream {} deleted: {deleted}", args[0]);
        return;
    }
    let settings = StreamSettings {
        name: args[0].clone(),
        prefix: args[1].clone(),
        ..StreamSettings::default()
    };
    let mut publisher = match FeedPublisher::connect(&url, "kraken", &settings).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("feed_day: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let (mut bars, mut trades) = (0u64, 0u64);
    for day in first_day..first_day + days {
        let mut rng = Rng(day as u64 + 1);
        let mut cents = 3_000_000 + (day % 7) * 100_000;
        let day_ms = (FIRST_DAY_SECS + day * 86_400) * 1_000;
        for m in 0..MINUTES_PER_DAY {
            let (tape, bar) = minute(&mut rng, &mut cents, day_ms + m * 60_000, trades_per_bar);
            for t in &tape {
                if let Err(e) = publisher.publish_trade("BTC/USD", t).await {
                    eprintln!("feed_day: {e}");
                    std::process::exit(1);
                }
            }
            if let Err(e) = publisher.publish_bar("BTC/USD", &bar, 60).await {
                eprintln!("feed_day: {e}");
                std::process::exit(1);
            }
            bars += 1;
            trades += tape.len() as u64;
        }
    }
    let secs = started.elapsed().max(Duration::from_micros(1)).as_secs_f64();
    println!(
        "published {bars} bars and {trades} trades (days {first_day}..{}) in {secs:.1} s",
        first_day + days
    );
}
