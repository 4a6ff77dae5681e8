//! Strategy files: a strategy written in a small expression language over built-in
//! indicators, in a TOML file, instead of in Rust.
//!
//! ```toml
//! name = "sma-cross"
//! [params]
//! short = 10
//! long = 20
//! entry = "sma(close, short) > sma(close, long)"
//! exit = "sma(close, short) <= sma(close, long)"
//! ```
//!
//! A rule is parsed by a pest grammar (`grammar.pest`), compiled once into a `Program` of shared
//! nodes, and run either bar by bar (`Machine`: what `run` uses, O(1) per bar) or column by
//! column (`Program::signals`: what backtests use); the two decide alike (a property test).
//! The position held follows the rules: flat, and `entry` holds: long; long, and `exit` holds:
//! flat. A value that is not defined yet (an indicator warming up, a division by zero) makes
//! every comparison with it false.

mod program;
pub(crate) mod series;
mod syntax;

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use program::{Compiler, FIELDS};
pub use program::{FUNCTIONS, Machine, Program};
use syntax::RuleError;

use crate::{LineValues, Signal, Strategy, line_value};
use nanotrader_market::Bar;

/// The strategy files that come with nanotrader (also under `examples/strategies/`), by the name
/// `--strategy` takes.
pub const BUILTIN_FILES: [(&str, &str); 6] = [
    (
        "sma-cross",
        include_str!("../../../../examples/strategies/sma_cross.toml"),
    ),
    (
        "ema-cross",
        include_str!("../../../../examples/strategies/ema_cross.toml"),
    ),
    (
        "rsi-threshold",
        include_str!("../../../../examples/strategies/rsi_threshold.toml"),
    ),
    (
        "macd-cross",
        include_str!("../../../../examples/strategies/macd_cross.toml"),
    ),
    (
        "bollinger-reversion",
        include_str!("../../../../examples/strategies/bollinger_reversion.toml"),
    ),
    (
        "breakout",
        include_str!("../../../../examples/strategies/breakout.toml"),
    ),
];

/// A strategy file that cannot be used: one line, with the file, line and column when the
/// problem has a place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", .at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct FileError {
    pub origin: String,
    /// 1-based line and column.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

/// A parsed strategy file, before its parameters are fixed.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyFile {
    pub origin: String,
    pub text: String,
    pub name: String,
    pub description: Option<String>,
    /// Parameters and their defaults, by name.
    pub params: BTreeMap<String, Decimal>,
    /// Stops and exits (`[exits]`: stop-loss = "2%", take-profit, trailing-stop,
    /// max-bars-in-trade, cooldown-bars); flags override them.
    pub exits: crate::Exits,
    entry: RuleText,
    exit: RuleText,
}

