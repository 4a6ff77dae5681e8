//! Fuzz targets: one function per parser of outside input, driving the real entry points on
//! arbitrary bytes. None may panic, whatever the input; a bad input must come back as an error
//! value. Used by the cargo-fuzz targets in `fuzz/` and replayed by `tests/fuzz_corpus.rs` on
//! the seed corpus and every crash found so far (`fuzz/seeds/`, `fuzz/regressions/`).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::ProgressBar;
use rust_decimal::Decimal;

use crate::config::{self, Mode, SourceSpec};
use nanotrader_backtest::{CacheMode, LoadOptions, load_bars, read_with_engine_reader};
use nanotrader_kraken::parse::{self, WsMessage};
use nanotrader_market::{Bar, CsvReader, MarketEvent, Trade};

/// Kraken WebSocket v2 frames: `parse_ws` on the text (the socket only hands over text frames).
pub fn kraken_ws(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = parse::parse_ws(text) else {
        return;
    };
    match &message {
        WsMessage::Trades { trades, .. } => trades.iter().for_each(|t| check_trade(&t.trade)),
        WsMessage::Ohlc { bars, .. } => bars.iter().for_each(|b| check_price_bar(&b.bar)),
        WsMessage::Ticker { last, bid, ask, .. } => {
            assert!(
                is_positive(*last) && is_positive(*bid) && is_positive(*ask),
                "{message:?}"
            );
        }
        _ => {}
    }
}

/// Kraken REST answers: every public parser on the same body.
pub fn kraken_rest(data: &[u8]) {
    let _ = parse::parse_time(data);
    let _ = parse::parse_system_status(data);
    let _ = parse::parse_asset_pairs(data);
    if let Ok(tickers) = parse::parse_ticker(data) {
        for t in tickers {
            assert!(is_positive(t.last) && is_positive(t.bid) && is_positive(t.ask), "{t:?}");
        }
    }
    if let Ok(page) = parse::parse_ohlc(data) {
        page.bars.iter().for_each(check_price_bar);
    }
    if let Ok(page) = parse::parse_trades(data) {
        page.trades.iter().for_each(|t| check_trade(&t.trade));
    }
}

/// CSV market data: the engine's streaming reader (`run --data`, replay), in both bad-row
/// modes, then the backtest loader (parallel reader, gzip) on the same bytes in a file. The
/// loader and the streaming reader must agree: the very same bars, or the very same error.
pub fn csv_loader(data: &[u8]) {
    for skip_bad_rows in [false, true] {
        read_all_events(data, skip_bad_rows);
    }
    let file = TempFile::new(data);
    let opts = LoadOptions {
        interval: None,
        cache: CacheMode::Off,
        detail: true,
        ..LoadOptions::default()
    };
    let hidden = ProgressBar::hidden();
    let loaded = load_bars(file.path(), &opts, &hidden);
    if let Ok(loaded) = &loaded {
        assert!(!loaded.bars.is_empty());
        assert!(loaded.bars.ts.windows(2).all(|w| w[0] < w[1]), "bars out of order");
    }
    let name = file.path().display().to_string();
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    let general = read_with_engine_reader(
        file.path(),
        &name,
        gzip,
        None,
        &nanotrader_market::CsvOptions::default(),
        &hidden,
    );
    match (loaded, general) {
        (Ok(fast), Ok(general)) => assert_eq!(fast.bars, general.0, "the loader and the streaming reader disagree"),
        (Err(fast), Err(general)) => assert_eq!(fast.to_string(), general.to_string(), "different errors"),
        (Ok(_), Err(e)) => panic!("the loader took a file the streaming reader refuses: {e}"),
        (Err(e), Ok(_)) => panic!("the loader refused a file the streaming reader takes: {e}"),
    }
}

/// The `--config` TOML file, then resolved as `run` and `demo` resolve it (every value checked).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = config::parse_file_config(text, "fuzz.toml") else {
        return;
    };
    let data_dir = file.data_dir.unwrap_or_else(|| PathBuf::from("fuzz-data"));
    let _ = config::resolve_trading(&file.run.strategy, &file.run.broker);
    for mode in [Mode::Run, Mode::Demo] {
        let args = file.run.clone();
        let Ok(cfg) = config::resolve(args, data_dir.clone(), mode) else {
            continue;
        };
        // Zero periods would panic later, in the engine's and the sources' timers.
        assert!(!cfg.engine.status_every.is_zero());
        match cfg.source {
            SourceSpec::KrakenRest { poll_every, .. } => assert!(!poll_every.is_zero()),
            SourceSpec::Kraken { feed_timeout, .. } => assert!(!feed_timeout.is_zero()),
            _ => {}
        }
    }
}

fn read_all_events(data: &[u8], skip_bad_rows: bool) {
    let Ok(mut reader) = CsvReader::from_reader("fuzz.csv", Cursor::new(data.to_vec()), skip_bad_rows) else {
        return;
    };
    let mut prev = None;
    while let Ok(Some(event)) = reader.read_event() {
        match &event {
            MarketEvent::Bar(bar) => {
                check_price_bar(bar);
                assert!(bar.low <= bar.open && bar.open <= bar.high, "{bar:?}");
                assert!(bar.low <= bar.close && bar.close <= bar.high, "{bar:?}");
            }
            MarketEvent::Trade(trade) => check_trade(trade),
            _ => {}
        }
        let ts = event.ts();
        assert!(prev <= ts, "events out of order: {prev:?} then {ts:?}");
        prev = ts;
    }
}

fn is_positive(d: Decimal) -> bool {
    d.is_sign_positive() && !d.is_zero()
}

/// A trade that reaches the engine has a positive price and size.
fn check_trade(trade: &Trade) {
    assert!(is_positive(trade.price) && is_positive(trade.size), "{trade:?}");
}

/// A bar that reaches the engine has positive prices and no negative volume.
fn check_price_bar(bar: &Bar) {
    for p in [bar.open, bar.high, bar.low, bar.close] {
        assert!(is_positive(p), "{bar:?}");
    }
    assert!(bar.volume.is_sign_positive() || bar.volume.is_zero(), "{bar:?}");
}

/// A file holding one input, removed when dropped; unique per process and call, so tests
/// running in parallel threads do not share one.
struct TempFile(PathBuf);

impl TempFile {
    fn new(data: &[u8]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("nanotrader-fuzz-{}-{n}.csv", std::process::id()));
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        TempFile(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
