//! The authenticated WebSocket v2: token check, `executions` and `balances` snapshots and
//! updates, ping and heartbeat, and the drop fault.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::private::{Trader, account, dec, start_private};
use super::*;

async fn token(trader: &Trader) -> String {
    trader.ok("GetWebSocketsToken", &[]).await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Connects to the authenticated socket and reads its `status` greeting.
async fn auth_client(mock: &MockKraken) -> WsClient {
    let mut client = WsClient::connect_to(&mock.ws_auth_url()).await;
    let status = client.json().await;
    assert_eq!(status["channel"], "status", "{status}");
    assert_eq!(status["data"][0]["system"], "online");
    client
}

fn subscribe(channel: &str, token: &str, extra: Value) -> Value {
    let mut params = json!({ "channel": channel, "token": token });
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "method": "subscribe", "params": params, "req_id": 7 })
}

/// A JSON number as an exact decimal (the mock writes the shortest f64 spelling).
fn num(value: &Value) -> Decimal {
    assert!(value.is_number(), "not a number: {value}");
    value
        .to_string()
        .parse()
        .unwrap_or_else(|_| Decimal::from_scientific(&value.to_string()).unwrap())
}

#[tokio::test]
async fn a_bad_token_is_refused() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let mut client = auth_client(&mock).await;
    client.send(subscribe("executions", "not-a-token", json!({}))).await;
    let reply = client.json().await;
    assert_eq!(reply["method"], "subscribe");
    assert_eq!(reply["success"], false);
    assert_eq!(reply["error"], "EAPI:Invalid token");
    assert_eq!(reply["req_id"], 7);
    client
        .send(json!({ "method": "subscribe", "params": { "channel": "balances" } }))
        .await;
    assert_eq!(client.json().await["error"], "EAPI:Invalid token");
    // A ping is answered and, with nothing subscribed, no heartbeat comes.
    client.send(json!({ "method": "ping", "req_id": 3 })).await;
    let pong = client.json().await;
    assert_eq!((&pong["method"], &pong["req_id"]), (&json!("pong"), &json!(3)));
    assert!(client.frame(Duration::from_millis(1500)).await.is_none());
}

