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
    Axis, BacktestResult, BarColumns, CacheMode, ComboResult, DataInfo, GridResult, GridSummary, Interrupted, Keep,
    LoadOptions, MAX_COMBINATIONS, MappedText, ParamAxis, ParamKind, Settings, SingleSummary, StrategyGrid, Timings,
    WalkForward, WalkForwardSummary, load_bars, print_grid, print_json, print_single, print_sweep, print_walk_forward,
    rank_combinations, rank_grid, run_backtest_on_cores, run_combinations, run_grid, run_walk_forward,
    summarize_single, summarize_sweep, sweep_combinations,
};
use nanotrader_market::{SourceError, Timestamp};
use nanotrader_strategy::StrategyConfig;

/// What was asked: one backtest, a grid of SMA windows (its own fast path), or a `--param`
/// grid over any strategy, optionally walked forward.
enum Plan {
    Single(StrategyConfig),
    Sweep {
        shorts: Vec<usize>,
        longs: Vec<usize>,
    },
    Grid {
        grid: Box<StrategyGrid>,
        walk_forward: Option<usize>,
    },
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
    let detail = args.report.is_some()
        || !matches!(trading.strategy, StrategyConfig::SmaCross { .. })
        || matches!(&plan, Plan::Grid { grid, .. } if grid.needs_bar_detail());

    let load_started = Instant::now();
    let (bars, info, text) = load(&args, data_dir, target, detail, quiet)?;
    let load_secs = load_started.elapsed().as_secs_f64();
    let compute_started = Instant::now();
    let mut trades_file = None;
    let result = match plan {
        Plan::Single(strategy) => {
            check_length(&bars, &strategy, &info)?;
            strategy.validate().map_err(AppError::input)?;
            // Nothing can refuse the backtest now: its trades file is made ready meanwhile.
            trades_file = args.trades.clone().and_then(FileAhead::create);
            let outcome = run_backtest_on_cores(cores(&args), &bars, &strategy, &settings, keep(&args))
                .map_err(AppError::input)?;
            Ran {
                strategy,
                outcome,
                sweep: None,
                grid: None,
                walk_forward: None,
            }
        }
        Plan::Sweep { shorts, longs } => run_sweep(&bars, &info, shorts, longs, &settings, &args, quiet)?,
        Plan::Grid { grid, walk_forward } => run_grid_plan(&bars, &info, grid, walk_forward, &settings, &args, quiet)?,
    };
    // The file's map goes now that nothing faults in fresh memory (see `MappedText`): its unmap
    // runs beside the output's writing.
    if let Some(text) = text {
        text.release();
    }
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
    write_files(&args, &result, &single, &bars, trades_file)?;
    print_results(&args, &result, single, &timings)?;
    for (what, path) in [("fills", &args.trades), ("report", &args.report)] {
        if let Some(path) = path {
            tracing::info!("{what} written to {}", path.display());
        }
    }
    Ok(())
}

