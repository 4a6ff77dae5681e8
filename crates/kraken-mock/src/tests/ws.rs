//! WebSocket v2: greeting, ping, heartbeats, subscriptions, snapshots and updates.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::ws_messages::MALFORMED;
use nanotrader_market::{Bar, Timestamp};

fn subscribe(channel: &str, req_id: u64) -> Value {
    let mut params = json!({ "channel": channel, "symbol": ["BTC/USD"] });
    match channel {
        "trade" => params["snapshot"] = json!(true),
        "ohlc" => params["interval"] = json!(1),
        _ => {}
    }
    json!({ "method": "subscribe", "params": params, "req_id": req_id })
}

fn keys(message: &Value) -> Vec<&str> {
    message.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn greets_with_status_and_answers_ping() {
    let mock = start(FROZEN, Faults::default()).await;
    let mut client = WsClient::connect(&mock).await;
    let status = client.json().await;
    assert_eq!(
        (&status["channel"], &status["type"]),
        (&json!("status"), &json!("update"))
    );
    let data = &status["data"][0];
    assert_eq!(
        (&data["api_version"], &data["system"]),
        (&json!("v2"), &json!("online"))
    );
    assert!(data["connection_id"].is_u64());

    client.send(json!({ "method": "ping", "req_id": 101 })).await;
    let pong = client.json().await;
    assert_eq!(keys(&pong), ["method", "req_id", "time_in", "time_out"]);
    assert_eq!((&pong["method"], &pong["req_id"]), (&json!("pong"), &json!(101)));
    assert_eq!(pong["time_in"], "2019-07-01T00:00:03.172000Z");

    // Nothing subscribed: no heartbeats.
    assert!(client.frame(Duration::from_millis(1500)).await.is_none());
    let counters = mock.counters();
    assert_eq!((counters.ws_connections, counters.ws_messages_sent), (1, 2));
}

#[tokio::test]
async fn heartbeats_each_idle_second_once_subscribed() {
    let mock = start(FROZEN, Faults::default()).await;
    let mut client = WsClient::greeted(&mock).await;
    client.send(subscribe("ticker", 1)).await;
    assert_eq!(client.json().await["success"], true);
    assert_eq!(client.json().await["type"], "snapshot");
    let begin = Instant::now();
    for _ in 0..2 {
        assert_eq!(client.json().await, json!({ "channel": "heartbeat" }));
    }
    let elapsed = begin.elapsed();
    assert!(
        (Duration::from_millis(1800)..Duration::from_secs(3)).contains(&elapsed),
        "{elapsed:?}"
    );
}

/// The last state of each candle seen on the `ohlc` channel.
type Candles = BTreeMap<String, Value>;

fn assert_candle(candle: &Value, bar: &Bar) {
    let begin = chrono::DateTime::from_timestamp(bar.ts.secs(), 0).unwrap();
    assert_eq!(
        candle["interval_begin"],
        begin.format("%Y-%m-%dT%H:%M:%S.000000000Z").to_string()
    );
    let end = chrono::DateTime::from_timestamp(bar.ts.secs() + 60, 0).unwrap();
    assert_eq!(candle["timestamp"], end.format("%Y-%m-%dT%H:%M:%S.000000Z").to_string());
    let numbers = ["open", "high", "low", "close", "volume"].map(|k| candle[k].as_f64().unwrap());
    let expected = [bar.open, bar.high, bar.low, bar.close, bar.volume].map(f64_of);
    assert_eq!(numbers, expected, "{candle}");
    assert_eq!(candle["trades"], bar.trades);
    assert_eq!((&candle["symbol"], &candle["interval"]), (&json!("BTC/USD"), &json!(1)));
}

#[tokio::test]
async fn subscriptions_are_acked_then_snapshotted_then_updated() {
    let mock = start(FAST, Faults::default()).await;
    let data = data_trades();
    let mut client = WsClient::greeted(&mock).await;
    for (req_id, channel) in [(1, "trade"), (2, "ohlc"), (3, "ticker")] {
        client.send(subscribe(channel, req_id)).await;
    }
    let mut acks = Vec::new();
    let mut next_id: Option<u64> = None;
    let mut candles = Candles::new();
    let (mut trade_updates, mut ticker_updates, mut ohlc_updates) = (0, 0, 0);
    let begin = Instant::now();
    while begin.elapsed() < Duration::from_millis(1500) {
        let message = client.json().await;
        if message["method"] == "subscribe" {
            acks.push(message);
            continue;
        }
        let kind = message["type"].as_str().unwrap();
        match channel(&message) {
            "trade" => {
                let trades = message["data"].as_array().unwrap();
                if kind == "snapshot" {
                    assert!((1..=50).contains(&trades.len()));
                } else {
                    trade_updates += 1;
                }
                for trade in trades {
                    let id = trade["trade_id"].as_u64().unwrap();
                    assert_eq!(next_id.unwrap_or(id), id, "no gap, no repeat");
                    next_id = Some(id + 1);
                    let source = data[id as usize - 1];
                    assert_eq!(trade["price"].as_f64(), Some(f64_of(source.price)));
                    assert_eq!(trade["qty"].as_f64(), Some(f64_of(source.size)));
                    assert_eq!(trade["side"], source.side.unwrap().as_str());
                    assert_eq!(
                        keys(trade),
                        ["ord_type", "price", "qty", "side", "symbol", "timestamp", "trade_id"]
                    );
                }
            }
            "ticker" => {
                ticker_updates += usize::from(kind == "update");
                // Always the last trade streamed so far (trade was subscribed first).
                let last = data[next_id.unwrap() as usize - 2].price;
                let ticker = &message["data"][0];
                assert_eq!(ticker["last"].as_f64(), Some(f64_of(last)));
                assert!(ticker["bid"].as_f64() < ticker["ask"].as_f64());
            }
            "ohlc" => {
                ohlc_updates += usize::from(kind == "update");
                assert!(message["timestamp"].is_string());
                for candle in message["data"].as_array().unwrap() {
                    let begin = candle["interval_begin"].as_str().unwrap().to_owned();
                    candles.insert(begin, candle.clone());
                }
            }
            other => panic!("unexpected {other}: {message}"),
        }
    }
    assert!(trade_updates > 10 && ohlc_updates > 10 && ticker_updates > 10);

    let results: Vec<&Value> = acks.iter().map(|a| &a["result"]).collect();
    assert_eq!(
        results,
        [
            &json!({ "channel": "trade", "snapshot": true, "symbol": "BTC/USD" }),
            &json!({ "channel": "ohlc", "interval": 1, "snapshot": true, "symbol": "BTC/USD",
                     "warnings": ["timestamp is deprecated, use interval_begin"] }),
            &json!({ "channel": "ticker", "event_trigger": "trades", "snapshot": true,
                     "symbol": "BTC/USD" }),
        ]
    );
    for (ack, req_id) in acks.iter().zip(1..) {
        assert_eq!((&ack["success"], &ack["req_id"]), (&json!(true), &json!(req_id)));
    }

    // Every minute before the newest one ended at exactly the bar the trades make.
    let (newest, _) = candles.pop_last().unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(&newest).unwrap().timestamp();
    let bars = mock.expected_bars(Timestamp::from_secs(until));
    assert_eq!(candles.len(), bars.len());
    for (candle, bar) in candles.values().zip(&bars) {
        assert_candle(candle, bar);
    }
    assert_eq!(mock.counters().subscriptions, 3);

    // After the unsubscribe ack, no more trades.
    client
        .send(json!({ "method": "unsubscribe", "params": { "channel": "trade", "symbol": ["BTC/USD"] } }))
        .await;
    let ack = client.until(|m| m["method"] == "unsubscribe").await;
    assert_eq!(ack["result"], json!({ "channel": "trade", "symbol": "BTC/USD" }));
    let begin = Instant::now();
    while begin.elapsed() < Duration::from_millis(300) {
        assert_ne!(channel(&client.json().await), "trade");
    }
}

#[tokio::test]
async fn unknown_symbols_are_refused_as_kraken_does() {
    let mock = start(FROZEN, Faults::default()).await;
    let mut client = WsClient::greeted(&mock).await;
    let request =
        json!({ "method": "subscribe", "params": { "channel": "ticker", "symbol": ["XBT/USD"] }, "req_id": 2 });
    client.send(request).await;
    let refusal = client.json().await;
    // The keys of the reference fixture ws_subscribe_error.json.
    assert_eq!(
        keys(&refusal),
        ["error", "method", "req_id", "success", "symbol", "time_in", "time_out"]
    );
    assert_eq!(refusal["error"], "Currency pair not supported XBT/USD");
    assert_eq!(
        (&refusal["success"], &refusal["symbol"]),
        (&json!(false), &json!("XBT/USD"))
    );

    // One answer per symbol; the accepted one is followed by its snapshot.
    let request = json!({ "method": "subscribe", "params": { "channel": "ticker", "symbol": ["BTC/USD", "ETH/USD"] }, "req_id": 3 });
    client.send(request).await;
    assert_eq!(client.json().await["result"]["symbol"], "BTC/USD");
    assert_eq!(client.json().await["type"], "snapshot");
    let second = client.json().await;
    assert_eq!(
        (&second["success"], &second["symbol"]),
        (&json!(false), &json!("ETH/USD"))
    );

    client.send(subscribe("ticker", 4)).await;
    assert_eq!(client.json().await["error"], "Already subscribed");

    let unsubscribe =
        json!({ "method": "unsubscribe", "params": { "channel": "ticker", "symbol": ["BTC/USD"] }, "req_id": 5 });
    client.send(unsubscribe.clone()).await;
    let ack = client.json().await;
    assert_eq!((&ack["method"], &ack["success"]), (&json!("unsubscribe"), &json!(true)));
    client.send(unsubscribe).await;
    let refusal = client.json().await;
    assert_eq!(
        (&refusal["error"], &refusal["success"]),
        (&json!("Subscription Not Found"), &json!(false))
    );
    assert_eq!(mock.counters().subscriptions, 1);
}

#[tokio::test]
async fn bad_requests_are_refused_and_the_session_goes_on() {
    let mock = start(FROZEN, Faults::default()).await;
    let mut client = WsClient::greeted(&mock).await;
    let ohlc_5 = r#"{"method":"subscribe","params":{"channel":"ohlc","symbol":["BTC/USD"],"interval":5}}"#;
    for (request, method, error) in [
        ("not json", "error", MALFORMED),
        ("[1,2]", "error", MALFORMED),
        (r#"{"req_id":1}"#, "error", MALFORMED),
        (r#"{"method":42}"#, "error", MALFORMED),
        (r#"{"method":"add_order","params":{}}"#, "add_order", MALFORMED),
        (r#"{"method":"subscribe"}"#, "subscribe", MALFORMED),
        (
            r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"]}}"#,
            "subscribe",
            "Subscription name invalid",
        ),
        (
            r#"{"method":"subscribe","params":{"channel":"ticker","symbol":"BTC/USD"}}"#,
            "subscribe",
            MALFORMED,
        ),
        (
            r#"{"method":"subscribe","params":{"channel":"ticker","symbol":[7]}}"#,
            "subscribe",
            MALFORMED,
        ),
        (
            r#"{"method":"subscribe","params":{"channel":"ticker","symbol":[]}}"#,
            "subscribe",
            MALFORMED,
        ),
        (
            r#"{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":"yes"}}"#,
            "subscribe",
            MALFORMED,
        ),
        (
            ohlc_5,
            "subscribe",
            "Malformed request: the mock serves ohlc interval 1 only",
        ),
        (
            r#"{"method":"unsubscribe","params":{"channel":"ticker"}}"#,
            "unsubscribe",
            MALFORMED,
        ),
    ] {
        client.stream.send(Message::text(request)).await.unwrap();
        let reply = client.json().await;
        assert_eq!(
            (&reply["method"], &reply["success"], &reply["error"]),
            (&json!(method), &json!(false), &json!(error)),
            "{request}"
        );
    }
    client
        .stream
        .send(Message::binary(vec![0, 159, 146, 150]))
        .await
        .unwrap();
    client.stream.send(Message::Ping(vec![1].into())).await.unwrap();
    client.send(json!({ "method": "ping", "req_id": 9 })).await;
    assert_eq!(client.until(|m| m["method"] == "pong").await["req_id"], 9);
    assert_eq!(mock.counters().subscriptions, 0);
}

/// A second market from the same trades, 10,000 lower and 7 s later: its own symbol, names and
/// trade ids, on the same connection as BTC/USD.
#[tokio::test]
async fn several_symbols_share_one_connection_each_with_its_own_tape() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(DATA).unwrap();
    let mut lines = text.lines();
    let mut eth = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let mut fields = line.splitn(3, ',');
        let ts: i64 = fields.next().unwrap().parse().unwrap();
        let price: rust_decimal::Decimal = fields.next().unwrap().parse().unwrap();
        let rest = fields.next().unwrap();
        eth.push_str(&format!(
            "{},{},{rest}\n",
            ts + 7_000_000_000,
            price - rust_decimal::Decimal::from(10_000)
        ));
    }
    let eth_file = dir.path().join("eth.csv");
    std::fs::write(&eth_file, eth).unwrap();
    let mut config = MockConfig::new(DATA);
    config.speed = FAST;
    config.more_pairs = vec![crate::MockPair::new("ETH/USD", &eth_file)];
    let mock = MockKraken::start(config).await.expect("mock starts");

    // AssetPairs lists it under its names; REST serves its own tape.
    let pairs = get_json(&mock, "/0/public/AssetPairs?pair=ETH/USD").await;
    assert_eq!(pairs["result"]["ETHUSD"]["wsname"], "ETH/USD", "{pairs}");
    let trades = get_json(&mock, "/0/public/Trades?pair=ETHUSD&since=0&count=2").await;
    let rows = trades["result"]["ETHUSD"].as_array().unwrap();
    assert_eq!((dec(&rows[0][0]), &rows[0][6]), ("749.4".parse().unwrap(), &json!(1)));

    let mut client = WsClient::greeted(&mock).await;
    let both = json!({ "method": "subscribe", "params": { "channel": "trade", "symbol": ["BTC/USD", "ETH/USD", "DOGE/EUR"] }, "req_id": 9 });
    client.send(both).await;
    let mut acks = BTreeMap::new();
    while acks.len() < 3 {
        let ack = client.until(|m| m["method"] == "subscribe").await;
        let symbol = ack["result"]["symbol"]
            .as_str()
            .or(ack["symbol"].as_str())
            .unwrap()
            .to_owned();
        acks.insert(symbol, ack["success"].clone());
    }
    assert_eq!(acks["BTC/USD"], true);
    assert_eq!(acks["ETH/USD"], true);
    assert_eq!(
        acks["DOGE/EUR"], false,
        "a symbol the mock does not serve is refused alone"
    );
    // Updates of both symbols arrive, each message one symbol, ids counting per symbol.
    let mut last_id: BTreeMap<String, u64> = BTreeMap::new();
    let deadline = Instant::now() + WAIT * 4;
    while last_id.len() < 2 || last_id.values().any(|id| *id < 20) {
        assert!(Instant::now() < deadline, "updates of both symbols: {last_id:?}");
        let update = client.until(|m| m["channel"] == "trade").await;
        let data = update["data"].as_array().unwrap();
        let symbol = data[0]["symbol"].as_str().unwrap().to_owned();
        assert!(data.iter().all(|t| t["symbol"] == symbol.as_str()), "{update}");
        for t in data {
            let id = t["trade_id"].as_u64().unwrap();
            let price = t["price"].as_f64().unwrap();
            assert_eq!(symbol == "ETH/USD", price < 2_000.0, "{symbol} at {price}");
            if let Some(last) = last_id.get(&symbol) {
                assert_eq!(id, last + 1, "{symbol}: ids count up by one, per symbol");
            }
            last_id.insert(symbol.clone(), id);
        }
    }
    assert_eq!(mock.counters().ws_connections, 1);
    assert!(mock.expected_bars_of("ETH/USD", mock.market_time()).is_some());
    assert!(mock.expected_bars_of("DOGE/EUR", mock.market_time()).is_none());
}