#[tokio::test]
async fn executions_snapshot_then_every_order_event() {
    let mut config = account();
    config.fill_parts = 2;
    let mock = start_private(FROZEN, config, Faults::default()).await;
    let trader = Trader::new(&mock);
    // An earlier fill and a resting order, for the snapshot.
    let market = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "market"),
        ("volume", "0.002"),
    ];
    trader.ok("AddOrder", &market).await;
    let resting = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "limit"),
        ("price", "10000.0"),
        ("volume", "0.01"),
        ("oflags", "post"),
        ("cl_ord_id", "rest-1"),
    ];
    let resting_id = trader.ok("AddOrder", &resting).await["txid"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let token = token(&trader).await;
    let mut client = auth_client(&mock).await;
    client
        .send(subscribe("executions", &token, json!({ "snap_trades": true })))
        .await;
    let ack = client.json().await;
    assert_eq!(ack["success"], true, "{ack}");
    assert_eq!(
        ack["result"],
        json!({ "channel": "executions", "snap_orders": true, "snap_trades": true })
    );
    let snapshot = client.json().await;
    assert_eq!(
        (&snapshot["channel"], &snapshot["type"]),
        (&json!("executions"), &json!("snapshot"))
    );
    assert_eq!(snapshot["sequence"], 1);
    let data = snapshot["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "one open order and two fills: {snapshot}");
    let open = &data[0];
    assert_eq!(open["order_id"], resting_id.as_str());
    assert_eq!(open["cl_ord_id"], "rest-1");
    assert_eq!(
        (&open["exec_type"], &open["order_status"]),
        (&json!("new"), &json!("new"))
    );
    assert_eq!(
        (&open["symbol"], &open["side"], &open["order_type"]),
        (&json!("BTC/USD"), &json!("buy"), &json!("limit"))
    );
    assert_eq!(num(&open["limit_price"]), dec("10000"));
    assert_eq!(num(&open["order_qty"]), dec("0.01"));
    assert_eq!(open["post_only"], true);
    assert!(data[1..].iter().all(|t| t["exec_type"] == "trade"));

    // A market sell: pending_new, new, two trades, filled.
    let sell = [
        ("pair", "XBTUSD"),
        ("type", "sell"),
        ("ordertype", "market"),
        ("volume", "0.1"),
        ("cl_ord_id", "s-1"),
    ];
    let sell_id = trader.ok("AddOrder", &sell).await["txid"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let mut events = Vec::new();
    while events.len() < 5 {
        let message = client.until(|m| channel(m) == "executions").await;
        assert_eq!(message["type"], "update");
        events.extend(message["data"].as_array().unwrap().iter().cloned());
    }
    let kinds: Vec<&str> = events.iter().map(|e| e["exec_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["pending_new", "new", "trade", "trade", "filled"]);
    // Kraken: `exec_id` is on trade events only.
    assert!(
        events
            .iter()
            .all(|e| e.get("exec_id").is_some() == (e["exec_type"] == "trade"))
    );
    assert!(
        events
            .iter()
            .all(|e| e["order_id"] == sell_id.as_str() && e["cl_ord_id"] == "s-1")
    );
    assert_eq!(events[0]["order_status"], "pending_new");
    assert_eq!(num(&events[0]["order_qty"]), dec("0.1"));
    let fills: Vec<_> = mock
        .executions()
        .into_iter()
        .filter(|f| f.order_id == sell_id)
        .collect();
    for (event, fill) in events[2..4].iter().zip(&fills) {
        assert_eq!(event["exec_id"], fill.trade_id.as_str());
        assert!(event["trade_id"].is_u64());
        assert_eq!(num(&event["last_qty"]), fill.qty);
        assert_eq!(num(&event["last_price"]), fill.price);
        assert_eq!(num(&event["cost"]), fill.cost);
        assert_eq!(
            event["fees"],
            json!([{ "asset": "USD", "qty": event["fees"][0]["qty"] }])
        );
        assert_eq!(num(&event["fees"][0]["qty"]), fill.fee);
        assert_eq!(event["liquidity_ind"], "t");
        assert!(event["timestamp"].as_str().unwrap().starts_with("2019-07-01T00:00:03"));
    }
    assert_eq!(events[3]["order_status"], "filled");
    assert_eq!(num(&events[4]["cum_qty"]), dec("0.1"));
    assert_eq!(events[4]["order_status"], "filled");

    // A cancel.
    trader.ok("CancelOrder", &[("cl_ord_id", "rest-1")]).await;
    let message = client.until(|m| channel(m) == "executions").await;
    let canceled = &message["data"][0];
    assert_eq!(
        (&canceled["exec_type"], &canceled["order_status"]),
        (&json!("canceled"), &json!("canceled"))
    );
    assert_eq!(
        (&canceled["order_id"], &canceled["reason"]),
        (&json!(resting_id), &json!("User requested"))
    );
}

#[tokio::test]
async fn balances_snapshot_then_a_ledger_entry_per_asset_and_fill() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let token = token(&trader).await;
    let mut client = auth_client(&mock).await;
    client.send(subscribe("balances", &token, json!({}))).await;
    assert_eq!(client.json().await["success"], true);
    let snapshot = client.json().await;
    assert_eq!(
        (&snapshot["channel"], &snapshot["type"]),
        (&json!("balances"), &json!("snapshot"))
    );
    let by_asset = |data: &Value, asset: &str| {
        data.as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset"] == asset)
            .cloned()
            .unwrap()
    };
    let usd = by_asset(&snapshot["data"], "USD");
    assert_eq!(num(&usd["balance"]), dec("10000"));
    assert_eq!(
        usd["wallets"],
        json!([{ "type": "spot", "id": "main", "balance": usd["balance"] }])
    );
    assert_eq!(num(&by_asset(&snapshot["data"], "BTC")["balance"]), dec("0.5"));

    let buy = [
        ("pair", "XBTUSD"),
        ("type", "buy"),
        ("ordertype", "market"),
        ("volume", "0.01"),
    ];
    trader.ok("AddOrder", &buy).await;
    let update = client.until(|m| channel(m) == "balances").await;
    assert_eq!(update["type"], "update");
    let fill = &mock.executions()[0];
    let usd = by_asset(&update["data"], "USD");
    assert_eq!(num(&usd["amount"]), -fill.cost);
    assert_eq!(num(&usd["fee"]), fill.fee);
    assert_eq!(num(&usd["balance"]), mock.balances()["ZUSD"]);
    assert_eq!(usd["ref_id"], fill.trade_id.as_str());
    assert_eq!((&usd["type"], &usd["wallet_type"]), (&json!("trade"), &json!("spot")));
    let btc = by_asset(&update["data"], "BTC");
    assert_eq!((num(&btc["amount"]), num(&btc["balance"])), (dec("0.01"), dec("0.51")));
    // Subscribed and idle: heartbeats.
    let beat = client.until(|m| channel(m) == "heartbeat").await;
    assert_eq!(beat, json!({ "channel": "heartbeat" }));
}

#[tokio::test]
async fn the_drop_fault_ends_the_socket_without_a_close_frame() {
    let faults = Faults {
        drop_auth_ws_after: Some(2),
        ..Faults::default()
    };
    let mock = start_private(FROZEN, account(), faults).await;
    let trader = Trader::new(&mock);
    let token = token(&trader).await;
    let mut client = auth_client(&mock).await;
    client.send(subscribe("balances", &token, json!({}))).await;
    assert_eq!(client.json().await["success"], true);
    // The snapshot would be the third message: the connection ends instead.
    let end = tokio::time::timeout(WAIT, client.stream.next())
        .await
        .expect("dropped in time");
    assert!(matches!(end, None | Some(Err(_))), "no close frame: {end:?}");
    assert_eq!(mock.counters().faults.dropped_auth_connections, 1);
}

#[tokio::test]
async fn orders_can_be_placed_and_canceled_over_the_socket() {
    let mock = start_private(FROZEN, account(), Faults::default()).await;
    let trader = Trader::new(&mock);
    let token = token(&trader).await;
    let mut client = auth_client(&mock).await;
    let add = |extra: Value| {
        let mut params = json!({
            "order_type": "limit", "side": "buy", "order_qty": 0.01, "limit_price": 10000.0,
            "symbol": "BTC/USD", "post_only": true, "token": token,
        });
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "method": "add_order", "params": params, "req_id": 11 })
    };
    client.send(add(json!({ "validate": true }))).await;
    let validated = client.json().await;
    assert_eq!(
        (&validated["success"], &validated["result"]["order_id"]),
        (&json!(true), &json!(""))
    );
    assert!(mock.placed_orders().is_empty());

    client.send(add(json!({ "cl_ord_id": "ws-1" }))).await;
    let added = client.json().await;
    assert_eq!(
        (&added["method"], &added["success"], &added["req_id"]),
        (&json!("add_order"), &json!(true), &json!(11))
    );
    let order_id = added["result"]["order_id"].as_str().unwrap().to_owned();
    assert_eq!(added["result"]["cl_ord_id"], "ws-1");
    let placed = mock.placed_orders();
    assert_eq!(
        (placed[0].txid.as_str(), placed[0].price),
        (order_id.as_str(), Some(dec("10000")))
    );

    client.send(add(json!({ "order_qty": 0.00001 }))).await;
    let refused = client.json().await;
    assert_eq!(
        (&refused["success"], &refused["error"]),
        (&json!(false), &json!("EOrder:Order minimum not met"))
    );

    let cancel = json!({ "method": "cancel_order", "params": { "cl_ord_id": ["ws-1"], "token": token }, "req_id": 12 });
    client.send(cancel.clone()).await;
    let canceled = client.json().await;
    assert_eq!(canceled["success"], true, "{canceled}");
    assert_eq!(canceled["result"]["order_id"], order_id.as_str());
    client.send(cancel).await;
    assert_eq!(client.json().await["error"], "EOrder:Unknown order");

    let after = json!({ "method": "cancel_all_orders_after", "params": { "timeout": 60, "token": token } });
    client.send(after).await;
    assert_eq!(client.json().await["result"]["triggerTime"], "2019-07-01T00:01:03Z");
    client
        .send(json!({ "method": "cancel_all", "params": { "token": "stale" } }))
        .await;
    assert_eq!(client.json().await["error"], "EAPI:Invalid token");
}
