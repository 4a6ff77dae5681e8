//! The authenticated WebSocket v2 (Kraken's `ws-auth.kraken.com/v2`): `status` on connect,
//! `ping`, and the private channels `executions` and `balances`, each a snapshot then updates,
//! subscribed with a token from `GetWebSocketsToken`. Heartbeats as on the public socket.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::account::{
    Account, BTC, Event, Fill, LedgerEntry, Offset, Order, OrderStatus, OrderType, Selector, Trigger, USD,
};
use super::rest::Params;
use crate::ws::sleep_until;
use crate::ws_messages::{self as msg, MALFORMED};
use crate::{App, Market, wire};
use nanotrader_market::Timestamp;

const HEARTBEAT: Duration = Duration::from_secs(1);
/// Fills in an `executions` snapshot with `snap_trades` (Kraken: the last 50).
const SNAPSHOT_TRADES: usize = 50;
const INVALID_TOKEN: &str = "EAPI:Invalid token";
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) async fn upgrade(State(app): State<App>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        match Session::new(app, socket).run().await {
            Ok(why) => tracing::debug!("mock kraken auth ws session ended: {why}"),
            Err(e) => tracing::debug!("mock kraken auth ws session failed: {e}"),
        }
    })
}

/// An `executions` subscription's options.
#[derive(Clone, Copy)]
struct Executions {
    /// `order_status: false` streams only open/close transitions (no `pending_new`).
    all_statuses: bool,
}

/// Ends a session without a close frame (the drop fault).
struct Dropped;

struct Session {
    app: App,
    market: Arc<Market>,
    socket: WebSocket,
    executions: Option<(Executions, broadcast::Receiver<Event>)>,
    balances: Option<broadcast::Receiver<Event>>,
    exec_sequence: u64,
    balance_sequence: u64,
    /// Messages sent, for `drop_auth_ws_after`.
    sent: u32,
    last_out: Instant,
}

