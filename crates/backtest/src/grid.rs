//! Parameter grids over any strategy: `--param NAME=A..B:STEP` (or `NAME=v1,v2,v3`) for a
//! strategy file's parameters and for the stops and exits, their cartesian product, and every
//! combination backtested in parallel and ranked.
//!
//! Ranges are exact decimals: the k-th value is `A + k x STEP` (a product, not a running sum),
//! so `0.1..0.3:0.1` is 0.1, 0.2, 0.3 and never 0.30000000000000004.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;
use rayon::prelude::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use super::columns::BarColumns;
use super::simulate::{self, Keep, Settings};
use super::sweep::{Interrupted, MAX_COMBINATIONS, RankBy};
use nanotrader_perf::Performance;
use nanotrader_strategy::{Distance, Exits, StrategyConfig, StrategyFile};

/// The stops and exits a grid may vary, by the name `--param` takes (the flag's name with `_`).
pub const EXIT_PARAMS: [&str; 5] = [
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "max_bars_in_trade",
    "cooldown_bars",
];

/// What a parameter's values are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A strategy file's parameter: any decimal number.
    Number,
    /// A stop or target: `2%` or `3xatr`.
    Distance,
    /// A count of bars.
    Count,
}

impl ParamKind {
    /// The kind of an exit parameter's name (`stop_loss` or `stop-loss`), `None` for others.
    pub fn of_exit(name: &str) -> Option<ParamKind> {
        match name.replace('-', "_").as_str() {
            "stop_loss" | "take_profit" | "trailing_stop" => Some(ParamKind::Distance),
            "max_bars_in_trade" | "cooldown_bars" => Some(ParamKind::Count),
            _ => None,
        }
    }
}

/// One value of a parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    Number(Decimal),
    Distance(Distance),
    Count(u64),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Number(d) => write!(f, "{}", d.normalize()),
            ParamValue::Distance(Distance::Percent(p)) => write!(f, "{}%", p.normalize()),
            ParamValue::Distance(Distance::Atr(k)) => write!(f, "{}xatr", k.normalize()),
            ParamValue::Count(n) => write!(f, "{n}"),
        }
    }
}

/// Whether `spec` asks for more than one value (a list or a range).
pub fn is_grid_spec(spec: &str) -> bool {
    spec.contains("..") || spec.contains(',')
}

/// The values of `NAME=SPEC`: `V`, `v1,v2,v3` or `A..B:STEP` (inclusive; without `:STEP`,
/// `default_step`). Distances carry their unit on each end: `1%..4%:0.5%`, `2xatr..4xatr:1`.
pub fn parse_values(name: &str, spec: &str, kind: ParamKind, default_step: u64) -> Result<Vec<ParamValue>, String> {
    let spec = spec.trim();
    let usage = match kind {
        ParamKind::Number => "NAME=10, NAME=5,10,20 or NAME=5..50:5",
        ParamKind::Distance => "NAME=2%, NAME=1%,2%,3xatr or NAME=1%..4%:0.5%",
        ParamKind::Count => "NAME=10, NAME=5,10,20 or NAME=5..50:5 (whole bars)",
    };
    let bad = |why: &str| format!("--param {name}={spec}: {why}; write {usage}");
    let Some((from, rest)) = spec.split_once("..") else {
        return spec
            .split(',')
            .map(|one| one_value(one, kind).map_err(|why| bad(&why)))
            .collect();
    };
    let (to, step) = match rest.split_once(':') {
        Some((to, step)) => (to, Some(step)),
        None => (rest, None),
    };
    let (unit, from_number) = split_unit(from, kind).map_err(|why| bad(&why))?;
    let (to_unit, to_number) = split_unit(to, kind).map_err(|why| bad(&why))?;
    if unit != to_unit {
        return Err(bad("both ends of a range take the same unit"));
    }
    let step_number = match step {
        Some(step) => {
            let (step_unit, n) = split_unit(step, kind).map_err(|why| bad(&why))?;
            if !step_unit.is_empty() && step_unit != unit {
                return Err(bad("the step takes the range's unit"));
            }
            n
        }
        None => Decimal::from(default_step),
    };
    if step_number <= Decimal::ZERO {
        return Err(bad("the step must be above 0"));
    }
    if from_number > to_number {
        return Err(bad("the range runs backwards"));
    }
    let count = ((to_number - from_number) / step_number).floor();
    if count >= Decimal::from(MAX_COMBINATIONS) {
        return Err(bad(&format!("more than {MAX_COMBINATIONS} values")));
    }
    let count = count.to_u64().unwrap_or(0);
    (0..=count)
        .map(|k| {
            let value = from_number + Decimal::from(k) * step_number;
            one_value(&format!("{value}{unit}"), kind).map_err(|why| bad(&why))
        })
        .collect()
}

