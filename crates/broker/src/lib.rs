//! Paper broker and account: exact money, explicit fees and sizing.
//!
//! It owns the account's books and how an order becomes a fill on paper. It knows the market's
//! types only: not the strategies, the store or the engine that drives it.

pub mod account;
pub mod amount;
pub mod config;
pub mod order;
pub mod paper;

pub use account::{Account, AccountSnapshot};
pub use amount::{Amount, FastDecimal};
pub use config::{BrokerConfig, Sizing};
pub use order::{Fill, Order, OrderReason};
pub use paper::PaperBroker;
