//! The self-contained HTML report of a backtest: one file holding its style, the chart library,
//! the data (as JSON) and the script that draws it. It opens from `file://` without a network:
//! nothing is fetched, and a CSP in the page forbids fetching anything.
//!
//! The data travels in `<script type="application/json" id="report-data">` with every `<`, `>`
//! and `&` written as a JSON escape, so no string in it can end the element; web/report/report.js
//! reads it and sets every value with `textContent`.

use serde::Serialize;

/// The dashboard's theme, then the report's own rules.
const THEME_CSS: &str = include_str!("../../../web/src/theme.css");
const REPORT_CSS: &str = include_str!("../../../web/report/report.css");
const REPORT_JS: &str = include_str!("../../../web/report/report.js");
const CHARTS_JS: &str = nanotrader_charts::LIGHTWEIGHT_CHARTS_JS;

/// Everything the report shows. Figures meant to be read exactly come preformatted as text.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct ReportData {
    /// E.g. "sma-cross 10/20 on btcusd_1m_20171217.csv".
    pub title: String,
    /// E.g. "nanotrader 0.1.0 backtest".
    pub generated_by: String,
    /// Preformatted figures, shown as a table.
    pub summary: Vec<SummaryRow>,
    /// Fee, sizing, fills at close, etc., shown as a list.
    pub assumptions: Vec<String>,
    pub price: PriceSeries,
    /// Account equity (USD) over time.
    pub equity: Vec<Point>,
    /// What holding from the first bar would have been worth.
    pub buy_hold_equity: Vec<Point>,
    /// 0 or negative percent below the running peak.
    pub drawdown_pct: Vec<Point>,
    /// The fills shown (markers and table), possibly fewer than the run's.
    pub fills: Vec<FillRow>,
    /// All fills of the run.
    pub fills_total: u64,
    /// Present for parameter sweeps.
    pub sweep: Option<SweepData>,
    /// Present for sweeps over `--param` grids.
    pub grid: Option<GridData>,
    /// Present for walk-forwards.
    pub walk_forward: Option<WalkForwardData>,
}

/// The best combinations of a `--param` grid.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct GridData {
    pub metric: String,
    pub metric_label: String,
    /// The parameters varied, in the order of each row's `values`.
    pub params: Vec<String>,
    pub combinations: usize,
    /// E.g. how many combinations were no valid strategy.
    pub note: Option<String>,
    /// Best first.
    pub top: Vec<GridRow>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct GridRow {
    pub values: Vec<String>,
    pub return_pct: f64,
    /// `None` when undefined or when the span does not carry it.
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub max_drawdown_pct: f64,
    pub trades: u64,
    pub win_rate_pct: Option<f64>,
}

/// A walk-forward: in sample against out of sample per fold, the stitched out-of-sample equity
/// and the warning.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct WalkForwardData {
    /// How the folds were made, in a sentence.
    pub scheme: String,
    pub metric: String,
    pub metric_label: String,
    pub folds: Vec<FoldRow>,
    /// The out-of-sample parts chained (USD).
    pub stitched_equity: Vec<Point>,
    /// Where each out-of-sample part starts (unix seconds), for markers.
    pub fold_starts: Vec<i64>,
    /// The stitched figures, preformatted.
    pub stitched: Vec<SummaryRow>,
    /// Why in and out of sample disagree; empty when they do not.
    pub warnings: Vec<String>,
    /// The rule behind the warning.
    pub rule: String,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct FoldRow {
    pub fold: usize,
    /// E.g. "1..1000 (2018-04-04 00:00 .. 2018-04-04 16:39)".
    pub in_sample: String,
    pub out_of_sample: String,
    pub chosen: String,
    pub in_sample_metric: Option<f64>,
    pub out_of_sample_metric: Option<f64>,
    pub in_sample_return_pct: f64,
    pub out_of_sample_return_pct: f64,
    pub out_of_sample_trades: u64,
    /// In sample above 0, out of sample not.
    pub disagrees: bool,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct SummaryRow {
    pub label: String,
    pub value: String,
    pub note: String,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct PriceSeries {
    pub candles: Vec<Candle>,
    /// Indicator lines, e.g. "SMA 10", "SMA 20".
    pub lines: Vec<LineSeries>,
    /// Seconds per candle as shown (after downsampling).
    pub bar_seconds: i64,
    /// Bars in the data before downsampling.
    pub source_bars: u64,
    /// Decimals of a price: the pair's tick (human_format::PairFormat); without it the page
    /// picks enough decimals for the smallest price.
    pub price_decimals: Option<u32>,
}

/// One candle; `time` in unix seconds.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Candle {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct LineSeries {
    pub name: String,
    pub points: Vec<Point>,
}

/// A value at a time (unix seconds).
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    pub time: i64,
    pub value: f64,
}

