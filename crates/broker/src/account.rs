//! The books of a long-only account: cash, position, cost basis and P&L, all exact.
//!
//! Cost basis is the cash actually spent on the open position, buy fees included, so a sell
//! realizes `proceeds - sell fee - basis of the part sold` and the identity
//! `equity == initial_cash + realized_pnl + unrealized_pnl` holds exactly. Arithmetic
//! saturates instead of panicking, so a corrupt stored fill cannot crash a restart; amounts
//! of real money never come near `Decimal::MAX` (about 7.9e28). The books are kept in any
//! `Amount` (see `amount`): `Decimal` unless said otherwise.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::amount::Amount;
use super::order::Fill;
use nanotrader_market::{Side, Timestamp};

/// Decimal places kept for the cost basis released by a partial sell (an inexact share).
const BASIS_DP: u32 = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account<A = Decimal> {
    initial_cash: A,
    cash: A,
    position: A,
    cost_basis: A,
    fees_paid: A,
    realized_pnl: A,
    last_price: Option<A>,
    round_trips: u64,
    winning_round_trips: u64,
    /// P&L realized so far by the round trip still open (by partial sells).
    open_trip_pnl: A,
}

impl Account {
    /// The books after replaying stored fills, as on a restart.
    pub fn rebuild<'a>(initial_cash: Decimal, fills: impl IntoIterator<Item = &'a Fill>) -> Self {
        let mut account = Self::new(initial_cash);
        for fill in fills {
            account.apply(fill);
        }
        account
    }

    /// Books a fill from its side, quantity, price and fee (its `*_after` fields are outputs of
    /// the broker, not inputs here). Marks the account at the fill price.
    pub fn apply(&mut self, fill: &Fill) {
        self.book(fill.side, fill.qty, fill.price, fill.fee);
    }

    /// The figures with trailing zeros dropped (the values are unchanged).
    pub fn snapshot(&self, ts: Timestamp) -> AccountSnapshot {
        AccountSnapshot {
            ts,
            cash: self.cash.normalize(),
            position: self.position.normalize(),
            avg_entry: self.avg_entry().map(|p| p.normalize()),
            realized_pnl: self.realized_pnl.normalize(),
            unrealized_pnl: self.unrealized_pnl().normalize(),
            equity: self.equity().normalize(),
            fees_paid: self.fees_paid.normalize(),
            return_pct: self.return_pct().normalize(),
        }
    }
}

impl<A: Amount> Account<A> {
    pub fn new(initial_cash: A) -> Self {
        Self {
            initial_cash,
            cash: initial_cash,
            position: A::ZERO,
            cost_basis: A::ZERO,
            fees_paid: A::ZERO,
            realized_pnl: A::ZERO,
            last_price: None,
            round_trips: 0,
            winning_round_trips: 0,
            open_trip_pnl: A::ZERO,
        }
    }

    /// The same books in `Decimal`.
    pub fn to_decimal(&self) -> Account {
        Account {
            initial_cash: self.initial_cash.to_decimal(),
            cash: self.cash.to_decimal(),
            position: self.position.to_decimal(),
            cost_basis: self.cost_basis.to_decimal(),
            fees_paid: self.fees_paid.to_decimal(),
            realized_pnl: self.realized_pnl.to_decimal(),
            last_price: self.last_price.map(A::to_decimal),
            round_trips: self.round_trips,
            winning_round_trips: self.winning_round_trips,
            open_trip_pnl: self.open_trip_pnl.to_decimal(),
        }
    }

    /// Books a trade of `qty` at `price` paying `fee`, and marks the account at its price.
    pub fn book(&mut self, side: Side, qty: A, price: A, fee: A) {
        let notional = qty.saturating_mul(price);
        self.fees_paid = self.fees_paid.saturating_add(fee);
        self.last_price = Some(price);
        match side {
            Side::Buy => {
                let cost = notional.saturating_add(fee);
                self.cash = self.cash.saturating_sub(cost);
                self.position = self.position.saturating_add(qty);
                self.cost_basis = self.cost_basis.saturating_add(cost);
            }
            Side::Sell => {
                let released = self.basis_of(qty);
                let proceeds = notional.saturating_sub(fee);
                let pnl = proceeds.saturating_sub(released);
                self.cash = self.cash.saturating_add(proceeds);
                self.position = self.position.saturating_sub(qty);
                self.cost_basis = self.cost_basis.saturating_sub(released);
                self.realized_pnl = self.realized_pnl.saturating_add(pnl);
                self.open_trip_pnl = self.open_trip_pnl.saturating_add(pnl);
                if self.position <= A::ZERO {
                    self.close_round_trip();
                }
            }
        }
    }

