//! A paper broker: long-only, fills immediately and entirely at the given price (the bar
//! close). Pure arithmetic on an `Account`; nothing here can reach an exchange.

use rust_decimal::Decimal;

use super::account::Account;
use super::amount::{Amount, POW10_U64};
use super::config::{BrokerConfig, Sizing};
use super::order::{Fill, Order, OrderReason};
use nanotrader_market::{Side, Timestamp};

/// A paper broker keeping its books in `A` (see `amount`); records (orders and fills) are made
/// only by the `Decimal` one.
#[derive(Clone, Debug)]
pub struct PaperBroker<A = Decimal> {
    config: BrokerConfig,
    fee_rate: A,
    qty_step: A,
    account: Account<A>,
    next_order_id: u64,
}

/// What `book` did.
struct Booked<A> {
    side: Side,
    qty: A,
    price: A,
    fee: A,
    order_id: u64,
}

impl PaperBroker {
    /// Acts on a change of the strategy's signal at a bar's close, for the engine and the
    /// backtester alike: a rise (flat to long) enters, a fall exits.
    pub fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let realized_before = self.account.realized_pnl();
        let (trade, reason) = self.act(change, price)?;
        Some(self.record(trade, ts, reason, realized_before))
    }

    /// Buys per the sizing rule at `price` (and marks the account there). `None` when the
    /// price is not positive or the quantity comes to 0 or is unaffordable.
    pub fn enter(&mut self, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let realized_before = self.account.realized_pnl();
        let trade = self.book_entry(price)?;
        Some(self.record(trade, ts, OrderReason::Entry, realized_before))
    }

    /// `enter`, spending at most `budget` (notional and fee): a shared cash rail's share. The
    /// sizing rule's quantity is cut to the whole steps `budget` pays for; `None` when that is 0.
    pub fn enter_within(&mut self, ts: Timestamp, price: Decimal, budget: Decimal) -> Option<(Order, Fill)> {
        let realized_before = self.account.realized_pnl();
        if price <= Decimal::ZERO {
            return None;
        }
        self.account.mark(price);
        let qty = self.buy_qty(price)?.min(self.affordable_within(price, budget)?);
        if qty <= Decimal::ZERO {
            return None;
        }
        let trade = self.book(Side::Buy, qty, price)?;
        Some(self.record(trade, ts, OrderReason::Entry, realized_before))
    }

    /// Sells the whole position at `price`. `None` when there is nothing to sell (the seed's
    /// sell of an empty position is not a trade) or the price is not positive.
    pub fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        let realized_before = self.account.realized_pnl();
        let trade = self.book_exit(price)?;
        Some(self.record(trade, ts, reason, realized_before))
    }

    /// The order and the fill with the books' state after it.
    fn record(
        &self,
        trade: Booked<Decimal>,
        ts: Timestamp,
        reason: OrderReason,
        realized_before: Decimal,
    ) -> (Order, Fill) {
        let fill = Fill {
            order_id: trade.order_id,
            ts,
            side: trade.side,
            qty: trade.qty,
            price: trade.price,
            fee: trade.fee,
            cash_after: trim(self.account.cash()),
            position_after: trim(self.account.position()),
            realized_pnl: trim(self.account.realized_pnl() - realized_before),
        };
        let order = Order {
            id: fill.order_id,
            ts,
            side: fill.side,
            qty: fill.qty,
            reason,
        };
        (order, fill)
    }
}

impl<A: Amount> PaperBroker<A> {
    /// A fresh account with the configured starting cash. The config should be validated.
    pub fn new(config: BrokerConfig) -> Self {
        let account = Account::new(A::from_decimal(config.initial_cash));
        Self::resume(config, account, 1)
    }