#[derive(Clone, Debug, PartialEq)]
struct RuleText {
    text: String,
    /// Byte offset of the rule's first character in the file.
    start: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<toml::Spanned<String>>,
    description: Option<String>,
    #[serde(default)]
    params: BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>,
    entry: toml::Spanned<String>,
    exit: toml::Spanned<String>,
    #[serde(default)]
    exits: crate::Exits,
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Where a TOML string's content starts, from the span of the whole value (quotes included).
fn content_start(text: &str, span: std::ops::Range<usize>) -> usize {
    let raw = text.get(span.clone()).unwrap_or("");
    if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        // A newline right after the opening quotes is not part of the string.
        let after = &raw[3..];
        span.start
            + 3
            + [("\r\n", 2), ("\n", 1)]
                .iter()
                .find(|(p, _)| after.starts_with(p))
                .map_or(0, |(_, n)| *n)
    } else {
        span.start + 1
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A parameter's value: a TOML number or a decimal string, kept exact.
fn param_value(value: &toml::Value) -> Option<Decimal> {
    match value {
        toml::Value::Integer(i) => Some(Decimal::from(*i)),
        // The shortest text that reads back as the same float (`0.1`, not 0.1000000000000000055).
        toml::Value::Float(f) if f.is_finite() => f.to_string().parse().ok(),
        toml::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl StrategyFile {
    /// Reads a strategy file's text; `origin` names it in errors (the path, or a built-in name).
    pub fn parse(origin: &str, text: &str) -> Result<StrategyFile, FileError> {
        let fail = |offset: Option<usize>, message: String| FileError {
            origin: origin.to_string(),
            at: offset.map(|o| line_column(text, o)),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            // toml's own message, first line only: the position is ours.
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("not a valid strategy file")
                .to_string();
            let message = if message.contains("unknown field") {
                format!("{message}; a strategy file has name, description, entry, exit, [params] and [exits]")
            } else {
                message
            };
            fail(e.span().map(|s| s.start), message)
        })?;
        let mut params = BTreeMap::new();
        for (name, value) in &raw.params {
            let key = name.get_ref();
            let reserved = FIELDS.iter().any(|(f, _)| f == key)
                || FUNCTIONS.split(", ").any(|f| f == key)
                || ["and", "or", "not"].contains(&key.as_str());
            if !is_identifier(key) || reserved {
                return Err(fail(
                    Some(name.span().start),
                    format!(
                        "found parameter name `{key}`, expected a name of letters, digits and _ that is not a bar field, function or keyword"
                    ),
                ));
            }
            let Some(v) = param_value(value.get_ref()) else {
                return Err(fail(
                    Some(value.span().start),
                    format!("found `{}`, expected a number for parameter `{key}`", value.get_ref()),
                ));
            };
            params.insert(key.clone(), v);
        }
        let rule = |spanned: &toml::Spanned<String>| RuleText {
            text: spanned.get_ref().clone(),
            start: content_start(text, spanned.span()),
        };
        let file = StrategyFile {
            origin: origin.to_string(),
            text: text.to_string(),
            name: raw.name.map(|n| n.into_inner()).unwrap_or_else(|| {
                std::path::Path::new(origin)
                    .file_stem()
                    .map(|s| s.to_string_lossy().replace('_', "-"))
                    .unwrap_or_else(|| "strategy".into())
            }),
            description: raw.description,
            params,
            entry: rule(&raw.entry),
            exit: rule(&raw.exit),
            exits: raw.exits,
        };
        // Parsed and compiled with the defaults now, so a bad file fails before anything starts.
        file.compile(&BTreeMap::new())?;
        Ok(file)
    }

    /// Reads a strategy file from disk.
    pub fn read(path: &std::path::Path) -> Result<StrategyFile, FileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            origin: origin.clone(),
            at: None,
            message: format!("cannot read the strategy file: {e}"),
        })?;
        StrategyFile::parse(&origin, &text)
    }

    /// A built-in strategy file by name (`sma-cross`, `macd-cross`, ...).
    pub fn builtin(name: &str) -> Option<StrategyFile> {
        let (_, text) = BUILTIN_FILES.iter().find(|(n, _)| *n == name)?;
        StrategyFile::parse(name, text).ok()
    }

    /// The file compiled with its parameters, `overrides` replacing defaults by name.
    pub fn compile(&self, overrides: &BTreeMap<String, Decimal>) -> Result<FileStrategyConfig, FileError> {
        let mut params = self.params.clone();
        for (name, value) in overrides {
            match params.get_mut(name) {
                Some(v) => *v = *value,
                None => {
                    return Err(FileError {
                        origin: self.origin.clone(),
                        at: None,
                        message: format!(
                            "no parameter `{name}` in this file (it has: {})",
                            if self.params.is_empty() {
                                "none".to_string()
                            } else {
                                self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                            }
                        ),
                    });
                }
            }
        }
        let locate = |rule: &RuleText, e: RuleError| FileError {
            origin: self.origin.clone(),
            at: Some(line_column(&self.text, rule.start + e.offset)),
            message: if e.found.is_empty() {
                format!("expected {} at the end of the rule", e.expected)
            } else {
                format!("found `{}`, expected {}", e.found, e.expected)
            },
        };
        let mut compiler = Compiler::new(&params);
        let mut one = |rule: &RuleText| {
            let expr = syntax::parse(&rule.text).map_err(|e| locate(rule, e))?;
            compiler.condition(&expr).map_err(|e| locate(rule, e))
        };
        let entry = one(&self.entry)?;
        let exit = one(&self.exit)?;
        let overrides = overrides.clone();
        Ok(FileStrategyConfig {
            spec: FileSpec {
                name: self.name.clone(),
                text: self.text.clone(),
                params: overrides,
            },
            describe: describe(&self.name, &params, &self.params),
            program: Arc::new(compiler.finish(entry, exit)),
        })
    }
}

