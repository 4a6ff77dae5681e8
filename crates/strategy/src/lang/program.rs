//! A rule's syntax tree compiled into a program: a list of nodes, each computed from earlier
//! ones, with every indicator (and every repeated sub-expression) computed once. The same
//! program runs two ways that must decide alike: bar by bar (`Machine`, O(1) per bar, what
//! `run` uses) and column by column (`Program::signals`, node by node over the whole series,
//! what backtests use).

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use super::series::{Extreme, Rma, StdDev, TrueRange, Wma};
use super::syntax::{BinOp, CmpOp, Cross, Expr, ExprKind, RuleError};
use crate::indicators::{Ema, Rsi, Sma};
use crate::{MAX_LINES, MAX_WINDOW, Signal};
use nanotrader_market::Bar;

pub type Id = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Field {
    fn of(self, bar: &Bar) -> Decimal {
        match self {
            Field::Open => bar.open,
            Field::High => bar.high,
            Field::Low => bar.low,
            Field::Close => bar.close,
            Field::Volume => bar.volume,
        }
    }
}

/// A one-input indicator and its period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ind {
    Sma(usize),
    /// The rolling sum (the SMA's exact sum), for VWAP.
    Sum(usize),
    Ema(usize),
    Wma(usize),
    Rsi(usize),
    /// Wilder's average, for ATR.
    Rma(usize),
    StdDev(usize),
    Highest(usize),
    Lowest(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Field(Field),
    Const(Decimal),
    Neg(Id),
    Bin(BinOp, Id, Id),
    Ind(Ind, Id),
    /// The bar's true range (high, low and the previous close).
    TrueRange,
    Cmp(CmpOp, Id, Id),
    /// Two SMAs compared exactly: their sums cross-multiplied by the other's period (the
    /// means are rounded divisions), as the built-in `sma-cross` compares.
    SmaCmp(CmpOp, Id, Id),
    Cross(Cross, Id, Id),
    And(Id, Id),
    Or(Id, Id),
    Not(Id),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Num,
    Bool,
}

/// A compiled strategy: entry and exit conditions over shared nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub(crate) nodes: Vec<Node>,
    pub(crate) entry: Id,
    pub(crate) exit: Id,
    /// Indicator lines shown on the dashboard, at most `MAX_LINES`.
    pub(crate) lines: Vec<(String, Id)>,
}

/// Compiles rules against their parameters.
pub(crate) struct Compiler<'a> {
    params: &'a BTreeMap<String, Decimal>,
    nodes: Vec<Node>,
    ids: HashMap<Node, Id>,
    lines: Vec<(String, Id)>,
}

pub const FIELDS: [(&str, Field); 5] = [
    ("open", Field::Open),
    ("high", Field::High),
    ("low", Field::Low),
    ("close", Field::Close),
    ("volume", Field::Volume),
];

/// The functions a rule can call, for error messages.
pub const FUNCTIONS: &str =
    "sma, ema, wma, rsi, macd, bollinger, atr, stddev, highest, lowest, vwap, crosses_above, crosses_below";

fn err(at: usize, found: impl Into<String>, expected: impl Into<String>) -> RuleError {
    RuleError {
        offset: at,
        found: found.into(),
        expected: expected.into(),
    }
}

impl<'a> Compiler<'a> {
    pub fn new(params: &'a BTreeMap<String, Decimal>) -> Self {
        Self {
            params,
            nodes: Vec::new(),
            ids: HashMap::new(),
            lines: Vec::new(),
        }
    }

    pub fn finish(self, entry: Id, exit: Id) -> Program {
        Program {
            nodes: self.nodes,
            entry,
            exit,
            lines: self.lines,
        }
    }

