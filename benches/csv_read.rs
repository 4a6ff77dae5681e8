//! Criterion benchmarks of the two CSV readers on 1 million real bars written in two shapes (the
//! plain `ts,open,high,low,close,volume` with times 17 s off the minute and about 1 % of minutes
//! missing, and pandas' `to_csv` of a DatetimeIndex): the streaming reader that `run` replays
//! through (`CsvReader`, rows as events, one core), and the backtest's parallel loader (rows
//! into fixed-point columns, all cores).
//!
//! `cargo bench --bench csv_read`; figures in BENCHMARKS.md section 8.

use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use indicatif::ProgressBar;
use nanotrader_backtest::{CacheMode, LoadOptions, LoadPath, load_bars};
use nanotrader_market::CsvReader;

const ROWS: usize = 1_000_000;

/// The built-in demo data's rows repeated, 17 s off the minute, every 97th minute left out;
/// `iso` writes times as pandas writes a DatetimeIndex.
fn write_csv(path: &Path, iso: bool) {
    let text = std::str::from_utf8(nanotrader_market::DEMO_DATA).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).map(|l| l.split_once(',').unwrap().1).collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        out,
        "{}",
        if iso {
            ",open,high,low,close,volume"
        } else {
            "ts,open,high,low,close,volume"
        }
    )
    .unwrap();
    let mut t = 1_500_000_017i64;
    for i in 0..ROWS {
        t += if i % 97 == 0 { 120 } else { 60 };
        let row = rows[i % rows.len()];
        if iso {
            let when = chrono::DateTime::from_timestamp(t, 0)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S");
            writeln!(out, "{when},{row}").unwrap();
        } else {
            writeln!(out, "{t},{row}").unwrap();
        }
    }
}

fn files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let plain = dir.join("plain.csv");
    let iso = dir.join("pandas_iso.csv");
    write_csv(&plain, false);
    write_csv(&iso, true);
    vec![("plain_off_minute", plain), ("pandas_iso", iso)]
}

fn readers(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path());
    let mut group = c.benchmark_group("csv_read");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    for (shape, path) in &files {
        group.bench_function(format!("streaming_reader_{shape}"), |b| {
            b.iter(|| {
                let mut reader = CsvReader::open(path, false).unwrap();
                let mut n = 0usize;
                while reader.read_event().unwrap().is_some() {
                    n += 1;
                }
                assert_eq!(n, ROWS);
            })
        });
        let opts = LoadOptions {
            cache: CacheMode::Off,
            detail: true,
            ..LoadOptions::default()
        };
        group.bench_function(format!("parallel_loader_{shape}"), |b| {
            b.iter(|| {
                let loaded = load_bars(path, &opts, &ProgressBar::hidden()).unwrap();
                assert_eq!((loaded.path, loaded.bars.len()), (LoadPath::FastCsv, ROWS));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, readers);
criterion_main!(benches);
