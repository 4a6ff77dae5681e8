use std::collections::BTreeMap;

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::{BUILTIN_FILES, FileStrategyConfig, StrategyFile, program};
use crate::{Signal, Strategy as _, StrategyConfig};
use nanotrader_market::{Bar, Timestamp};

fn bar(i: usize, close: Decimal, spread: Decimal, volume: Decimal) -> Bar {
    Bar {
        ts: Timestamp::from_secs(60 * i as i64),
        open: close - spread / Decimal::TWO,
        high: close + spread,
        low: close - spread,
        close,
        volume,
        trades: 1,
    }
}

/// A walk with rises, falls, flat stretches and zero volumes.
fn walk(n: usize, seed: u64) -> Vec<Bar> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut price = Decimal::from(10_000);
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let step = Decimal::new(((x >> 33) % 2001) as i64 - 1000, 2);
            if !(x >> 20).is_multiple_of(7) {
                price = (price + step).max(Decimal::ONE);
            }
            let spread = Decimal::new(((x >> 40) % 500) as i64, 2);
            let volume = Decimal::new(((x >> 45) % 4) as i64 * 37, 1);
            bar(i, price, spread, volume)
        })
        .collect()
}

fn compile(text: &str) -> FileStrategyConfig {
    StrategyFile::parse("test.toml", text)
        .unwrap()
        .compile(&BTreeMap::new())
        .unwrap()
}

fn file(entry: &str, exit: &str) -> String {
    format!("entry = \"{entry}\"\nexit = \"{exit}\"\n[params]\nn = 5\n")
}

/// Bar by bar and column by column agree, and both against a built-in strategy when given.
fn agree(config: &FileStrategyConfig, bars: &[Bar]) -> Vec<Signal> {
    let mut machine = config.build();
    let one: Vec<Signal> = bars.iter().map(|b| machine.on_bar(b)).collect();
    let columns = config.program().signals(bars);
    assert_eq!(one, columns, "{}", config.describe());
    one
}

#[test]
fn built_in_files_are_the_built_in_strategies_exactly() {
    let bars = walk(3_000, 7);
    let cases = [
        ("sma-cross", StrategyConfig::SmaCross { short: 10, long: 20 }),
        ("ema-cross", StrategyConfig::EmaCross { fast: 12, slow: 26 }),
        (
            "rsi-threshold",
            StrategyConfig::RsiThreshold {
                period: 14,
                oversold: Decimal::from(30),
                overbought: Decimal::from(70),
            },
        ),
    ];
    for (name, builtin) in cases {
        let config = StrategyFile::builtin(name).unwrap().compile(&BTreeMap::new()).unwrap();
        assert_eq!(config.as_builtin(), Some(builtin.clone()), "{name}");
        let mut reference = builtin.build().unwrap();
        let want: Vec<Signal> = bars.iter().map(|b| reference.on_bar(b)).collect();
        assert_eq!(agree(&config, &bars), want, "{name}");
        assert!(
            want.contains(&Signal::Long) && want.contains(&Signal::Flat),
            "{name} trades"
        );
    }
    // Windows whose means are inexact divisions: the exact cross-multiplied comparison.
    let mut params = BTreeMap::new();
    params.insert("short".to_string(), Decimal::from(3));
    params.insert("long".to_string(), Decimal::from(7));
    let config = StrategyFile::builtin("sma-cross").unwrap().compile(&params).unwrap();
    let mut reference = StrategyConfig::SmaCross { short: 3, long: 7 }.build().unwrap();
    let want: Vec<Signal> = bars.iter().map(|b| reference.on_bar(b)).collect();
    assert_eq!(agree(&config, &bars), want);
    assert_eq!(config.describe(), "sma-cross long=7 short=3");
}

#[test]
fn every_example_file_compiles_and_trades() {
    let bars = walk(5_000, 11);
    for (name, _) in BUILTIN_FILES {
        let config = StrategyFile::builtin(name)
            .unwrap_or_else(|| panic!("{name} parses"))
            .compile(&BTreeMap::new())
            .unwrap();
        let signals = agree(&config, &bars);
        assert!(signals.contains(&Signal::Long), "{name} goes long on a random walk");
    }
}