/// The bars of --data or the store, within --since/--until, and the file's map (to let go once
/// the work is done).
fn load(
    args: &BacktestArgs,
    data_dir: &Path,
    target: &StoreTarget,
    detail: bool,
    quiet: bool,
) -> Result<(BarColumns, DataInfo, Option<MappedText>), AppError> {
    let (mut bars, mut info, text) = match &args.data {
        Some(path) => load_file(path, args, data_dir, detail, quiet)?,
        None => {
            let (bars, info) = load_store(target, args)?;
            (bars, info, None)
        }
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
    Ok((bars, info, text))
}

/// --trades and --report.
fn write_files(
    args: &BacktestArgs,
    result: &Ran,
    single: &SingleSummary,
    bars: &BarColumns,
    trades_file: Option<FileAhead>,
) -> Result<(), AppError> {
    let Ran {
        strategy,
        outcome,
        sweep,
        grid,
        walk_forward,
    } = result;
    if let Some(path) = &args.trades {
        write_file(path, trades_file, |out| match &outcome.fills_csv {
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
        let mut data = nanotrader_backtest::report_data(bars, strategy, outcome, single, heatmap);
        if let Some(g) = grid {
            data.grid = Some(nanotrader_backtest::grid_report_data(
                &g.results,
                &g.axes,
                g.invalid,
                args.metric,
                args.top,
            ));
        }
        if let Some(w) = walk_forward {
            data.walk_forward = Some(nanotrader_backtest::walk_forward_report_data(
                bars,
                &w.walk_forward,
                &single.display,
            ));
        }
        let html = nanotrader_backtest::render_report(&data);
        write_file(path, None, |out| out.write_all(html.as_bytes()))?;
    }
    Ok(())
}

/// The summary (or JSON) on stdout, in one write at the end, not one per line.
fn print_results(args: &BacktestArgs, result: &Ran, single: SingleSummary, timings: &Timings) -> Result<(), AppError> {
    let mut stdout = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let printed = match (&result.sweep, &result.grid, &result.walk_forward) {
        (_, _, Some(w)) => {
            let summary = WalkForwardSummary {
                mode: "walk_forward",
                combinations: w.combinations,
                params: w.axes.clone(),
                walk_forward: w.walk_forward.clone(),
                best: single,
                timings: timings.clone(),
            };
            if args.json {
                print_json(&mut stdout, &summary)
            } else {
                print_walk_forward(&mut stdout, &summary)
            }
        }
        (_, Some(g), None) => {
            let summary = GridSummary {
                mode: "sweep",
                combinations: g.results.len(),
                invalid_combinations: g.invalid,
                metric: args.metric,
                params: g.axes.clone(),
                top: g.results.iter().take(args.top).cloned().collect(),
                best: single,
                timings: timings.clone(),
            };
            if args.json {
                print_json(&mut stdout, &summary)
            } else {
                print_grid(&mut stdout, &summary)
            }
        }
        (None, None, None) if args.json => print_json(&mut stdout, &single),
        (None, None, None) => print_single(&mut stdout, &single),
        (Some(s), None, None) => {
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

/// The backtest shown in full: the one asked for, a sweep's best combination, or the
/// combination a walk-forward chose on its last fold.
struct Ran {
    strategy: StrategyConfig,
    outcome: BacktestResult,
    sweep: Option<SweepRan>,
    grid: Option<GridRan>,
    walk_forward: Option<WalkForwardRan>,
}

struct GridRan {
    /// Best first.
    results: Vec<GridResult>,
    /// Combinations that were no valid strategy.
    invalid: usize,
    axes: Vec<ParamAxis>,
}

struct WalkForwardRan {
    walk_forward: WalkForward,
    combinations: usize,
    axes: Vec<ParamAxis>,
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
        // The report lists the last fills; the trades file needs only their rows.
        rows_only: args.report.is_none(),
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
    let not_sma =
        args.strategy.strategy.is_some_and(|k| k != StrategyKind::SmaCross) || args.strategy.strategy_file.is_some();
    if sweep && not_sma {
        return Err(AppError::input(
            "--short and --long ranges are the windows of --strategy sma-cross; for another strategy write \
             --param NAME=A..B:STEP",
        ));
    }
    let params = Params::split(args.strategy.params.as_deref().unwrap_or_default())?;
    let stops = {
        let s = &args.strategy;
        !params.exits.is_empty()
            || s.stop_loss.is_some()
            || s.take_profit.is_some()
            || s.trailing_stop.is_some()
            || s.max_bars_in_trade.is_some()
            || s.cooldown_bars.is_some()
    };
    // One backtest, or the --short/--long sweep's fast path (no stops: each combination is the
    // SMA kernel alone).
    if params.grids.is_empty() && args.walk_forward.is_none() && !(sweep && stops) {
        let mut options = args.strategy.clone();
        if !params.exits.is_empty() {
            // (A file's parameters are checked as for `run`, with the same messages.)
            params.exits_as_flags(&mut options)?;
            options.params = Some(params.file.clone());
        }
        if !sweep {
            let trading = resolve_trading(&options, &args.broker)?;
            return Ok((Plan::Single(trading.strategy.clone()), trading));
        }
        // A grid's windows are checked per combination; the rest is checked as for one backtest.
        let placeholder = StrategyOptions {
            short: Some(Axis::List(vec![1])),
            long: Some(Axis::List(vec![2])),
            ..options
        };
        let trading = resolve_trading(&placeholder, &args.broker)?;
        return Ok((Plan::Sweep { shorts, longs }, trading));
    }
    // A --param grid (or a walk-forward): every combination compiled from the strategy's file.
    let mut options = args.strategy.clone();
    params.check_names(&options)?;
    params.exits_as_flags(&mut options)?;
    let mut grids = Vec::new();
    if sweep {
        for (name, axis) in [("short", &args.strategy.short), ("long", &args.strategy.long)] {
            if let Some(axis) = axis {
                grids.push((name.to_string(), axis.to_string()));
            }
        }
        options.short = Some(Axis::List(vec![1]));
        options.long = Some(Axis::List(vec![2]));
    }
    grids.extend(params.grids.iter().cloned());
    let (file, mut fixed) = crate::config::strategy_file(&options)?;
    for single in &params.file {
        let (name, value) = single.split_once('=').unwrap_or_default();
        let value = value.trim().parse().map_err(|_| {
            AppError::input(format!(
                "--param takes NAME=VALUE with a number for VALUE, got '{single}'"
            ))
        })?;
        fixed.insert(name.trim().to_string(), value);
    }
    // The base strategy, broker and exits (flags over the file's [exits]), checked as for one
    // backtest, with the file's defaults.
    options.params = Some(Vec::new());
    let trading = resolve_trading(&options, &args.broker)?;
    let exits = match &trading.strategy {
        StrategyConfig::WithExits { exits, .. } => exits.clone(),
        _ => nanotrader_strategy::Exits::default(),
    };
    let grid =
        StrategyGrid::new(file, fixed, exits, trading.decide_from_bar, &grids, step as u64).map_err(AppError::input)?;
    grid.size().map_err(AppError::input)?;
    Ok((
        Plan::Grid {
            grid: Box::new(grid),
            walk_forward: args.walk_forward.map(|n| n as usize),
        },
        trading,
    ))
}

/// `--param` as given: a strategy file's single values (`NAME=V`, today's meaning), the stops
/// and exits given one value (as their flags), and grids (`NAME=A..B:STEP`, `NAME=v1,v2`).
struct Params {
    file: Vec<String>,
    exits: Vec<(String, String)>,
    grids: Vec<(String, String)>,
}

impl Params {
    fn split(given: &[String]) -> Result<Params, AppError> {
        let mut params = Params {
            file: Vec::new(),
            exits: Vec::new(),
            grids: Vec::new(),
        };
        for p in given {
            let Some((name, spec)) = p
                .split_once('=')
                .filter(|(n, s)| !n.trim().is_empty() && !s.trim().is_empty())
            else {
                // Refused where a file's values are read, with `run`'s message.
                params.file.push(p.clone());
                continue;
            };
            let (name, spec) = (name.trim().to_string(), spec.trim().to_string());
            if nanotrader_backtest::is_grid_spec(&spec) {
                params.grids.push((name, spec));
            } else if ParamKind::of_exit(&name).is_some() {
                params.exits.push((name, spec));
            } else {
                params.file.push(p.clone());
            }
        }
        for (name, _) in &params.grids {
            let single = |p: &String| p.split_once('=').is_some_and(|(n, _)| n.trim() == name);
            if params.file.iter().any(single) || params.exits.iter().any(|(n, _)| n == name) {
                return Err(AppError::input(format!(
                    "--param {name} is given twice: give its values once"
                )));
            }
        }
        Ok(params)
    }

    /// Every name is the strategy file's parameter or a stop or exit: else one line listing them.
    fn check_names(&self, options: &StrategyOptions) -> Result<(), AppError> {
        let (file, _) = crate::config::strategy_file(options)?;
        let names = self
            .file
            .iter()
            .map(|p| p.split_once('=').map_or(p.as_str(), |(n, _)| n).trim())
            .chain(self.grids.iter().map(|(n, _)| n.as_str()));
        for name in names {
            if !file.params.contains_key(name) && ParamKind::of_exit(name).is_none() {
                let mut known: Vec<String> = file.params.keys().cloned().collect();
                known.extend(nanotrader_backtest::EXIT_PARAMS.iter().map(|s| s.to_string()));
                return Err(AppError::input(format!(
                    "--param {name}: {} has no such parameter; known: {}",
                    file.name,
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// `--param stop_loss=2%` is `--stop-loss 2%`.
    fn exits_as_flags(&self, options: &mut StrategyOptions) -> Result<(), AppError> {
        for (name, spec) in &self.exits {
            let kind = ParamKind::of_exit(name).unwrap_or(ParamKind::Count);
            let value = nanotrader_backtest::parse_param_values(name, spec, kind, 1).map_err(AppError::input)?;
            let value = value[0];
            use nanotrader_backtest::ParamValue::{Count, Distance};
            match (name.replace('-', "_").as_str(), value) {
                ("stop_loss", Distance(d)) => options.stop_loss = Some(d),
                ("take_profit", Distance(d)) => options.take_profit = Some(d),
                ("trailing_stop", Distance(d)) => options.trailing_stop = Some(d),
                ("max_bars_in_trade", Count(n)) => options.max_bars_in_trade = Some(n),
                (_, Count(n)) => options.cooldown_bars = Some(n),
                _ => unreachable!("the kind follows the name"),
            }
        }
        Ok(())
    }
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
) -> Result<(BarColumns, DataInfo, Option<MappedText>), AppError> {
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
    Ok((loaded.bars, info, loaded.text))
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
    let mut results = swept.map_err(|i| interrupted(i, combos.len()))?;
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
        grid: None,
        walk_forward: None,
    })
}

/// 130 = 128 + SIGINT, as a shell reports a process stopped by Ctrl-C.
fn interrupted(Interrupted { done }: Interrupted, total: usize) -> AppError {
    AppError {
        code: 130,
        message: format!(
            "interrupted: {} of {} combinations done",
            done.separate_with_commas(),
            total.separate_with_commas()
        ),
    }
}

/// A `--param` grid: every combination backtested and ranked, the best run in full; or, with
/// `--walk-forward N`, the grid optimised fold by fold and judged out of sample.
fn run_grid_plan(
    bars: &BarColumns,
    info: &DataInfo,
    grid: Box<StrategyGrid>,
    walk_forward: Option<usize>,
    settings: &Settings,
    args: &BacktestArgs,
    quiet: bool,
) -> Result<Ran, AppError> {
    let combos = grid.combinations().map_err(AppError::input)?;
    let folds = walk_forward.unwrap_or(0);
    if walk_forward.is_some() && bars.len() < folds * 2 {
        return Err(AppError::input(format!(
            "{}: {} bars{}, too few for {folds} walk-forward folds (at least 2 bars a fold)",
            info.source,
            bars.len(),
            info.end_note()
        )));
    }
    let total = combos.len() * folds.saturating_sub(1).max(1);
    let progress = progress_bar(
        quiet,
        total as u64,
        "sweep   {bar:30} {pos}/{len} combinations ({per_sec}, {eta} left)",
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.map_or(0, |t| t as usize))
        .build()
        .map_err(|e| AppError::runtime(format!("cannot start the sweep's threads: {e}")))?;
    let stop = interrupt_flag()?;
    if !std::io::stderr().is_terminal() {
        tracing::info!(
            "sweep: {} combinations{} on {} threads",
            combos.len().separate_with_commas(),
            if folds > 0 {
                format!(" x {} folds", folds - 1)
            } else {
                String::new()
            },
            pool.current_num_threads()
        );
    }
    let axes = grid.axes.clone();
    let (chosen, grid_ran, walk_ran) = match walk_forward {
        None => {
            let run = pool.install(|| run_grid(bars, &grid, &combos, settings, &progress, &stop));
            progress.finish_and_clear();
            let mut run = run.map_err(|i| interrupted(i, total))?;
            if run.results.is_empty() {
                return Err(AppError::input(format!(
                    "no combination of the grid is a valid strategy{}",
                    run.first_invalid.map(|w| format!(": {w}")).unwrap_or_default()
                )));
            }
            if run.invalid > 0 {
                tracing::warn!(
                    "{} combinations skipped: not a valid strategy (the first: {})",
                    run.invalid,
                    run.first_invalid.as_deref().unwrap_or("?")
                );
            }
            rank_grid(&mut run.results, args.metric);
            let chosen = run.results[0].index;
            (
                chosen,
                Some(GridRan {
                    results: run.results,
                    invalid: run.invalid,
                    axes,
                }),
                None,
            )
        }
        Some(n) => {
            let run =
                pool.install(|| run_walk_forward(bars, &grid, &combos, settings, args.metric, n, &progress, &stop));
            progress.finish_and_clear();
            let walk = run.map_err(|i| interrupted(i, total))?.map_err(AppError::input)?;
            let chosen = walk.folds.last().map_or(0, |f| f.index);
            (
                chosen,
                None,
                Some(WalkForwardRan {
                    walk_forward: walk,
                    combinations: combos.len(),
                    axes,
                }),
            )
        }
    };
    let strategy = grid.strategy(&combos[chosen]).map_err(AppError::input)?;
    let outcome = run_backtest_on_cores(cores(args), bars, &strategy, settings, keep(args)).map_err(AppError::input)?;
    Ok(Ran {
        strategy,
        outcome,
        sweep: None,
        grid: grid_ran,
        walk_forward: walk_ran,
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

/// An output file being created (an existing one truncated) on a thread of its own.
/// Truncating the trades file a backtest wrote before takes milliseconds on ext4 (2-5 ms for
/// one of 5 MB: its dirty pages are dropped one by one), as long as writing it anew: started
/// once the backtest cannot be refused any more, it is done by the time the trades are.
struct FileAhead(std::thread::JoinHandle<std::io::Result<std::fs::File>>);

impl FileAhead {
    /// `None` when no thread starts: the file is then created when it is written.
    fn create(path: PathBuf) -> Option<Self> {
        std::thread::Builder::new()
            .name("output-file".into())
            .spawn(move || std::fs::File::create(path))
            .ok()
            .map(Self)
    }

    fn open(self) -> std::io::Result<std::fs::File> {
        self.0
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the thread creating it stopped")))
    }
}

/// Writes `path`, created here unless it was made ready `ahead`.
fn write_file(
    path: &Path,
    ahead: Option<FileAhead>,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), AppError> {
    use std::io::Write;
    let fail = |e: std::io::Error| AppError::input(format!("cannot write {}: {e}", path.display()));
    let file = match ahead {
        Some(ahead) => ahead.open(),
        None => std::fs::File::create(path),
    }
    .map_err(fail)?;
    // A trades file of 100,000 fills is 8 MB: a megabyte at a time, not 8 KiB.
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write(&mut out).map_err(fail)?;
    out.flush().map_err(fail)
}
