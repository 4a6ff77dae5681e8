//! `nanotrader backtest`: options -> bars -> one backtest or a sweep -> summary, JSON, fills CSV
//! and HTML report.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thousands::Separable as _;

use crate::app::AppError;
use crate::cli::{BacktestArgs, CacheArg};
use crate::config::{Trading, resolve_trading};
use crate::options::{RunArgs, StrategyKind, StrategyOptions};
use crate::stores::{StoreTarget, open_reader};
use merge::Merge as _;
use nanotrader_backtest::{
    Axis, BacktestResult, BarColumns, CacheMode, ComboResult, DataInfo, Interrupted, Keep, LoadOptions,
    MAX_COMBINATIONS, Settings, SingleSummary, Timings, load_bars, print_json, print_single, print_sweep,
    rank_combinations, run_backtest_on_cores, run_combinations, summarize_single, summarize_sweep, sweep_combinations,
};
use nanotrader_market::{SourceError, Timestamp};
use nanotrader_strategy::StrategyConfig;

/// What was asked: one backtest, or a grid of SMA windows.
enum Plan {
    Single(StrategyConfig),
    Sweep { shorts: Vec<usize>, longs: Vec<usize> },
}

/// `args` as given (flags and environment), over the config file's `file`, its preset and the
/// defaults: the layering of `run`.
pub fn execute(
    mut args: BacktestArgs,
    file: RunArgs,
    data_dir: &Path,
    target: &StoreTarget,
    quiet: bool,
) -> Result<(), AppError> {
    let started = Instant::now();
    args.bars.merge(file.bars);
    args.strategy.merge(file.strategy);
    args.strategy.merge(StrategyOptions::defaults());
    args.broker.merge(file.broker);
    if args.from_store && args.bars.columns.is_some() {
        return Err(AppError::input(
            "--columns is for --data files; a stored series has its own",
        ));
    }
    let (plan, trading) = plan(&args)?;
    let settings = Settings {
        broker: trading.broker.clone(),
        decide_from_bar: trading.decide_from_bar,
        protections: trading.protections.clone(),
    };
    let detail = args.report.is_some() || !matches!(trading.strategy, StrategyConfig::SmaCross { .. });

    let load_started = Instant::now();
    let (bars, info) = load(&args, data_dir, target, detail, quiet)?;
    let load_secs = load_started.elapsed().as_secs_f64();
    let compute_started = Instant::now();
    let result = match plan {
        Plan::Single(strategy) => {
            check_length(&bars, &strategy, &info)?;
            let outcome = run_backtest_on_cores(cores(&args), &bars, &strategy, &settings, keep(&args))
                .map_err(AppError::input)?;
            Ran {
                strategy,
                outcome,
                sweep: None,
            }
        }
        Plan::Sweep { shorts, longs } => run_sweep(&bars, &info, shorts, longs, &settings, &args, quiet)?,
    };
    let timings = Timings {
        load_secs,
        compute_secs: compute_started.elapsed().as_secs_f64(),
        total_secs: started.elapsed().as_secs_f64(),
    };
    // Computed once for every output: the backtest, or a sweep's best combination.
    let single = summarize_single(
        &info,
        &result.strategy,
        &trading,
        &result.outcome,
        &bars,
        &timings,
        &args.pair,
    );
    write_files(&args, &result, &single, &bars)?;
    print_results(&args, &result, single, &timings)?;
    for (what, path) in [("fills", &args.trades), ("report", &args.report)] {
        if let Some(path) = path {
            tracing::info!("{what} written to {}", path.display());
        }
    }
    Ok(())
}

/// The bars of --data or the store, within --since/--until.
fn load(
    args: &BacktestArgs,
    data_dir: &Path,
    target: &StoreTarget,
    detail: bool,
    quiet: bool,
) -> Result<(BarColumns, DataInfo), AppError> {
    let (mut bars, mut info) = match &args.data {
        Some(path) => load_file(path, args, data_dir, detail, quiet)?,
        None => load_store(target, args)?,
    };
    if args.since.is_some() || args.until.is_some() {
        let from = args.since.map_or(i64::MIN, |t| {
            t.millis() + i64::from(t.nanos().rem_euclid(1_000_000) != 0)
        });
        // `--until` is exclusive.
        let to = args.until.map_or(i64::MAX, |t| {
            t.millis() - i64::from(t.nanos().rem_euclid(1_000_000) == 0)
        });
        bars.retain_range(from, to);
        if bars.is_empty() {
            return Err(AppError::input(format!(
                "{}: no bars in the --since/--until range",
                info.source
            )));
        }
    }
    info.fill_from(&bars);
    Ok((bars, info))
}

