//! What a CSV file holds and where: bars or trades, which column is which, and how time is
//! written, found from the header (names matched case-insensitively, with the usual aliases),
//! from the shape of a headerless first line (Kraken OHLCVT and time-and-sales, Binance klines
//! and trades), or from `--columns`.

use std::fmt;
use std::str::FromStr;

use super::time::{self, TimeUnit};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CsvKind {
    Bars,
    Trades,
}

/// How a trade file writes the taker's side.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SideColumn {
    /// `buy`/`sell` (or `b`/`s`).
    Words(usize),
    /// Binance's `is_buyer_maker`: `true` means the taker sold.
    BuyerIsMaker(usize),
}

/// Column positions (0-based) of what the reader uses; every other column is ignored.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Columns {
    Bars {
        open: usize,
        high: usize,
        low: usize,
        close: usize,
        volume: usize,
        trades: Option<usize>,
    },
    Trades {
        price: usize,
        size: usize,
        side: Option<SideColumn>,
    },
}

/// A file's layout, found once from its first line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub ts: usize,
    pub time_unit: TimeUnit,
    pub columns: Columns,
    /// Fields every row has (the header's or the first line's count).
    pub width: usize,
    pub has_header: bool,
    /// Column names for messages: the header's, or the roles of a headerless layout.
    pub names: Vec<String>,
}

impl Layout {
    pub fn kind(&self) -> CsvKind {
        match self.columns {
            Columns::Bars { .. } => CsvKind::Bars,
            Columns::Trades { .. } => CsvKind::Trades,
        }
    }

    /// `ts,open,high,low,close,volume[,trades]` in that order with plain unix seconds (or told
    /// by size): the shape the vectorised line reader takes at once.
    pub fn is_plain_bars(&self) -> bool {
        let plain = Columns::Bars {
            open: 1,
            high: 2,
            low: 3,
            close: 4,
            volume: 5,
            trades: (self.width == 7).then_some(6),
        };
        self.ts == 0 && self.columns == plain && matches!(self.time_unit, TimeUnit::BySize | TimeUnit::Secs)
    }

    /// `column 3 (high)`, 1-based as a spreadsheet shows it.
    pub fn column_name(&self, index: usize) -> String {
        match self.names.get(index).filter(|n| !n.is_empty()) {
            Some(name) => format!("column {} ({name})", index + 1),
            None => format!("column {}", index + 1),
        }
    }
}

/// `--columns`: which of the file's columns holds the time, open, high, low, close and volume
/// (and optionally the trade count), or for trades the time, price and size (and optionally the
/// side), by header name or 1-based position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    pub kind: CsvKind,
    pub picks: Vec<ColumnPick>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnPick {
    Name(String),
    /// 1-based.
    Position(usize),
}

impl FromStr for ColumnSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let picks: Vec<ColumnPick> = s
            .split(',')
            .map(|p| {
                let p = p.trim();
                if p.is_empty() {
                    return Err(format!("invalid --columns '{s}': an empty entry"));
                }
                Ok(match p.parse::<usize>() {
                    Ok(0) => return Err(format!("invalid --columns '{s}': positions start at 1")),
                    Ok(n) => ColumnPick::Position(n),
                    Err(_) => ColumnPick::Name(p.to_owned()),
                })
            })
            .collect::<Result<_, _>>()?;
        let kind = match picks.len() {
            6 | 7 => CsvKind::Bars,
            3 | 4 => CsvKind::Trades,
            n => {
                return Err(format!(
                    "invalid --columns '{s}': {n} entries; expected ts,open,high,low,close,volume[,trades] \
                     for bars or ts,price,volume[,side] for trades (header names or 1-based positions)"
                ));
            }
        };
        Ok(Self { kind, picks })
    }
}

impl fmt::Display for ColumnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pick) in self.picks.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match pick {
                ColumnPick::Name(n) => f.write_str(n)?,
                ColumnPick::Position(p) => write!(f, "{p}")?,
            }
        }
        Ok(())
    }
}

