//! Criterion benchmarks of batch mode: the SMA crossover backtest over 10 million in-memory
//! bars on one core, loading 1 million bars from CSV and from the binary cache, and a
//! 1,000-combination sweep over 1 million bars on all cores.
//!
//! `cargo bench --bench backtest`; figures in BENCHMARKS.md (with `bench/backtest_compare.sh`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use indicatif::ProgressBar;
use nanotrader_backtest::BarColumns;
use nanotrader_backtest::{CacheKey, cache_dir, cache_path, read_cache};
use nanotrader_backtest::{CacheMode, LoadOptions};
use nanotrader_backtest::{
    DEFAULT_CACHE_MAX_BYTES, Keep, LoadPath, Settings, load_bars, run_backtest, run_combinations, sweep_combinations,
};

use nanotrader_broker::BrokerConfig;
use nanotrader_market::Interval;
use nanotrader_strategy::StrategyConfig;

/// Real bars: the built-in demo data's rows, repeated with timestamps moved on.
fn real_rows() -> Vec<String> {
    let text = std::str::from_utf8(nanotrader_market::DEMO_DATA).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap().1.to_owned())
        .collect()
}

fn write_csv(path: &Path, n: usize) {
    let rows = real_rows();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "ts,open,high,low,close,volume").unwrap();
    for i in 0..n {
        writeln!(out, "{},{}", 1_500_000_000 + 60 * i as i64, rows[i % rows.len()]).unwrap();
    }
}

/// `n` in-memory bars: the first `n` of `NANOTRADER_BENCH_BARS` (a bars CSV, e.g. the
/// comparison script's bench/out/bars_10m.csv) when set, else the built-in data repeated.
fn columns(n: usize) -> BarColumns {
    if let Some(path) = std::env::var_os("NANOTRADER_BENCH_BARS") {
        let opts = LoadOptions {
            interval: None,
            cache: CacheMode::Off,
            detail: false,
            ..LoadOptions::default()
        };
        let mut bars = load_bars(Path::new(&path), &opts, &ProgressBar::hidden()).unwrap().bars;
        assert!(
            bars.len() >= n,
            "{} holds fewer than {n} bars",
            Path::new(&path).display()
        );
        bars.ts.to_mut().truncate(n);
        bars.close.to_mut().truncate(n);
        return bars;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars.csv");
    write_csv(&path, n.min(100_000));
    let opts = LoadOptions {
        interval: None,
        cache: CacheMode::Off,
        detail: false,
        ..LoadOptions::default()
    };
    let base = load_bars(&path, &opts, &ProgressBar::hidden()).unwrap().bars;
    let mut bars = BarColumns::new(Interval::ONE_MINUTE, false);
    bars.ts = (0..n as i64).map(|i| (1_500_000_000 + 60 * i) * 1000).collect();
    bars.close = (0..n).map(|i| base.close[i % base.len()]).collect();
    bars
}

fn seed_settings() -> Settings {
    Settings {
        broker: BrokerConfig::seed(),
        decide_from_bar: 22,
        protections: Default::default(),
    }
}

fn backtest_10m(c: &mut Criterion) {
    let bars = columns(10_000_000);
    let strategy = StrategyConfig::SmaCross { short: 10, long: 20 };
    let mut group = c.benchmark_group("backtest");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(bars.len() as u64));
    for (name, settings) in [
        ("sma_cross_10m_bars_seed", seed_settings()),
        (
            "sma_cross_10m_bars_fees",
            Settings {
                broker: BrokerConfig::default(),
                decide_from_bar: 1,
                protections: Default::default(),
            },
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| run_backtest(&bars, &strategy, &settings, Keep::default()).unwrap())
        });
    }
    group.finish();
}

fn loading_1m(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars_1m.csv");
    write_csv(&path, 1_000_000);
    let hidden = ProgressBar::hidden();
    // As `nanotrader backtest` without --report: every field checked, times and closes kept.
    let csv_only = LoadOptions {
        interval: None,
        cache: CacheMode::Off,
        cache_dir: Some(dir.path().join("cache")),
        cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
        detail: false,
        columns: None,
    };
    let with_cache = LoadOptions {
        cache: CacheMode::Auto,
        ..csv_only.clone()
    };
    let strategy = StrategyConfig::SmaCross { short: 10, long: 20 };
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("csv_to_trades_1m_bars", |b| {
        b.iter(|| {
            let bars = load_bars(&path, &csv_only, &hidden).unwrap().bars;
            run_backtest(
                &bars,
                &strategy,
                &seed_settings(),
                Keep {
                    fills: true,
                    ..Keep::default()
                },
            )
            .unwrap()
        })
    });
    load_bars(&path, &with_cache, &hidden).unwrap();
    let key = CacheKey::of(&path, None, None).unwrap();
    let cached = cache_path(&cache_dir(dir.path()), &key);
    assert!(read_cache(&cached, key, false).unwrap().is_some());
    group.bench_function("cache_to_trades_1m_bars", |b| {
        b.iter(|| {
            let loaded = load_bars(&path, &with_cache, &hidden).unwrap();
            assert_eq!(loaded.path, LoadPath::Cache);
            run_backtest(
                &loaded.bars,
                &strategy,
                &seed_settings(),
                Keep {
                    fills: true,
                    ..Keep::default()
                },
            )
            .unwrap()
        })
    });
    group.finish();
}

fn sweep_1000(c: &mut Criterion) {
    let bars = columns(1_000_000);
    // The comparison script's grid: 10 x 100 = 1,000 combinations.
    let shorts: Vec<usize> = (5..=50).step_by(5).collect();
    let longs: Vec<usize> = (52..=250).step_by(2).collect();
    let combos = sweep_combinations(&shorts, &longs);
    let settings = Settings {
        broker: BrokerConfig::default(),
        decide_from_bar: 1,
        protections: Default::default(),
    };
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10).measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements((combos.len() * bars.len()) as u64));
    group.bench_function(format!("sma_grid_{}_combos_1m_bars", combos.len()), |b| {
        let never = std::sync::atomic::AtomicBool::new(false);
        b.iter(|| run_combinations(&bars, &combos, &settings, &ProgressBar::hidden(), &never))
    });
    group.finish();
}

criterion_group!(benches, backtest_10m, loading_1m, sweep_1000);
criterion_main!(benches);