/// One fill, as people read it (human_format): money to the cent, amounts to 8 places, the
/// price at the pair's tick. The exact fills are in the `--trades` CSV.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct FillRow {
    pub time: i64,
    /// "buy" or "sell".
    pub side: String,
    pub qty: String,
    pub price: String,
    pub fee: String,
    pub cash_after: String,
    pub position_after: String,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct SweepData {
    /// E.g. "sharpe", "return_pct".
    pub metric: String,
    /// E.g. "Sharpe (annualised)".
    pub metric_label: String,
    /// Heatmap rows.
    pub shorts: Vec<usize>,
    /// Heatmap columns.
    pub longs: Vec<usize>,
    /// `values[i][j]` for `(shorts[i], longs[j])`; `None` for an invalid combination or an
    /// undefined value (a Sharpe or Sortino over a span too short to carry it, too).
    pub values: Vec<Vec<Option<f64>>>,
    /// Said under the heatmap, e.g. why some Sharpe ratios are not shown.
    pub note: Option<String>,
    /// Best first.
    pub top: Vec<SweepRow>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct SweepRow {
    pub short: usize,
    pub long: usize,
    pub return_pct: f64,
    /// `None` when undefined or when the span does not carry it (see SweepData::note).
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub max_drawdown_pct: f64,
    pub trades: u64,
    pub win_rate_pct: Option<f64>,
}

/// Nothing leaves the page: no fetch, no font, no image but inline ones. Inline code is allowed
/// (the page is all inline); the data is never executed and never parsed as HTML.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   img-src data:; base-uri 'none'; form-action 'none'";

/// The page (web/report/report.html), its parts filled in by askama.
#[derive(askama::Template)]
#[template(path = "report.html")]
struct Page<'a> {
    csp: &'a str,
    title: &'a str,
    generated_by: &'a str,
    theme_css: &'a str,
    report_css: &'a str,
    json: &'a str,
    charts_js: &'a str,
    report_js: &'a str,
}

/// The whole page as one HTML string: works offline from file://, no network requests at all.
pub fn render(data: &ReportData) -> String {
    use askama::Template;
    let json = script_safe_json(data);
    Page {
        csp: CSP,
        title: &data.title,
        generated_by: &data.generated_by,
        theme_css: &script_safe(THEME_CSS, "</style"),
        report_css: &script_safe(REPORT_CSS, "</style"),
        json: &json,
        charts_js: &script_safe(CHARTS_JS, "</script"),
        report_js: &script_safe(REPORT_JS, "</script"),
    }
    .render()
    .expect("the report page renders: its parts are plain strings")
}

