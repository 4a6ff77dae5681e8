//! Numbers for people: what logs, summaries and reports print. Quote-currency money (USD) to the
//! cent with thousands separators, base-asset amounts (BTC) to 8 places, prices at the pair's
//! tick, percentages and ratios to 2 places, lags and ages in human units.
//!
//! Rounding is half away from zero ("half-up": 0.125 -> 0.13, -0.125 -> -0.13), as the
//! dashboard's page rounds the exact strings it receives. Only what is printed is rounded:
//! the store, CSV exports and JSON keep every digit.
//!
//! It owns how a figure is written for a person. It knows the market's types and Kraken's pair
//! table (for a pair's tick, without the Kraken clients); it must not know where the figures
//! come from (engine, store, backtest) or where they are shown.

mod exact;
mod fills_csv;

pub use exact::{plain, write_plain};
pub use fills_csv::{FILLS_CSV_COLUMNS, FILLS_CSV_HEADER, push_fill_rows, write_fills_csv, write_run_fills_csv};

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use thousands::Separable;

use nanotrader_kraken::PairMap;
use nanotrader_market::{Speed, Timestamp};

/// How every figure shown to people is rounded.
pub const ROUNDING: RoundingStrategy = RoundingStrategy::MidpointAwayFromZero;
/// Places of a percentage or a ratio (Sharpe, Sortino).
pub const PERCENT_DECIMALS: u32 = 2;
/// Places of a fiat or stablecoin amount: the cent.
pub const FIAT_DECIMALS: u32 = 2;
/// Places of a crypto amount (BTC's satoshi), and the most places a price is shown with when the
/// decimals come from the data.
pub const CRYPTO_DECIMALS: u32 = 8;
/// Shown for a value that does not exist (no trade yet, a ratio the span cannot carry).
pub const NONE: &str = "—";

/// Currencies counted in cents; any other code (BTC, ETH, ...) is counted to 8 places.
const FIAT: [&str; 11] = [
    "USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY", "USDT", "USDC", "DAI", "PYUSD",
];

/// `d` rounded to `dp` places (half away from zero), with exactly `dp` places and thousands
/// separators: `1234.565` at 2 -> `1,234.57`. A value that rounds to zero has no sign.
pub fn fixed(d: Decimal, dp: u32) -> String {
    let mut rounded = d.round_dp_with_strategy(dp, ROUNDING);
    if rounded.is_zero() {
        rounded = Decimal::ZERO;
    }
    rounded.rescale(dp);
    rounded.to_string().separate_with_commas()
}

/// A float figure (a ratio, a percentage) rounded as decimals are: through its shortest
/// decimal spelling, so 0.125 is a tie and rounds up like the exact 0.125 would.
pub fn fixed_f64(v: f64, dp: u32) -> String {
    if !v.is_finite() {
        return NONE.to_owned();
    }
    match Decimal::from_f64(v) {
        Some(d) => fixed(d, dp),
        // Beyond a decimal's range (about 7.9e28): nobody reads those digits anyway.
        None => format!("{v:.0$e}", dp as usize),
    }
}

/// `12.345` -> `12.35%`; `None` or not finite -> `—`.
pub fn percent(v: impl Into<Option<f64>>) -> String {
    v.into()
        .filter(|v| v.is_finite())
        .map_or(NONE.to_owned(), |v| format!("{}%", fixed_f64(v, PERCENT_DECIMALS)))
}

/// `1.5` -> `+1.50%`, `-1.5` -> `-1.50%`, and `0.001` -> `0.00%` (neither gain nor loss).
pub fn signed_percent(v: impl Into<Option<f64>>) -> String {
    v.into().filter(|v| v.is_finite()).map_or(NONE.to_owned(), |v| {
        let text = fixed_f64(v, PERCENT_DECIMALS);
        if text.starts_with('-') || text.trim_start_matches(['0', '.', ',']).is_empty() {
            format!("{text}%")
        } else {
            format!("+{text}%")
        }
    })
}

/// A percentage held as an exact decimal (an account's return).
pub fn signed_percent_decimal(d: Decimal) -> String {
    signed_percent(d.to_f64())
}

