//! The account: balances, orders and their fills against the replayed tape, the per-pair
//! trading counter and the dead man's switch. Every change is published as an `Event` for the
//! authenticated WebSocket. Amounts are exact decimals; only the counters use `f64`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::auth::{Decaying, kraken_id};
use crate::config::{Limits, PrivateConfig};
use crate::tape::Tape;
use nanotrader_market::{Side, Timestamp};

/// ZUSD is kept to 4 decimals on Kraken: fees are rounded to it (half away from zero).
pub(crate) const USD_DECIMALS: u32 = 4;
/// XXBT balances are written with 10 decimals (`"1011.1908877900"`).
pub(crate) const BTC_DECIMALS: u32 = 10;
pub(crate) const USD: &str = "ZUSD";
pub(crate) const BTC: &str = "XXBT";
/// Kraken's reason on a post-only order that would have taken liquidity.
pub(crate) const POST_ONLY_REASON: &str = "Post only order";
pub(crate) const USER_REASON: &str = "User requested";
/// The mock's reason when the dead man's switch fires (Kraken's exact text is not documented).
pub(crate) const TIMEOUT_REASON: &str = "Cancel all orders after timeout";
/// Events a slow authenticated socket may fall behind by before it is dropped.
const EVENT_BUFFER: usize = 4096;

/// The one tradable pair, with the rules AssetPairs serves for it.
#[derive(Clone, Debug)]
pub(crate) struct Pair {
    pub(crate) key: String,
    pub(crate) altname: String,
    pub(crate) wsname: String,
    pub(crate) lot_decimals: u32,
    pub(crate) pair_decimals: u32,
    pub(crate) ordermin: Decimal,
    pub(crate) costmin: Decimal,
    pub(crate) tick: Decimal,
}

impl Pair {
    /// Reads `key`'s rules from the served AssetPairs.
    pub(crate) fn from_asset_pairs(pairs: &Map<String, Value>, key: &str) -> Option<Self> {
        let info = pairs.get(key)?;
        let text = |name| info.get(name).and_then(Value::as_str);
        let dec = |name| text(name).and_then(|t| t.parse::<Decimal>().ok());
        let int = |name| {
            info.get(name)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        Some(Self {
            key: key.to_owned(),
            altname: text("altname")?.to_owned(),
            wsname: text("wsname")?.replace("XBT", "BTC"),
            lot_decimals: int("lot_decimals")?,
            pair_decimals: int("pair_decimals")?,
            ordermin: dec("ordermin")?,
            costmin: dec("costmin")?,
            tick: dec("tick_size")?,
        })
    }

    /// Whether `name` names this pair: key, altname, WS v1 or v2 name.
    pub(crate) fn named(&self, name: &str) -> bool {
        let v1 = self.wsname.replace("BTC", "XBT");
        [&self.key, &self.altname, &self.wsname, &v1]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderType {
    Market,
    Limit,
    /// Rests until a trade reaches its trigger (a sell: at or below it), then executes at market.
    StopLoss,
    /// Rests until a trade reaches its trigger (a sell: at or above it), then executes at market.
    TakeProfit,
    /// A stop-loss whose trigger follows the best trade price since placement at an offset.
    TrailingStop,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Limit => "limit",
            Self::StopLoss => "stop-loss",
            Self::TakeProfit => "take-profit",
            Self::TrailingStop => "trailing-stop",
        }
    }

    /// Waits for a trigger price.
    pub fn is_triggered(self) -> bool {
        matches!(self, Self::StopLoss | Self::TakeProfit | Self::TrailingStop)
    }
}

/// A trailing stop's distance behind the best price: an amount, or a percentage of that price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offset {
    Price(Decimal),
    Percent(Decimal),
}

impl Offset {
    /// `+50`, `+1.5%`: Kraken's relative price.
    pub fn relative(self) -> String {
        match self {
            Offset::Price(p) => format!("+{p}"),
            Offset::Percent(p) => format!("+{p}%"),
        }
    }
}

/// The trigger of a stop-loss, take-profit or trailing stop: where it stands and whether a
/// trade has reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The price a trade must reach (for a trailing stop: the best price less the offset).
    pub price: Decimal,
    /// A trailing stop's offset, and the best trade price since placement.
    pub trail: Option<(Offset, Decimal)>,
    /// The trade price that triggered it.
    pub triggered_at: Option<Decimal>,
}

