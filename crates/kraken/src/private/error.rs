//! Private REST failures as types: Kraken's `error` strings classified (README section 5), the
//! transport's failures, and what an AddOrder came to, which decides whether an order may exist.

use std::fmt;

use thiserror::Error;

use super::nonce::NonceError;
use super::types::AddedOrder;

/// What a Kraken error string means for the bot (README section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiErrorKind {
    /// `EAPI:Invalid key`: a configuration error; repeating it leads to a lockout.
    InvalidKey,
    /// `EAPI:Invalid signature`: a signing bug or the wrong secret.
    InvalidSignature,
    /// `EAPI:Invalid nonce`: not above the last nonce Kraken accepted for the key.
    InvalidNonce,
    /// `EAPI:Rate limit exceeded`, `EGeneral:Too many requests`, `EService:Throttled:<ts>`: the
    /// REST counter (or Cloudflare) says slow down.
    RateLimited,
    /// `EOrder:Rate limit exceeded`, `EOrder:Domain rate limit exceeded`: the trading counter.
    TradingRateLimited,
    /// `EGeneral:Permission denied`: the key lacks the endpoint's permission.
    PermissionDenied,
    /// `EGeneral:Temporary lockout`: after repeated invalid keys; wait minutes.
    Lockout,
    /// `EAuth:*`, `ESession:*`, `EAPI:Invalid token`: a session or WebSocket token problem.
    Session,
    InsufficientFunds,
    /// `EOrder:Order minimum not met`: volume below the pair's `ordermin`.
    OrderMinimum,
    /// `EOrder:Cost minimum not met`: price x volume below the pair's `costmin`.
    CostMinimum,
    /// `EOrder:Tick size check failed`, `EOrder:Invalid price`: price not on the tick.
    TickSize,
    /// `EOrder:Unknown order`, `EOrder:Invalid order`: no such open order (already closed?).
    UnknownOrder,
    /// `EOrder:Orders limit exceeded`: too many open orders on the pair.
    OrdersLimit,
    /// `EService:Unavailable`: the engine or the API is offline.
    Unavailable,
    /// `EService:Busy`: overloaded.
    Busy,
    /// `EService:Market in cancel_only mode`: no new orders, cancels only.
    CancelOnly,
    /// `EService:Market in post_only mode`: only post-only limit orders.
    PostOnly,
    /// Any other `EService:Market in … mode` (e.g. `limit_only`).
    MarketRestricted,
    /// `EService:Deadline elapsed`: the order's `deadline` passed; not placed.
    DeadlineElapsed,
    /// `EGeneral:Invalid arguments[:field]`.
    InvalidArguments,
    /// `EQuery:Unknown asset pair`, `EQuery:Invalid asset pair`.
    UnknownPair,
    /// `EGeneral:Internal error[:code]`.
    Internal,
    /// Anything else; the text is kept.
    Other,
}

impl ApiErrorKind {
    /// Whether the same request may succeed later, after a back-off. Says nothing about an
    /// AddOrder: a rejected order was not placed and may simply be sent again as a new one.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::InvalidNonce
                | Self::RateLimited
                | Self::TradingRateLimited
                | Self::Unavailable
                | Self::Busy
                | Self::Internal
        )
    }

    pub fn classify(text: &str) -> Self {
        let (category, message) = text.split_once(':').unwrap_or((text, ""));
        // The detail after a second colon (a field, an error code, a timestamp) does not change the kind.
        let message = message.split_once(':').map_or(message, |(m, _)| m).trim();
        match (category, message) {
            ("EAPI", "Invalid key") => Self::InvalidKey,
            ("EAPI", "Invalid signature") => Self::InvalidSignature,
            ("EAPI", "Invalid nonce") => Self::InvalidNonce,
            ("EAPI", "Rate limit exceeded") | ("EGeneral", "Too many requests") | ("EService", "Throttled") => {
                Self::RateLimited
            }
            ("EOrder", "Rate limit exceeded" | "Domain rate limit exceeded") => Self::TradingRateLimited,
            ("EGeneral", "Permission denied") => Self::PermissionDenied,
            ("EGeneral", "Temporary lockout") => Self::Lockout,
            ("EAPI", "Invalid token") | ("EAuth" | "ESession", _) => Self::Session,
            ("EOrder", "Insufficient funds") => Self::InsufficientFunds,
            ("EOrder", "Order minimum not met") => Self::OrderMinimum,
            ("EOrder", "Cost minimum not met") => Self::CostMinimum,
            ("EOrder", "Tick size check failed" | "Invalid price") => Self::TickSize,
            ("EOrder", "Unknown order" | "Invalid order") => Self::UnknownOrder,
            ("EOrder", "Orders limit exceeded") => Self::OrdersLimit,
            ("EService", "Unavailable") => Self::Unavailable,
            ("EService", "Busy") => Self::Busy,
            ("EService", "Market in cancel_only mode") => Self::CancelOnly,
            ("EService", "Market in post_only mode") => Self::PostOnly,
            ("EService", m) if m.starts_with("Market in ") => Self::MarketRestricted,
            ("EService", "Deadline elapsed") => Self::DeadlineElapsed,
            ("EGeneral", "Invalid arguments") => Self::InvalidArguments,
            ("EQuery", "Unknown asset pair" | "Invalid asset pair") => Self::UnknownPair,
            ("EGeneral", "Internal error") => Self::Internal,
            _ => Self::Other,
        }
    }
}

