//! Start, stop, data loading, the market clock and `expected_bars`.

use std::collections::BTreeMap;
use std::io::ErrorKind;

use rust_decimal::Decimal;

use super::*;
use nanotrader_market::{Bar, Timestamp};

/// 1-minute bars by plain grouping, independent of `BarAggregator`: closed by `until` only.
fn grouped_bars(trades: &[Trade], until: Timestamp) -> Vec<Bar> {
    let mut minutes: BTreeMap<i64, Vec<&Trade>> = BTreeMap::new();
    for trade in trades.iter().filter(|t| t.ts <= until) {
        minutes.entry(trade.ts.secs() / 60 * 60).or_default().push(trade);
    }
    minutes
        .into_iter()
        .filter(|(start, _)| start + 60 <= until.secs())
        .map(|(start, trades)| Bar {
            ts: Timestamp::from_secs(start),
            open: trades[0].price,
            high: trades.iter().map(|t| t.price).max().unwrap(),
            low: trades.iter().map(|t| t.price).min().unwrap(),
            close: trades[trades.len() - 1].price,
            volume: trades.iter().map(|t| t.size).sum::<Decimal>(),
            trades: trades.len() as u32,
        })
        .collect()
}

#[tokio::test]
async fn expected_bars_are_the_trades_grouped_by_minute() {
    let mock = start(FROZEN, Faults::default()).await;
    let data = data_trades();
    let start_ts = data[0].ts;
    for until in [
        start_ts,
        start_ts.add_secs(57),
        start_ts.add_secs(30 * 60),
        start_ts.add_secs(30 * 60 + 20),
        start_ts.add_secs(2 * 3600),
    ] {
        let bars = mock.expected_bars(until);
        assert_eq!(bars, grouped_bars(&data, until), "until {until}");
        assert!(bars.iter().all(|b| b.trades > 0));
    }
    assert!(mock.expected_bars(start_ts.add_secs(56)).is_empty());
    assert_eq!(mock.expected_bars(start_ts.add_secs(57)).len(), 1);
}

#[tokio::test]
async fn market_start_moves_the_data_by_whole_minutes() {
    let now = Timestamp::now();
    let mut config = MockConfig::new(DATA);
    config.speed = FROZEN;
    config.market_start = Some(now);
    let mock = MockKraken::start(config).await.unwrap();
    let minute = now.secs() / 60 * 60;
    // The first trade keeps its place in the minute (00:00:03.172).
    let first = Timestamp::from_nanos(minute * 1_000_000_000 + 3_172_000_000);
    assert_eq!(mock.market_time().secs(), first.secs());
    let time = get_json(&mock, "/0/public/Time").await;
    assert_eq!(time["result"]["unixtime"], first.secs());
    let trades = get_json(&mock, "/0/public/Trades?pair=XBTUSD&since=0").await;
    assert_eq!(trades["result"]["last"], first.nanos().to_string());

    let data = data_trades();
    let shift = minute - data[0].ts.secs() / 60 * 60;
    let shifted: Vec<Trade> = data
        .iter()
        .map(|t| Trade {
            ts: t.ts.add_secs(shift),
            ..*t
        })
        .collect();
    let until = first.add_secs(3600);
    assert_eq!(mock.expected_bars(until), grouped_bars(&shifted, until));
}

#[tokio::test]
async fn shutdown_closes_websockets_and_stops_listening() {
    let mock = start(FROZEN, Faults::default()).await;
    let mut client = WsClient::greeted(&mock).await;
    let url = format!("{}/0/public/Time", mock.rest_url());
    mock.shutdown().await;
    let frame = tokio::time::timeout(WAIT, client.stream.next()).await.unwrap();
    assert!(matches!(frame, Some(Ok(Message::Close(_)))), "{frame:?}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(reqwest::get(url).await.is_err());
}

#[tokio::test]
async fn dropping_the_mock_stops_it() {
    let mock = start(FROZEN, Faults::default()).await;
    let mut client = WsClient::greeted(&mock).await;
    drop(mock);
    let frame = tokio::time::timeout(WAIT, client.stream.next()).await.unwrap();
    assert!(matches!(frame, Some(Ok(Message::Close(_)))), "{frame:?}");
}

#[tokio::test]
async fn start_refuses_what_it_cannot_serve() {
    let mut config = MockConfig::new(DATA);
    config.speed = 0.0;
    let error = MockKraken::start(config).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);

    let bars = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/btcusd_1m_20171217.csv");
    let error = MockKraken::start(MockConfig::new(bars)).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidData);
    assert!(error.to_string().contains("not bars"), "{error}");

    let missing = MockKraken::start(MockConfig::new("no/such/file.csv")).await;
    assert!(missing.is_err());

    // The port is taken: binding fails instead of serving elsewhere.
    let mock = start(FROZEN, Faults::default()).await;
    let mut config = MockConfig::new(DATA);
    config.listen = mock.rest_url()["http://".len()..].parse().unwrap();
    let error = MockKraken::start(config).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::AddrInUse);
}