/// --trades and --report.
fn write_files(args: &BacktestArgs, result: &Ran, single: &SingleSummary, bars: &BarColumns) -> Result<(), AppError> {
    let Ran {
        strategy,
        outcome,
        sweep,
    } = result;
    if let Some(path) = &args.trades {
        write_file(path, |out| match &outcome.fills_csv {
            // Formatted while the books were made.
            Some(rows) => {
                out.write_all(crate::output::FILLS_CSV_HEADER)?;
                out.write_all(rows)
            }
            None => crate::output::write_fills_csv(out, &outcome.fills),
        })?;
    }
    if let Some(path) = &args.report {
        let heatmap = sweep
            .as_ref()
            .map(|s| nanotrader_backtest::sweep_report_data(&s.results, &s.shorts, &s.longs, args.metric, args.top));
        let data = nanotrader_backtest::report_data(bars, strategy, outcome, single, heatmap);
        let html = nanotrader_backtest::render_report(&data);
        write_file(path, |out| out.write_all(html.as_bytes()))?;
    }
    Ok(())
}

/// The summary (or JSON) on stdout, in one write at the end, not one per line.
fn print_results(args: &BacktestArgs, result: &Ran, single: SingleSummary, timings: &Timings) -> Result<(), AppError> {
    let mut stdout = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let printed = match &result.sweep {
        None if args.json => print_json(&mut stdout, &single),
        None => print_single(&mut stdout, &single),
        Some(s) => {
            let sweep = summarize_sweep(&s.results, &s.shorts, &s.longs, args.metric, args.top, single, timings);
            if args.json {
                print_json(&mut stdout, &sweep)
            } else {
                print_sweep(&mut stdout, &sweep)
            }
        }
    };
    printed
        .and_then(|()| stdout.flush())
        .or_else(crate::app::ignore_broken_pipe)
}

/// The backtest shown in full: the one asked for, or a sweep's best combination.
struct Ran {
    strategy: StrategyConfig,
    outcome: BacktestResult,
    sweep: Option<SweepRan>,
}

struct SweepRan {
    /// Best first.
    results: Vec<ComboResult>,
    shorts: Vec<usize>,
    longs: Vec<usize>,
}