/// REST order status (`pending` is never observed: the mock places synchronously).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    Open,
    Closed,
    Canceled,
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }
}

/// An order as tests inspect it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedOrder {
    pub txid: String,
    pub cl_ord_id: Option<String>,
    pub userref: Option<i32>,
    pub side: Side,
    pub order_type: OrderType,
    pub volume: Decimal,
    /// Limit price; `None` for market and triggered orders.
    pub price: Option<Decimal>,
    /// A stop-loss, take-profit or trailing stop's trigger.
    pub trigger: Option<Trigger>,
    pub post_only: bool,
    pub status: OrderStatus,
    pub vol_exec: Decimal,
    /// Market time of placement.
    pub placed_at: Timestamp,
}

/// One fill, as tests inspect it: fee and cost in USD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    pub order_id: String,
    /// Kraken's private trade id, `TXXXXX-XXXXX-XXXXXX`.
    pub trade_id: String,
    pub cl_ord_id: Option<String>,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub cost: Decimal,
    pub fee: Decimal,
    /// Market time of the fill.
    pub time: Timestamp,
    pub maker: bool,
}

/// An order with its bookkeeping.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub(crate) placed: PlacedOrder,
    pub(crate) cost: Decimal,
    pub(crate) fee: Decimal,
    pub(crate) reason: Option<String>,
    pub(crate) closed_at: Option<Timestamp>,
    pub(crate) trades: Vec<String>,
    /// Wall time of placement: the cancel penalty depends on the order's age.
    opened: Instant,
    /// Tape index of the first trade that may fill it (the ones after placement).
    from_tape: usize,
}

impl Order {
    pub(crate) fn is_open(&self) -> bool {
        self.placed.status == OrderStatus::Open
    }

    pub(crate) fn remaining(&self) -> Decimal {
        self.placed.volume - self.placed.vol_exec
    }

    /// Average fill price, `None` before the first fill.
    pub(crate) fn avg_price(&self) -> Option<Decimal> {
        self.cost
            .checked_div(self.placed.vol_exec)
            .filter(|_| !self.placed.vol_exec.is_zero())
    }
}

/// A fill with what REST and WS report beside it.
#[derive(Clone, Debug)]
pub(crate) struct Fill {
    pub(crate) execution: Execution,
    /// Kraken's integer per-pair trade sequence number.
    pub(crate) trade_seq: u64,
    pub(crate) postxid: String,
    pub(crate) order_type: OrderType,
}

/// One balance change, as the `balances` channel reports it.
#[derive(Clone, Debug)]
pub(crate) struct LedgerEntry {
    pub(crate) ledger_id: String,
    pub(crate) ref_id: String,
    pub(crate) time: Timestamp,
    pub(crate) asset: &'static str,
    pub(crate) amount: Decimal,
    pub(crate) fee: Decimal,
    pub(crate) balance: Decimal,
}

/// What happened, for the `executions` and `balances` channels.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// An order changed state (`pending_new`, `new`, `filled`, `canceled`, `expired`).
    Order {
        exec_type: &'static str,
        order: Box<Order>,
        time: Timestamp,
    },
    /// A fill, with the order after it.
    Trade {
        order: Box<Order>,
        fill: Box<Fill>,
    },
    Balance(Vec<LedgerEntry>),
}

/// A validated new order.
#[derive(Clone, Debug)]
pub(crate) struct NewOrder {
    pub(crate) side: Side,
    pub(crate) order_type: OrderType,
    pub(crate) volume: Decimal,
    pub(crate) price: Option<Decimal>,
    /// A stop-loss or take-profit's trigger price.
    pub(crate) trigger: Option<Decimal>,
    /// A trailing stop's offset.
    pub(crate) offset: Option<Offset>,
    pub(crate) post_only: bool,
    pub(crate) userref: Option<i32>,
    pub(crate) cl_ord_id: Option<String>,
}

/// Which open orders a cancel means.
pub(crate) enum Selector {
    Txid(String),
    Userref(i32),
    ClOrdId(String),
}