/// The data as JSON that cannot end its `<script>` element or open a comment: `<`, `>` and `&`
/// (and the JavaScript line terminators) become `\uXXXX` escapes, which are only valid inside
/// JSON strings, where they mean the same character.
fn script_safe_json(data: &ReportData) -> String {
    let json = serde_json::to_string(data).expect("the report data serializes");
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Our own code and the library never contain the end tag of their element (tested); should a
/// new version of the library do so, `<\/` keeps it inside (same meaning in strings, regexes and
/// comments).
fn script_safe<'a>(code: &'a str, end_tag: &str) -> std::borrow::Cow<'a, str> {
    if code.to_ascii_lowercase().contains(end_tag) {
        let mut out = String::with_capacity(code.len() + 16);
        let lower = code.to_ascii_lowercase();
        let mut last = 0;
        for (at, _) in lower.match_indices(end_tag) {
            out.push_str(&code[last..at]);
            out.push_str("<\\/");
            last = at + 2;
        }
        out.push_str(&code[last..]);
        out.into()
    } else {
        code.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReportData {
        ReportData {
            title: "sma-cross 10/20 on btcusd.csv".into(),
            generated_by: "nanotrader test".into(),
            summary: vec![SummaryRow {
                label: "Total return".into(),
                value: "+1.23%".into(),
                note: String::new(),
            }],
            assumptions: vec!["Fee 0.26% of each fill's value.".into()],
            price: PriceSeries {
                candles: vec![Candle {
                    time: 1_500_000_000,
                    open: 1.0,
                    high: 2.0,
                    low: 0.5,
                    close: 1.5,
                }],
                lines: vec![LineSeries {
                    name: "SMA 10".into(),
                    points: vec![Point {
                        time: 1_500_000_000,
                        value: 1.25,
                    }],
                }],
                bar_seconds: 60,
                source_bars: 1,
                price_decimals: Some(1),
            },
            fills: vec![FillRow {
                time: 1_500_000_000,
                side: "buy".into(),
                qty: "0.12345678".into(),
                price: "19000.5".into(),
                ..FillRow::default()
            }],
            fills_total: 1,
            ..ReportData::default()
        }
    }

    /// The text of the `<script type="application/json">` element, as a browser delimits it.
    fn data_element(page: &str) -> &str {
        let open = "<script type=\"application/json\" id=\"report-data\">";
        let start = page.find(open).expect("the data element") + open.len();
        let len = page[start..].find("</script").expect("its end tag");
        &page[start..start + len]
    }

    #[test]
    fn the_page_loads_nothing_from_the_network() {
        let mut data = sample();
        data.sweep = Some(SweepData {
            metric: "sharpe".into(),
            ..SweepData::default()
        });
        let page = render(&data);
        let lower = page.to_ascii_lowercase();
        for attr in ["src=", "href=", "src =", "href =", "url(", "@import"] {
            for (at, _) in lower.match_indices(attr) {
                let rest = lower[at + attr.len()..].trim_start_matches(['"', '\'', ' ']);
                assert!(
                    !rest.starts_with("http:") && !rest.starts_with("https:") && !rest.starts_with("//"),
                    "a network source at byte {at}: {}",
                    &page[at..(at + 80).min(page.len())]
                );
            }
        }
        assert!(!lower.contains("<script src"), "every script is inline");
        assert!(!lower.contains("<link rel=\"stylesheet\""), "the style is inline");
        assert!(page.contains("default-src 'none'"), "the CSP forbids fetching");
    }

    #[test]
    fn the_data_is_embedded_as_json() {
        let data = sample();
        let page = render(&data);
        let embedded: serde_json::Value = serde_json::from_str(data_element(&page)).expect("valid JSON");
        assert_eq!(embedded, serde_json::to_value(&data).unwrap());
        assert_eq!(embedded["price"]["candles"][0]["close"], 1.5);
        assert_eq!(embedded["fills"][0]["qty"], "0.12345678");
        assert_eq!(embedded["sweep"], serde_json::Value::Null);
        assert!(page.contains("LightweightCharts"), "the chart library is inline");
        assert!(page.contains("report-data"), "report.js is inline");
        assert!(page.contains("<title>sma-cross 10/20 on btcusd.csv · nanotrader backtest</title>"));
    }

    #[test]
    fn a_closing_script_tag_in_the_data_stays_inert() {
        let evil = "</script><script>alert(1)</script><!-- & \u{2028}";
        let mut data = sample();
        data.title = evil.into();
        data.summary[0].note = evil.into();
        data.fills[0].side = "</SCRIPT>".into();
        let page = render(&data);
        assert!(!page.contains("alert(1)</script>"), "the title broke out");
        assert!(!page.contains("<script>alert"), "the title broke out");
        let element = data_element(&page);
        assert!(!element.contains('<') && !element.contains('>'));
        let embedded: serde_json::Value = serde_json::from_str(element).expect("valid JSON");
        assert_eq!(embedded["title"], evil, "the escapes mean the same text");
        assert_eq!(embedded["fills"][0]["side"], "</SCRIPT>");
        // Escaped in the HTML (askama writes numeric character references).
        assert!(
            page.contains("&#60;/script&#62;&#60;script&#62;alert(1)"),
            "escaped in the HTML"
        );
        // Exactly our three script elements open and close.
        let lower = page.to_ascii_lowercase();
        assert_eq!(lower.matches("<script").count(), 3);
        assert_eq!(lower.matches("</script").count(), 3);
    }

    #[test]
    fn embedded_code_cannot_end_its_element() {
        for code in [CHARTS_JS, REPORT_JS] {
            assert!(!code.to_ascii_lowercase().contains("</script"));
        }
        assert!(!REPORT_CSS.to_ascii_lowercase().contains("</style"));
        assert!(!THEME_CSS.to_ascii_lowercase().contains("</style"));
        assert_eq!(script_safe("a</Script>b", "</script"), "a<\\/Script>b");
    }

    #[test]
    fn non_finite_values_and_empty_parts_render() {
        let mut data = ReportData::default();
        data.equity.push(Point {
            time: 1,
            value: f64::NAN,
        });
        data.sweep = Some(SweepData {
            values: vec![vec![None, Some(f64::INFINITY)]],
            shorts: vec![5],
            longs: vec![10, 20],
            ..SweepData::default()
        });
        let page = render(&data);
        let embedded: serde_json::Value = serde_json::from_str(data_element(&page)).expect("valid JSON");
        assert_eq!(embedded["equity"][0]["value"], serde_json::Value::Null);
        assert_eq!(embedded["sweep"]["values"][0][1], serde_json::Value::Null);
    }

    #[test]
    fn twenty_thousand_candles_render_quickly() {
        let mut data = sample();
        data.price.candles = (0..20_000)
            .map(|i| Candle {
                time: 1_500_000_000 + i * 60,
                open: 100.0 + i as f64 * 0.01,
                high: 101.0,
                low: 99.0,
                close: 100.5,
            })
            .collect();
        data.fills = vec![data.fills[0].clone(); 5_000];
        let started = std::time::Instant::now();
        let page = render(&data);
        assert!(page.len() > 1_000_000);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