#[test]
fn a_file_that_is_not_a_built_in_is_not_taken_for_one() {
    for (entry, exit) in [
        ("sma(close, n) > sma(close, 20)", "sma(close, n) < sma(close, 20)"),
        ("sma(open, n) > sma(close, 20)", "not sma(open, n) > sma(close, 20)"),
        ("ema(close, n) >= ema(close, 20)", "ema(close, n) < ema(close, 20)"),
        ("rsi(close, n) < 30", "rsi(close, 7) > 70"),
        ("sma(close, 20) > sma(close, n)", "sma(close, 20) <= sma(close, n)"),
    ] {
        assert_eq!(compile(&file(entry, exit)).as_builtin(), None, "{entry}");
    }
    let not = compile(&file(
        "sma(close, n) > sma(close, 20)",
        "not sma(close, n) > sma(close, 20)",
    ));
    assert_eq!(not.as_builtin(), Some(StrategyConfig::SmaCross { short: 5, long: 20 }));
}

#[test]
fn indicators_are_shared_and_lines_are_named() {
    let config = compile(&file(
        "macd(close, 12, 26, 9) crosses_above macd(close, 12, 26, 9).signal",
        "macd(close, 12, 26, 9).histogram < 0",
    ));
    let program = config.program();
    let emas = program
        .nodes
        .iter()
        .filter(|n| matches!(n, program::Node::Ind(program::Ind::Ema(_), _)))
        .count();
    assert_eq!(emas, 3, "fast, slow and signal EMAs, each once");
    let strategy = config.build();
    assert_eq!(
        strategy.line_names(),
        ["MACD 12/26/9 line", "MACD 12/26/9 signal", "MACD 12/26/9 histogram"]
    );
}

#[test]
fn bad_files_get_one_line_with_line_column_found_and_expected() {
    let cases = [
        (
            "entry = \"sma(close, 10) > > 3\"\nexit = \"close < 1\"\n",
            "test.toml:1:27: found `>`, expected a number, a name or `(`",
        ),
        (
            "name = \"x\"\nentry = \"close > 1\"\nexit = \"sma(close, 10) <\"\n",
            "test.toml:3:25: expected a number, a name or `(` at the end of the rule",
        ),
        (
            "entry = \"smaa(close, 10) > 1\"\nexit = \"close < 1\"\n",
            "test.toml:1:10: found `smaa`, expected a function (sma, ema, wma, rsi, macd, bollinger, atr, stddev, highest, lowest, vwap, crosses_above, crosses_below)",
        ),
        (
            "entry = \"sma(close, 10)\"\nexit = \"close < 1\"\n",
            "test.toml:1:10: found `a number`, expected a condition (a comparison such as `sma(close, 10) > sma(close, 20)`)",
        ),
        (
            "entry = \"sma(close, 2.5) > 1\"\nexit = \"close < 1\"\n",
            "test.toml:1:21: found `2.5`, expected a period: a whole number from 1 to 1000000",
        ),
        (
            "entry = \"sma(close, w) > 1\"\nexit = \"close < 1\"\n[params]\nn = 3\n",
            "test.toml:1:21: found `w`, expected a number or a parameter",
        ),
        (
            "entry = \"clos > 1\"\nexit = \"close < 1\"\n",
            "test.toml:1:10: found `clos`, expected a bar field or a parameter (open, high, low, close, volume)",
        ),
        (
            "entry = \"macd(close, 1, 2, 3).upper > 1\"\nexit = \"close < 1\"\n",
            "test.toml:1:31: found `upper`, expected one of line, signal, histogram",
        ),
        (
            "entry = \"close > 1\"\nexit = \"close < 1\"\nstop = 3\n",
            "test.toml:3:1: unknown field `stop`, expected one of `name`, `description`, `params`, `entry`, `exit`, `exits`; a strategy file has name, description, entry, exit, [params] and [exits]",
        ),
        (
            "entry = \"close > 1\"\nexit = \"close < 1\"\n[params]\nclose = 3\n",
            "test.toml:4:1: found parameter name `close`, expected a name of letters, digits and _ that is not a bar field, function or keyword",
        ),
        (
            "entry = \"close > 1\"\nexit = \"close < 1\"\n[params]\nn = true\n",
            "test.toml:4:5: found `true`, expected a number for parameter `n`",
        ),
        (
            "entry = '''\nclose > 1 and\n  rsi(close, 14) <\n'''\nexit = \"close < 1\"\n",
            "test.toml:4:1: expected a number, a name or `(` at the end of the rule",
        ),
    ];
    for (text, want) in cases {
        let got = StrategyFile::parse("test.toml", text).unwrap_err().to_string();
        assert_eq!(got, want, "{text}");
        assert!(!got.contains('\n'));
    }
    let f = StrategyFile::parse("test.toml", &file("close > n", "close < n")).unwrap();
    let mut bad = BTreeMap::new();
    bad.insert("m".to_string(), Decimal::ONE);
    assert_eq!(
        f.compile(&bad).unwrap_err().to_string(),
        "test.toml: no parameter `m` in this file (it has: n)"
    );
}