    fn add(&mut self, node: Node) -> Id {
        if let Some(&id) = self.ids.get(&node) {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push(node.clone());
        self.ids.insert(node, id);
        id
    }

    /// A condition (entry or exit).
    pub fn condition(&mut self, e: &Expr) -> Result<Id, RuleError> {
        let (id, ty) = self.expr(e)?;
        match ty {
            Ty::Bool => Ok(id),
            Ty::Num => Err(err(
                e.at,
                "a number",
                "a condition (a comparison such as `sma(close, 10) > sma(close, 20)`)",
            )),
        }
    }

    fn number(&mut self, e: &Expr) -> Result<Id, RuleError> {
        match self.expr(e)? {
            (id, Ty::Num) => Ok(id),
            (_, Ty::Bool) => Err(err(e.at, "a condition", "a number")),
        }
    }

    fn boolean(&mut self, e: &Expr) -> Result<Id, RuleError> {
        match self.expr(e)? {
            (id, Ty::Bool) => Ok(id),
            (_, Ty::Num) => Err(err(e.at, "a number", "a condition")),
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<(Id, Ty), RuleError> {
        Ok(match &e.kind {
            ExprKind::Number(v) => (self.add(Node::Const(*v)), Ty::Num),
            ExprKind::Name(name) => {
                if let Some((_, field)) = FIELDS.iter().find(|(n, _)| n == name) {
                    (self.add(Node::Field(*field)), Ty::Num)
                } else if let Some(v) = self.params.get(name) {
                    (self.add(Node::Const(*v)), Ty::Num)
                } else {
                    let mut known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
                    known.extend(self.params.keys().map(String::as_str));
                    return Err(err(
                        e.at,
                        name.clone(),
                        format!("a bar field or a parameter ({})", known.join(", ")),
                    ));
                }
            }
            ExprKind::Neg(inner) => {
                let x = self.number(inner)?;
                (self.add(Node::Neg(x)), Ty::Num)
            }
            ExprKind::Binary(op, l, r) => {
                let (l, r) = (self.number(l)?, self.number(r)?);
                (self.add(Node::Bin(*op, l, r)), Ty::Num)
            }
            ExprKind::Compare(op, l, r) => {
                let (l, r) = (self.number(l)?, self.number(r)?);
                let both_sma = [l, r]
                    .iter()
                    .all(|&id| matches!(self.nodes[id], Node::Ind(Ind::Sma(_), _)));
                let node = if both_sma {
                    Node::SmaCmp(*op, l, r)
                } else {
                    Node::Cmp(*op, l, r)
                };
                (self.add(node), Ty::Bool)
            }
            ExprKind::Cross(dir, l, r) => {
                let (l, r) = (self.number(l)?, self.number(r)?);
                (self.add(Node::Cross(*dir, l, r)), Ty::Bool)
            }
            ExprKind::And(l, r) => {
                let (l, r) = (self.boolean(l)?, self.boolean(r)?);
                (self.add(Node::And(l, r)), Ty::Bool)
            }
            ExprKind::Or(l, r) => {
                let (l, r) = (self.boolean(l)?, self.boolean(r)?);
                (self.add(Node::Or(l, r)), Ty::Bool)
            }
            ExprKind::Not(x) => {
                let x = self.boolean(x)?;
                (self.add(Node::Not(x)), Ty::Bool)
            }
            ExprKind::Call { name, args, field } => self.call(e.at, name, args, field.as_ref())?,
        })
    }

    /// A constant (numbers and parameters, with arithmetic), folded now.
    fn constant(&self, e: &Expr) -> Result<Decimal, RuleError> {
        let not_constant = || err(e.at, super::syntax::found_at_expr(e), "a number or a parameter");
        match &e.kind {
            ExprKind::Number(v) => Ok(*v),
            ExprKind::Name(n) => self.params.get(n).copied().ok_or_else(not_constant),
            ExprKind::Neg(x) => Ok(-self.constant(x)?),
            ExprKind::Binary(op, l, r) => {
                let (l, r) = (self.constant(l)?, self.constant(r)?);
                binary(*op, Some(l), Some(r)).ok_or_else(|| err(e.at, "", "a constant that can be computed"))
            }
            _ => Err(not_constant()),
        }
    }

    fn period(&self, e: &Expr) -> Result<usize, RuleError> {
        let v = self.constant(e)?;
        let whole = v.normalize();
        if whole.scale() != 0 || whole < Decimal::ONE || whole > Decimal::from(MAX_WINDOW) {
            return Err(err(
                e.at,
                v.to_string(),
                format!("a period: a whole number from 1 to {MAX_WINDOW}"),
            ));
        }
        Ok(usize::try_from(whole.mantissa()).unwrap_or(MAX_WINDOW))
    }

    fn line(&mut self, label: String, id: Id) {
        if self.lines.len() < MAX_LINES && !self.lines.iter().any(|(_, i)| *i == id) {
            self.lines.push((label, id));
        }
    }

    fn call(
        &mut self,
        at: usize,
        name: &str,
        args: &[Expr],
        field: Option<&(String, usize)>,
    ) -> Result<(Id, Ty), RuleError> {
        let arity = |n: usize, shape: &str| -> Result<(), RuleError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(err(
                    at,
                    format!(
                        "{name} with {} argument{}",
                        args.len(),
                        if args.len() == 1 { "" } else { "s" }
                    ),
                    format!("{name}({shape})"),
                ))
            }
        };
        let fields = |allowed: &[&str]| -> Result<Option<usize>, RuleError> {
            match field {
                None => Ok(None),
                Some((f, f_at)) => match allowed.iter().position(|a| a == f) {
                    Some(i) if !allowed.is_empty() => Ok(Some(i)),
                    _ if allowed.is_empty() => Err(err(*f_at, f.clone(), format!("no `.field` after {name}(...)"))),
                    _ => Err(err(*f_at, f.clone(), format!("one of {}", allowed.join(", ")))),
                },
            }
        };
        let simple = |kind: fn(usize) -> Ind, label: &str, this: &mut Self| -> Result<(Id, Ty), RuleError> {
            arity(2, "series, period")?;
            fields(&[])?;
            let x = this.number(&args[0])?;
            let n = this.period(&args[1])?;
            let id = this.add(Node::Ind(kind(n), x));
            this.line(format!("{label} {n}"), id);
            Ok((id, Ty::Num))
        };
        match name {
            "sma" => simple(Ind::Sma, "SMA", self),
            "ema" => simple(Ind::Ema, "EMA", self),
            "wma" => simple(Ind::Wma, "WMA", self),
            "rsi" => simple(Ind::Rsi, "RSI", self),
            "stddev" => simple(Ind::StdDev, "StdDev", self),
            "highest" => simple(Ind::Highest, "Highest", self),
            "lowest" => simple(Ind::Lowest, "Lowest", self),
            "atr" => {
                arity(1, "period")?;
                fields(&[])?;
                let n = self.period(&args[0])?;
                let tr = self.add(Node::TrueRange);
                let id = self.add(Node::Ind(Ind::Rma(n), tr));
                self.line(format!("ATR {n}"), id);
                Ok((id, Ty::Num))
            }
            "vwap" => {
                arity(1, "period")?;
                fields(&[])?;
                let n = self.period(&args[0])?;
                let close = self.add(Node::Field(Field::Close));
                let volume = self.add(Node::Field(Field::Volume));
                let traded = self.add(Node::Bin(BinOp::Mul, close, volume));
                let value = self.add(Node::Ind(Ind::Sum(n), traded));
                let volume = self.add(Node::Ind(Ind::Sum(n), volume));
                let id = self.add(Node::Bin(BinOp::Div, value, volume));
                self.line(format!("VWAP {n}"), id);
                Ok((id, Ty::Num))
            }
            "macd" => {
                arity(4, "series, fast, slow, signal")?;
                let part = fields(&["line", "signal", "histogram"])?.unwrap_or(0);
                let x = self.number(&args[0])?;
                let (fast, slow, signal) = (self.period(&args[1])?, self.period(&args[2])?, self.period(&args[3])?);
                let f = self.add(Node::Ind(Ind::Ema(fast), x));
                let s = self.add(Node::Ind(Ind::Ema(slow), x));
                let line = self.add(Node::Bin(BinOp::Sub, f, s));
                let sig = self.add(Node::Ind(Ind::Ema(signal), line));
                let id = match part {
                    0 => line,
                    1 => sig,
                    _ => self.add(Node::Bin(BinOp::Sub, line, sig)),
                };
                let label = ["line", "signal", "histogram"][part];
                self.line(format!("MACD {fast}/{slow}/{signal} {label}"), id);
                Ok((id, Ty::Num))
            }
            "bollinger" => {
                arity(3, "series, period, width")?;
                let part = fields(&["upper", "middle", "lower"])?.unwrap_or(1);
                let x = self.number(&args[0])?;
                let n = self.period(&args[1])?;
                let k = self.constant(&args[2])?;
                let mid = self.add(Node::Ind(Ind::Sma(n), x));
                let id = if part == 1 {
                    mid
                } else {
                    let sd = self.add(Node::Ind(Ind::StdDev(n), x));
                    let k = self.add(Node::Const(k));
                    let band = self.add(Node::Bin(BinOp::Mul, k, sd));
                    let op = if part == 0 { BinOp::Add } else { BinOp::Sub };
                    self.add(Node::Bin(op, mid, band))
                };
                let label = ["upper", "middle", "lower"][part];
                self.line(format!("Bollinger {n} {k} {label}"), id);
                Ok((id, Ty::Num))
            }
            "crosses_above" | "crosses_below" => {
                arity(2, "a, b")?;
                fields(&[])?;
                let (l, r) = (self.number(&args[0])?, self.number(&args[1])?);
                let dir = if name == "crosses_above" {
                    Cross::Above
                } else {
                    Cross::Below
                };
                Ok((self.add(Node::Cross(dir, l, r)), Ty::Bool))
            }
            "" => Err(err(
                field.map_or(at, |(_, a)| *a),
                field.map_or(String::new(), |(f, _)| f.clone()),
                "no `.field` here (fields follow macd(...) and bollinger(...))",
            )),
            other => Err(err(at, other.to_string(), format!("a function ({FUNCTIONS})"))),
        }
    }
}

/// Arithmetic that never panics: an overflow or a division by zero is undefined (`None`).
pub(crate) fn binary(op: BinOp, a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    let (a, b) = (a?, b?);
    match op {
        BinOp::Add => a.checked_add(b),
        BinOp::Sub => a.checked_sub(b),
        BinOp::Mul => a.checked_mul(b),
        BinOp::Div => a.checked_div(b),
    }
}

fn compare(op: CmpOp, a: Option<Decimal>, b: Option<Decimal>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if op.holds(a.cmp(&b)))
}