/// A value's number and its unit (`%`, `xatr` or nothing).
fn split_unit(text: &str, kind: ParamKind) -> Result<(&'static str, Decimal), String> {
    let t = text.trim().to_ascii_lowercase();
    let (unit, number) = match kind {
        ParamKind::Distance if t.ends_with('%') => ("%", &t[..t.len() - 1]),
        ParamKind::Distance if t.ends_with("xatr") => ("xatr", &t[..t.len() - 4]),
        _ => ("", t.as_str()),
    };
    let number = number
        .trim()
        .parse::<Decimal>()
        .map_err(|_| format!("'{}' is not a number", text.trim()))?;
    Ok((unit, number))
}

fn one_value(text: &str, kind: ParamKind) -> Result<ParamValue, String> {
    let text = text.trim();
    match kind {
        ParamKind::Number => text
            .parse::<Decimal>()
            .map(ParamValue::Number)
            .map_err(|_| format!("'{text}' is not a number")),
        ParamKind::Distance => text.parse::<Distance>().map(ParamValue::Distance),
        ParamKind::Count => text
            .parse::<u64>()
            .map(ParamValue::Count)
            .map_err(|_| format!("'{text}' is not a whole number of bars")),
    }
}

/// One parameter's values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamAxis {
    pub name: String,
    #[serde(serialize_with = "as_texts")]
    pub values: Vec<ParamValue>,
}

fn as_texts<S: serde::Serializer>(values: &[ParamValue], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(ToString::to_string))
}

/// A strategy file with some of its parameters and exits varied: every combination of the
/// axes' values is one strategy.
#[derive(Clone, Debug)]
pub struct StrategyGrid {
    file: StrategyFile,
    /// The file's parameters given one value (`--param NAME=V`).
    fixed: BTreeMap<String, Decimal>,
    /// The stops and exits not varied (flags over the file's `[exits]`).
    exits: Exits,
    /// The first deciding bar, which stops' entries wait for too.
    decide_from_bar: u64,
    /// The built-in strategy the file is with its defaults (sma-cross, ...), if it is one: a
    /// combination that breaks its rule (short >= long) is then not run, as the SMA sweep skips it.
    builtin: Option<StrategyConfig>,
    pub axes: Vec<ParamAxis>,
}

/// One combination: a value for each axis, in the axes' order.
#[derive(Clone, Debug, PartialEq)]
pub struct Combination(pub Vec<ParamValue>);

impl StrategyGrid {
    /// `axes` named by `(name, spec)` as given; a name is a file parameter, else one of
    /// `EXIT_PARAMS`; anything else is one line listing the names known.
    pub fn new(
        file: StrategyFile,
        fixed: BTreeMap<String, Decimal>,
        exits: Exits,
        decide_from_bar: u64,
        specs: &[(String, String)],
        default_step: u64,
    ) -> Result<StrategyGrid, String> {
        let mut axes: Vec<ParamAxis> = Vec::new();
        for (name, spec) in specs {
            let name = name.trim();
            let (name, kind) = if file.params.contains_key(name) {
                (name.to_string(), ParamKind::Number)
            } else if let Some(kind) = ParamKind::of_exit(name) {
                (name.replace('-', "_"), kind)
            } else {
                let mut known: Vec<String> = file.params.keys().cloned().collect();
                known.extend(EXIT_PARAMS.iter().map(|s| s.to_string()));
                return Err(format!(
                    "--param {name}: {} has no such parameter; known: {}",
                    file.name,
                    known.join(", ")
                ));
            };
            if axes.iter().any(|a| a.name == name) {
                return Err(format!("--param {name} is given twice: give its values once"));
            }
            let values = parse_values(&name, spec, kind, default_step)?;
            axes.push(ParamAxis { name, values });
        }
        let builtin = file.compile(&fixed).ok().and_then(|c| c.as_builtin());
        Ok(StrategyGrid {
            file,
            fixed,
            exits,
            decide_from_bar,
            builtin,
            axes,
        })
    }