/// A ratio such as Sharpe: `1.234` -> `1.23`; `None` -> `—`.
pub fn ratio(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or(NONE.to_owned(), |v| fixed_f64(v, PERCENT_DECIMALS))
}

/// A count with thousands separators: `12345` -> `12,345`.
pub fn count(n: u64) -> String {
    n.separate_with_commas()
}

/// How long ago or how late, in the unit a person reads best: `850 ms`, `4.2 s`, `12 min`,
/// `3.5 h`, `2.1 days`. Never negative: a clock a little ahead reads as `0 ms`.
pub fn lag(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{} s", fixed_f64(ms as f64 / 1e3, 1)),
        ms if ms < 3_600_000 => format!("{} min", fixed_f64(ms as f64 / 60e3, 0)),
        ms if ms < 86_400_000 => format!("{} h", fixed_f64(ms as f64 / 3_600e3, 1)),
        ms => format!("{} days", fixed_f64(ms as f64 / 86_400e3, 1)),
    }
}

/// A moment for people: `2017-09-03 12:34:00 UTC`.
pub fn utc(ts: Timestamp) -> String {
    chrono::DateTime::from_timestamp_nanos(ts.nanos())
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// Where a run's market data comes from, as people are told: only an exchange's live feed is
/// "live"; a replay or a simulation says so, with its speed, and shows the data's own time
/// rather than a lag behind the wall clock (which means nothing for old or invented data).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DataMode {
    Live,
    Replay(Speed),
    Simulation(Speed),
}

impl DataMode {
    /// `live`, `replay` or `simulation` (the status API's `mode`).
    pub fn key(self) -> &'static str {
        match self {
            DataMode::Live => "live",
            DataMode::Replay(_) => "replay",
            DataMode::Simulation(_) => "simulation",
        }
    }

    pub fn is_live(self) -> bool {
        self == DataMode::Live
    }

    /// `60x`, `0.5x` or `max speed`; `None` for a live feed, which runs at the market's pace.
    pub fn speed(self) -> Option<String> {
        match self {
            DataMode::Live => None,
            DataMode::Replay(speed) | DataMode::Simulation(speed) => Some(match speed {
                Speed::Max => "max speed".to_owned(),
                Speed::Factor(x) => format!("{x}x"),
            }),
        }
    }

    /// `live`, `replay 60x`, `replay max speed`, `simulation 1x`.
    pub fn label(self) -> String {
        match self.speed() {
            Some(speed) => format!("{} {speed}", self.key()),
            None => self.key().to_owned(),
        }
    }
}

/// How one pair's figures are shown: its base and quote codes, the decimals of a price (the
/// pair's tick), of a base amount and of a quote amount.
///
/// The tick: for a pair in the built-in table (Kraken's AssetPairs entries for BTC/USD and
/// BTC/USDT: `pair_decimals` 1, `lot_decimals` 8), Kraken's `pair_decimals`, whatever the data;
/// for any other pair, the most decimals the prices seen so far use, at most 8 (so a run or a
/// replay of such a pair needs no network to show its prices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairFormat {
    pub base: String,
    pub quote: String,
    price_decimals: u32,
    base_decimals: u32,
    quote_decimals: u32,
    /// False when the tick comes from the data (`observe_price` may raise it).
    tick_known: bool,
}

impl PairFormat {
    pub fn new(pair: &str) -> Self {
        let (base, quote) = pair.trim().split_once('/').map_or_else(
            || (pair.trim().to_ascii_uppercase(), String::new()),
            |(b, q)| (b.trim().to_ascii_uppercase(), q.trim().to_ascii_uppercase()),
        );
        let decimals = |code: &str| {
            if FIAT.contains(&code) {
                FIAT_DECIMALS
            } else {
                CRYPTO_DECIMALS
            }
        };
        let quote_decimals = decimals(&quote);
        match PairMap::offline_default().asset_pair(pair) {
            Ok(known) => Self {
                base,
                quote,
                price_decimals: known.pair_decimals.min(CRYPTO_DECIMALS),
                base_decimals: known.lot_decimals.min(CRYPTO_DECIMALS),
                quote_decimals,
                tick_known: true,
            },
            Err(_) => Self {
                base_decimals: decimals(&base),
                base,
                quote,
                price_decimals: 0,
                quote_decimals,
                tick_known: false,
            },
        }
    }