/// Two SMAs by their sums: `sum_a / n_a ? sum_b / n_b` as `sum_a * n_b ? sum_b * n_a`.
fn compare_sma(op: CmpOp, a: Option<(Decimal, usize)>, b: Option<(Decimal, usize)>) -> bool {
    let (Some((sa, na)), Some((sb, nb))) = (a, b) else {
        return false;
    };
    match (sa.checked_mul(Decimal::from(nb)), sb.checked_mul(Decimal::from(na))) {
        (Some(l), Some(r)) => op.holds(l.cmp(&r)),
        // Only for sums near Decimal::MAX: the rounded means.
        _ => compare(op, sa.checked_div(Decimal::from(na)), sb.checked_div(Decimal::from(nb))),
    }
}

fn crossed(dir: Cross, prev: (Option<Decimal>, Option<Decimal>), now: (Option<Decimal>, Option<Decimal>)) -> bool {
    let ((Some(pa), Some(pb)), (Some(a), Some(b))) = (prev, now) else {
        return false;
    };
    match dir {
        Cross::Above => pa <= pb && a > b,
        Cross::Below => pa >= pb && a < b,
    }
}

fn truth(b: bool) -> Option<Decimal> {
    Some(if b { Decimal::ONE } else { Decimal::ZERO })
}

