//! Criterion benchmarks of the engine's per-bar cost, with and without the SQLite store, at
//! several history lengths (the cost per bar must not grow with history).
//!
//! `cargo bench --bench pipeline`; figures in BENCHMARKS.md.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nanotrader_broker::{BrokerConfig, PaperBroker};
use nanotrader_engine::{Bus, Engine, EngineConfig, EngineOutputs, Metrics, ResumeState, STORE_QUEUE_BATCHES};
use nanotrader_market::BarAggregator;
use nanotrader_market::{Bar, Interval, MarketEvent, Source, SourceError, SourceInfo, Timestamp};
use nanotrader_store::{DataDirLock, NewRun, Store, StoreCmd, StoreWriter};
use nanotrader_strategy::StrategyConfig;
use rust_decimal::Decimal;
use tokio::sync::{mpsc, watch};

/// Real bars: the built-in demo data, repeated with timestamps moved on.
fn real_bars(n: usize) -> Vec<Bar> {
    let text = std::str::from_utf8(nanotrader_market::DEMO_DATA).unwrap();
    let rows: Vec<Vec<Decimal>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(1).take(5).map(|f| f.parse().unwrap()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let r = &rows[i % rows.len()];
            Bar {
                ts: Timestamp::from_secs(1_500_000_000 + 60 * i as i64),
                open: r[0],
                high: r[1],
                low: r[2],
                close: r[3],
                volume: r[4],
                trades: 0,
            }
        })
        .collect()
}

struct VecSource {
    info: SourceInfo,
    bars: std::vec::IntoIter<Bar>,
}

impl Source for VecSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        Ok(self.bars.next().map(MarketEvent::Bar))
    }
}

fn source(bars: Vec<Bar>) -> VecSource {
    let info = SourceInfo {
        kind: "bench",
        identity: "bench".into(),
        pair: "BTC/USD".into(),
        finite: true,
        bar_interval: Some(Interval::ONE_MINUTE),
    };
    VecSource {
        info,
        bars: bars.into_iter(),
    }
}

/// Runs `bars` through a fresh engine; with `store`, into a real SQLite file via the writer thread.
fn run_engine(rt: &tokio::runtime::Runtime, bars: Vec<Bar>, store_dir: Option<&std::path::Path>) {
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(STORE_QUEUE_BATCHES);
        let metrics = Arc::new(Metrics::default());
        let bus = Bus::new();
        let writer = match store_dir {
            Some(dir) => {
                let store = Store::open(&DataDirLock::acquire(dir).unwrap()).unwrap();
                let series = store.series_id("bench", "BTC/USD", Interval::ONE_MINUTE).unwrap();
                let run = store
                    .create_run(&NewRun {
                        run_key: "bench",
                        series_id: series,
                        config: "{}",
                        source_params: "{}",
                        initial_cash: Decimal::from(100_000),
                    })
                    .unwrap();
                let hooks = nanotrader_engine::writer_hooks(bus.events.clone(), metrics.clone());
                Some(StoreWriter::spawn(store.path(), run.id, series, rx, hooks).unwrap())
            }
            None => {
                // Drain the queue and answer Finish, doing nothing else: the engine alone.
                tokio::spawn(async move {
                    while let Some(cmd) = rx.recv().await {
                        if let StoreCmd::Finish { done, .. } = cmd {
                            let _ = done.send(());
                        }
                    }
                });
                None
            }
        };
        let strategy = StrategyConfig::default().build().unwrap();
        let outputs = EngineOutputs {
            bus,
            store: tx,
            metrics,
        };
        let mut engine = Engine::new(
            EngineConfig::default(),
            BarAggregator::new(Interval::ONE_MINUTE, Some(Interval::ONE_MINUTE)),
            strategy,
            PaperBroker::new(BrokerConfig::default()),
            ResumeState::default(),
            outputs,
        );
        let (_stop, stop_rx) = watch::channel(false);
        engine.run(&mut source(bars), stop_rx).await.unwrap();
        drop(engine);
        if let Some(w) = writer {
            w.join().unwrap();
        }
    });
}

fn bench_pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("replay_bars");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for n in [1_000usize, 100_000, 1_000_000] {
        let bars = real_bars(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("engine", n), &bars, |b, bars| {
            b.iter(|| run_engine(&rt, bars.clone(), None))
        });
        group.bench_with_input(BenchmarkId::new("engine+sqlite", n), &bars, |b, bars| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |dir| run_engine(&rt, bars.clone(), Some(dir.path())),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