/// One error string of Kraken's `error` array: its kind and its text, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub text: String,
}

impl ApiError {
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            kind: ApiErrorKind::classify(&text),
            text,
        }
    }

    /// The first error of an `error` array; warnings (`W…`) alone are not errors.
    pub fn from_errors(errors: &[String]) -> Option<Self> {
        errors.iter().find(|e| !e.starts_with('W')).map(Self::new)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for ApiError {}

/// A private call that did not give its result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrivateError {
    /// Kraken answered with an `error` array: the request was refused, not carried out.
    #[error("Kraken refused the request: {0}")]
    Api(ApiError),
    /// A non-200 answer, from Cloudflare or a proxy in front of Kraken.
    #[error("HTTP {status} from Kraken")]
    Http { status: u16 },
    #[error("Kraken did not answer in time")]
    Timeout,
    /// Could not connect at all: nothing was sent.
    #[error("cannot connect to Kraken: {0}")]
    Connect(String),
    /// The connection failed after the request may have been sent (reset, closed early).
    #[error("transport error talking to Kraken: {0}")]
    Transport(String),
    /// An answer we cannot read (HTML error page, truncated JSON, missing field).
    #[error("malformed Kraken payload: {0}")]
    Malformed(String),
    /// The nonce store failed; nothing was sent.
    #[error(transparent)]
    Nonce(#[from] NonceError),
    /// Refused before sending (e.g. a volume not above zero).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl PrivateError {
    /// The kind of Kraken's error, if Kraken answered with one.
    pub fn api_kind(&self) -> Option<ApiErrorKind> {
        match self {
            Self::Api(e) => Some(e.kind),
            _ => None,
        }
    }

    /// Whether the caller may send the same *read* again later (never a blind AddOrder).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(e) => e.kind.is_retryable(),
            Self::Http { status } => *status == 429 || (500..=599).contains(status),
            Self::Timeout | Self::Connect(_) | Self::Transport(_) => true,
            Self::Malformed(_) | Self::Nonce(_) | Self::InvalidRequest(_) => false,
        }
    }
}

/// What an AddOrder came to. Only `Accepted` means the order exists; `Rejected` and `NotSent`
/// mean it certainly does not; `Unknown` means it may: the caller must look it up by its
/// `cl_ord_id` (OpenOrders / ClosedOrders) before placing anything again. The client never
/// retries an AddOrder itself, except one re-sign after `EAPI:Invalid nonce` (Kraken did not
/// process that request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOrderOutcome {
    /// Placed (or, with `validate`, checked: then `txids` is empty).
    Accepted(AddedOrder),
    /// Kraken answered with an `error` array: not placed.
    Rejected(ApiError),
    /// Failed before anything was sent (nonce store, invalid request, no connection): not placed.
    NotSent(PrivateError),
    /// Sent, but no readable answer (timeout, reset, HTTP error, unreadable body): may be placed.
    Unknown(PrivateError),
}