    /// Replaces the books' cash and position with what the exchange holds (a live account: the
    /// exchange's balances are the truth). The cost basis follows the position pro rata.
    pub fn set_holdings(&mut self, cash: A, position: A) {
        if position <= A::ZERO {
            self.cost_basis = A::ZERO;
        } else if self.position > A::ZERO && position != self.position {
            self.cost_basis = self.basis_of(self.position.min(position));
        }
        self.cash = cash;
        self.position = position;
    }

    /// Values the position at `price` from now on.
    pub fn mark(&mut self, price: A) {
        self.last_price = Some(price);
    }

    pub fn initial_cash(&self) -> A {
        self.initial_cash
    }
    pub fn cash(&self) -> A {
        self.cash
    }
    pub fn position(&self) -> A {
        self.position
    }
    /// Cash spent on the open position, buy fees included.
    pub fn cost_basis(&self) -> A {
        self.cost_basis
    }
    pub fn fees_paid(&self) -> A {
        self.fees_paid
    }
    pub fn realized_pnl(&self) -> A {
        self.realized_pnl
    }
    /// The last fill or mark price, `None` before either.
    pub fn last_price(&self) -> Option<A> {
        self.last_price
    }
    /// Positions opened and fully closed.
    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }
    /// Round trips whose sells realized more than they cost, fees included.
    pub fn winning_round_trips(&self) -> u64 {
        self.winning_round_trips
    }

    /// Average entry price including buy fees (the break-even price before the sell fee);
    /// `None` when flat.
    pub fn avg_entry(&self) -> Option<A> {
        if self.position <= A::ZERO {
            return None;
        }
        self.cost_basis.checked_div(self.position)
    }

    /// What the open position would realize at the last price, before the sell fee.
    pub fn unrealized_pnl(&self) -> A {
        self.position_value().saturating_sub(self.cost_basis)
    }

    pub fn equity(&self) -> A {
        self.cash.saturating_add(self.position_value())
    }

    /// Gain on the starting cash, in percent.
    pub fn return_pct(&self) -> A {
        let gain = self.equity().saturating_sub(self.initial_cash);
        gain.checked_div(self.initial_cash)
            .map_or(A::ZERO, |r| r.saturating_mul(A::new(100, 0)))
    }

    fn position_value(&self) -> A {
        self.position.saturating_mul(self.last_price.unwrap_or(A::ZERO))
    }

    /// The part of the cost basis that selling `qty` releases: all of it when the sale closes
    /// the position (so the round trip's P&L is exact), else its pro-rata share.
    fn basis_of(&self, qty: A) -> A {
        if qty >= self.position {
            return self.cost_basis;
        }
        qty.checked_div(self.position).map_or(A::ZERO, |share| {
            self.cost_basis.saturating_mul(share).round_dp(BASIS_DP)
        })
    }

    fn close_round_trip(&mut self) {
        self.round_trips += 1;
        if self.open_trip_pnl > A::ZERO {
            self.winning_round_trips += 1;
        }
        self.open_trip_pnl = A::ZERO;
    }
}