    /// Carries on with books rebuilt from stored fills.
    pub fn resume(config: BrokerConfig, account: Account<A>, next_order_id: u64) -> Self {
        Self {
            fee_rate: A::from_decimal(config.fee_rate),
            qty_step: A::from_decimal(config.qty_step),
            config,
            account,
            next_order_id,
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn account(&self) -> &Account<A> {
        &self.account
    }

    pub fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    pub fn mark(&mut self, price: A) {
        self.account.mark(price);
    }

    /// `follow` with the books in any `Amount`: the records in `Decimal`, the same values (a
    /// backtest keeping its fills takes its books in `FastDecimal` this way).
    pub fn follow_recorded(&mut self, change: i8, ts: Timestamp, price: A) -> Option<Fill> {
        let realized_before = self.account.realized_pnl();
        let (trade, _reason) = self.act(change, price)?;
        let realized = self.account.realized_pnl().saturating_sub(realized_before);
        Some(Fill {
            order_id: trade.order_id,
            ts,
            side: trade.side,
            qty: trade.qty.to_decimal(),
            price: trade.price.to_decimal(),
            fee: trade.fee.to_decimal(),
            cash_after: self.account.cash().trim().to_decimal(),
            position_after: self.account.position().trim().to_decimal(),
            realized_pnl: realized.trim().to_decimal(),
        })
    }

    /// `follow` for a caller that keeps no record of the trade (a backtest that reports only its
    /// figures): the same books, without the order and fill records. True when it traded.
    pub fn follow_quietly(&mut self, change: i8, price: A) -> bool {
        self.act(change, price).is_some()
    }

    fn act(&mut self, change: i8, price: A) -> Option<(Booked<A>, OrderReason)> {
        match change.cmp(&0) {
            std::cmp::Ordering::Greater => Some((self.book_entry(price)?, OrderReason::Entry)),
            std::cmp::Ordering::Less => Some((self.book_exit(price)?, OrderReason::Exit)),
            std::cmp::Ordering::Equal => None,
        }
    }

    fn book_entry(&mut self, price: A) -> Option<Booked<A>> {
        if price <= A::ZERO {
            return None;
        }
        self.account.mark(price);
        let qty = self.buy_qty(price)?;
        self.book(Side::Buy, qty, price)
    }

    fn book_exit(&mut self, price: A) -> Option<Booked<A>> {
        let qty = self.account.position();
        if qty <= A::ZERO || price <= A::ZERO {
            return None;
        }
        self.book(Side::Sell, qty, price)
    }

    fn buy_qty(&self, price: A) -> Option<A> {
        let qty = match self.config.sizing {
            Sizing::Seed => {
                // The seed sized orders in thousandths of `cash / price` units.
                let lot = A::new(1, 3);
                let qty = div_round_half_even(self.account.cash(), price)?.checked_mul(lot)?;
                // Exactly the seed: no step rounding, and never more than cash (with fees).
                return (qty > A::ZERO && self.cost(qty, price)? <= self.account.cash()).then_some(qty);
            }
            Sizing::Fraction(fraction) => {
                let budget = A::from_decimal(fraction).checked_mul(self.account.equity())?;
                self.floor_to_step_of_quotient(budget, self.price_with_fee(price)?)?
            }
            Sizing::Fixed(qty) => self.floor_to_step(A::from_decimal(qty))?,
        };
        let qty = qty.min(self.affordable_qty(price)?);
        (qty > A::ZERO).then_some(qty)
    }

    /// The most whole steps that cash pays for, fee included.
    fn affordable_qty(&self, price: A) -> Option<A> {
        self.affordable_within(price, self.account.cash())
    }

    /// The most whole steps `cash` pays for, fee included.
    fn affordable_within(&self, price: A, cash: A) -> Option<A> {
        let qty = self.floor_to_step_of_quotient(cash, self.price_with_fee(price)?)?;
        // The division is rounded to 28 digits and may land one step too high.
        if self.cost(qty, price)? > cash {
            return qty.checked_sub(self.qty_step);
        }
        Some(qty)
    }

    /// Cash a buy of `qty` takes: notional plus fee, exactly as the account books it.
    fn cost(&self, qty: A, price: A) -> Option<A> {
        let notional = qty.checked_mul(price)?;
        notional.checked_add(notional.checked_mul(self.fee_rate)?)
    }

    fn price_with_fee(&self, price: A) -> Option<A> {
        price.checked_mul(A::new(1, 0).checked_add(self.fee_rate)?)
    }

    fn floor_to_step(&self, qty: A) -> Option<A> {
        let step = self.qty_step;
        qty.checked_div(step)?.floor().checked_mul(step)
    }

    /// `floor_to_step(num / den)`, the division rounded to 28 digits as `Decimal` rounds it.
    /// Sizing by a fraction took two `Decimal` divisions and a floor per entry, twice (the
    /// size, then what cash affords): in a sweep of 1,000 combinations that was over a third
    /// of all instructions (callgrind). Where the step is a power of ten (0.00000001 and the
    /// like), the same whole number of steps comes from one exact integer division, unless the
    /// exact quotient lies so close below the next step that the 28-digit rounding could reach
    /// it: those go the `Decimal` way, as does anything that does not fit the integers.
    fn floor_to_step_of_quotient(&self, num: A, den: A) -> Option<A> {
        floor_steps_of_quotient(num, den, self.qty_step).or_else(|| self.floor_to_step(num.checked_div(den)?))
    }

    /// Books a trade on the account.
    fn book(&mut self, side: Side, qty: A, price: A) -> Option<Booked<A>> {
        // Products carry the sum of their factors' scales: trailing zeros are dropped so that
        // records read like the reference (`99903.28`, not `99903.280`).
        let qty = qty.trim();
        let fee = if self.fee_rate.is_zero() {
            A::ZERO
        } else {
            qty.checked_mul(price)?.checked_mul(self.fee_rate)?.trim()
        };
        let order_id = self.next_order_id;
        self.next_order_id = order_id.checked_add(1)?;
        // The account alone does the bookkeeping; the fill records its outcome, so replaying
        // fills on a restart rebuilds the same books.
        self.account.book(side, qty, price, fee);
        Some(Booked {
            side,
            qty,
            price,
            fee,
            order_id,
        })
    }
}

pub use super::amount::trim;

/// `num / den` rounded half-even to a whole number; `None` unless `den > 0`. Exact: the
/// quotient is corrected with the exact remainder, because a quotient rounded to 28 digits can
/// turn a value just below a half into an exact half and round the wrong way.
fn div_round_half_even<A: Amount>(num: A, den: A) -> Option<A> {
    if den <= A::ZERO {
        return None;
    }
    if let Some(quotient) = div_round_half_even_i128(num.mantissa(), num.scale(), den.mantissa(), den.scale()) {
        return A::from_i128_with_scale(quotient, 0);
    }
    let (num, den) = (num.to_decimal(), den.to_decimal());
    let mut quotient = num.checked_div(den)?.trunc();
    let mut remainder = num.checked_sub(quotient.checked_mul(den)?)?;
    while remainder < Decimal::ZERO {
        quotient = quotient.checked_sub(Decimal::ONE)?;
        remainder = remainder.checked_add(den)?;
    }
    while remainder >= den {
        quotient = quotient.checked_add(Decimal::ONE)?;
        remainder = remainder.checked_sub(den)?;
    }
    let twice = remainder.checked_mul(Decimal::TWO)?;
    let odd = quotient % Decimal::TWO != Decimal::ZERO;
    let quotient = if twice > den || (twice == den && odd) {
        quotient.checked_add(Decimal::ONE)?
    } else {
        quotient
    };
    Some(A::from_decimal(quotient))
}

/// `div_round_half_even` in integer arithmetic, when both mantissas scaled to a common exponent
/// fit an `i128` (money always does): `num / den = (n * 10^ds) / (d * 10^ns)`, exact.
fn div_round_half_even_i128(num: i128, num_scale: u32, den: i128, den_scale: u32) -> Option<i128> {
    // Cash and prices: both numbers scaled in 64-bit products, then one machine division (an
    // `i128` division and remainder, or an overflow-checked `i128` product, is a library call
    // several times dearer).
    if let (Ok(n), Ok(d), Some(&up_n), Some(&up_d)) = (
        u64::try_from(num),
        u64::try_from(den),
        POW10_U64.get(den_scale as usize),
        POW10_U64.get(num_scale as usize),
    ) {
        let (n, d) = (u128::from(n) * u128::from(up_n), u128::from(d) * u128::from(up_d));
        if let (Ok(n), Ok(d)) = (u64::try_from(n), u64::try_from(d))
            && d > 0
        {
            return Some(i128::from(round_half_even_u64(n, d)));
        }
    }
    let n = num.checked_mul(10i128.checked_pow(den_scale)?)?;
    let d = den.checked_mul(10i128.checked_pow(num_scale)?)?;
    if d <= 0 {
        return None;
    }
    let (quotient, remainder) = (n.div_euclid(d), n.rem_euclid(d));
    let twice = remainder.checked_mul(2)?;
    if twice > d || (twice == d && quotient % 2 != 0) {
        quotient.checked_add(1)
    } else {
        Some(quotient)
    }
}

/// `floor(num / den / step) * step` exactly as `Decimal` computes it (the quotient first
/// rounded to 28 digits), for positive `num` and `den`, a step of `10^-k` (`k <= 12`) and a
/// quotient below `10^8`; `None` for anything else or when the rounding could matter.
fn floor_steps_of_quotient<A: Amount>(num: A, den: A, step: A) -> Option<A> {
    // A quotient below 10^8 keeps at least 20 decimals in `Decimal`'s 96 bits, so its rounding
    // moves it by at most 10^-20, that is 10^(k-20) of a step; a quotient more than ten times
    // that below the next step floors to the same number of steps however it is rounded.
    const MAX_QUOTIENT_DIGITS: u32 = 8;
    const KEPT_DECIMALS: u32 = 20;
    let (step_digits, step_mantissa) = (step.scale(), step.mantissa());
    if step_mantissa != 1 || step_digits > 12 || num <= A::ZERO || den <= A::ZERO {
        return None;
    }
    let (n, d) = (num.mantissa().unsigned_abs(), den.mantissa().unsigned_abs());
    // num / den / step = (n * 10^(den_scale + k)) / (d * 10^num_scale)
    let pow = |digits: u32| super::amount::POW10.get(digits as usize).copied();
    let n = n.checked_mul(pow(den.scale() + step_digits)?)?;
    let d = d.checked_mul(pow(num.scale())?)?;
    // (One 128-bit division, a library call; the remainder from it.)
    let steps = n / d;
    let remainder = n - steps * d;
    if steps >= pow(MAX_QUOTIENT_DIGITS + step_digits)? {
        return None;
    }
    // (d - remainder) / d: how far below the next whole step the exact quotient lies, in steps.
    let gap = d - remainder;
    if gap
        .checked_mul(pow(KEPT_DECIMALS - 1 - step_digits)?)
        .is_some_and(|scaled| scaled <= d)
    {
        return None;
    }
    if steps == 0 {
        // `Decimal` gives a bare zero for a product with zero.
        return Some(A::ZERO);
    }
    A::from_i128_with_scale(i128::try_from(steps).ok()?, step_digits)
}

/// `n / d` rounded half to even; `d > 0`.
#[inline]
fn round_half_even_u64(n: u64, d: u64) -> u64 {
    let (quotient, remainder) = (n / d, n % d);
    quotient + u64::from(remainder > d - remainder || (remainder == d - remainder && quotient % 2 != 0))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::FastDecimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// The integer shortcut gives `Decimal`'s own floor of its rounded quotient, or stands
    /// aside: on random amounts and on quotients a hair below a whole step.
    #[test]
    fn floored_quotients_equal_decimals_own() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let decimal_way = |num: Decimal, den: Decimal, step: Decimal| -> Option<Decimal> {
            num.checked_div(den)?.checked_div(step)?.floor().checked_mul(step)
        };
        let mut taken = 0;
        for round in 0..200_000 {
            let step = Decimal::new(1, [8, 8, 3, 0, 12][round % 5]);
            let den = Decimal::new(rng.random_range(1..10_000_000_000_000), rng.random_range(0..10));
            let num = if round % 3 == 0 {
                // Just below (or at) a whole number of steps times den.
                let steps = Decimal::from(rng.random_range(1..10_000_000i64));
                let tiny = Decimal::new(rng.random_range(0..1_000), rng.random_range(10..28));
                match (steps * step).checked_mul(den).and_then(|x| x.checked_sub(tiny)) {
                    Some(num) if num > Decimal::ZERO => num,
                    _ => continue,
                }
            } else {
                Decimal::new(rng.random_range(1..i64::MAX), rng.random_range(0..20))
            };
            let want = decimal_way(num, den, step);
            if let Some(got) = floor_steps_of_quotient(num, den, step) {
                taken += 1;
                assert_eq!(Some(got), want, "{num} / {den} in steps of {step}");
                assert_eq!(
                    format!("{got:?}"),
                    format!("{:?}", want.unwrap()),
                    "scale of {num} / {den}"
                );
                let fast = floor_steps_of_quotient(
                    FastDecimal::from_decimal(num),
                    FastDecimal::from_decimal(den),
                    FastDecimal::from_decimal(step),
                );
                assert_eq!(
                    fast.map(FastDecimal::to_decimal).map(|x| format!("{x:?}")),
                    Some(format!("{got:?}"))
                );
            }
        }
        assert!(taken > 100_000, "the shortcut is taken: {taken}");
    }

    /// Expected quantity and cash after a buy.
    type QtyCash = (&'static str, &'static str);

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn broker(cash: &str, fee_rate: &str, sizing: Sizing, step: &str) -> PaperBroker {
        PaperBroker::new(BrokerConfig {
            initial_cash: d(cash),
            fee_rate: d(fee_rate),
            sizing,
            qty_step: d(step),
        })
    }

    #[test]
    fn seed_sizing_rounds_half_even_in_thousandths() {
        // cash, price -> qty, cash after (None: no trade).
        let cases: &[(&str, &str, Option<QtyCash>)] = &[
            ("100000", "19344", Some(("0.005", "99903.28"))),
            ("99999.99045", "19232.18", Some(("0.005", "99903.82955"))),
            ("100000", "3", Some(("33.333", "99900.001"))),
            // Ties go to the even count: 2.5 -> 2, 3.5 -> 4.
            ("250", "100", Some(("0.002", "249.8"))),
            ("350", "100", Some(("0.004", "349.6"))),
            ("149.99", "100", Some(("0.001", "149.89"))),
            // 12345.4999..9667: Decimal's quotient is 12345.5, which would round up to 12346.
            (
                "37036.499999999999999999999999",
                "3",
                Some(("12.345", "36999.464999999999999999999999")),
            ),
            ("49", "100", None),
            ("100000", "0", None),
            ("100000", "-1", None),
        ];
        for &(cash, price, want) in cases {
            let mut broker = broker(cash, "0", Sizing::Seed, "0.00000001");
            let got = broker.enter(ts(0), d(price)).map(|(order, fill)| {
                assert_eq!(order.qty, fill.qty);
                (fill.qty, fill.cash_after)
            });
            assert_eq!(got, want.map(|(q, c)| (d(q), d(c))), "cash {cash} at {price}");
        }
    }

    #[test]
    fn replays_the_seed_trades_of_2017_12_17() {
        let reference = include_str!("../../../tests/data/seed_btcusd_1m_20171217_trades.csv");
        let mut broker = PaperBroker::new(BrokerConfig::seed());
        let mut fills = vec![];
        for (i, line) in reference.lines().skip(1).enumerate() {
            let cols: Vec<&str> = line.split(',').collect();
            let [secs, side, qty, price, cash_after, position_after] = cols[..] else {
                panic!("row {i}: {line}");
            };
            let (secs, side, price) = (secs.parse().unwrap(), side.parse().unwrap(), d(price));
            let (order, fill) = match side {
                Side::Buy => broker.enter(ts(secs), price),
                Side::Sell => broker.exit(ts(secs), price, OrderReason::Exit),
            }
            .unwrap_or_else(|| panic!("row {i}: no fill"));
            let want_reason = match side {
                Side::Buy => OrderReason::Entry,
                Side::Sell => OrderReason::Exit,
            };
            assert_eq!((order.id, order.side, order.reason), (i as u64 + 1, side, want_reason));
            // Compared as text: the same values, spelled the same way.
            let got = [fill.qty, fill.cash_after, fill.position_after].map(|x| x.to_string());
            assert_eq!(got, [qty, cash_after, position_after], "row {i}: {line}");
            assert_eq!(fill.fee, Decimal::ZERO);
            fills.push(fill);
        }
        let account = broker.account();
        assert_eq!(fills.len(), 76);
        assert_eq!(account.cash(), d("100000.6744"));
        assert_eq!(account.position(), Decimal::ZERO);
        assert_eq!(account.realized_pnl(), d("0.6744"));
        assert_eq!(account.round_trips(), 38);
        assert_eq!(fills.iter().map(|f| f.realized_pnl).sum::<Decimal>(), d("0.6744"));
        // Nothing left to sell: the seed's no-op sell is not a trade.
        assert_eq!(broker.exit(ts(0), d("19000"), OrderReason::Flatten), None);
    }

    #[test]
    fn fees_are_charged_on_both_sides() {
        // Default: all equity, 0.4% fee, satoshi steps. 100000 / (20000 * 1.004) = 4.98007968..
        let mut broker = PaperBroker::new(BrokerConfig::default());
        let (order, buy) = broker.enter(ts(60), d("20000")).unwrap();
        assert_eq!(order.reason, OrderReason::Entry);
        assert_eq!(
            [buy.qty, buy.fee, buy.cash_after, buy.position_after, buy.realized_pnl],
            [
                d("4.98007968"),
                d("398.4063744"),
                d("0.0000256"),
                d("4.98007968"),
                Decimal::ZERO
            ]
        );
        let (order, sell) = broker.exit(ts(120), d("21000"), OrderReason::Flatten).unwrap();
        assert_eq!(
            (order.id, order.side, order.reason),
            (2, Side::Sell, OrderReason::Flatten)
        );
        // Proceeds 104581.67328 - 418.32669312; basis 99601.5936 + 398.4063744.
        assert_eq!(
            [
                sell.qty,
                sell.fee,
                sell.cash_after,
                sell.position_after,
                sell.realized_pnl
            ],
            [
                d("4.98007968"),
                d("418.32669312"),
                d("104163.34661248"),
                Decimal::ZERO,
                d("4163.34661248"),
            ]
        );
        let account = broker.account();
        assert_eq!(account.fees_paid(), d("816.73306752"));
        assert_eq!(account.equity(), d("104163.34661248"));
        assert_eq!([account.round_trips(), account.winning_round_trips()], [1, 1]);
    }

    #[test]
    fn fraction_and_fixed_sizing_stay_within_cash() {
        // cash, fee rate, sizing, step, price -> quantity and cash after, or `none`.
        let cases = [
            "100000  0.004  fraction:0.5   0.00000001 20000    -> 2.49003984  50000.0000128",
            "1234.56 0.0026 fraction:0.25  0.00000001 19344.01 -> 0.01591395  925.9200090798573",
            // Without fees all of it can go, down to the step.
            "100     0      fraction:1     0.00000001 3        -> 33.33333333 0.00000001",
            "1000    0.004  fixed:0.01     0.00000001 20000    -> 0.01        799.2",
            // Capped to what cash pays for, fee included.
            "1000    0.004  fixed:1        0.00000001 20000    -> 0.04980079  0.0001368",
            "1000    0.004  fixed:0.012345 0.001      20000    -> 0.012       759.04",
            "1000    0      fixed:1        1          1000     -> 1           0",
            // Rounds to 0: no trade.
            "1000    0.001  fixed:1        1          1000     -> none",
            "1000    0.004  fixed:0.0009   0.001      20000    -> none",
            "0.0001  0.004  fraction:1     0.00000001 20000    -> none",
        ];
        for case in cases {
            let (input, want) = case.split_once("->").unwrap();
            let [cash, fee_rate, sizing, step, price] = input.split_whitespace().collect::<Vec<_>>()[..] else {
                panic!("bad case {case}");
            };
            let mut broker = broker(cash, fee_rate, sizing.parse().unwrap(), step);
            let got = broker
                .enter(ts(0), d(price))
                .map(|(_, fill)| format!("{} {}", fill.qty, fill.cash_after));
            let want = want.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(got.as_deref().unwrap_or("none"), want, "{case}");
        }
    }

    #[test]
    fn random_sessions_never_overspend_and_rebuild_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let sizings = ["seed", "fraction:1", "fraction:0.3", "fixed:0.5", "fixed:0.00001234"];
        for round in 0..100 {
            let config = BrokerConfig {
                initial_cash: Decimal::new(rng.random_range(1..10_000_000), 2),
                fee_rate: Decimal::new(rng.random_range(0..100), 4),
                sizing: sizings[round % sizings.len()].parse().unwrap(),
                qty_step: Decimal::new(1, rng.random_range(0..9)),
            };
            let mut broker = PaperBroker::new(config.clone());
            // The same session, books only, in the fast decimal: the same books to the digit.
            let mut quiet = PaperBroker::<FastDecimal>::new(config.clone());
            let mut fills = vec![];
            let mut price = Decimal::from(20_000);
            for i in 0..60 {
                price = (price + Decimal::new(rng.random_range(-50_000..50_000), 2)).max(Decimal::ONE);
                broker.mark(price);
                quiet.mark(FastDecimal::from_decimal(price));
                let buy = rng.random_bool(0.5);
                let traded = if buy {
                    broker.enter(ts(i), price)
                } else {
                    broker.exit(ts(i), price, OrderReason::Exit)
                };
                let quietly = quiet.follow_quietly(if buy { 1 } else { -1 }, FastDecimal::from_decimal(price));
                assert_eq!(quietly, traded.is_some());
                assert_eq!(
                    format!("{:?}", quiet.account().to_decimal()),
                    format!("{:?}", broker.account())
                );
                if let Some((order, fill)) = traded {
                    assert_eq!((order.id, order.qty), (fill.order_id, fill.qty));
                    fills.push(fill);
                }
                let account = broker.account();
                assert!(account.cash() >= Decimal::ZERO, "{config:?}: {account:?}");
                assert!(account.position() >= Decimal::ZERO);
                assert_eq!(
                    account.equity(),
                    account.initial_cash() + account.realized_pnl() + account.unrealized_pnl()
                );
            }
            // A restart: books from the stored fills, marked at the last price.
            let mut rebuilt = Account::rebuild(config.initial_cash, &fills);
            rebuilt.mark(price);
            assert_eq!(&rebuilt, broker.account());
            let resumed = PaperBroker::resume(config, rebuilt, broker.next_order_id());
            assert_eq!(resumed.account(), broker.account());
            assert_eq!(resumed.next_order_id(), fills.len() as u64 + 1);
        }
    }