/// `name`, and the parameters that differ from the file's defaults.
fn describe(name: &str, params: &BTreeMap<String, Decimal>, defaults: &BTreeMap<String, Decimal>) -> String {
    let changed: Vec<String> = params
        .iter()
        .filter(|(k, v)| defaults.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if changed.is_empty() {
        name.to_string()
    } else {
        format!("{name} {}", changed.join(" "))
    }
}

/// What is stored and sent for a file strategy: its text and the parameters given, so a run
/// resumes, and a result says, exactly what ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileSpec {
    pub name: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Decimal>,
}

/// A compiled strategy file, as a strategy configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "FileSpec", into = "FileSpec")]
pub struct FileStrategyConfig {
    spec: FileSpec,
    describe: String,
    program: Arc<Program>,
}

impl PartialEq for FileStrategyConfig {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl TryFrom<FileSpec> for FileStrategyConfig {
    type Error = FileError;
    fn try_from(spec: FileSpec) -> Result<Self, FileError> {
        let file = StrategyFile::parse(&spec.name, &spec.text)?;
        let mut compiled = file.compile(&spec.params)?;
        compiled.spec.name = spec.name;
        Ok(compiled)
    }
}

impl From<FileStrategyConfig> for FileSpec {
    fn from(c: FileStrategyConfig) -> FileSpec {
        c.spec
    }
}

impl FileStrategyConfig {
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    pub fn describe(&self) -> String {
        self.describe.clone()
    }

    pub fn build(&self) -> FileStrategy {
        FileStrategy {
            name: self.describe.clone(),
            machine: Machine::new(Arc::clone(&self.program)),
        }
    }

    /// The built-in strategy this file is exactly, if it is one (then runs and backtests use
    /// the built-in's code and column kernel: same decisions, full speed).
    pub fn as_builtin(&self) -> Option<crate::StrategyConfig> {
        self.program.builtin()
    }
}

/// A strategy file running bar by bar.
#[derive(Clone, Debug)]
pub struct FileStrategy {
    name: String,
    machine: Machine,
}

impl Strategy for FileStrategy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn line_names(&self) -> Vec<String> {
        self.machine.program().lines.iter().map(|(n, _)| n.clone()).collect()
    }

    fn on_bar(&mut self, bar: &Bar) -> Signal {
        self.machine.on_bar(bar)
    }

    fn line_values(&self) -> LineValues {
        let mut out = [None; crate::MAX_LINES];
        for (slot, (_, id)) in out.iter_mut().zip(&self.machine.program().lines) {
            *slot = line_value(self.machine.value(*id));
        }
        out
    }
}

impl Program {
    /// Bars before the slowest indicator can give a value (a lower bound: chained indicators
    /// need the sum of theirs), for "not enough data" messages.
    pub fn warm_up(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| match n {
                program::Node::Ind(ind, _) => match *ind {
                    program::Ind::Rsi(p) => p + 1,
                    program::Ind::Sma(p)
                    | program::Ind::Sum(p)
                    | program::Ind::Ema(p)
                    | program::Ind::Wma(p)
                    | program::Ind::Rma(p)
                    | program::Ind::StdDev(p)
                    | program::Ind::Highest(p)
                    | program::Ind::Lowest(p) => p,
                },
                _ => 1,
            })
            .max()
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests;