pub(crate) struct Account {
    pub(crate) pair: Pair,
    maker_fee: Decimal,
    taker_fee: Decimal,
    fill_parts: u32,
    limits: Limits,
    balances: BTreeMap<&'static str, Decimal>,
    /// Every order, in placement order.
    orders: Vec<Order>,
    index: HashMap<String, usize>,
    fills: Vec<Fill>,
    next_trade_seq: u64,
    /// Tape index of the first trade not yet matched against resting orders.
    next_tape: usize,
    trading_counter: Decaying,
    dead_man: Option<Instant>,
    events: broadcast::Sender<Event>,
}

impl Account {
    pub(crate) fn new(config: &PrivateConfig, pair: Pair, tape: &Tape, now: Timestamp) -> Self {
        let balances = BTreeMap::from([(USD, config.usd), (BTC, config.btc)]);
        Self {
            pair,
            maker_fee: config.maker_fee,
            taker_fee: config.taker_fee,
            fill_parts: config.fill_parts.max(1),
            limits: config.limits,
            balances,
            orders: Vec::new(),
            index: HashMap::new(),
            fills: Vec::new(),
            // Far above the tape's own ids (its index + 1), so the two never meet.
            next_trade_seq: 100_000_001,
            next_tape: tape.public(now).len(),
            trading_counter: Decaying::new(),
            dead_man: None,
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    /// A receiver of every event from now on; take it under the same lock as a snapshot.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn publish(&self, event: Event) {
        // No receiver is fine: nobody is subscribed.
        let _ = self.events.send(event);
    }

    pub(crate) fn balance(&self, asset: &str) -> Decimal {
        self.balances.get(asset).copied().unwrap_or_default()
    }

    pub(crate) fn balances(&self) -> &BTreeMap<&'static str, Decimal> {
        &self.balances
    }

    pub(crate) fn orders(&self) -> &[Order] {
        &self.orders
    }

    pub(crate) fn order(&self, txid: &str) -> Option<&Order> {
        self.index.get(txid).map(|&i| &self.orders[i])
    }

    pub(crate) fn fills(&self) -> &[Fill] {
        &self.fills
    }

    /// What open orders hold: (USD, BTC). A buy holds its cost plus the taker fee.
    pub(crate) fn holds(&self) -> (Decimal, Decimal) {
        let (mut usd, mut btc) = (Decimal::ZERO, Decimal::ZERO);
        for order in self.orders.iter().filter(|o| o.is_open()) {
            match order.placed.side {
                Side::Buy => {
                    let price = order.placed.price.unwrap_or_default();
                    usd += self
                        .plan(order.remaining(), price, self.taker_fee)
                        .iter()
                        .map(|(_, cost, fee)| cost + fee)
                        .sum::<Decimal>();
                }
                Side::Sell => btc += order.remaining(),
            }
        }
        (usd, btc)
    }

    /// The trades `volume` fills as at `price`: `(qty, cost, fee)` per part. Parts are whole
    /// lots; the last takes the remainder.
    fn plan(&self, volume: Decimal, price: Decimal, rate: Decimal) -> Vec<(Decimal, Decimal, Decimal)> {
        let parts = Decimal::from(self.fill_parts);
        let mut part = (volume / parts).trunc_with_scale(self.pair.lot_decimals);
        let mut count = self.fill_parts;
        if part.is_zero() {
            part = volume;
            count = 1;
        }
        (0..count)
            .map(|i| {
                let qty = if i + 1 == count {
                    volume - part * Decimal::from(count - 1)
                } else {
                    part
                };
                let cost = qty * price;
                let fee = (cost * rate).round_dp_with_strategy(USD_DECIMALS, RoundingStrategy::MidpointAwayFromZero);
                (qty, cost, fee)
            })
            .collect()
    }

    /// Adds a trading-counter cost, or `EOrder:Rate limit exceeded`.
    fn trading_cost(&mut self, cost: f64) -> Result<(), String> {
        let Limits {
            trading_max,
            trading_decay,
            ..
        } = self.limits;
        if self.trading_counter.try_add(cost, trading_max, trading_decay) {
            Ok(())
        } else {
            Err("EOrder:Rate limit exceeded".into())
        }
    }