type Step = Result<(), Result<Dropped, axum::Error>>;
/// A snapshot to send: its channel and data.
type Snapshot = (&'static str, Vec<Value>);

impl Session {
    fn new(app: App, socket: WebSocket) -> Self {
        let market = Arc::clone(&app.market);
        Self {
            app,
            market,
            socket,
            executions: None,
            balances: None,
            exec_sequence: 0,
            balance_sequence: 0,
            sent: 0,
            last_out: Instant::now(),
        }
    }

    async fn run(&mut self) -> Result<&'static str, axum::Error> {
        self.market.counters.bump(|c| c.ws_connections += 1);
        match self.serve().await {
            Ok(why) => Ok(why),
            Err(Ok(Dropped)) => {
                self.market.counters.bump(|c| c.faults.dropped_auth_connections += 1);
                // Returning drops the socket: no close frame.
                Ok("dropped (fault)")
            }
            Err(Err(e)) => Err(e),
        }
    }

    async fn serve(&mut self) -> Result<&'static str, Result<Dropped, axum::Error>> {
        let mut stop = self.app.stop.clone();
        self.send(msg::status(rand::random())).await?;
        loop {
            let subscribed = self.executions.is_some() || self.balances.is_some();
            let heartbeat_at = subscribed.then(|| self.last_out + HEARTBEAT);
            tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None => return Ok("client closed"),
                    Some(Ok(Message::Text(text))) => self.on_request(text.as_str()).await?,
                    Some(Ok(other)) => tracing::debug!("mock kraken auth ws: ignored {other:?}"),
                    Some(Err(e)) => return Err(Err(e)),
                },
                event = recv(self.executions.as_mut().map(|(_, rx)| rx)) => match event {
                    Some(event) => self.on_execution(event).await?,
                    None => return Ok("fell behind the account's events"),
                },
                event = recv(self.balances.as_mut()) => match event {
                    Some(event) => self.on_balance(event).await?,
                    None => return Ok("fell behind the account's events"),
                },
                () = sleep_until(heartbeat_at) => self.send(msg::heartbeat()).await?,
                _ = stop.changed() => {
                    let close = self.socket.send(Message::Close(None));
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
                    return Ok("mock stopped");
                }
            }
        }
    }

    async fn on_request(&mut self, text: &str) -> Step {
        let time_in = self.market.clock.now();
        let Ok(request @ Value::Object(_)) = serde_json::from_str::<Value>(text) else {
            let reply = msg::failure("error", MALFORMED, None, None, time_in, time_in);
            return self.send(reply).await;
        };
        let req_id = request.get("req_id");
        let params = request.get("params").and_then(Value::as_object);
        match request.get("method").and_then(Value::as_str) {
            Some("ping") => {
                let pong = msg::pong(req_id, time_in, self.market.clock.now());
                self.send(pong).await
            }
            Some("subscribe") => self.subscribe(params, req_id, time_in).await,
            Some("unsubscribe") => self.unsubscribe(params, req_id, time_in).await,
            Some(method @ ("add_order" | "cancel_order" | "cancel_all" | "cancel_all_orders_after")) => {
                for reply in self.trade(method, params, req_id, time_in) {
                    self.send(reply).await?;
                }
                Ok(())
            }
            method => {
                let name = method.unwrap_or("error");
                let reply = msg::failure(name, MALFORMED, None, req_id, time_in, time_in);
                self.send(reply).await
            }
        }
    }

    /// Checks the token, acknowledges, then sends the snapshot taken under the account lock
    /// together with the event receiver, so updates start exactly after it.
    async fn subscribe(
        &mut self,
        params: Option<&Map<String, Value>>,
        req_id: Option<&Value>,
        time_in: Timestamp,
    ) -> Step {
        let market = Arc::clone(&self.market);
        let Some(private) = market.private.as_ref() else {
            let reply = msg::failure("subscribe", INVALID_TOKEN, None, req_id, time_in, time_in);
            return self.send(reply).await;
        };
        let channel = params.and_then(|p| p.get("channel")).and_then(Value::as_str);
        let flag = |name: &str, default: bool| {
            params
                .and_then(|p| p.get(name))
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        let token = params.and_then(|p| p.get("token")).and_then(Value::as_str);
        let now = self.market.clock.now();
        let fail = |error: &str| msg::failure("subscribe", error, None, req_id, time_in, now);
        let taken = {
            let mut state = private.lock();
            if token.is_some_and(|t| state.token_valid(t)) {
                state.account.advance(self.market.tape(), now);
                self.take_snapshot(&state.account, channel, &flag)
            } else {
                Err(INVALID_TOKEN)
            }
        };
        let (result, snapshot) = match taken {
            Ok(taken) => taken,
            Err(error) => return self.send(fail(error)).await,
        };
        let Value::Object(result) = result else {
            unreachable!("json! of an object")
        };
        let ack = msg::success("subscribe", result, req_id, time_in, self.market.clock.now());
        self.send(ack).await?;
        self.market.counters.bump(|c| c.subscriptions += 1);
        if let Some((channel, data)) = snapshot {
            let sequence = self.next_sequence(channel);
            let message = json!({ "channel": channel, "type": "snapshot", "data": data, "sequence": sequence });
            self.send(message).await?;
        }
        Ok(())
    }

    /// Subscribes `channel` (its receiver taken now, under the caller's lock) and builds the
    /// ack's result and the snapshot to send.
    fn take_snapshot(
        &mut self,
        account: &Account,
        channel: Option<&str>,
        flag: &dyn Fn(&str, bool) -> bool,
    ) -> Result<(Value, Option<Snapshot>), &'static str> {
        match channel {
            Some("executions") if self.executions.is_some() => Err("Already subscribed"),
            Some("executions") => {
                let (orders, trades) = (flag("snap_orders", true), flag("snap_trades", false));
                let options = Executions {
                    all_statuses: flag("order_status", true),
                };
                self.executions = Some((options, account.subscribe()));
                let mut data = Vec::new();
                if orders {
                    data.extend(account.orders().iter().filter(|o| o.is_open()).map(snapshot_order));
                }
                if trades {
                    let fills = account.fills();
                    let recent = &fills[fills.len().saturating_sub(SNAPSHOT_TRADES)..];
                    data.extend(recent.iter().filter_map(|f| {
                        let order = account.order(&f.execution.order_id)?;
                        Some(trade_item(order, f, order.placed.status == OrderStatus::Closed))
                    }));
                }
                // Kraken's ack echoes the two snapshot flags (`snapshot` is deprecated).
                let result = json!({ "channel": "executions", "snap_orders": orders, "snap_trades": trades });
                Ok((result, (orders || trades).then_some(("executions", data))))
            }
            Some("balances") if self.balances.is_some() => Err("Already subscribed"),
            Some("balances") => {
                self.balances = Some(account.subscribe());
                let snapshot = flag("snapshot", true);
                let data = account
                    .balances()
                    .iter()
                    .map(|(asset, balance)| {
                        let balance = wire::number(*balance);
                        json!({
                            "asset": ws_asset(asset),
                            "asset_class": "currency",
                            "balance": balance,
                            "wallets": [{ "type": "spot", "id": "main", "balance": balance }],
                        })
                    })
                    .collect();
                let result = json!({ "channel": "balances", "snapshot": snapshot });
                Ok((result, snapshot.then_some(("balances", data))))
            }
            _ => Err("Subscription name invalid"),
        }
    }

    async fn unsubscribe(
        &mut self,
        params: Option<&Map<String, Value>>,
        req_id: Option<&Value>,
        time_in: Timestamp,
    ) -> Step {
        let channel = params.and_then(|p| p.get("channel")).and_then(Value::as_str);
        let removed = match channel {
            Some("executions") => self.executions.take().is_some(),
            Some("balances") => self.balances.take().is_some(),
            _ => false,
        };
        let now = self.market.clock.now();
        let reply = if removed {
            let mut result = Map::new();
            result.insert("channel".into(), channel.unwrap_or_default().into());
            msg::success("unsubscribe", result, req_id, time_in, now)
        } else {
            msg::failure("unsubscribe", "Subscription Not Found", None, req_id, time_in, now)
        };
        self.send(reply).await
    }

    /// Order entry over the socket (`add_order`, `cancel_order`, `cancel_all`,
    /// `cancel_all_orders_after`): the same account and checks as REST, WS v2 field names. The
    /// replies (one per canceled order for `cancel_order`); events follow on `executions`.
    fn trade(
        &self,
        method: &str,
        params: Option<&Map<String, Value>>,
        req_id: Option<&Value>,
        time_in: Timestamp,
    ) -> Vec<Value> {
        let fail = |error: &str| {
            vec![msg::failure(
                method,
                error,
                None,
                req_id,
                time_in,
                self.market.clock.now(),
            )]
        };
        let Some(private) = self.market.private.as_ref() else {
            return fail(INVALID_TOKEN);
        };
        let params = params.cloned().unwrap_or_default();
        let mut state = private.lock();
        let token = params.get("token").and_then(Value::as_str);
        if !token.is_some_and(|t| state.token_valid(t)) {
            return fail(INVALID_TOKEN);
        }
        let now = self.market.clock.now();
        state.account.advance(self.market.tape(), now);
        let account = &mut state.account;
        let ok = |result: Value| {
            let Value::Object(result) = result else {
                unreachable!("json! of an object")
            };
            msg::success(method, result, req_id, time_in, self.market.clock.now())
        };
        match method {
            "add_order" => {
                let order = match super::rest::parse_order(&account.pair, &rest_params(&params)) {
                    Ok(order) => order,
                    Err(error) => return fail(&error),
                };
                let validate = params.get("validate").and_then(Value::as_bool).unwrap_or(false);
                let (userref, cl_ord_id) = (order.userref, order.cl_ord_id.clone());
                let public = self.market.tape().public(now);
                let last = public.last().map(|t| t.price);
                match account.add_order(order, validate, now, last, public.len()) {
                    Err(error) => fail(&error),
                    Ok(txid) => {
                        // Kraken answers a validate-only order with an empty order id.
                        let mut result = json!({ "order_id": txid.unwrap_or_default() });
                        if let Some(userref) = userref {
                            result["order_userref"] = userref.into();
                        }
                        if let Some(id) = cl_ord_id {
                            result["cl_ord_id"] = id.into();
                        }
                        vec![ok(result)]
                    }
                }
            }
            "cancel_order" => {
                let list = |name: &str| -> Vec<Value> {
                    params.get(name).and_then(Value::as_array).cloned().unwrap_or_default()
                };
                let mut selectors = Vec::new();
                selectors.extend(
                    list("order_id")
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|id| Selector::Txid(id.into())),
                );
                selectors.extend(
                    list("cl_ord_id")
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|id| Selector::ClOrdId(id.into())),
                );
                selectors.extend(
                    list("order_userref")
                        .iter()
                        .filter_map(Value::as_i64)
                        .filter_map(|r| i32::try_from(r).ok())
                        .map(Selector::Userref),
                );
                if selectors.is_empty() {
                    return fail("EGeneral:Invalid arguments:order_id");
                }
                selectors
                    .iter()
                    .map(|selector| {
                        let mut result = match selector {
                            Selector::Txid(id) => json!({ "order_id": id }),
                            Selector::ClOrdId(id) => json!({ "cl_ord_id": id }),
                            Selector::Userref(r) => json!({ "order_userref": r }),
                        };
                        match account.cancel(selector, now) {
                            Ok(_) => {
                                if let Selector::ClOrdId(id) = selector
                                    && let Some(order) = account
                                        .orders()
                                        .iter()
                                        .rev()
                                        .find(|o| o.placed.cl_ord_id.as_ref() == Some(id))
                                {
                                    result["order_id"] = order.placed.txid.as_str().into();
                                }
                                ok(result)
                            }
                            Err(error) => msg::failure(method, &error, None, req_id, time_in, now),
                        }
                    })
                    .collect()
            }
            "cancel_all" => {
                let count = account.cancel_all(super::account::USER_REASON, now);
                vec![ok(json!({ "count": count }))]
            }
            _ => {
                let Some(timeout) = params.get("timeout").and_then(Value::as_u64).filter(|t| *t <= 86_400) else {
                    return fail("EGeneral:Invalid arguments:timeout");
                };
                let armed = (timeout > 0).then(|| Duration::from_secs(timeout));
                account.cancel_after(armed);
                let trigger = match armed {
                    Some(_) => wire::whole_secs(now.add_secs(timeout as i64)),
                    None => "0".to_owned(),
                };
                vec![ok(
                    json!({ "currentTime": wire::whole_secs(now), "triggerTime": trigger }),
                )]
            }
        }
    }

    fn next_sequence(&mut self, channel: &str) -> u64 {
        let sequence = if channel == "executions" {
            &mut self.exec_sequence
        } else {
            &mut self.balance_sequence
        };
        *sequence += 1;
        *sequence
    }

    async fn on_execution(&mut self, event: Event) -> Step {
        let all_statuses = self.executions.as_ref().is_some_and(|(o, _)| o.all_statuses);
        let item = match event {
            Event::Order { exec_type, .. } if exec_type == "pending_new" && !all_statuses => return Ok(()),
            Event::Order {
                exec_type: "pending_new",
                order,
                time,
            } => full_order(&order, "pending_new", "pending_new", time),
            Event::Order { exec_type, order, time } => order_change(&order, exec_type, time),
            Event::Trade { order, fill } => {
                let filled = order.remaining().is_zero();
                trade_item(&order, &fill, filled)
            }
            Event::Balance(_) => return Ok(()),
        };
        self.update("executions", vec![item]).await
    }

    async fn on_balance(&mut self, event: Event) -> Step {
        let Event::Balance(entries) = event else {
            return Ok(());
        };
        self.update("balances", entries.iter().map(ledger_item).collect()).await
    }

    async fn update(&mut self, channel: &str, data: Vec<Value>) -> Step {
        let sequence = self.next_sequence(channel);
        let message = json!({ "channel": channel, "type": "update", "data": data, "sequence": sequence });
        self.send(message).await
    }

    /// Writes one message, or drops the connection when the fault's count is reached.
    async fn send(&mut self, message: Value) -> Step {
        if self.market.faults.drop_auth_ws_after.is_some_and(|n| self.sent >= n) {
            return Err(Ok(Dropped));
        }
        self.sent += 1;
        self.last_out = Instant::now();
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(Err)?;
        self.market.counters.bump(|c| c.ws_messages_sent += 1);
        Ok(())
    }
}

