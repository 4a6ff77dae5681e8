//! Kraken failures as types: the exchange's `E<Category>:<Message>` strings, HTTP and transport
//! problems, and payloads we cannot read, each knowing whether a retry can help.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KrakenError {
    /// `EAPI:Rate limit exceeded`, `EGeneral:Too many requests`, `EService:Throttled:<ts>`,
    /// `EOrder:(Domain )Rate limit exceeded`: a counter is over its cap and decays with time.
    #[error("Kraken rate limit: {0}")]
    RateLimited(String),
    #[error("Kraken is unavailable (EService:Unavailable)")]
    ServiceUnavailable,
    #[error("Kraken is busy (EService:Busy)")]
    ServiceBusy,
    /// `EGeneral:Internal error[:code]`: server side, worth a later retry.
    #[error("Kraken internal error: {0}")]
    Internal(String),
    /// `EGeneral:Invalid arguments[:field]`; holds the field when Kraken names one.
    #[error("Kraken rejected the arguments: {0}")]
    InvalidArguments(String),
    /// `EQuery:Unknown asset pair` / `EQuery:Invalid asset pair` from the exchange.
    #[error("Kraken does not know the asset pair ({0})")]
    UnknownAssetPair(String),
    /// A pair name that our AssetPairs map cannot resolve.
    #[error("unknown pair '{0}' on Kraken (see AssetPairs)")]
    UnknownPair(String),
    /// The nonce was not above the last one accepted; the signer re-signs once, on purpose.
    #[error("Kraken refused the nonce (EAPI:Invalid nonce)")]
    InvalidNonce,
    #[error("Kraken refused the signature (EAPI:Invalid signature)")]
    InvalidSignature,
    /// Bad key, missing permission, lockout, expired WS token, `EAuth:*`, `ESession:*`.
    #[error("Kraken authentication failed: {0}")]
    Auth(String),
    #[error("Kraken: insufficient funds (EOrder:Insufficient funds)")]
    InsufficientFunds,
    /// Any other `EOrder:*`, and `EService:Market in … mode`: this order cannot go through now.
    #[error("Kraken rejected the order: {0}")]
    OrderRejected(String),
    /// An error string we have no variant for, kept verbatim.
    #[error("Kraken error: {0}")]
    Other(String),
    /// A non-200 answer, usually Cloudflare in front of Kraken (429, 5xx).
    #[error("HTTP {status} from Kraken")]
    Http { status: u16 },
    #[error("transport error talking to Kraken: {0}")]
    Transport(String),
    /// The TLS handshake failed (rustls' reason): a certificate or protocol problem, which
    /// retrying does not fix.
    #[error("TLS handshake with Kraken failed: {0}")]
    Tls(String),
    #[error("Kraken did not answer in time")]
    Timeout,
    /// Not the payload we expected (HTML error page, truncated JSON, missing or mistyped field).
    #[error("malformed Kraken payload: {0}")]
    Malformed(String),
}