    /// Checks, then (unless `validate`) places `order` at market time `now` with the market's
    /// last price `last`; a market order (or a limit that crosses `last`) fills at once as taker.
    /// Returns the order's txid, `None` when only validated.
    pub(crate) fn add_order(
        &mut self,
        order: NewOrder,
        validate: bool,
        now: Timestamp,
        last: Option<Decimal>,
        tape_len: usize,
    ) -> Result<Option<String>, String> {
        let pair = &self.pair;
        if order.volume.normalize().scale() > pair.lot_decimals {
            return Err("EGeneral:Invalid arguments:volume".into());
        }
        if let Some(price) = order.price
            && !(price % pair.tick).is_zero()
        {
            return Err("EOrder:Tick size check failed".into());
        }
        if let Some(trigger) = order.trigger.or(match order.offset {
            Some(Offset::Price(p)) => Some(p),
            _ => None,
        }) && !(trigger % pair.tick).is_zero()
        {
            return Err("EOrder:Tick size check failed".into());
        }
        if order.volume < pair.ordermin {
            return Err("EOrder:Order minimum not met".into());
        }
        let last = last.ok_or("EService:Unavailable")?;
        let trigger = order.order_type.is_triggered().then(|| {
            let trail = order.offset.map(|offset| (offset, last));
            Trigger {
                price: match trail {
                    Some((offset, peak)) => trail_stop(order.side, offset, peak),
                    None => order.trigger.unwrap_or(last),
                },
                trail,
                triggered_at: None,
            }
        });
        let takes = match (order.order_type, order.price) {
            // A trigger already reached executes at once (at market).
            (t, _) if t.is_triggered() => {
                trigger.is_some_and(|trigger| reached(order.order_type, order.side, trigger.price, last))
            }
            (OrderType::Market, _) | (_, None) => true,
            (_, Some(price)) => match order.side {
                Side::Buy => price >= last,
                Side::Sell => price <= last,
            },
        };
        let reference = order
            .price
            .filter(|_| order.order_type == OrderType::Limit)
            .unwrap_or(last);
        if order.volume * reference < pair.costmin {
            return Err("EOrder:Cost minimum not met".into());
        }
        let rejected_post = order.post_only && takes;
        let fill_price = if takes { last } else { reference };
        if !rejected_post {
            self.check_funds(&order, fill_price)?;
        }
        if validate {
            return Ok(None);
        }
        self.trading_cost(1.0)?;
        let txid = self.fresh_order_id();
        let placed = PlacedOrder {
            txid: txid.clone(),
            cl_ord_id: order.cl_ord_id,
            userref: order.userref,
            side: order.side,
            order_type: order.order_type,
            volume: order.volume,
            price: order.price.filter(|_| order.order_type == OrderType::Limit),
            trigger,
            post_only: order.post_only,
            status: OrderStatus::Open,
            vol_exec: Decimal::ZERO,
            placed_at: now,
        };
        let index = self.orders.len();
        self.orders.push(Order {
            placed,
            cost: Decimal::ZERO,
            fee: Decimal::ZERO,
            reason: None,
            closed_at: None,
            trades: Vec::new(),
            opened: Instant::now(),
            from_tape: tape_len,
        });
        self.index.insert(txid.clone(), index);
        self.order_event("pending_new", index, now);
        if rejected_post {
            self.close(index, OrderStatus::Canceled, Some(POST_ONLY_REASON), now);
            return Ok(Some(txid));
        }
        self.order_event("new", index, now);
        if takes {
            if let Some(trigger) = &mut self.orders[index].placed.trigger {
                trigger.triggered_at = Some(last);
            }
            self.fill(index, last, false, now);
        }
        Ok(Some(txid))
    }

    fn check_funds(&self, order: &NewOrder, price: Decimal) -> Result<(), String> {
        let (held_usd, held_btc) = self.holds();
        let enough = match order.side {
            Side::Buy => {
                let need: Decimal = self
                    .plan(order.volume, price, self.taker_fee)
                    .iter()
                    .map(|(_, cost, fee)| cost + fee)
                    .sum();
                self.balance(USD) - held_usd >= need
            }
            Side::Sell => self.balance(BTC) - held_btc >= order.volume,
        };
        if enough {
            Ok(())
        } else {
            Err("EOrder:Insufficient funds".into())
        }
    }

    /// A deposit (a negative amount: a withdrawal) made outside any bot, reported on the
    /// `balances` channel like every change.
    pub(crate) fn deposit(&mut self, asset: &'static str, amount: Decimal, time: Timestamp) {
        let balance = self.balance(asset) + amount;
        self.balances.insert(asset, balance);
        self.publish(Event::Balance(vec![LedgerEntry {
            ledger_id: kraken_id('L'),
            ref_id: kraken_id('Q'),
            time,
            asset,
            amount,
            fee: Decimal::ZERO,
            balance,
        }]));
    }

