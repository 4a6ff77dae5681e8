//! Each fault is injected on schedule and counted.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::Stall;

fn ping() -> Value {
    json!({ "method": "ping", "req_id": 1 })
}

#[tokio::test]
async fn drop_after_ends_connections_without_a_close_frame() {
    let faults = Faults {
        drop_after: Some(Duration::from_millis(500)),
        ..Faults::default()
    };
    let mock = start(FROZEN, faults).await;
    let begin = Instant::now();
    let mut client = WsClient::greeted(&mock).await;
    let end = tokio::time::timeout(WAIT, client.stream.next())
        .await
        .expect("dropped in time");
    assert!(matches!(end, None | Some(Err(_))), "no close frame: {end:?}");
    assert!(begin.elapsed() >= Duration::from_millis(500));
    assert_eq!(mock.counters().faults.dropped_connections, 1);
}

#[tokio::test]
async fn stalls_go_silent_on_an_open_connection() {
    let stall = Stall {
        every: Duration::from_millis(600),
        duration: Duration::from_millis(400),
    };
    let faults = Faults {
        stall: Some(stall),
        ..Faults::default()
    };
    let mock = start(FAST, faults).await;
    let mut client = WsClient::greeted(&mock).await;
    client
        .send(json!({ "method": "subscribe", "params": { "channel": "trade", "symbol": ["BTC/USD"] } }))
        .await;
    let begin = Instant::now();
    let mut arrivals = Vec::new();
    while begin.elapsed() < Duration::from_millis(2000) {
        if client.frame(Duration::from_millis(100)).await.is_some() {
            arrivals.push(begin.elapsed());
        }
    }
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let silences = gaps.iter().filter(|g| **g >= Duration::from_millis(300)).count();
    assert!(silences >= 2, "gaps {gaps:?}");
    assert!(
        arrivals.last().unwrap() > &Duration::from_millis(1600),
        "updates resume after the silences"
    );
    assert!(mock.counters().faults.stalls >= 2);
}

#[tokio::test]
async fn every_nth_frame_is_garbage() {
    let faults = Faults {
        garbage_every: 3,
        ..Faults::default()
    };
    let mock = start(FROZEN, faults).await;
    // Frame 1 is the status greeting; pongs are frames 2 to 6.
    let mut client = WsClient::greeted(&mock).await;
    let mut parsed = Vec::new();
    for _ in 0..5 {
        client.send(ping()).await;
        parsed.push(serde_json::from_str::<Value>(&client.text().await).is_ok());
    }
    assert_eq!(parsed, [true, false, true, true, false]);
    assert_eq!(mock.counters().faults.garbage_frames, 2);
}

#[tokio::test]
async fn every_nth_frame_is_cut_short() {
    let faults = Faults {
        truncate_every: 2,
        ..Faults::default()
    };
    let mock = start(FROZEN, faults).await;
    let mut client = WsClient::greeted(&mock).await;
    client.send(ping()).await;
    let cut = client.text().await;
    assert!(serde_json::from_str::<Value>(&cut).is_err());
    client.send(ping()).await;
    let whole = client.text().await;
    assert_eq!(serde_json::from_str::<Value>(&whole).unwrap()["method"], "pong");
    assert!(
        whole.starts_with(&cut) && cut.len() == whole.len() / 2,
        "{cut} / {whole}"
    );
    assert_eq!(mock.counters().faults.truncated_frames, 1);
}

#[tokio::test]
async fn unknown_fields_are_added_everywhere_but_pair_maps() {
    let faults = Faults {
        extra_fields: true,
        ..Faults::default()
    };
    let mock = start(FROZEN, faults).await;
    let extra = "mock_unknown_field";
    let mut client = WsClient::connect(&mock).await;
    let status = client.json().await;
    assert!(status.get(extra).is_some() && status["data"][0].get(extra).is_some());
    client.send(ping()).await;
    assert!(client.json().await.get(extra).is_some());

    let ticker = get_json(&mock, "/0/public/Ticker?pair=XBTUSD").await;
    assert!(ticker.get(extra).is_some());
    let result = ticker["result"].as_object().unwrap();
    assert_eq!(result.keys().collect::<Vec<_>>(), ["XXBTZUSD"]);
    assert!(result["XXBTZUSD"].get(extra).is_some());
    assert_eq!(ticker["result"]["XXBTZUSD"]["c"][0], "10749.40000");
    assert_eq!(mock.counters().faults.extra_fields, 3);
}

#[tokio::test]
async fn every_nth_rest_request_is_rate_limited_or_fails() {
    let faults = Faults {
        rate_limit_every: 2,
        server_error_every: 3,
        ..Faults::default()
    };
    let mock = start(FROZEN, faults).await;
    for n in 1..=6 {
        let (status, body) = get(&mock, "/0/public/Time").await;
        match n {
            3 | 6 => {
                assert_eq!(status, 503);
                assert!(body.starts_with("<html>"), "{body}");
            }
            2 | 4 => {
                assert_eq!(status, 200);
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body, json!({ "error": ["EAPI:Rate limit exceeded"] }));
            }
            _ => assert!(body.contains("unixtime"), "{body}"),
        }
    }
    let counters = mock.counters();
    assert_eq!(counters.rest.time, 6);
    assert_eq!((counters.faults.rate_limited, counters.faults.server_errors), (2, 2));
}

#[tokio::test]
async fn slow_rest_delays_every_response() {
    let faults = Faults {
        slow_rest: Some(Duration::from_millis(300)),
        ..Faults::default()
    };
    let mock = start(FROZEN, faults).await;
    let begin = Instant::now();
    get_json(&mock, "/0/public/Time").await;
    assert!(begin.elapsed() >= Duration::from_millis(300));
    assert_eq!(mock.counters().faults.slow_responses, 1);
}

#[tokio::test]
async fn rejected_subscriptions_look_like_an_unknown_symbol() {
    let faults = Faults {
        reject_subscriptions: true,
        ..Faults::default()
    };
    let mock = start(FROZEN, faults).await;
    let mut client = WsClient::greeted(&mock).await;
    let request = json!({ "method": "subscribe", "params": { "channel": "ohlc", "symbol": ["BTC/USD"], "interval": 1 }, "req_id": 9 });
    client.send(request).await;
    let refusal = client.json().await;
    assert_eq!(refusal["error"], "Currency pair not supported BTC/USD");
    assert_eq!(
        (&refusal["success"], &refusal["symbol"], &refusal["req_id"]),
        (&json!(false), &json!("BTC/USD"), &json!(9))
    );
    // Nothing subscribed: the socket stays silent, without even heartbeats.
    assert!(client.frame(Duration::from_millis(1300)).await.is_none());
    let counters = mock.counters();
    assert_eq!((counters.faults.rejected_subscriptions, counters.subscriptions), (1, 0));
}