    #[test]
    fn half_even_division_is_exact() {
        let cases = [
            ("5", "2", "2"),
            ("7", "2", "4"),
            ("7", "3", "2"),
            ("8", "3", "3"),
            ("0", "3", "0"),
            ("-5", "2", "-2"),
            ("-7", "2", "-4"),
            ("1", "3", "0"),
            ("37036.499999999999999999999999", "3", "12345"),
            ("37036.500000000000000000000001", "3", "12346"),
        ];
        for (num, den, want) in cases {
            assert_eq!(div_round_half_even(d(num), d(den)), Some(d(want)), "{num}/{den}");
        }
        assert_eq!(div_round_half_even(Decimal::ONE, Decimal::ZERO), None);
        assert_eq!(div_round_half_even(Decimal::ONE, -Decimal::ONE), None);
        assert_eq!(div_round_half_even(Decimal::MAX, d("0.1")), None);
    }

    /// The integer path and the decimal path agree wherever both apply.
    #[test]
    fn integer_half_even_division_agrees_with_the_decimal_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20_000 {
            let num = Decimal::new(
                rng.random_range(-10_000_000_000_000..10_000_000_000_000),
                rng.random_range(0..10),
            );
            let den = Decimal::new(rng.random_range(1..10_000_000_000_000), rng.random_range(0..10));
            // Exact halves are common with small dividers.
            let den = if rng.random_bool(0.2) { Decimal::TWO } else { den };
            let fast = div_round_half_even_i128(num.mantissa(), num.scale(), den.mantissa(), den.scale()).unwrap();
            let fast = Decimal::from_i128_with_scale(fast, 0);
            let mut slow = num.checked_div(den).unwrap().trunc();
            let mut rest = num - slow * den;
            while rest < Decimal::ZERO {
                slow -= Decimal::ONE;
                rest += den;
            }
            while rest >= den {
                slow += Decimal::ONE;
                rest -= den;
            }
            let twice = rest * Decimal::TWO;
            if twice > den || (twice == den && slow % Decimal::TWO != Decimal::ZERO) {
                slow += Decimal::ONE;
            }
            assert_eq!(fast, slow, "{num} / {den}");
        }
    }
}