    fn fresh_order_id(&self) -> String {
        loop {
            let id = kraken_id('O');
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

    fn order_event(&self, exec_type: &'static str, index: usize, time: Timestamp) {
        self.publish(Event::Order {
            exec_type,
            order: Box::new(self.orders[index].clone()),
            time,
        });
    }

    /// Fills what is left of order `index` at `price`, in `fill_parts` trades, and closes it.
    fn fill(&mut self, index: usize, price: Decimal, maker: bool, time: Timestamp) {
        let rate = if maker { self.maker_fee } else { self.taker_fee };
        let remaining = self.orders[index].remaining();
        for (qty, cost, fee) in self.plan(remaining, price, rate) {
            let trade_id = kraken_id('T');
            let order = &mut self.orders[index];
            let side = order.placed.side;
            order.placed.vol_exec += qty;
            order.cost += cost;
            order.fee += fee;
            order.trades.push(trade_id.clone());
            let execution = Execution {
                order_id: order.placed.txid.clone(),
                trade_id: trade_id.clone(),
                cl_ord_id: order.placed.cl_ord_id.clone(),
                side,
                qty,
                price,
                cost,
                fee,
                time,
                maker,
            };
            let fill = Fill {
                execution,
                trade_seq: self.next_trade_seq,
                postxid: kraken_id('T'),
                order_type: order.placed.order_type,
            };
            self.next_trade_seq += 1;
            let (usd_amount, btc_amount) = match side {
                Side::Buy => (-cost, qty),
                Side::Sell => (cost, -qty),
            };
            let usd = self.balance(USD) + usd_amount - fee;
            let btc = self.balance(BTC) + btc_amount;
            self.balances.insert(USD, usd);
            self.balances.insert(BTC, btc);
            self.fills.push(fill.clone());
            self.publish(Event::Trade {
                order: Box::new(self.orders[index].clone()),
                fill: Box::new(fill),
            });
            let entry = |asset, amount, fee, balance| LedgerEntry {
                ledger_id: kraken_id('L'),
                ref_id: trade_id.clone(),
                time,
                asset,
                amount,
                fee,
                balance,
            };
            self.publish(Event::Balance(vec![
                entry(BTC, btc_amount, Decimal::ZERO, btc),
                entry(USD, usd_amount, fee, usd),
            ]));
        }
        self.close(index, OrderStatus::Closed, None, time);
    }

    /// Ends order `index`: `closed` (filled), `canceled` or `expired`.
    fn close(&mut self, index: usize, status: OrderStatus, reason: Option<&str>, time: Timestamp) {
        let order = &mut self.orders[index];
        order.placed.status = status;
        order.reason = reason.map(str::to_owned);
        order.closed_at = Some(time);
        let exec_type = match status {
            OrderStatus::Closed => "filled",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Expired => "expired",
            OrderStatus::Open => return,
        };
        self.order_event(exec_type, index, time);
    }

    /// Cancels the open orders `selector` names; `EOrder:Unknown order` when there are none.
    /// Each cancel adds Kraken's age-dependent penalty to the trading counter.
    pub(crate) fn cancel(&mut self, selector: &Selector, now: Timestamp) -> Result<usize, String> {
        let matches: Vec<usize> = self
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.is_open()
                    && match selector {
                        Selector::Txid(txid) => &o.placed.txid == txid,
                        Selector::Userref(r) => o.placed.userref == Some(*r),
                        Selector::ClOrdId(id) => o.placed.cl_ord_id.as_deref() == Some(id.as_str()),
                    }
            })
            .map(|(i, _)| i)
            .collect();
        if matches.is_empty() {
            return Err("EOrder:Unknown order".into());
        }
        let penalty: f64 = matches
            .iter()
            .map(|&i| cancel_penalty(self.orders[i].opened.elapsed()))
            .sum();
        self.trading_cost(penalty)?;
        for &index in &matches {
            self.close(index, OrderStatus::Canceled, Some(USER_REASON), now);
        }
        Ok(matches.len())
    }

