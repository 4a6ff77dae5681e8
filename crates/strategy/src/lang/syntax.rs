//! The text of one rule to a syntax tree, by a pest grammar (`grammar.pest`). Positions are byte
//! offsets into the rule's text; the file layer turns them into the file's line and column.

use pest::Parser;
use pest::iterators::Pair;
use rust_decimal::Decimal;

#[derive(pest_derive::Parser)]
#[grammar = "lang/grammar.pest"]
struct RuleParser;

/// A syntax error or a meaning error, at a byte offset of the rule's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub offset: usize,
    /// What was found there (the text, shortened), or empty at the end.
    pub found: String,
    /// What was expected, for the user.
    pub expected: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Gt => ordering == Greater,
            CmpOp::Ge => ordering != Less,
            CmpOp::Lt => ordering == Less,
            CmpOp::Le => ordering != Greater,
            CmpOp::Eq => ordering == Equal,
            CmpOp::Ne => ordering != Equal,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cross {
    Above,
    Below,
}

/// An expression with the byte offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub at: usize,
    pub kind: ExprKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(Decimal),
    Name(String),
    Call {
        name: String,
        args: Vec<Expr>,
        /// `.signal` of `macd(...).signal`, with its offset.
        field: Option<(String, usize)>,
    },
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Cross(Cross, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

/// Parses one rule's text.
pub fn parse(text: &str) -> Result<Expr, RuleError> {
    let mut pairs = RuleParser::parse(Rule::rule, text).map_err(|e| syntax_error(text, e))?;
    let whole = pairs.next().expect("the grammar's rule");
    let expr = whole.into_inner().next().expect("rule = expr EOI");
    Ok(build(expr))
}

fn syntax_error(text: &str, e: pest::error::Error<Rule>) -> RuleError {
    let offset = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let expected = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => describe_expected(text, offset, positives),
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    RuleError {
        offset,
        found: found_at(text, offset),
        expected,
    }
}

/// The token found at `offset`, for an error line (at most 20 characters).
pub fn found_at(text: &str, offset: usize) -> String {
    let rest = text.get(offset..).unwrap_or("").trim_start();
    let token: String = match rest.chars().next() {
        None => return String::new(),
        Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '.' => rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect(),
        Some(c) => c.to_string(),
    };
    token.chars().take(20).collect()
}

/// What pest expected at `offset`, in a trader's words. Literal tokens (`,` and `)`) are not
/// among pest's expected rules, so an unclosed `(` before the offset adds them.
fn describe_expected(text: &str, offset: usize, rules: &[Rule]) -> String {
    let (mut operand, mut operator, mut end) = (false, false, false);
    for expected in rules {
        match expected {
            Rule::or_op | Rule::and_op | Rule::compare_op | Rule::add_op | Rule::mul_op => operator = true,
            Rule::EOI => end = true,
            _ => operand = true,
        }
    }
    let before = text.get(..offset).unwrap_or(text);
    let unclosed = before.matches('(').count() > before.matches(')').count();
    let mut words: Vec<&str> = Vec::new();
    if operand {
        words.push("a number, a name or `(`");
    }
    if operator {
        words.push("an operator (+ - * /, a comparison, and, or)");
    }
    if unclosed && !operand {
        words.push("`,` or `)`");
    } else if end {
        words.push("the end of the rule");
    }
    match words.len() {
        0 => "something else".into(),
        1 => words[0].into(),
        _ => {
            let last = words.pop().unwrap_or_default();
            format!("{} or {last}", words.join(", "))
        }
    }
}

fn build(pair: Pair<Rule>) -> Expr {
    let at = pair.as_span().start();
    match pair.as_rule() {
        Rule::expr | Rule::and_expr => {
            let or = pair.as_rule() == Rule::expr;
            let mut inner = pair.into_inner();
            let mut left = build(inner.next().expect("an operand"));
            while let Some(op) = inner.next() {
                debug_assert!(matches!(op.as_rule(), Rule::or_op | Rule::and_op));
                let right = build(inner.next().expect("an operand after the operator"));
                let kind = if or {
                    ExprKind::Or(Box::new(left), Box::new(right))
                } else {
                    ExprKind::And(Box::new(left), Box::new(right))
                };
                left = Expr { at, kind };
            }
            left
        }
        Rule::not_expr => {
            let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
            let (nots, last) = parts.split_at(parts.len() - 1);
            let mut expr = build(last[0].clone());
            for not in nots.iter().rev() {
                expr = Expr {
                    at: not.as_span().start(),
                    kind: ExprKind::Not(Box::new(expr)),
                };
            }
            expr
        }
        Rule::compare => {
            let mut inner = pair.into_inner();
            let left = build(inner.next().expect("an operand"));
            let Some(op) = inner.next() else { return left };
            let right = Box::new(build(inner.next().expect("an operand after the comparison")));
            let left = Box::new(left);
            let kind = match op.as_str() {
                "crosses_above" => ExprKind::Cross(Cross::Above, left, right),
                "crosses_below" => ExprKind::Cross(Cross::Below, left, right),
                ">" => ExprKind::Compare(CmpOp::Gt, left, right),
                ">=" => ExprKind::Compare(CmpOp::Ge, left, right),
                "<" => ExprKind::Compare(CmpOp::Lt, left, right),
                "<=" => ExprKind::Compare(CmpOp::Le, left, right),
                "==" => ExprKind::Compare(CmpOp::Eq, left, right),
                _ => ExprKind::Compare(CmpOp::Ne, left, right),
            };
            Expr { at, kind }
        }
        Rule::sum | Rule::product => {
            let mut inner = pair.into_inner();
            let mut left = build(inner.next().expect("an operand"));
            while let Some(op) = inner.next() {
                let right = build(inner.next().expect("an operand after the operator"));
                let op = match op.as_str() {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                left = Expr {
                    at,
                    kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
                };
            }
            left
        }
        Rule::unary => {
            let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
            let (negs, last) = parts.split_at(parts.len() - 1);
            let mut expr = build(last[0].clone());
            for neg in negs.iter().rev() {
                expr = Expr {
                    at: neg.as_span().start(),
                    kind: ExprKind::Neg(Box::new(expr)),
                };
            }
            expr
        }
        Rule::postfix => {
            let mut inner = pair.into_inner();
            let mut expr = build(inner.next().expect("a primary"));
            if let Some(field) = inner.next() {
                let name = (field.as_str().to_string(), field.as_span().start());
                expr = match expr.kind {
                    ExprKind::Call { name: call, args, .. } => Expr {
                        at,
                        kind: ExprKind::Call {
                            name: call,
                            args,
                            field: Some(name),
                        },
                    },
                    // A field of a plain name or number: kept as a call-less field so the
                    // compiler can say what is wrong at the right place.
                    other => Expr {
                        at,
                        kind: ExprKind::Call {
                            name: String::new(),
                            args: vec![Expr { at, kind: other }],
                            field: Some(name),
                        },
                    },
                };
            }
            expr
        }
        Rule::primary => build(pair.into_inner().next().expect("primary has one part")),
        Rule::call => {
            let mut inner = pair.into_inner();
            let name = inner.next().expect("a name").as_str().to_string();
            Expr {
                at,
                kind: ExprKind::Call {
                    name,
                    args: inner.map(build).collect(),
                    field: None,
                },
            }
        }
        Rule::number => Expr {
            at,
            kind: ExprKind::Number(pair.as_str().parse().unwrap_or(Decimal::MAX)),
        },
        Rule::ident => Expr {
            at,
            kind: ExprKind::Name(pair.as_str().to_string()),
        },
        other => unreachable!("grammar rule {other:?} is not an expression"),
    }
}

/// What an expression is, for an error about it.
pub fn found_at_expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number(v) => v.to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Call { name, .. } => format!("{name}(...)"),
        _ => "an expression".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_positions() {
        let e = parse("sma(close, 10) > sma(close, 20) and not rsi(close, 14) > 70").unwrap();
        let ExprKind::And(l, r) = e.kind else { panic!("{e:?}") };
        assert!(matches!(l.kind, ExprKind::Compare(CmpOp::Gt, _, _)));
        assert_eq!(r.at, 36);
        let ExprKind::Not(inner) = r.kind else { panic!() };
        assert!(matches!(inner.kind, ExprKind::Compare(CmpOp::Gt, _, _)));
        let e = parse("1 + 2 * -3").unwrap();
        let ExprKind::Binary(BinOp::Add, _, r) = e.kind else {
            panic!()
        };
        assert!(matches!(r.kind, ExprKind::Binary(BinOp::Mul, _, _)));
        let e = parse("macd(close, 12, 26, 9).signal crosses_above 0").unwrap();
        let ExprKind::Cross(Cross::Above, l, _) = e.kind else {
            panic!()
        };
        assert!(matches!(&l.kind, ExprKind::Call { field: Some((f, 23)), .. } if f == "signal"));
        // `order` is a name, not `or` followed by `der`.
        assert!(matches!(parse("order").unwrap().kind, ExprKind::Name(n) if n == "order"));
    }

    #[test]
    fn errors_say_where_what_and_what_was_expected() {
        let e = parse("sma(close, 10) > > 3").unwrap_err();
        assert_eq!((e.offset, e.found.as_str()), (17, ">"));
        assert!(e.expected.contains("a number"), "{e:?}");
        let e = parse("close >").unwrap_err();
        assert_eq!((e.offset, e.found.as_str()), (7, ""));
        let e = parse("close 3").unwrap_err();
        assert_eq!(e.found, "3");
        assert!(e.expected.contains("the end of the rule"), "{e:?}");
    }
}