/// The next event of a subscription; `None` when the socket fell too far behind (Kraken would
/// have dropped it too). Pending forever without a subscription.
async fn recv(rx: Option<&mut broadcast::Receiver<Event>>) -> Option<Event> {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    // Lagged or closed: either way the socket can no longer follow the account.
    rx.recv().await.ok()
}

/// An `add_order`'s WS v2 fields under their REST names, for the shared checks.
fn rest_params(params: &Map<String, Value>) -> Params {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rest = Params::new();
    for (ws, name) in [
        ("symbol", "pair"),
        ("side", "type"),
        ("order_type", "ordertype"),
        ("order_qty", "volume"),
        ("limit_price", "price"),
        ("order_userref", "userref"),
        ("cl_ord_id", "cl_ord_id"),
        ("time_in_force", "timeinforce"),
    ] {
        if let Some(value) = params.get(ws) {
            rest.insert(name.to_owned(), text(value));
        }
    }
    if let Some(tif) = rest.get_mut("timeinforce") {
        *tif = tif.to_uppercase();
    }
    if params.get("post_only").and_then(Value::as_bool) == Some(true) {
        rest.insert("oflags".into(), "post".into());
    }
    // A trigger's price: static (an absolute price), or for a trailing stop an offset in
    // quote currency (`quote`) or percent (`pct`), as REST's relative `+50` / `+1.5%`.
    if let Some(triggers) = params.get("triggers").and_then(Value::as_object)
        && let Some(price) = triggers.get("price")
    {
        let price = text(price);
        let price = match triggers.get("price_type").and_then(Value::as_str) {
            Some("pct") => format!("+{price}%"),
            Some("quote") => format!("+{price}"),
            _ => price,
        };
        rest.insert("price".into(), price);
    }
    rest
}