/// Time column names, best first: where a file has several (Binance's open and close times),
/// the first found here is the bar's time.
const TIME_NAMES: &[&str] = &[
    "ts",
    "time",
    "timestamp",
    "datetime",
    "date",
    "open_time",
    "opentime",
    "open time",
    "date_time",
    "unix",
];
const OPEN_NAMES: &[&str] = &["open", "o"];
const HIGH_NAMES: &[&str] = &["high", "h"];
const LOW_NAMES: &[&str] = &["low", "l"];
const CLOSE_NAMES: &[&str] = &["close", "c"];
const VOLUME_NAMES: &[&str] = &["volume", "vol", "v", "base_volume", "volume_base"];
const TRADES_NAMES: &[&str] = &[
    "trades",
    "count",
    "trade_count",
    "number_of_trades",
    "num_trades",
    "n_trades",
    "tradecount",
];
const PRICE_NAMES: &[&str] = &["price", "p"];
const SIZE_NAMES: &[&str] = &["volume", "size", "qty", "quantity", "amount", "vol"];
const SIDE_NAMES: &[&str] = &["side", "taker_side"];
const BUYER_MAKER_NAMES: &[&str] = &["is_buyer_maker", "isbuyermaker", "buyer_maker"];

/// Why a file's columns cannot be told apart: what was found and what was expected, one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownLayout(pub String);

/// Finds the layout from the first line's fields.
pub fn detect(first: &[&[u8]], spec: Option<&ColumnSpec>) -> Result<Layout, UnknownLayout> {
    find_layout(first, spec).map_err(UnknownLayout)
}

fn find_layout(first: &[&[u8]], spec: Option<&ColumnSpec>) -> Result<Layout, String> {
    let text = |f: &[u8]| String::from_utf8_lossy(f.trim_ascii()).into_owned();
    let looks_like_data = first
        .first()
        .is_some_and(|f| time::parse(f.trim_ascii(), TimeUnit::BySize).is_some());
    if let Some(spec) = spec {
        return from_spec(first, spec, looks_like_data);
    }
    if looks_like_data {
        return headerless(first);
    }
    let names: Vec<String> = first.iter().map(|f| text(f)).collect();
    from_header(names)
}

fn from_header(names: Vec<String>) -> Result<Layout, String> {
    let find = |aliases: &[&str]| {
        aliases
            .iter()
            .find_map(|alias| names.iter().position(|n| n.eq_ignore_ascii_case(alias)))
    };
    // A time column named with its unit: `ts_ns`, `time_ms`.
    let unit_named = names.iter().position(|n| {
        TimeUnit::from_column_name(n).is_some() && {
            let lower = n.to_ascii_lowercase();
            TIME_NAMES.iter().any(|t| lower.starts_with(t))
        }
    });
    // pandas writes a DatetimeIndex without a name as an unnamed first column.
    let unnamed_first = names.first().is_some_and(String::is_empty).then_some(0);
    let Some(ts) = find(TIME_NAMES).or(unit_named).or(unnamed_first) else {
        return Err(format!(
            "unrecognised header '{}': no time column (expected one named ts, time, timestamp, date, \
             datetime or open_time, or an unnamed first column); --columns names the columns of any other layout",
            names.join(",")
        ));
    };
    let time_unit = TimeUnit::from_column_name(&names[ts]).unwrap_or(TimeUnit::BySize);
    let missing = |what: &str| {
        format!(
            "header '{}' has no '{what}' column; --columns names the columns of any other layout",
            names.join(",")
        )
    };
    let columns = if let Some(open) = find(OPEN_NAMES) {
        Columns::Bars {
            open,
            high: find(HIGH_NAMES).ok_or_else(|| missing("high"))?,
            low: find(LOW_NAMES).ok_or_else(|| missing("low"))?,
            close: find(CLOSE_NAMES).ok_or_else(|| missing("close"))?,
            volume: find(VOLUME_NAMES).ok_or_else(|| missing("volume"))?,
            trades: find(TRADES_NAMES),
        }
    } else if let Some(price) = find(PRICE_NAMES) {
        Columns::Trades {
            price,
            size: find(SIZE_NAMES).ok_or_else(|| missing("volume"))?,
            side: find(SIDE_NAMES)
                .map(SideColumn::Words)
                .or_else(|| find(BUYER_MAKER_NAMES).map(SideColumn::BuyerIsMaker)),
        }
    } else {
        return Err(format!(
            "unrecognised header '{}': expected bars (ts,open,high,low,close,volume[,trades]) or trades \
             (ts_ns,price,volume[,side]); --columns names the columns of any other layout",
            names.join(",")
        ));
    };
    Ok(Layout {
        ts,
        time_unit,
        columns,
        width: names.len(),
        has_header: true,
        names,
    })
}