#[test]
fn a_config_round_trips_through_json_and_recompiles() {
    let f = StrategyFile::builtin("macd-cross").unwrap();
    let mut params = BTreeMap::new();
    params.insert("trend".to_string(), Decimal::from(50));
    let config = f.compile(&params).unwrap();
    let json = serde_json::to_string(&config).unwrap();
    let back: FileStrategyConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    assert_eq!(back.describe(), "macd-cross trend=50");
    assert_eq!(back.program(), config.program());
}

/// Random rules over every indicator and operator.
fn numeric() -> impl proptest::strategy::Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("close".to_string()),
        Just("open".to_string()),
        Just("high".to_string()),
        Just("low".to_string()),
        Just("volume".to_string()),
        (0u32..200).prop_map(|v| format!("{}.{}", v / 10, v % 10)),
        (1usize..30).prop_map(|n| format!("atr({n})")),
        (1usize..30).prop_map(|n| format!("vwap({n})")),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), 1usize..25, 0usize..7).prop_map(|(x, n, k)| {
                let f = ["sma", "ema", "wma", "rsi", "stddev", "highest", "lowest"][k];
                format!("{f}({x}, {n})")
            }),
            (inner.clone(), 0usize..3).prop_map(|(x, k)| {
                let part = ["line", "signal", "histogram"][k];
                format!("macd({x}, 3, 8, 4).{part}")
            }),
            (inner.clone(), 0usize..3).prop_map(|(x, k)| {
                let part = ["upper", "middle", "lower"][k];
                format!("bollinger({x}, 6, 1.5).{part}")
            }),
            (inner.clone(), inner.clone(), 0usize..4)
                .prop_map(|(a, b, k)| format!("({a} {} {b})", ["+", "-", "*", "/"][k])),
            inner.prop_map(|x| format!("-{x}")),
        ]
    })
}

fn condition() -> impl proptest::strategy::Strategy<Value = String> {
    let compare = (numeric(), numeric(), 0usize..8).prop_map(|(a, b, k)| {
        let op = [">", ">=", "<", "<=", "==", "!=", "crosses_above", "crosses_below"][k];
        format!("{a} {op} {b}")
    });
    compare.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The incremental form (what `run` uses) and the column form (what backtests use) make
    /// identical decisions for random rules on random data.
    #[test]
    fn bar_by_bar_and_column_by_column_decide_alike(
        entry in condition(),
        exit in condition(),
        seed in any::<u64>(),
        len in 1usize..400,
    ) {
        let config = compile(&file(&entry, &exit));
        let bars = walk(len, seed);
        let mut machine = config.build();
        let one: Vec<Signal> = bars.iter().map(|b| machine.on_bar(b)).collect();
        prop_assert_eq!(one, config.program().signals(&bars));
    }
}
