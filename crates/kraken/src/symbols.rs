//! One market, four Kraken names: REST key `XXBTZUSD`, REST altname `XBTUSD`, WS v1 `XBT/USD`
//! (AssetPairs `wsname`) and WS v2 `BTC/USD`. Built from AssetPairs rather than by string
//! surgery: stripping a leading X/Z breaks real codes such as `XRP`, `XTZ` or `ZEC`.

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::error::KrakenError;
use super::parse::AssetPair;

/// Kraken's historic asset codes and the names WS v2 (and everyone else) uses instead.
const LEGACY_CODES: [(&str, &str); 2] = [("XBT", "BTC"), ("XDG", "DOGE")];

/// The names of one pair, for each place that wants a different one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairNames {
    /// Canonical `BASE/QUOTE`, e.g. `BTC/USD`.
    pub user: String,
    /// REST `pair=` input, e.g. `XBTUSD`.
    pub rest_altname: String,
    /// REST result key, e.g. `XXBTZUSD`.
    pub rest_key: String,
    /// WS v2 `symbol`, e.g. `BTC/USD`.
    pub ws: String,
}

impl PairNames {
    /// What a live Kraken feed of this pair is (`kind`: `kraken` or `kraken-rest`). The one place
    /// its identity is spelled: the run key, the stored bar series and the source all use it.
    pub fn feed_info(&self, kind: &'static str) -> nanotrader_market::SourceInfo {
        nanotrader_market::SourceInfo {
            kind,
            identity: format!("{kind}:{}", self.user),
            pair: self.user.clone(),
            finite: false,
            bar_interval: None,
        }
    }
}

/// Pair lookup by any spelling a user or Kraken may use.
#[derive(Clone, Debug, Default)]
pub struct PairMap {
    pairs: Vec<(PairNames, AssetPair)>,
    /// Upper-cased spelling (`BTC/USD`, `XBT/USD`, `XBTUSD`, `XXBTZUSD`) -> index in `pairs`.
    index: HashMap<String, usize>,
}

/// `XBT` -> `BTC`, `XDG` -> `DOGE`; every other code as is.
fn modern(code: &str) -> &str {
    LEGACY_CODES
        .iter()
        .find(|(legacy, _)| *legacy == code)
        .map_or(code, |(_, modern)| modern)
}

/// `xbt/usd` -> `BTC/USD`; `None` without exactly one slash.
fn canonical(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let (base, quote) = upper.split_once('/')?;
    if base.is_empty() || quote.is_empty() || quote.contains('/') {
        return None;
    }
    Some(format!("{}/{}", modern(base), modern(quote)))
}

impl PairMap {
    /// Pairs without a `wsname` have no WebSocket feed and are left out.
    pub fn from_asset_pairs(pairs: &[AssetPair]) -> Self {
        let mut map = Self::default();
        for pair in pairs {
            let Some(v2) = pair.wsname.as_deref().and_then(canonical) else {
                continue;
            };
            if map.index.contains_key(&v2) {
                continue;
            }
            let i = map.pairs.len();
            for spelling in [
                v2.clone(),
                pair.wsname.clone().unwrap_or_default().to_ascii_uppercase(),
                pair.altname.to_ascii_uppercase(),
                pair.key.to_ascii_uppercase(),
            ] {
                map.index.entry(spelling).or_insert(i);
            }
            let names = PairNames {
                user: v2.clone(),
                rest_altname: pair.altname.clone(),
                rest_key: pair.key.clone(),
                ws: v2,
            };
            map.pairs.push((names, pair.clone()));
        }
        map
    }

    /// BTC/USD and BTC/USDT as in the AssetPairs fixtures, for when AssetPairs cannot be
    /// fetched (tests, offline runs).
    pub fn offline_default() -> Self {
        let btc = |key: &str, altname: &str, wsname: &str, quote: &str, ordermin| AssetPair {
            key: key.into(),
            altname: altname.into(),
            wsname: Some(wsname.into()),
            base: "XXBT".into(),
            quote: quote.into(),
            pair_decimals: 1,
            lot_decimals: 8,
            ordermin: Some(ordermin),
            costmin: Some(Decimal::new(5, 1)),
            tick_size: Some(Decimal::new(1, 1)),
        };
        Self::from_asset_pairs(&[
            btc("XXBTZUSD", "XBTUSD", "XBT/USD", "ZUSD", Decimal::new(1, 4)),
            btc("XBTUSDT", "XBTUSDT", "XBT/USDT", "USDT", Decimal::new(5, 5)),
        ])
    }

    /// Accepts `BTC/USD`, `btc/usd`, `XBT/USD`, and the REST altname or key.
    pub fn resolve(&self, user: &str) -> Result<PairNames, KrakenError> {
        self.find(user).map(|(names, _)| names.clone())
    }

    /// The AssetPairs entry (decimals, `ordermin`) under any accepted spelling.
    pub fn asset_pair(&self, user: &str) -> Result<&AssetPair, KrakenError> {
        self.find(user).map(|(_, pair)| pair)
    }