    /// How many combinations the axes make, if at most `MAX_COMBINATIONS`.
    pub fn size(&self) -> Result<usize, String> {
        let mut n: usize = 1;
        for axis in &self.axes {
            n = n.saturating_mul(axis.values.len());
        }
        if n > MAX_COMBINATIONS {
            let sizes: Vec<String> = self
                .axes
                .iter()
                .map(|a| format!("{} {}", a.values.len(), a.name))
                .collect();
            return Err(format!(
                "the grid makes {n} combinations ({}), more than the {MAX_COMBINATIONS} a sweep may run: use larger steps",
                sizes.join(" x ")
            ));
        }
        Ok(n)
    }

    /// Every combination, the last axis varying fastest.
    pub fn combinations(&self) -> Result<Vec<Combination>, String> {
        let n = self.size()?;
        let mut all = Vec::with_capacity(n);
        for mut k in 0..n {
            let mut values = vec![ParamValue::Count(0); self.axes.len()];
            for (slot, axis) in values.iter_mut().zip(&self.axes).rev() {
                *slot = axis.values[k % axis.values.len()];
                k /= axis.values.len();
            }
            all.push(Combination(values));
        }
        Ok(all)
    }

    /// `short=10 long=30 stop_loss=2%`.
    pub fn label(&self, combo: &Combination) -> String {
        if self.axes.is_empty() {
            return "as given".to_owned();
        }
        self.named(combo)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn named<'a>(&'a self, combo: &'a Combination) -> impl Iterator<Item = (&'a str, ParamValue)> + 'a {
        self.axes.iter().zip(&combo.0).map(|(a, v)| (a.name.as_str(), *v))
    }

    /// The strategy of a combination, or why it is not a valid one (e.g. short >= long).
    pub fn strategy(&self, combo: &Combination) -> Result<StrategyConfig, String> {
        let mut params = self.fixed.clone();
        let mut exits = self.exits.clone();
        for (name, value) in self.named(combo) {
            match value {
                ParamValue::Number(d) => {
                    params.insert(name.to_string(), d);
                }
                ParamValue::Distance(d) => match name {
                    "stop_loss" => exits.stop_loss = Some(d),
                    "take_profit" => exits.take_profit = Some(d),
                    _ => exits.trailing_stop = Some(d),
                },
                ParamValue::Count(n) => match name {
                    "max_bars_in_trade" => exits.max_bars_in_trade = Some(n),
                    _ => exits.cooldown_bars = Some(n),
                },
            }
        }
        let compiled = self.file.compile(&params).map_err(|e| e.to_string())?;
        let strategy = match (compiled.as_builtin(), &self.builtin) {
            (Some(builtin), _) => builtin,
            (None, Some(_)) => {
                return Err(format!(
                    "{} is no valid {} (a built-in keeps its rule: short < long, fast < slow, \
                     0 < oversold < overbought < 100)",
                    self.label(combo),
                    self.file.name
                ));
            }
            (None, None) => StrategyConfig::File(compiled),
        };
        strategy.validate().map_err(|e| e.to_string())?;
        exits.validate()?;
        Ok(if exits.is_empty() {
            strategy
        } else {
            StrategyConfig::WithExits {
                strategy: Box::new(strategy),
                exits,
                decide_from_bar: self.decide_from_bar,
            }
        })
    }

    /// Whether a backtest of the grid reads more of a bar than its close: anything but the SMA
    /// crossover without stops (whose kernel reads the closes alone).
    pub fn needs_bar_detail(&self) -> bool {
        let exits_vary = self.axes.iter().any(|a| ParamKind::of_exit(&a.name).is_some());
        !(matches!(self.builtin, Some(StrategyConfig::SmaCross { .. })) && self.exits.is_empty() && !exits_vary)
    }

    /// The same grid trading from another first bar (a walk-forward's out-of-sample part).
    pub fn deciding_from(&self, decide_from_bar: u64) -> StrategyGrid {
        StrategyGrid {
            decide_from_bar,
            ..self.clone()
        }
    }
}