fn is_true(v: Option<Decimal>) -> bool {
    v == Some(Decimal::ONE)
}

/// One indicator's running state.
#[derive(Clone, Debug)]
enum State {
    Stateless,
    Sma(Sma),
    Ema(Ema),
    Rsi(Rsi),
    Wma(Wma),
    StdDev(StdDev),
    Extreme(Extreme),
    Rma(Rma),
    TrueRange(TrueRange),
    /// A crossing's inputs on the previous bar.
    Cross(Option<Decimal>, Option<Decimal>),
}

impl State {
    fn of(node: &Node) -> State {
        match node {
            Node::Ind(ind, _) => match *ind {
                Ind::Sma(n) | Ind::Sum(n) => State::Sma(Sma::new(n)),
                Ind::Ema(n) => State::Ema(Ema::new(n)),
                Ind::Rsi(n) => State::Rsi(Rsi::new(n)),
                Ind::Wma(n) => State::Wma(Wma::new(n)),
                Ind::StdDev(n) => State::StdDev(StdDev::new(n)),
                Ind::Highest(n) => State::Extreme(Extreme::new(n, true)),
                Ind::Lowest(n) => State::Extreme(Extreme::new(n, false)),
                Ind::Rma(n) => State::Rma(Rma::new(n)),
            },
            Node::TrueRange => State::TrueRange(TrueRange::default()),
            Node::Cross(..) => State::Cross(None, None),
            _ => State::Stateless,
        }
    }