/// Headerless files, known by their width.
fn headerless(first: &[&[u8]]) -> Result<Layout, String> {
    let bars = |trades: Option<usize>| Columns::Bars {
        open: 1,
        high: 2,
        low: 3,
        close: 4,
        volume: 5,
        trades,
    };
    let is_bool = |i: usize| {
        first.get(i).is_some_and(|f| {
            f.trim_ascii().eq_ignore_ascii_case(b"true") || f.trim_ascii().eq_ignore_ascii_case(b"false")
        })
    };
    let (ts, columns, names): (usize, Columns, &[&str]) = match first.len() {
        // Kraken time and sales.
        3 => (
            0,
            Columns::Trades {
                price: 1,
                size: 2,
                side: None,
            },
            &["time", "price", "volume"],
        ),
        6 => (0, bars(None), &["time", "open", "high", "low", "close", "volume"]),
        // Binance trades: id, price, qty, quote_qty, time, is_buyer_maker, is_best_match.
        7 if is_bool(5) => (
            4,
            Columns::Trades {
                price: 1,
                size: 2,
                side: Some(SideColumn::BuyerIsMaker(5)),
            },
            &[
                "trade_id",
                "price",
                "qty",
                "quote_qty",
                "time",
                "is_buyer_maker",
                "is_best_match",
            ],
        ),
        // Kraken OHLCVT.
        7 => (
            0,
            bars(Some(6)),
            &["time", "open", "high", "low", "close", "volume", "trades"],
        ),
        // Binance klines.
        12 => (
            0,
            bars(Some(8)),
            &[
                "open_time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "close_time",
                "quote_volume",
                "count",
                "taker_buy_volume",
                "taker_buy_quote_volume",
                "ignore",
            ],
        ),
        n => {
            return Err(format!(
                "no header and {n} columns: expected 3 (Kraken time and sales: time,price,volume), \
                 6 (time,open,high,low,close,volume), 7 (Kraken OHLCVT: time,open,high,low,close,volume,trades) \
                 or 12 (Binance klines); --columns names the columns of any other layout"
            ));
        }
    };
    Ok(Layout {
        ts,
        time_unit: TimeUnit::BySize,
        columns,
        width: first.len(),
        has_header: false,
        names: names.iter().map(|n| (*n).to_owned()).collect(),
    })
}