    /// Cancels every open order with `reason`; how many.
    pub(crate) fn cancel_all(&mut self, reason: &str, now: Timestamp) -> usize {
        let open: Vec<usize> = (0..self.orders.len()).filter(|&i| self.orders[i].is_open()).collect();
        for &index in &open {
            self.close(index, OrderStatus::Canceled, Some(reason), now);
        }
        open.len()
    }

    /// Arms (or with `None` disarms) the dead man's switch, in wall time.
    pub(crate) fn cancel_after(&mut self, timeout: Option<Duration>) {
        self.dead_man = timeout.map(|t| Instant::now() + t);
    }

    /// Brings the account up to market time `now`: resting limits fill (as maker, at their
    /// price) on each tape trade that reaches them, and an expired dead man's switch cancels
    /// everything.
    pub(crate) fn advance(&mut self, tape: &Tape, now: Timestamp) {
        let public = tape.public(now);
        while self.next_tape < public.len() {
            let trade = public[self.next_tape];
            let crossed: Vec<usize> = (0..self.orders.len())
                .filter(|&i| {
                    let order = &self.orders[i];
                    let Some(limit) = order.placed.price else {
                        return false;
                    };
                    order.is_open()
                        && order.from_tape <= self.next_tape
                        && match order.placed.side {
                            Side::Buy => trade.price <= limit,
                            Side::Sell => trade.price >= limit,
                        }
                })
                .collect();
            for index in crossed {
                let limit = self.orders[index].placed.price.unwrap_or(trade.price);
                self.fill(index, limit, true, trade.ts);
            }
            // Stops and take-profits: a trade that reaches the trigger executes the order at
            // market (taker, at that trade's price); a trailing stop's trigger follows the best
            // price after each trade that does not reach it.
            let next = self.next_tape;
            let triggered: Vec<usize> = (0..self.orders.len())
                .filter(|&i| {
                    let order = &mut self.orders[i];
                    let (order_type, side) = (order.placed.order_type, order.placed.side);
                    if !order.is_open() || order.from_tape > next {
                        return false;
                    }
                    let Some(trigger) = &mut order.placed.trigger else {
                        return false;
                    };
                    if reached(order_type, side, trigger.price, trade.price) {
                        trigger.triggered_at = Some(trade.price);
                        return true;
                    }
                    if let Some((offset, peak)) = &mut trigger.trail {
                        let better = match side {
                            Side::Sell => trade.price > *peak,
                            Side::Buy => trade.price < *peak,
                        };
                        if better {
                            *peak = trade.price;
                            trigger.price = trail_stop(side, *offset, *peak);
                        }
                    }
                    false
                })
                .collect();
            for index in triggered {
                self.fill(index, trade.price, false, trade.ts);
            }
            self.next_tape += 1;
        }
        if self.dead_man.is_some_and(|at| Instant::now() >= at) {
            self.dead_man = None;
            let count = self.cancel_all(TIMEOUT_REASON, now);
            tracing::debug!("mock kraken: dead man's switch canceled {count} orders");
        }
    }
}

/// Whether a trade at `price` reaches a trigger at `trigger`: a stop (a sell's protection) when
/// the price falls to it, a take-profit when it rises to it; the other way round for a buy.
fn reached(order_type: OrderType, side: Side, trigger: Decimal, price: Decimal) -> bool {
    let falls = matches!(order_type, OrderType::StopLoss | OrderType::TrailingStop) == (side == Side::Sell);
    if falls { price <= trigger } else { price >= trigger }
}

/// A trailing stop's trigger `offset` behind the best price `peak` (below it for a sell).
fn trail_stop(side: Side, offset: Offset, peak: Decimal) -> Decimal {
    let distance = match offset {
        Offset::Price(p) => p,
        Offset::Percent(pct) => peak * pct / Decimal::ONE_HUNDRED,
    };
    match side {
        Side::Sell => peak - distance,
        Side::Buy => peak + distance,
    }
}

/// Kraken's cancel penalty on the trading counter by the order's age.
fn cancel_penalty(age: Duration) -> f64 {
    match age.as_secs_f64() {
        a if a < 5.0 => 8.0,
        a if a < 10.0 => 6.0,
        a if a < 15.0 => 5.0,
        a if a < 45.0 => 4.0,
        a if a < 90.0 => 2.0,
        a if a < 300.0 => 1.0,
        _ => 0.0,
    }
}