    /// Feeds one value (an undefined one leaves the state alone and gives `None`); returns the
    /// indicator's value, and an SMA's exact sum beside it.
    fn push(&mut self, ind: Ind, x: Option<Decimal>) -> (Option<Decimal>, Option<Decimal>) {
        let Some(x) = x else { return (None, None) };
        match self {
            State::Sma(sma) => {
                sma.push(x);
                if !sma.is_ready() {
                    (None, None)
                } else if let Ind::Sum(_) = ind {
                    (Some(sma.sum()), None)
                } else {
                    (sma.value(), Some(sma.sum()))
                }
            }
            State::Ema(ema) => {
                ema.push(x);
                (ema.value(), None)
            }
            State::Rsi(rsi) => {
                rsi.push(x);
                (rsi.value(), None)
            }
            State::Wma(w) => (w.push(x), None),
            State::StdDev(s) => (s.push(x), None),
            State::Extreme(e) => (e.push(x), None),
            State::Rma(r) => (r.push(x), None),
            State::Stateless | State::TrueRange(_) | State::Cross(..) => (None, None),
        }
    }
}

fn sma_period(node: &Node) -> usize {
    match node {
        Node::Ind(Ind::Sma(n), _) => *n,
        _ => 1,
    }
}

/// The entry/exit rule: flat and `entry` holds -> long; long and `exit` holds -> flat.
fn next_signal(now: Signal, entry: bool, exit: bool) -> Signal {
    match now {
        Signal::Flat if entry => Signal::Long,
        Signal::Long if exit => Signal::Flat,
        s => s,
    }
}

/// The program run bar by bar: O(1) per bar (each node once; an indicator's update is O(1)).
#[derive(Clone, Debug)]
pub struct Machine {
    program: std::sync::Arc<Program>,
    states: Vec<State>,
    values: Vec<Option<Decimal>>,
    /// An SMA node's exact sum (for `SmaCmp`).
    sums: Vec<Option<Decimal>>,
    signal: Signal,
}

impl Machine {
    pub fn new(program: std::sync::Arc<Program>) -> Self {
        let n = program.nodes.len();
        Self {
            states: program.nodes.iter().map(State::of).collect(),
            values: vec![None; n],
            sums: vec![None; n],
            program,
            signal: Signal::Flat,
        }
    }

