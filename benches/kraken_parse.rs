//! Criterion benchmarks of `kraken::parse::parse_ws` on the ticker and trade fixtures, as
//! compact one-line frames like Kraken sends: messages/s and MB/s.
//!
//! `cargo bench --bench kraken_parse`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nanotrader_kraken::parse::parse_ws;

const FIXTURES: [(&str, &str); 4] = [
    (
        "ticker_btcusd",
        include_str!("../tests/fixtures/kraken/synthetic_btcusd/ws_ticker_snapshot.json"),
    ),
    (
        "ticker_update",
        include_str!("../tests/fixtures/kraken/ws_ticker_update.json"),
    ),
    (
        "trade_btcusd",
        include_str!("../tests/fixtures/kraken/synthetic_btcusd/ws_trade_update.json"),
    ),
    (
        "trade_snapshot_2",
        include_str!("../tests/fixtures/kraken/ws_trade_snapshot.json"),
    ),
];

/// The fixture without the pretty-printing whitespace (outside strings), as on the wire.
fn compact(pretty: &str) -> String {
    let mut out = String::with_capacity(pretty.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in pretty.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

fn bench_parse_ws(c: &mut Criterion) {
    let frames: Vec<(&str, String)> = FIXTURES.iter().map(|(name, text)| (*name, compact(text))).collect();
    for (name, frame) in &frames {
        assert!(parse_ws(frame).is_ok(), "{name} must parse");
    }
    // One group per unit: criterion reports one throughput per benchmark.
    for unit in ["bytes", "messages"] {
        let mut group = c.benchmark_group(format!("parse_ws_{unit}"));
        group
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        for (name, frame) in &frames {
            group.throughput(match unit {
                "bytes" => Throughput::Bytes(frame.len() as u64),
                _ => Throughput::Elements(1),
            });
            group.bench_function(*name, |b| b.iter(|| parse_ws(black_box(frame))));
        }
        group.finish();
    }
}

criterion_group!(benches, bench_parse_ws);
criterion_main!(benches);