/// WS v2 asset names: `BTC`, `USD` (REST's `XXBT`, `ZUSD`).
fn ws_asset(asset: &str) -> &str {
    match asset {
        BTC => "BTC",
        USD => "USD",
        other => other,
    }
}

fn number(value: Decimal) -> Value {
    wire::number(value)
}

/// The ids every execution item starts with.
fn ids(order: &Order) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("order_id".into(), order.placed.txid.as_str().into());
    if let Some(id) = &order.placed.cl_ord_id {
        fields.insert("cl_ord_id".into(), id.as_str().into());
    }
    fields.insert("order_userref".into(), order.placed.userref.unwrap_or(0).into());
    fields
}

/// `cum_qty`, `cum_cost`, `avg_price` and the fee so far.
fn totals(fields: &mut Map<String, Value>, order: &Order) {
    fields.insert("cum_qty".into(), number(order.placed.vol_exec));
    fields.insert("cum_cost".into(), number(order.cost));
    if let Some(avg) = order.avg_price() {
        fields.insert("avg_price".into(), number(avg));
    }
    fields.insert("fee_usd_equiv".into(), number(order.fee));
}

/// An order with all its details: `pending_new` updates and snapshot entries.
fn full_order(order: &Order, exec_type: &str, order_status: &str, time: Timestamp) -> Value {
    let placed = &order.placed;
    let mut fields = ids(order);
    fields.insert("exec_type".into(), exec_type.into());
    fields.insert("symbol".into(), msg::SYMBOL.into());
    fields.insert("side".into(), placed.side.as_str().into());
    fields.insert("order_type".into(), placed.order_type.as_str().into());
    fields.insert("order_qty".into(), number(placed.volume));
    if let (OrderType::Limit, Some(price)) = (placed.order_type, placed.price) {
        fields.insert("limit_price".into(), number(price));
        fields.insert("limit_price_type".into(), "static".into());
    }
    if let Some(trigger) = &placed.trigger {
        fields.insert("triggers".into(), triggers(trigger));
    }
    fields.insert("time_in_force".into(), "GTC".into());
    fields.insert("post_only".into(), placed.post_only.into());
    fields.insert("order_status".into(), order_status.into());
    fields.insert("fee_ccy_pref".into(), "fciq".into());
    totals(&mut fields, order);
    fields.insert("timestamp".into(), wire::micros(time).into());
    Value::Object(fields)
}