    pub fn value(&self, id: Id) -> Option<Decimal> {
        self.values[id]
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    pub fn on_bar(&mut self, bar: &Bar) -> Signal {
        let program = std::sync::Arc::clone(&self.program);
        for (id, node) in program.nodes.iter().enumerate() {
            let v = |i: Id| self.values[i];
            let value = match node {
                Node::Field(f) => Some(f.of(bar)),
                Node::Const(c) => Some(*c),
                Node::Neg(x) => v(*x).map(|x| -x),
                Node::Bin(op, a, b) => binary(*op, v(*a), v(*b)),
                Node::Cmp(op, a, b) => truth(compare(*op, v(*a), v(*b))),
                Node::SmaCmp(op, a, b) => {
                    let side = |i: Id| self.sums[i].map(|s| (s, sma_period(&program.nodes[i])));
                    truth(compare_sma(*op, side(*a), side(*b)))
                }
                Node::And(a, b) => truth(is_true(v(*a)) && is_true(v(*b))),
                Node::Or(a, b) => truth(is_true(v(*a)) || is_true(v(*b))),
                Node::Not(a) => truth(!is_true(v(*a))),
                Node::Cross(dir, a, b) => {
                    let now = (v(*a), v(*b));
                    let State::Cross(pa, pb) = &mut self.states[id] else {
                        unreachable!()
                    };
                    let prev = (*pa, *pb);
                    (*pa, *pb) = now;
                    truth(crossed(*dir, prev, now))
                }
                Node::TrueRange => {
                    let State::TrueRange(tr) = &mut self.states[id] else {
                        unreachable!()
                    };
                    tr.push(bar.high, bar.low, bar.close)
                }
                Node::Ind(ind, x) => {
                    let input = v(*x);
                    let (value, sum) = self.states[id].push(*ind, input);
                    self.sums[id] = sum;
                    value
                }
            };
            self.values[id] = value;
        }
        self.signal = next_signal(
            self.signal,
            is_true(self.values[program.entry]),
            is_true(self.values[program.exit]),
        );
        self.signal
    }
}

impl Program {
    /// The signal after each bar, computed node by node over whole columns.
    pub fn signals(&self, bars: &[Bar]) -> Vec<Signal> {
        let len = bars.len();
        let mut columns: Vec<Vec<Option<Decimal>>> = Vec::with_capacity(self.nodes.len());
        let mut sums: HashMap<Id, Vec<Option<Decimal>>> = HashMap::new();
        for (id, node) in self.nodes.iter().enumerate() {
            let col = |i: Id| &columns[i];
            let column: Vec<Option<Decimal>> = match node {
                Node::Field(f) => bars.iter().map(|b| Some(f.of(b))).collect(),
                Node::Const(c) => vec![Some(*c); len],
                Node::Neg(x) => col(*x).iter().map(|v| v.map(|x| -x)).collect(),
                Node::Bin(op, a, b) => col(*a).iter().zip(col(*b)).map(|(a, b)| binary(*op, *a, *b)).collect(),
                Node::Cmp(op, a, b) => col(*a)
                    .iter()
                    .zip(col(*b))
                    .map(|(a, b)| truth(compare(*op, *a, *b)))
                    .collect(),
                Node::SmaCmp(op, a, b) => {
                    let (na, nb) = (sma_period(&self.nodes[*a]), sma_period(&self.nodes[*b]));
                    sums[a]
                        .iter()
                        .zip(&sums[b])
                        .map(|(sa, sb)| truth(compare_sma(*op, sa.map(|s| (s, na)), sb.map(|s| (s, nb)))))
                        .collect()
                }
                Node::And(a, b) => col(*a)
                    .iter()
                    .zip(col(*b))
                    .map(|(a, b)| truth(is_true(*a) && is_true(*b)))
                    .collect(),
                Node::Or(a, b) => col(*a)
                    .iter()
                    .zip(col(*b))
                    .map(|(a, b)| truth(is_true(*a) || is_true(*b)))
                    .collect(),
                Node::Not(a) => col(*a).iter().map(|a| truth(!is_true(*a))).collect(),
                Node::Cross(dir, a, b) => {
                    let (a, b) = (col(*a), col(*b));
                    (0..len)
                        .map(|i| {
                            let prev = if i == 0 { (None, None) } else { (a[i - 1], b[i - 1]) };
                            truth(crossed(*dir, prev, (a[i], b[i])))
                        })
                        .collect()
                }
                Node::TrueRange => {
                    let mut tr = TrueRange::default();
                    bars.iter().map(|b| tr.push(b.high, b.low, b.close)).collect()
                }
                Node::Ind(ind, x) => {
                    let mut state = State::of(node);
                    let mut sum_column = Vec::with_capacity(len);
                    let values = col(*x)
                        .iter()
                        .map(|v| {
                            let (value, sum) = state.push(*ind, *v);
                            sum_column.push(sum);
                            value
                        })
                        .collect();
                    if matches!(ind, Ind::Sma(_)) {
                        sums.insert(id, sum_column);
                    }
                    values
                }
            };
            columns.push(column);
        }
        let (entry, exit) = (&columns[self.entry], &columns[self.exit]);
        let mut signal = Signal::Flat;
        entry
            .iter()
            .zip(exit)
            .map(|(e, x)| {
                signal = next_signal(signal, is_true(*e), is_true(*x));
                signal
            })
            .collect()
    }