fn from_spec(first: &[&[u8]], spec: &ColumnSpec, looks_like_data: bool) -> Result<Layout, String> {
    let names: Vec<String> = first
        .iter()
        .map(|f| String::from_utf8_lossy(f.trim_ascii()).into_owned())
        .collect();
    let by_name = spec.picks.iter().any(|p| matches!(p, ColumnPick::Name(_)));
    // Names need a header; positions alone read a header when the first line is not data.
    let has_header = by_name || !looks_like_data;
    let index = |pick: &ColumnPick| -> Result<usize, String> {
        match pick {
            ColumnPick::Position(p) if *p <= first.len() => Ok(p - 1),
            ColumnPick::Position(p) => Err(format!(
                "--columns names column {p}, but the first line has {} columns",
                first.len()
            )),
            ColumnPick::Name(name) => names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("--columns names '{name}', which the header '{}' lacks", names.join(","))),
        }
    };
    let at: Vec<usize> = spec.picks.iter().map(index).collect::<Result<_, _>>()?;
    let columns = match spec.kind {
        CsvKind::Bars => Columns::Bars {
            open: at[1],
            high: at[2],
            low: at[3],
            close: at[4],
            volume: at[5],
            trades: at.get(6).copied(),
        },
        CsvKind::Trades => {
            let side = at.get(3).map(|&i| {
                let name = names[i].to_ascii_lowercase();
                if BUYER_MAKER_NAMES.contains(&name.as_str()) {
                    SideColumn::BuyerIsMaker(i)
                } else {
                    SideColumn::Words(i)
                }
            });
            Columns::Trades {
                price: at[1],
                size: at[2],
                side,
            }
        }
    };
    let time_unit = if has_header {
        TimeUnit::from_column_name(&names[at[0]]).unwrap_or(TimeUnit::BySize)
    } else {
        TimeUnit::BySize
    };
    let names = if has_header {
        names
    } else {
        let roles: &[&str] = match spec.kind {
            CsvKind::Bars => &["time", "open", "high", "low", "close", "volume", "trades"],
            CsvKind::Trades => &["time", "price", "volume", "side"],
        };
        let mut named = vec![String::new(); first.len()];
        for (role, &i) in roles.iter().zip(&at) {
            named[i] = (*role).to_owned();
        }
        named
    };
    Ok(Layout {
        ts: at[0],
        time_unit,
        columns,
        width: first.len(),
        has_header,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(line: &str, spec: Option<&str>) -> Result<Layout, String> {
        let fields: Vec<&[u8]> = line.split(',').map(str::as_bytes).collect();
        let spec = spec.map(|s| s.parse::<ColumnSpec>().unwrap());
        detect(&fields, spec.as_ref()).map_err(|e| e.0)
    }

    fn bars(ts: usize, o: usize, h: usize, l: usize, c: usize, v: usize, n: Option<usize>) -> (usize, Columns) {
        (
            ts,
            Columns::Bars {
                open: o,
                high: h,
                low: l,
                close: c,
                volume: v,
                trades: n,
            },
        )
    }

    #[test]
    fn headers_match_with_aliases_in_any_case() {
        for (header, want, header_kept) in [
            ("ts,open,high,low,close,volume", bars(0, 1, 2, 3, 4, 5, None), true),
            (
                "ts,open,high,low,close,volume,trades",
                bars(0, 1, 2, 3, 4, 5, Some(6)),
                true,
            ),
            // pandas' to_csv of a DatetimeIndex without a name.
            (",open,high,low,close,volume", bars(0, 1, 2, 3, 4, 5, None), true),
            // Yahoo-style.
            (
                "Date,Open,High,Low,Close,Adj Close,Volume",
                bars(0, 1, 2, 3, 4, 6, None),
                true,
            ),
            (
                "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore",
                bars(0, 1, 2, 3, 4, 5, Some(8)),
                true,
            ),
            (
                "Timestamp,Close,High,Low,Open,Volume",
                bars(0, 4, 2, 3, 1, 5, None),
                true,
            ),
            (
                "symbol,datetime,open,high,low,close,volume",
                bars(1, 2, 3, 4, 5, 6, None),
                true,
            ),
        ] {
            let l = layout(header, None).unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!((l.ts, l.columns), want, "{header}");
            assert_eq!(l.has_header, header_kept);
            assert_eq!(l.kind(), CsvKind::Bars);
        }
        let trades = layout("ts_ns,price,volume,side,trade_id", None).unwrap();
        assert_eq!(trades.time_unit, TimeUnit::Nanos);
        assert_eq!(
            trades.columns,
            Columns::Trades {
                price: 1,
                size: 2,
                side: Some(SideColumn::Words(3))
            }
        );
        let binance = layout("id,price,qty,quoteQty,time,isBuyerMaker", None).unwrap();
        assert_eq!(binance.ts, 4);
        assert_eq!(
            binance.columns,
            Columns::Trades {
                price: 1,
                size: 2,
                side: Some(SideColumn::BuyerIsMaker(5))
            }
        );
        assert!(layout("ts,open,high,low,close,volume", None).unwrap().is_plain_bars());
        assert!(
            !layout("Date,Open,High,Low,Close,Adj Close,Volume", None)
                .unwrap()
                .is_plain_bars()
        );
    }

    #[test]
    fn headerless_shapes_by_width() {
        let kraken_ts = layout("1381095255.6133,122.5,0.1", None).unwrap();
        assert_eq!((kraken_ts.kind(), kraken_ts.has_header), (CsvKind::Trades, false));
        let ohlcvt = layout("1381095240,122,123,121,122.5,4.2,7", None).unwrap();
        assert_eq!((ohlcvt.ts, ohlcvt.columns), bars(0, 1, 2, 3, 4, 5, Some(6)));
        let klines = layout(
            "1502942400000,4261.48,4261.48,4261.48,4261.48,1.775183,1502942459999,7564.9,3,0.075183,320.39,0",
            None,
        )
        .unwrap();
        assert_eq!((klines.ts, klines.columns), bars(0, 1, 2, 3, 4, 5, Some(8)));
        let binance_trades = layout("3735683259,61837.63,0.02,1236.75,1723161255342,True,True", None).unwrap();
        assert_eq!((binance_trades.ts, binance_trades.kind()), (4, CsvKind::Trades));
        let iso = layout("2017-09-03 00:00:00,1,1,1,1,1", None).unwrap();
        assert!(!iso.has_header);
        let err = layout("1,2,3,4", None).unwrap_err();
        assert!(err.starts_with("no header and 4 columns"), "{err}");
    }

    #[test]
    fn columns_by_name_or_position() {
        let l = layout("when,a,b,c,d,e", Some("when,a,b,c,d,e")).unwrap();
        assert_eq!(
            (l.ts, l.columns, l.has_header),
            (0, bars(0, 1, 2, 3, 4, 5, None).1, true)
        );
        let l = layout("x,t,c,o,h,l,v", Some("2,4,5,6,3,7")).unwrap();
        assert_eq!(
            (l.ts, l.columns, l.has_header),
            (1, bars(1, 3, 4, 5, 2, 6, None).1, true)
        );
        let l = layout("9,1504396800,5,1,6,1,2", Some("2,4,5,6,3,7")).unwrap();
        assert!(!l.has_header);
        assert_eq!(l.column_name(2), "column 3 (close)");
        let l = layout("t,p,q", Some("t,p,q")).unwrap();
        assert_eq!(l.kind(), CsvKind::Trades);
        assert!(layout("a,b", Some("a,b,c")).unwrap_err().contains("lacks"));
        assert!(layout("1,2", Some("1,2,3")).unwrap_err().contains("has 2 columns"));
        assert!("1,2".parse::<ColumnSpec>().unwrap_err().contains("2 entries"));
        assert!("0,1,2".parse::<ColumnSpec>().unwrap_err().contains("start at 1"));
    }

    #[test]
    fn unknown_headers_say_what_was_expected() {
        let err = layout("when,price", None).unwrap_err();
        assert!(err.contains("no time column"), "{err}");
        let err = layout("ts,open,high,low,close", None).unwrap_err();
        assert!(err.contains("no 'volume' column"), "{err}");
        let err = layout("time,bid,ask", None).unwrap_err();
        assert!(err.contains("unrecognised header 'time,bid,ask'"), "{err}");
    }
}