/// A stop-loss, take-profit or trailing stop's `triggers` object: the reference price (the last
/// trade), the price as given (static, or a trailing stop's offset), where the trigger stands
/// now and whether a trade reached it.
fn triggers(trigger: &Trigger) -> Value {
    let (price, price_type) = match trigger.trail {
        Some((Offset::Price(p), _)) => (p, "quote"),
        Some((Offset::Percent(p), _)) => (p, "pct"),
        None => (trigger.price, "static"),
    };
    let mut fields = Map::new();
    fields.insert("reference".into(), "last".into());
    fields.insert("price".into(), number(price));
    fields.insert("price_type".into(), price_type.into());
    fields.insert("actual_price".into(), number(trigger.price));
    if let Some((_, peak)) = trigger.trail {
        fields.insert("peak_price".into(), number(peak));
    }
    let status = if trigger.triggered_at.is_some() {
        "triggered"
    } else {
        "untriggered"
    };
    fields.insert("status".into(), status.into());
    Value::Object(fields)
}

/// An open order in the snapshot: `exec_type` `new`, status `new` or `partially_filled`.
fn snapshot_order(order: &Order) -> Value {
    let status = if order.placed.vol_exec.is_zero() {
        "new"
    } else {
        "partially_filled"
    };
    full_order(order, "new", status, order.placed.placed_at)
}