    /// The built-in strategy this program is exactly (same decisions on every input), so that
    /// runs and backtests take the built-in's code, and its column kernel, for it.
    pub fn builtin(&self) -> Option<crate::StrategyConfig> {
        use crate::StrategyConfig;
        let close = |id: Id| self.nodes[id] == Node::Field(Field::Close);
        let ind = |id: Id| match &self.nodes[id] {
            Node::Ind(ind, x) if close(*x) => Some(*ind),
            _ => None,
        };
        let entry = &self.nodes[self.entry];
        let exit = &self.nodes[self.exit];
        // A crossover's exit is the entry's opposite: `not entry`, or `a <= b`.
        let opposite = |op: CmpOp, a: Id, b: Id| match exit {
            Node::Not(x) => *x == self.entry,
            Node::SmaCmp(o, x, y) | Node::Cmp(o, x, y) => {
                (*x, *y) == (a, b) && matches!((op, o), (CmpOp::Gt, CmpOp::Le))
            }
            _ => false,
        };
        let config = match *entry {
            Node::SmaCmp(op @ CmpOp::Gt, a, b) if opposite(op, a, b) => match (ind(a)?, ind(b)?) {
                (Ind::Sma(short), Ind::Sma(long)) => StrategyConfig::SmaCross { short, long },
                _ => return None,
            },
            Node::Cmp(op @ CmpOp::Gt, a, b) if opposite(op, a, b) => match (ind(a)?, ind(b)?) {
                (Ind::Ema(fast), Ind::Ema(slow)) => StrategyConfig::EmaCross { fast, slow },
                _ => return None,
            },
            Node::Cmp(CmpOp::Lt, a, lo) => {
                let Node::Cmp(CmpOp::Gt, a2, hi) = *exit else {
                    return None;
                };
                let (Ind::Rsi(period), Node::Const(oversold), Node::Const(overbought)) =
                    (ind(a)?, &self.nodes[lo], &self.nodes[hi])
                else {
                    return None;
                };
                if a2 != a {
                    return None;
                }
                StrategyConfig::RsiThreshold {
                    period,
                    oversold: *oversold,
                    overbought: *overbought,
                }
            }
            _ => return None,
        };
        config.validate().is_ok().then_some(config)
    }
}