/// The account at one instant, for the store, the logs and the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub ts: Timestamp,
    pub cash: Decimal,
    pub position: Decimal,
    pub avg_entry: Option<Decimal>,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub equity: Decimal,
    pub fees_paid: Decimal,
    pub return_pct: Decimal,
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn fill(side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Fill {
        Fill {
            order_id: 0,
            ts: Timestamp::default(),
            side,
            qty,
            price,
            fee,
            cash_after: Decimal::ZERO,
            position_after: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
        }
    }

    fn assert_identity(account: &Account) {
        assert_eq!(
            account.equity(),
            account.initial_cash() + account.realized_pnl() + account.unrealized_pnl(),
            "{account:?}"
        );
    }

    #[test]
    fn books_buys_and_sells_exactly() {
        use Side::{Buy, Sell};
        // After each fill: cash, position, cost basis, realized P&L, round trips, winners.
        type Row = (
            Side,
            &'static str,
            &'static str,
            &'static str,
            [&'static str; 4],
            [u64; 2],
        );
        let rows: &[Row] = &[
            (Buy, "2", "100", "1", ["799", "2", "201", "0"], [0, 0]),
            // Half the position releases half the basis: 110 - 0.5 - 100.5.
            (Sell, "1", "110", "0.5", ["908.5", "1", "100.5", "9"], [0, 0]),
            // Closing releases the rest: 90 - 0.5 - 100.5 = -11; the trip lost 2 in total.
            (Sell, "1", "90", "0.5", ["998", "0", "0", "-2"], [1, 0]),
            (Buy, "0.003", "19344", "0", ["939.968", "0.003", "58.032", "-2"], [1, 0]),
            (Sell, "0.003", "19400", "0.01", ["998.158", "0", "0", "-1.842"], [2, 1]),
            // A third of the basis is inexact: rounded to 16 places, the books still balance.
            (Buy, "3", "1", "0.01", ["995.148", "3", "3.01", "-1.842"], [2, 1]),
            (
                Sell,
                "1",
                "1",
                "0",
                ["996.148", "2", "2.0066666666666667", "-1.8453333333333333"],
                [2, 1],
            ),
        ];
        let mut account = Account::new(d("1000"));
        for (i, &(side, qty, price, fee, books, [trips, wins])) in rows.iter().enumerate() {
            account.apply(&fill(side, d(qty), d(price), d(fee)));
            let got = [
                account.cash(),
                account.position(),
                account.cost_basis(),
                account.realized_pnl(),
            ];
            assert_eq!(got, books.map(d), "row {i}");
            assert_eq!([account.round_trips(), account.winning_round_trips()], [trips, wins]);
            assert_identity(&account);
        }
        assert_eq!(account.fees_paid(), d("2.02"));
    }

    #[test]
    fn marks_and_reports() {
        let mut account = Account::new(d("1000"));
        assert_eq!(account.avg_entry(), None);
        assert_eq!(account.equity(), d("1000"));
        assert_eq!(account.return_pct(), Decimal::ZERO);
        account.apply(&fill(Side::Buy, d("4"), d("100"), d("2")));
        assert_eq!(account.avg_entry(), Some(d("100.5")));
        account.mark(d("110"));
        let snapshot = account.snapshot(Timestamp::from_secs(60));
        let want = AccountSnapshot {
            ts: Timestamp::from_secs(60),
            cash: d("598"),
            position: d("4"),
            avg_entry: Some(d("100.5")),
            realized_pnl: Decimal::ZERO,
            unrealized_pnl: d("38"),
            equity: d("1038"),
            fees_paid: d("2"),
            return_pct: d("3.8"),
        };
        assert_eq!(snapshot, want);
        let json = serde_json::to_string(&snapshot).unwrap();
        assert!(json.contains(r#""avg_entry":"100.5""#), "{json}");
        assert_eq!(serde_json::from_str::<AccountSnapshot>(&json).unwrap(), want);
    }

    /// A random decimal in [0, max) with up to `max_dp` places.
    fn random(rng: &mut ChaCha8Rng, max: i64, max_dp: u32) -> Decimal {
        let dp = rng.random_range(0..=max_dp);
        Decimal::new(rng.random_range(0..max * 10_i64.pow(dp)), dp)
    }

    #[test]
    fn equity_identity_holds_across_random_fills() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let mut account = Account::new(random(&mut rng, 1_000_000, 2) + Decimal::ONE);
            let mut fills = vec![];
            for _ in 0..50 {
                let price = random(&mut rng, 100_000, 8) + Decimal::ONE;
                let fee = random(&mut rng, 50, 5);
                let position = account.position();
                let f = if position.is_zero() || rng.random_bool(0.5) {
                    let qty = random(&mut rng, 10, 8);
                    fill(Side::Buy, qty, price, fee)
                } else {
                    // Partial sells of awkward fractions, or the whole position.
                    let qty = if rng.random_bool(0.3) {
                        position
                    } else {
                        (position * random(&mut rng, 1, 4)).round_dp(8)
                    };
                    fill(Side::Sell, qty, price, fee)
                };
                account.apply(&f);
                fills.push(f);
                assert_identity(&account);
                account.mark(random(&mut rng, 100_000, 2));
                assert_identity(&account);
            }
            // Replaying the fills gives the same books (marked at the same last price).
            let mut rebuilt = Account::rebuild(account.initial_cash(), &fills);
            if let Some(price) = account.last_price() {
                rebuilt.mark(price);
            }
            assert_eq!(rebuilt, account);
        }
    }
}
