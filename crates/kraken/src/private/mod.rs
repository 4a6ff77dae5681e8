//! Kraken's private API: the REST side (README section 4: credentials that never show
//! themselves, the `API-Sign`, nonces that never go back (not even across restarts),
//! client-side copies of the rate counters, typed results and errors, the signed client) and
//! the authenticated WebSocket v2 (README 7.11: the `executions` and `balances` channels as
//! typed messages, and [`PrivateFeed`], the task that keeps them streaming with a fresh token
//! per connection). The clients need feature `client`; the types and parsing do not.
//!
//! Exactly-once matters more than anything here: [`PrivateClient::add_order`] answers with an
//! [`AddOrderOutcome`] that tells a placed order from a refused one from one whose fate is
//! unknown (look it up by `cl_ord_id`), and never sends an AddOrder twice except for the one
//! re-sign after `EAPI:Invalid nonce`, which Kraken did not process.

#[cfg(feature = "client")]
mod client;
mod credentials;
mod error;
mod limits;
mod nonce;
// Without the `client` feature the body builder and the parsers have no caller yet.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod sign;
#[cfg(all(test, feature = "client"))]
mod test_server;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod types;
#[cfg(feature = "client")]
mod ws;
mod ws_messages;

#[cfg(feature = "client")]
pub use client::PrivateClient;
pub use credentials::{Credentials, CredentialsError};
pub use error::{AddOrderOutcome, ApiError, ApiErrorKind, PrivateError};
#[cfg(feature = "client")]
pub use limits::RateLimits;
pub use limits::{Counter, CounterSpec, Tier, UnknownTier, api_cost, cancel_cost};
pub use nonce::{NonceError, NonceSource};
pub use sign::{api_sign, verify_api_sign};
pub use types::{
    AddedOrder, CancelResult, ClosedOrdersPage, DeadManSwitch, ExtendedBalance, Order, OrderDescription, OrderRef,
    OrderRequest, OrderStatus, OrderType, Trade, TradesPage, TrailOffset, WebSocketsToken,
};
#[cfg(feature = "client")]
pub use ws::{PrivateEvent, PrivateFeed, PrivateFeedStats, PrivateWsConfig, PrivateWsError, TokenSource};
pub use ws_messages::{
    ExecOrderStatus, ExecType, ExecutionReport, Fee, LedgerEntry, Liquidity, PrivateMessage, TradeFill,
    parse_private_ws,
};
