//! The markets the mock serves: BTC/USD (the configured data, the account's market) and any
//! more pairs, each with its names, its AssetPairs entry and its own trade tape.

use std::io;

use serde_json::{Map, Value};

use super::config::MockPair;
use super::tape::Tape;
use nanotrader_market::Timestamp;

/// BTC/USD's AssetPairs key, whose rules the other markets copy.
pub(super) const BTC_KEY: &str = "XXBTZUSD";
/// BTC/USD in WS v2 spelling.
pub(super) const BTC_SYMBOL: &str = "BTC/USD";

/// One market: what REST and WebSocket v2 call it, and its trades.
pub(super) struct PairMarket {
    /// WS v2 `symbol`, e.g. `ETH/USD`.
    pub(super) symbol: String,
    /// REST result key, e.g. `XXBTZUSD` or `ETHUSD`.
    pub(super) key: String,
    /// Every spelling `pair=` may use (key, altname, WS v1 and v2 names).
    names: Vec<String>,
    pub(super) tape: Tape,
}

impl PairMarket {
    pub(super) fn btc(tape: Tape) -> Self {
        Self {
            symbol: BTC_SYMBOL.into(),
            key: BTC_KEY.into(),
            names: ["XXBTZUSD", "XBTUSD", "XBT/USD", BTC_SYMBOL]
                .map(str::to_owned)
                .to_vec(),
            tape,
        }
    }

    /// A market of `pair`, listed in `asset_pairs` with BTC/USD's rules under its own names.
    pub(super) fn more(
        pair: &MockPair,
        market_start: Option<Timestamp>,
        asset_pairs: &mut Map<String, Value>,
    ) -> io::Result<Self> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let symbol = pair.symbol.trim().to_ascii_uppercase();
        let Some((base, quote)) = symbol.split_once('/').filter(|(b, q)| !b.is_empty() && !q.is_empty()) else {
            return Err(invalid(format!("mock pair '{}': expected BASE/QUOTE", pair.symbol)));
        };
        let key = format!("{base}{quote}");
        if asset_pairs.contains_key(&key) || symbol == BTC_SYMBOL {
            return Err(invalid(format!("mock pair '{symbol}' is listed twice")));
        }
        let mut entry = asset_pairs
            .get(BTC_KEY)
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| invalid(format!("AssetPairs lacks {BTC_KEY}")))?;
        entry.insert("altname".into(), key.clone().into());
        entry.insert("wsname".into(), symbol.clone().into());
        entry.insert("base".into(), base.into());
        entry.insert(
            "quote".into(),
            if quote == "USD" { "ZUSD".into() } else { quote.into() },
        );
        asset_pairs.insert(key.clone(), Value::Object(entry));
        Ok(Self {
            names: vec![key.clone(), symbol.clone()],
            symbol,
            key,
            tape: Tape::load(&pair.data, market_start)?,
        })
    }

    /// Whether `pair=` (any case) names this market.
    pub(super) fn answers_to(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name.trim()))
    }
}