/// One combination's backtest.
#[derive(Clone, Debug, Serialize)]
pub struct GridResult {
    /// The combination's index in `StrategyGrid::combinations`.
    #[serde(skip)]
    pub index: usize,
    /// `short=10 long=30 stop_loss=2%`.
    pub label: String,
    /// Each parameter's value, as written (`"2%"`, `"0.1"`).
    #[serde(serialize_with = "ordered_map")]
    pub params: Vec<(String, String)>,
    pub performance: Performance,
    #[serde(with = "rust_decimal::serde::str")]
    pub end_equity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub fees_paid: Decimal,
}

/// A JSON object in the axes' order.
fn ordered_map<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// What a grid's run gave: the valid combinations' results, in the grid's order, and how many
/// were not valid strategies (with the first reason).
#[derive(Clone, Debug)]
pub struct GridRun {
    pub results: Vec<GridResult>,
    pub invalid: usize,
    pub first_invalid: Option<String>,
}

/// Backtests every combination in parallel over `bars`; an invalid one (short >= long, ...) is
/// counted, not run. Once `stop` is set no combination starts, and those running finish.
pub fn run(
    bars: &BarColumns,
    grid: &StrategyGrid,
    combos: &[Combination],
    settings: &Settings,
    progress: &ProgressBar,
    stop: &AtomicBool,
) -> Result<GridRun, Interrupted> {
    let outcomes: Vec<Option<Result<GridResult, String>>> = combos
        .par_iter()
        .enumerate()
        .map(|(index, combo)| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let result = grid.strategy(combo).and_then(|strategy| {
                let outcome = simulate::run(bars, &strategy, settings, Keep::default()).map_err(|e| e.to_string())?;
                Ok(GridResult {
                    index,
                    label: grid.label(combo),
                    params: grid.named(combo).map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                    performance: outcome.performance,
                    end_equity: outcome.account.equity(),
                    fees_paid: outcome.account.fees_paid(),
                })
            });
            progress.inc(1);
            Some(result)
        })
        .collect();
    let done = outcomes.iter().flatten().count();
    if done < combos.len() {
        return Err(Interrupted { done });
    }
    let mut run = GridRun {
        results: Vec::with_capacity(done),
        invalid: 0,
        first_invalid: None,
    };
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Ok(result) => run.results.push(result),
            Err(why) => {
                run.invalid += 1;
                run.first_invalid.get_or_insert(why);
            }
        }
    }
    Ok(run)
}