/// The cores a single backtest may use: `--threads`, else all of them.
fn cores(args: &BacktestArgs) -> usize {
    args.threads
        .map(|t| t as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Every fill is made and counted; the list is kept only for the outputs that show it.
fn keep(args: &BacktestArgs) -> Keep {
    Keep {
        fills: args.trades.is_some() || args.report.is_some(),
        equity_curve: args.report.is_some(),
        fills_csv: args.trades.is_some(),
    }
}

/// The strategy (or grid) and the broker from the options, with the same rules as `run`.
fn plan(args: &BacktestArgs) -> Result<(Plan, Trading), AppError> {
    let step = args.step.map_or(1, |s| s as usize);
    // Layered with the defaults: both windows are there.
    let shorts = args.strategy.short.as_ref().map(|a| a.values(step)).unwrap_or_default();
    let longs = args.strategy.long.as_ref().map(|a| a.values(step)).unwrap_or_default();
    let is_grid = |axis: &Option<Axis>| axis.as_ref().is_some_and(|a| a.single().is_none());
    let sweep = is_grid(&args.strategy.short) || is_grid(&args.strategy.long);
    if sweep
        && (args.strategy.strategy.is_some_and(|k| k != StrategyKind::SmaCross)
            || args.strategy.strategy_file.is_some())
    {
        return Err(AppError::input(
            "sweeps are over the SMA windows (--short, --long) of --strategy sma-cross, without stops",
        ));
    }
    if !sweep {
        let trading = resolve_trading(&args.strategy, &args.broker)?;
        return Ok((Plan::Single(trading.strategy.clone()), trading));
    }
    // A grid's windows are checked per combination; the rest is checked as for one backtest.
    let placeholder = StrategyOptions {
        short: Some(Axis::List(vec![1])),
        long: Some(Axis::List(vec![2])),
        ..args.strategy.clone()
    };
    let trading = resolve_trading(&placeholder, &args.broker)?;
    Ok((Plan::Sweep { shorts, longs }, trading))
}

fn progress_bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        // Drawn only when stderr is a terminal.
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn load_file(
    path: &Path,
    args: &BacktestArgs,
    data_dir: &Path,
    detail: bool,
    quiet: bool,
) -> Result<(BarColumns, DataInfo), AppError> {
    let opts = LoadOptions {
        interval: args.bars.interval,
        cache: match args.cache {
            CacheArg::Auto => CacheMode::Auto,
            CacheArg::Off => CacheMode::Off,
            CacheArg::Refresh => CacheMode::Refresh,
        },
        cache_dir: Some(nanotrader_backtest::cache_dir(data_dir)),
        cache_max_bytes: args.cache_max_mb.saturating_mul(1 << 20),
        detail,
        columns: args.bars.columns.clone(),
    };
    let progress = progress_bar(
        quiet,
        0,
        "loading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    );
    let loaded = load_bars(path, &opts, &progress).map_err(|e| match e {
        SourceError::Input(m) => AppError::input(m),
        SourceError::Fatal(m) => AppError::runtime(m),
    })?;
    progress.finish_and_clear();
    if let Some(Err(why)) = &loaded.cache_written {
        tracing::warn!("no binary cache: {why}");
    }
    let mut info = DataInfo::new(path.display().to_string(), loaded.path.as_str());
    info.last_line = loaded.last_line;
    Ok((loaded.bars, info))
}

/// The stored series of `--pair` (at `--interval`, or the one with most bars), from SQLite or
/// PostgreSQL alike: the bars stream in (PostgreSQL's in chunks through a small bounded queue)
/// straight into the columns, so a million bars are held once.
fn load_store(target: &StoreTarget, args: &BacktestArgs) -> Result<(BarColumns, DataInfo), AppError> {
    let store = open_reader(target)?;
    let series = store.series_of_pair(&args.pair)?;
    let chosen = series
        .iter()
        .find(|(_, s)| args.bars.interval.is_none_or(|i| i.secs() == s.interval_secs) && s.bars > 0);
    let Some((id, summary)) = chosen else {
        let stored: Vec<String> = series
            .iter()
            .map(|(_, s)| format!("{} bars of {}s", s.bars, s.interval_secs))
            .collect();
        return Err(AppError::input(format!(
            "the store in {} has no {} bars{}{}",
            store.location(),
            args.pair,
            args.bars.interval.map_or(String::new(), |i| format!(" at {i}")),
            if stored.is_empty() {
                " (download some with `nanotrader history --store`)".to_owned()
            } else {
                format!(" (it has {})", stored.join(", "))
            }
        )));
    };
    let interval = nanotrader_market::Interval::from_secs(summary.interval_secs).unwrap_or_default();
    let mut bars = BarColumns::new(interval, true);
    let mut unfit = None;
    let from = args.since.unwrap_or(Timestamp::from_nanos(i64::MIN));
    let to = args.until.map_or(Timestamp::from_nanos(i64::MAX), |t| {
        Timestamp::from_nanos(t.nanos() - 1)
    });
    store.for_each_bar(*id, from, to, &mut |bar| {
        if let Err(field) = bars.push(&bar)
            && unfit.is_none()
        {
            unfit = Some(format!(
                "the stored bar at {} has a {field} with more than 8 decimals",
                bar.ts
            ));
        }
    })?;
    if let Some(m) = unfit {
        return Err(AppError::input(m));
    }
    if bars.is_empty() {
        return Err(AppError::input(format!(
            "the store's {} series {} has no bars in the --since/--until range",
            args.pair, summary.identity
        )));
    }
    let loaded_from = if target.is_postgres() {
        "PostgreSQL store"
    } else {
        "SQLite store"
    };
    let info = DataInfo::new(format!("store {} ({})", args.pair, summary.identity), loaded_from);
    Ok((bars, info))
}

/// Bars a strategy needs before it can signal at all.
fn warm_up_bars(strategy: &StrategyConfig) -> (usize, &'static str) {
    match *strategy {
        StrategyConfig::SmaCross { long, .. } => (long, "long window"),
        StrategyConfig::EmaCross { slow, .. } => (slow, "slow EMA period"),
        StrategyConfig::RsiThreshold { period, .. } => (period + 1, "RSI period (plus one bar)"),
        StrategyConfig::File(ref file) => (file.program().warm_up(), "strategy file's longest indicator"),
        StrategyConfig::WithExits { ref strategy, .. } => warm_up_bars(strategy),
    }
}

fn too_short(info: &DataInfo, bars: usize, needed: usize, what: &str) -> AppError {
    AppError::input(format!(
        "{}: {bars} bars{}, fewer than the {what} of {needed} bars: no signal could ever form",
        info.source,
        info.end_note()
    ))
}

fn check_length(bars: &BarColumns, strategy: &StrategyConfig, info: &DataInfo) -> Result<(), AppError> {
    let (needed, what) = warm_up_bars(strategy);
    if bars.len() < needed {
        return Err(too_short(info, bars.len(), needed, what));
    }
    Ok(())
}

fn run_sweep(
    bars: &BarColumns,
    info: &DataInfo,
    shorts: Vec<usize>,
    longs: Vec<usize>,
    settings: &Settings,
    args: &BacktestArgs,
    quiet: bool,
) -> Result<Ran, AppError> {
    let all = sweep_combinations(&shorts, &longs);
    if all.is_empty() {
        return Err(AppError::input(format!(
            "no combination of --short {} and --long {} has short < long",
            args.strategy.short.as_ref().map_or(String::new(), ToString::to_string),
            args.strategy.long.as_ref().map_or(String::new(), ToString::to_string),
        )));
    }
    if all.len() > MAX_COMBINATIONS {
        return Err(AppError::input(format!(
            "{} combinations are more than the {} a sweep may run: use a --step",
            all.len(),
            MAX_COMBINATIONS
        )));
    }
    let combos: Vec<(usize, usize)> = all.iter().copied().filter(|&(_, long)| long <= bars.len()).collect();
    if combos.is_empty() {
        let shortest = all.iter().map(|c| c.1).min().unwrap_or(0);
        return Err(too_short(info, bars.len(), shortest, "shortest long window"));
    }
    if combos.len() < all.len() {
        tracing::warn!(
            "{} combinations skipped: their long window is longer than the {} bars of data",
            all.len() - combos.len(),
            bars.len()
        );
    }
    let progress = progress_bar(
        quiet,
        combos.len() as u64,
        "sweep   {bar:30} {pos}/{len} combinations ({per_sec}, {eta} left)",
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.map_or(0, |t| t as usize))
        .build()
        .map_err(|e| AppError::runtime(format!("cannot start the sweep's threads: {e}")))?;
    let stop = interrupt_flag()?;
    if !std::io::stderr().is_terminal() {
        // No progress bar off a terminal: one line says the sweep is under way.
        tracing::info!(
            "sweep: {} combinations on {} threads",
            combos.len().separate_with_commas(),
            pool.current_num_threads()
        );
    }
    let swept = pool.install(|| run_combinations(bars, &combos, settings, &progress, &stop));
    progress.finish_and_clear();
    let mut results = swept.map_err(|Interrupted { done }| AppError {
        // 130 = 128 + SIGINT, as a shell reports a process stopped by Ctrl-C.
        code: 130,
        message: format!(
            "interrupted: {} of {} combinations done",
            done.separate_with_commas(),
            combos.len().separate_with_commas()
        ),
    })?;
    rank_combinations(&mut results, args.metric);
    let top = &results[0];
    let strategy = StrategyConfig::SmaCross {
        short: top.short,
        long: top.long,
    };
    let outcome = run_backtest_on_cores(cores(args), bars, &strategy, settings, keep(args)).map_err(AppError::input)?;
    Ok(Ran {
        strategy,
        outcome,
        sweep: Some(SweepRan { results, shorts, longs }),
    })
}

/// Set by the first Ctrl-C (SIGINT), so the sweep stops starting combinations; a second one
/// exits at once. Registered before this returns, so no Ctrl-C after it is missed.
fn interrupt_flag() -> Result<Arc<AtomicBool>, AppError> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupts =
            signal(SignalKind::interrupt()).map_err(|e| AppError::runtime(format!("cannot watch for Ctrl-C: {e}")))?;
        tokio::spawn(async move {
            interrupts.recv().await;
            set.store(true, Ordering::Relaxed);
            interrupts.recv().await;
            std::process::exit(130);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        set.store(true, Ordering::Relaxed);
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
    Ok(flag)
}

fn write_file(
    path: &PathBuf,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), AppError> {
    use std::io::Write;
    let fail = |e: std::io::Error| AppError::input(format!("cannot write {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(fail)?;
    // A trades file of 100,000 fills is 8 MB: a megabyte at a time, not 8 KiB.
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write(&mut out).map_err(fail)?;
    out.flush().map_err(fail)
}