/// `new`, `filled`, `canceled`, `expired`: only what changed, as Kraken sends them.
fn order_change(order: &Order, exec_type: &str, time: Timestamp) -> Value {
    let mut fields = ids(order);
    fields.insert("exec_type".into(), exec_type.into());
    fields.insert("order_status".into(), exec_type.into());
    if exec_type != "new" {
        totals(&mut fields, order);
    }
    if let Some(reason) = &order.reason {
        fields.insert("reason".into(), reason.as_str().into());
    }
    fields.insert("timestamp".into(), wire::micros(time).into());
    Value::Object(fields)
}

/// A fill (`exec_type: trade`); `order` is the order right after it.
fn trade_item(order: &Order, fill: &Fill, filled: bool) -> Value {
    let e = &fill.execution;
    let mut fields = ids(order);
    fields.insert("exec_type".into(), "trade".into());
    fields.insert("exec_id".into(), e.trade_id.as_str().into());
    fields.insert("trade_id".into(), fill.trade_seq.into());
    fields.insert("symbol".into(), msg::SYMBOL.into());
    fields.insert("side".into(), e.side.as_str().into());
    fields.insert("order_type".into(), fill.order_type.as_str().into());
    fields.insert("last_qty".into(), number(e.qty));
    fields.insert("last_price".into(), number(e.price));
    fields.insert("liquidity_ind".into(), if e.maker { "m" } else { "t" }.into());
    fields.insert("cost".into(), number(e.cost));
    let status = if filled { "filled" } else { "partially_filled" };
    fields.insert("order_status".into(), status.into());
    totals(&mut fields, order);
    fields.insert("fee_usd_equiv".into(), number(e.fee));
    fields.insert("fees".into(), json!([{ "asset": "USD", "qty": number(e.fee) }]));
    fields.insert("timestamp".into(), wire::micros(e.time).into());
    Value::Object(fields)
}

/// A `balances` update entry: one ledger line.
fn ledger_item(entry: &LedgerEntry) -> Value {
    json!({
        "ledger_id": entry.ledger_id,
        "ref_id": entry.ref_id,
        "timestamp": wire::micros(entry.time),
        "type": "trade",
        "asset": ws_asset(entry.asset),
        "asset_class": "currency",
        "category": "trade",
        "wallet_type": "spot",
        "wallet_id": "main",
        "amount": number(entry.amount),
        "fee": number(entry.fee),
        "balance": number(entry.balance),
    })
}