/// Best first by `metric`; undefined values last; ties by return, then by the grid's order.
pub fn rank(results: &mut [GridResult], metric: RankBy) {
    results.sort_by(|a, b| {
        let (sa, sb) = (metric.score(&a.performance), metric.score(&b.performance));
        let by_metric = match (sa, sb) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_metric
            .then(b.performance.return_pct.total_cmp(&a.performance.return_pct))
            .then(a.index.cmp(&b.index))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(values: &[ParamValue]) -> Vec<String> {
        values.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn decimal_ranges_are_exact() {
        let number = |s| texts(&parse_values("x", s, ParamKind::Number, 1).unwrap());
        assert_eq!(number("0.1..0.3:0.1"), ["0.1", "0.2", "0.3"]);
        assert_eq!(number("5..8"), ["5", "6", "7", "8"]);
        assert_eq!(number("5..21:5"), ["5", "10", "15", "20"]);
        assert_eq!(number("1,2.5,3"), ["1", "2.5", "3"]);
        assert_eq!(number("7"), ["7"]);
        // A third has no exact decimal: the values stay on the steps and stop before the end.
        assert_eq!(number("0..1:0.3").len(), 4);
        let distance = |s| texts(&parse_values("stop_loss", s, ParamKind::Distance, 1).unwrap());
        assert_eq!(distance("1%..2.5%:0.5%"), ["1%", "1.5%", "2%", "2.5%"]);
        assert_eq!(distance("1%..2%:0.5"), ["1%", "1.5%", "2%"]);
        assert_eq!(distance("2xatr..3xatr:0.5xatr"), ["2xatr", "2.5xatr", "3xatr"]);
        assert_eq!(distance("1%,3xatr"), ["1%", "3xatr"]);
        let count = |s| texts(&parse_values("cooldown_bars", s, ParamKind::Count, 2).unwrap());
        assert_eq!(count("0..6"), ["0", "2", "4", "6"]);
    }

    #[test]
    fn bad_specs_are_one_line() {
        for (kind, spec) in [
            (ParamKind::Number, "x"),
            (ParamKind::Number, "5..1"),
            (ParamKind::Number, "1..5:0"),
            (ParamKind::Number, "1..5:-1"),
            (ParamKind::Number, "1..9999999"),
            (ParamKind::Number, "1.."),
            (ParamKind::Distance, "1%..4xatr"),
            (ParamKind::Distance, "1..4"),
            (ParamKind::Distance, "1%..4%:1xatr"),
            (ParamKind::Distance, "0%..2%:1%"),
            (ParamKind::Count, "1.5"),
            (ParamKind::Count, "1..3:0.5"),
        ] {
            let e = parse_values("p", spec, kind, 1).unwrap_err();
            assert!(
                !e.contains('\n') && e.starts_with(&format!("--param p={spec}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn the_product_varies_the_last_axis_fastest_and_names_each_value() {
        let file = StrategyFile::builtin("sma-cross").unwrap();
        let specs = [
            ("short".to_string(), "5,10".to_string()),
            ("stop-loss".to_string(), "1%..2%:1%".to_string()),
        ];
        let grid = StrategyGrid::new(file, BTreeMap::new(), Exits::default(), 1, &specs, 1).unwrap();
        let combos = grid.combinations().unwrap();
        let labels: Vec<String> = combos.iter().map(|c| grid.label(c)).collect();
        assert_eq!(
            labels,
            [
                "short=5 stop_loss=1%",
                "short=5 stop_loss=2%",
                "short=10 stop_loss=1%",
                "short=10 stop_loss=2%"
            ]
        );
        let StrategyConfig::WithExits { strategy, exits, .. } = grid.strategy(&combos[3]).unwrap() else {
            panic!("a stop makes exits")
        };
        assert_eq!(*strategy, StrategyConfig::SmaCross { short: 10, long: 20 });
        assert_eq!(exits.stop_loss, Some(Distance::Percent(Decimal::TWO)));

        // A built-in's rule holds: short >= long is no sma-cross (the SMA sweep skips it too).
        let reversed = StrategyGrid::new(
            StrategyFile::builtin("sma-cross").unwrap(),
            BTreeMap::new(),
            Exits::default(),
            1,
            &[("short".to_string(), "19,20".to_string())],
            1,
        )
        .unwrap();
        let both = reversed.combinations().unwrap();
        assert_eq!(
            reversed.strategy(&both[0]).unwrap(),
            StrategyConfig::SmaCross { short: 19, long: 20 }
        );
        let e = reversed.strategy(&both[1]).unwrap_err();
        assert!(e.starts_with("short=20 is no valid sma-cross"), "{e}");
        assert!(!reversed.needs_bar_detail() && grid.needs_bar_detail());

        let unknown = StrategyGrid::new(
            StrategyFile::builtin("sma-cross").unwrap(),
            BTreeMap::new(),
            Exits::default(),
            1,
            &[("shrot".to_string(), "1..3".to_string())],
            1,
        )
        .unwrap_err();
        assert_eq!(
            unknown,
            "--param shrot: sma-cross has no such parameter; known: long, short, stop_loss, take_profit, \
             trailing_stop, max_bars_in_trade, cooldown_bars"
        );
    }
}