    fn find(&self, user: &str) -> Result<&(PairNames, AssetPair), KrakenError> {
        let upper = user.trim().to_ascii_uppercase();
        canonical(&upper)
            .and_then(|c| self.index.get(&c))
            .or_else(|| self.index.get(&upper))
            .and_then(|&i| self.pairs.get(i))
            .ok_or_else(|| KrakenError::UnknownPair(user.trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{fixture, parse_asset_pairs};

    fn names(user: &str, altname: &str, key: &str) -> PairNames {
        PairNames {
            user: user.into(),
            rest_altname: altname.into(),
            rest_key: key.into(),
            ws: user.into(),
        }
    }

    fn pair(key: &str, altname: &str, wsname: Option<&str>, base: &str, quote: &str) -> AssetPair {
        AssetPair {
            key: key.into(),
            altname: altname.into(),
            wsname: wsname.map(Into::into),
            base: base.into(),
            quote: quote.into(),
            pair_decimals: 5,
            lot_decimals: 8,
            ordermin: None,
            costmin: None,
            tick_size: None,
        }
    }

    /// The fixtures plus real-world shapes that break naive X/Z stripping.
    fn sample() -> PairMap {
        let mut pairs = Vec::new();
        for file in ["rest_assetpairs_xbtusd.json", "rest_assetpairs_xbtusdt_recorded.json"] {
            pairs.extend(parse_asset_pairs(fixture(file).as_bytes()).unwrap());
        }
        pairs.extend([
            pair("XXDGZUSD", "XDGUSD", Some("XDG/USD"), "XXDG", "ZUSD"),
            pair("XXRPZUSD", "XRPUSD", Some("XRP/USD"), "XXRP", "ZUSD"),
            pair("XTZUSD", "XTZUSD", Some("XTZ/USD"), "XTZ", "ZUSD"),
            pair("XZECZUSD", "ZECUSD", Some("ZEC/USD"), "XZEC", "ZUSD"),
            pair("XETHXXBT", "ETHXBT", Some("ETH/XBT"), "XETH", "XXBT"),
            pair("DARKPOOL", "XBTUSD.d", None, "XXBT", "ZUSD"),
        ]);
        PairMap::from_asset_pairs(&pairs)
    }

    #[test]
    fn every_spelling_resolves_to_the_same_names() {
        let map = sample();
        let btcusd = names("BTC/USD", "XBTUSD", "XXBTZUSD");
        let cases = [
            ("BTC/USD", btcusd.clone()),
            ("btc/usd", btcusd.clone()),
            (" XBT/USD ", btcusd.clone()),
            ("xbt/usd", btcusd.clone()),
            ("XBTUSD", btcusd.clone()),
            ("XXBTZUSD", btcusd),
            ("BTC/USDT", names("BTC/USDT", "XBTUSDT", "XBTUSDT")),
            ("XBT/USDT", names("BTC/USDT", "XBTUSDT", "XBTUSDT")),
            ("DOGE/USD", names("DOGE/USD", "XDGUSD", "XXDGZUSD")),
            ("XDG/USD", names("DOGE/USD", "XDGUSD", "XXDGZUSD")),
            ("XRP/USD", names("XRP/USD", "XRPUSD", "XXRPZUSD")),
            ("XTZ/USD", names("XTZ/USD", "XTZUSD", "XTZUSD")),
            ("ZEC/USD", names("ZEC/USD", "ZECUSD", "XZECZUSD")),
            ("eth/btc", names("ETH/BTC", "ETHXBT", "XETHXXBT")),
        ];
        for (input, expected) in cases {
            assert_eq!(map.resolve(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn unknown_pairs_are_refused_with_a_clear_message() {
        let map = sample();
        for input in ["ETH/XYZ", "RP/USD", "TZ/USD", "BTC", "BTC/USD/X", "", "/", "XBTUSD.d"] {
            let err = map.resolve(input).unwrap_err();
            assert_eq!(err, KrakenError::UnknownPair(input.into()), "{input}");
            assert!(!err.is_retryable());
        }
        assert_eq!(
            map.resolve("ETH/XYZ").unwrap_err().to_string(),
            "unknown pair 'ETH/XYZ' on Kraken (see AssetPairs)"
        );
    }

    #[test]
    fn offline_default_matches_the_fixtures() {
        let offline = PairMap::offline_default();
        let fixtures = sample();
        for input in ["BTC/USD", "BTC/USDT"] {
            assert_eq!(offline.resolve(input), fixtures.resolve(input), "{input}");
            assert_eq!(offline.asset_pair(input), fixtures.asset_pair(input), "{input}");
        }
        let usd = offline.asset_pair("xbt/usd").unwrap();
        assert_eq!((usd.pair_decimals, usd.lot_decimals), (1, 8));
        assert_eq!(usd.ordermin.map(|d| d.to_string()).as_deref(), Some("0.0001"));
        assert!(offline.resolve("DOGE/USD").is_err());
    }
}