    /// `new`, with the tick of an unknown pair taken from these prices.
    pub fn with_prices(pair: &str, prices: impl IntoIterator<Item = Decimal>) -> Self {
        let mut format = Self::new(pair);
        for price in prices {
            format.observe_price(price);
        }
        format
    }

    /// A price from the data: for a pair without a known tick, its decimals count.
    #[inline]
    pub fn observe_price(&mut self, price: Decimal) {
        if !self.tick_known && price.scale() > self.price_decimals {
            self.price_decimals = price.normalize().scale().clamp(self.price_decimals, CRYPTO_DECIMALS);
        }
    }

    /// For a pair without a known tick: the data's prices use this many decimals.
    pub fn observe_decimals(&mut self, decimals: u32) {
        if !self.tick_known {
            self.price_decimals = self.price_decimals.max(decimals.min(CRYPTO_DECIMALS));
        }
    }

    pub fn price_decimals(&self) -> u32 {
        self.price_decimals
    }

    pub fn tick_known(&self) -> bool {
        self.tick_known
    }

    /// A price at the tick: `4652.69` -> `4,652.7` for BTC/USD.
    pub fn price(&self, d: Decimal) -> String {
        fixed(d, self.price_decimals)
    }

    /// A float price (a chart value, an average) at the tick.
    pub fn price_f64(&self, v: f64) -> String {
        fixed_f64(v, self.price_decimals)
    }

    /// Quote-currency money: `99997.35129` -> `99,997.35`.
    pub fn money(&self, d: Decimal) -> String {
        fixed(d, self.quote_decimals)
    }

    /// `money` with its currency: `99,997.35 USD`.
    pub fn money_unit(&self, d: Decimal) -> String {
        self.with_code(self.money(d), &self.quote)
    }

    /// Money with its sign: `+12.30 USD`, `-4.00 USD`, `0.00 USD`.
    pub fn signed_money_unit(&self, d: Decimal) -> String {
        let text = self.money(d);
        let positive = !text.starts_with('-') && !text.trim_start_matches(['0', '.', ',']).is_empty();
        self.with_code(if positive { format!("+{text}") } else { text }, &self.quote)
    }

    /// A base-asset amount: `21.776` -> `21.77600000`.
    pub fn amount(&self, d: Decimal) -> String {
        fixed(d, self.base_decimals)
    }

    /// `amount` with its asset: `21.77600000 BTC`.
    pub fn amount_unit(&self, d: Decimal) -> String {
        self.with_code(self.amount(d), &self.base)
    }