impl AddOrderOutcome {
    /// True when the order certainly does not exist on Kraken.
    pub fn is_not_placed(&self) -> bool {
        matches!(self, Self::Rejected(_) | Self::NotSent(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::fixture;
    use ApiErrorKind as K;

    #[test]
    fn every_documented_string_has_its_kind() {
        for (text, kind) in [
            ("EAPI:Invalid key", K::InvalidKey),
            ("EAPI:Invalid signature", K::InvalidSignature),
            ("EAPI:Invalid nonce", K::InvalidNonce),
            ("EAPI:Rate limit exceeded", K::RateLimited),
            ("EGeneral:Too many requests", K::RateLimited),
            ("EService:Throttled: 1762820224", K::RateLimited),
            ("EOrder:Rate limit exceeded", K::TradingRateLimited),
            ("EOrder:Domain rate limit exceeded", K::TradingRateLimited),
            ("EGeneral:Permission denied", K::PermissionDenied),
            ("EGeneral:Temporary lockout", K::Lockout),
            ("EAuth:Account temporary disabled", K::Session),
            ("ESession:Invalid session", K::Session),
            ("EAPI:Invalid token", K::Session),
            ("EOrder:Insufficient funds", K::InsufficientFunds),
            ("EOrder:Order minimum not met", K::OrderMinimum),
            ("EOrder:Cost minimum not met", K::CostMinimum),
            ("EOrder:Tick size check failed", K::TickSize),
            ("EOrder:Invalid price", K::TickSize),
            ("EOrder:Unknown order", K::UnknownOrder),
            ("EOrder:Invalid order", K::UnknownOrder),
            ("EOrder:Orders limit exceeded", K::OrdersLimit),
            ("EService:Unavailable", K::Unavailable),
            ("EService:Busy", K::Busy),
            ("EService:Market in cancel_only mode", K::CancelOnly),
            ("EService:Market in post_only mode", K::PostOnly),
            ("EService:Market in limit_only mode", K::MarketRestricted),
            ("EService:Deadline elapsed", K::DeadlineElapsed),
            ("EGeneral:Invalid arguments:ordertype", K::InvalidArguments),
            ("EGeneral:Invalid arguments", K::InvalidArguments),
            ("EQuery:Unknown asset pair", K::UnknownPair),
            ("EQuery:Invalid asset pair", K::UnknownPair),
            ("EGeneral:Internal error:2", K::Internal),
            ("EOrder:Something new", K::Other),
            ("EFunding:Unknown asset", K::Other),
            ("garbage", K::Other),
        ] {
            let e = ApiError::new(text);
            assert_eq!(e.kind, kind, "{text}");
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn error_fixtures_classify() {
        #[derive(serde::Deserialize)]
        struct Envelope {
            error: Vec<String>,
        }
        for (file, kind) in [
            ("rest_error_invalid_arguments.json", K::InvalidArguments),
            ("rest_error_invalid_nonce.json", K::InvalidNonce),
            ("rest_error_invalid_signature.json", K::InvalidSignature),
            ("rest_error_rate_limit.json", K::RateLimited),
            ("rest_error_service_unavailable.json", K::Unavailable),
            ("rest_error_unknown_pair.json", K::UnknownPair),
            ("private_addorder_insufficient_funds.json", K::InsufficientFunds),
        ] {
            let envelope: Envelope = serde_json::from_str(&fixture(file)).unwrap();
            assert_eq!(
                ApiError::from_errors(&envelope.error).map(|e| e.kind),
                Some(kind),
                "{file}"
            );
        }
    }

    #[test]
    fn warnings_alone_are_not_errors() {
        assert_eq!(ApiError::from_errors(&[]), None);
        let w = "WGeneral:Deprecated".to_string();
        assert_eq!(ApiError::from_errors(std::slice::from_ref(&w)), None);
        let mixed = [w, "EService:Busy".to_string()];
        assert_eq!(ApiError::from_errors(&mixed).map(|e| e.kind), Some(K::Busy));
    }

    #[test]
    fn retryability() {
        let api = |t: &str| PrivateError::Api(ApiError::new(t));
        for (err, retryable) in [
            (api("EService:Busy"), true),
            (api("EAPI:Rate limit exceeded"), true),
            (api("EOrder:Insufficient funds"), false),
            (api("EAPI:Invalid key"), false),
            (PrivateError::Http { status: 502 }, true),
            (PrivateError::Http { status: 403 }, false),
            (PrivateError::Timeout, true),
            (PrivateError::Malformed("<html>".into()), false),
        ] {
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }
}