impl KrakenError {
    /// Whether the same request may succeed later (after a back-off).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited(_)
            | Self::ServiceUnavailable
            | Self::ServiceBusy
            | Self::Internal(_)
            | Self::Transport(_)
            | Self::Timeout => true,
            Self::Http { status } => *status == 429 || (500..=599).contains(status),
            Self::InvalidArguments(_)
            | Self::UnknownAssetPair(_)
            | Self::UnknownPair(_)
            | Self::InvalidNonce
            | Self::InvalidSignature
            | Self::Auth(_)
            | Self::InsufficientFunds
            | Self::OrderRejected(_)
            | Self::Other(_)
            | Self::Tls(_)
            | Self::Malformed(_) => false,
        }
    }

    /// The first error of a REST `error` array (or a WS error text), typed. Warnings (`W…`)
    /// ride along with a valid `result`, so an array holding only warnings gives `None`.
    pub fn from_error_strings(errors: &[String]) -> Option<Self> {
        errors
            .iter()
            .find(|e| !e.starts_with('W'))
            .map(|e| Self::from_error_string(e))
    }

    fn from_error_string(text: &str) -> Self {
        let (category, message) = text.split_once(':').unwrap_or((text, ""));
        // `detail` is whatever follows the message, e.g. the field of `Invalid arguments:pair`.
        let (message, detail) = message.split_once(':').unwrap_or((message, ""));
        let owned = || text.to_string();
        match (category, message) {
            ("EAPI", "Rate limit exceeded")
            | ("EGeneral", "Too many requests")
            | ("EService", "Throttled")
            | ("EOrder", "Rate limit exceeded" | "Domain rate limit exceeded") => Self::RateLimited(owned()),
            ("EService", "Unavailable") => Self::ServiceUnavailable,
            ("EService", "Busy") => Self::ServiceBusy,
            ("EGeneral", "Internal error") => Self::Internal(owned()),
            ("EGeneral", "Invalid arguments") => Self::InvalidArguments(detail.to_string()),
            ("EQuery", "Unknown asset pair" | "Invalid asset pair") => Self::UnknownAssetPair(owned()),
            ("EAPI", "Invalid nonce") => Self::InvalidNonce,
            ("EAPI", "Invalid signature") => Self::InvalidSignature,
            ("EAPI", "Invalid key" | "Invalid token")
            | ("EGeneral", "Permission denied" | "Temporary lockout")
            | ("EAuth" | "ESession", _) => Self::Auth(owned()),
            ("EOrder", "Insufficient funds") => Self::InsufficientFunds,
            ("EOrder", _) => Self::OrderRejected(owned()),
            ("EService", m) if m.starts_with("Market in") => Self::OrderRejected(owned()),
            _ => Self::Other(owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        text: &'static str,
        expected: KrakenError,
        retryable: bool,
    }

    #[test]
    fn error_strings_map_to_typed_errors() {
        let s = |t: &str| t.to_string();
        let cases = [
            Case {
                text: "EAPI:Rate limit exceeded",
                expected: KrakenError::RateLimited(s("EAPI:Rate limit exceeded")),
                retryable: true,
            },
            Case {
                text: "EGeneral:Too many requests",
                expected: KrakenError::RateLimited(s("EGeneral:Too many requests")),
                retryable: true,
            },
            Case {
                text: "EService:Throttled: 1762820224",
                expected: KrakenError::RateLimited(s("EService:Throttled: 1762820224")),
                retryable: true,
            },
            Case {
                text: "EOrder:Domain rate limit exceeded",
                expected: KrakenError::RateLimited(s("EOrder:Domain rate limit exceeded")),
                retryable: true,
            },
            Case {
                text: "EService:Unavailable",
                expected: KrakenError::ServiceUnavailable,
                retryable: true,
            },
            Case {
                text: "EService:Busy",
                expected: KrakenError::ServiceBusy,
                retryable: true,
            },
            Case {
                text: "EGeneral:Internal error:2",
                expected: KrakenError::Internal(s("EGeneral:Internal error:2")),
                retryable: true,
            },
            Case {
                text: "EGeneral:Invalid arguments:ordertype",
                expected: KrakenError::InvalidArguments(s("ordertype")),
                retryable: false,
            },
            Case {
                text: "EGeneral:Invalid arguments",
                expected: KrakenError::InvalidArguments(s("")),
                retryable: false,
            },
            Case {
                text: "EQuery:Unknown asset pair",
                expected: KrakenError::UnknownAssetPair(s("EQuery:Unknown asset pair")),
                retryable: false,
            },
            Case {
                text: "EQuery:Invalid asset pair",
                expected: KrakenError::UnknownAssetPair(s("EQuery:Invalid asset pair")),
                retryable: false,
            },
            Case {
                text: "EAPI:Invalid nonce",
                expected: KrakenError::InvalidNonce,
                retryable: false,
            },
            Case {
                text: "EAPI:Invalid signature",
                expected: KrakenError::InvalidSignature,
                retryable: false,
            },
            Case {
                text: "EAPI:Invalid key",
                expected: KrakenError::Auth(s("EAPI:Invalid key")),
                retryable: false,
            },
            Case {
                text: "EGeneral:Permission denied",
                expected: KrakenError::Auth(s("EGeneral:Permission denied")),
                retryable: false,
            },
            Case {
                text: "ESession:Invalid session",
                expected: KrakenError::Auth(s("ESession:Invalid session")),
                retryable: false,
            },
            Case {
                text: "EOrder:Insufficient funds",
                expected: KrakenError::InsufficientFunds,
                retryable: false,
            },
            Case {
                text: "EOrder:Order minimum not met",
                expected: KrakenError::OrderRejected(s("EOrder:Order minimum not met")),
                retryable: false,
            },
            Case {
                text: "EService:Market in cancel_only mode",
                expected: KrakenError::OrderRejected(s("EService:Market in cancel_only mode")),
                retryable: false,
            },
            Case {
                text: "EFunding:Unknown asset",
                expected: KrakenError::Other(s("EFunding:Unknown asset")),
                retryable: false,
            },
            Case {
                text: "garbage",
                expected: KrakenError::Other(s("garbage")),
                retryable: false,
            },
        ];
        for case in cases {
            let got = KrakenError::from_error_strings(&[case.text.to_string()]);
            assert_eq!(got.as_ref(), Some(&case.expected), "{}", case.text);
            assert_eq!(case.expected.is_retryable(), case.retryable, "{}", case.text);
        }
    }

    #[test]
    fn warnings_alone_are_not_errors() {
        assert_eq!(KrakenError::from_error_strings(&[]), None);
        let warning = vec!["WGeneral:Deprecated".to_string()];
        assert_eq!(KrakenError::from_error_strings(&warning), None);
        let mixed = vec![warning[0].clone(), "EService:Busy".to_string()];
        assert_eq!(KrakenError::from_error_strings(&mixed), Some(KrakenError::ServiceBusy));
    }

    #[test]
    fn transport_level_retryability() {
        for (err, retryable) in [
            (KrakenError::Http { status: 429 }, true),
            (KrakenError::Http { status: 502 }, true),
            (KrakenError::Http { status: 503 }, true),
            (KrakenError::Http { status: 403 }, false),
            (KrakenError::Http { status: 404 }, false),
            (KrakenError::Transport("connection reset".into()), true),
            (KrakenError::Timeout, true),
            (KrakenError::Malformed("not JSON".into()), false),
            (
                KrakenError::Tls("invalid peer certificate: UnknownIssuer".into()),
                false,
            ),
        ] {
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }

    #[test]
    fn unknown_pair_message_is_one_clear_line() {
        assert_eq!(
            KrakenError::UnknownPair("ETH/XYZ".into()).to_string(),
            "unknown pair 'ETH/XYZ' on Kraken (see AssetPairs)"
        );
    }
}