    fn with_code(&self, number: String, code: &str) -> String {
        if code.is_empty() {
            number
        } else {
            format!("{number} {code}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn decimals_round_half_away_from_zero_with_separators() {
        let cases = [
            ("0", 2, "0.00"),
            ("1234.565", 2, "1,234.57"),
            ("1234.564999", 2, "1,234.56"),
            ("-1234.565", 2, "-1,234.57"),
            ("0.125", 2, "0.13"),
            ("0.135", 2, "0.14"),
            ("-0.004", 2, "0.00"),
            ("99997.35129", 2, "99,997.35"),
            ("1234567.891", 2, "1,234,567.89"),
            ("999.995", 2, "1,000.00"),
            ("21.776", 8, "21.77600000"),
            ("0.123456785", 8, "0.12345679"),
            ("4652.69", 1, "4,652.7"),
            ("4652.65", 1, "4,652.7"),
            ("4652.649", 1, "4,652.6"),
            ("19505", 1, "19,505.0"),
            ("0.000125", 0, "0"),
        ];
        for (input, dp, want) in cases {
            assert_eq!(fixed(d(input), dp), want, "{input} at {dp}");
        }
    }

    #[test]
    fn floats_round_like_their_decimal_spelling() {
        assert_eq!(fixed_f64(0.125, 2), "0.13");
        assert_eq!(fixed_f64(-0.125, 2), "-0.13");
        assert_eq!(
            fixed_f64(2.675, 2),
            "2.68",
            "the spelling 2.675, not the binary 2.67499.."
        );
        assert_eq!(fixed_f64(1e30, 2), "1.00e30");
        assert_eq!(fixed_f64(f64::NAN, 2), NONE);
        assert_eq!(percent(12.345), "12.35%");
        assert_eq!(percent(None), NONE);
        assert_eq!(percent(f64::INFINITY), NONE);
        assert_eq!(signed_percent(1.5), "+1.50%");
        assert_eq!(signed_percent(-1.5), "-1.50%");
        assert_eq!(signed_percent(0.004), "0.00%");
        assert_eq!(signed_percent(-0.004), "0.00%");
        assert_eq!(signed_percent(1234.5), "+1,234.50%");
        assert_eq!(ratio(Some(1.005)), "1.01");
        assert_eq!(ratio(Some(-0.5)), "-0.50");
        assert_eq!(ratio(None), NONE);
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn lags_read_in_human_units_and_never_negative() {
        let cases = [
            (-5_000, "0 ms"),
            (0, "0 ms"),
            (999, "999 ms"),
            (1_000, "1.0 s"),
            (4_250, "4.3 s"),
            (59_949, "59.9 s"),
            (60_000, "1 min"),
            (754_000, "13 min"),
            (3_600_000, "1.0 h"),
            (5_400_000, "1.5 h"),
            (86_400_000, "1.0 days"),
            (2_854_000_000_000, "33,032.4 days"),
        ];
        for (ms, want) in cases {
            assert_eq!(lag(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn only_a_live_feed_is_called_live() {
        assert_eq!(DataMode::Live.label(), "live");
        assert_eq!(DataMode::Replay(Speed::Factor(60.0)).label(), "replay 60x");
        assert_eq!(DataMode::Replay(Speed::Factor(0.5)).label(), "replay 0.5x");
        assert_eq!(DataMode::Replay(Speed::Max).label(), "replay max speed");
        assert_eq!(DataMode::Simulation(Speed::Factor(1.0)).label(), "simulation 1x");
        assert_eq!(DataMode::Simulation(Speed::Max).speed().as_deref(), Some("max speed"));
        assert_eq!(DataMode::Live.speed(), None);
        assert!(DataMode::Live.is_live() && !DataMode::Replay(Speed::Max).is_live());
        assert_eq!(utc(Timestamp::from_secs(1_504_441_440)), "2017-09-03 12:24:00 UTC");
    }

    #[test]
    fn known_pairs_use_krakens_tick_and_others_the_datas_decimals() {
        let btc = PairFormat::new("BTC/USD");
        assert!(btc.tick_known());
        assert_eq!((btc.base.as_str(), btc.quote.as_str()), ("BTC", "USD"));
        assert_eq!(btc.price(d("4652.69")), "4,652.7");
        assert_eq!(btc.money_unit(d("99997.35129")), "99,997.35 USD");
        assert_eq!(btc.signed_money_unit(d("12.3")), "+12.30 USD");
        assert_eq!(btc.signed_money_unit(d("-0.001")), "0.00 USD");
        assert_eq!(btc.amount_unit(d("21.776")), "21.77600000 BTC");
        // Another spelling of the same pair, and its data's decimals do not matter.
        let mut xbt = PairFormat::new("xbt/usd");
        xbt.observe_price(d("4652.6912"));
        assert_eq!(xbt.price_decimals(), 1);
        assert_eq!(PairFormat::new("BTC/USDT").price_decimals(), 1);

        let mut doge = PairFormat::new("DOGE/USD");
        assert!(!doge.tick_known());
        assert_eq!(doge.price_decimals(), 0);
        for price in ["0.1", "0.12340", "0.1234567", "3"] {
            doge.observe_price(d(price));
        }
        assert_eq!(doge.price_decimals(), 7, "trailing zeros do not count");
        doge.observe_price(d("0.0000000001234"));
        assert_eq!(doge.price_decimals(), CRYPTO_DECIMALS, "capped");
        assert_eq!(doge.money(d("1.005")), "1.01");

        let eth_btc = PairFormat::with_prices("ETH/BTC", [d("0.05123")]);
        assert_eq!(eth_btc.price(d("0.051234")), "0.05123");
        assert_eq!(
            eth_btc.money_unit(d("1.5")),
            "1.50000000 BTC",
            "a crypto quote counts to 8 places"
        );
        assert_eq!(eth_btc.amount_unit(d("2")), "2.00000000 ETH");
    }
}
