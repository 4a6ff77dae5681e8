//! The settings of a notifier and the formats of its receivers.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::redact::redact_url;

/// How the body is shaped for the receiver behind the URL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NotifyFormat {
    /// The event itself with `"text"` and `"ts"` (RFC 3339: the event's own time, a fill's, else
    /// when it was queued): for a receiver of one's own.
    #[default]
    Json,
    /// `{"text": ...}`: a Slack incoming webhook.
    Slack,
    /// `{"content": ...}`: a Discord webhook.
    Discord,
    /// `{"text": ..., "chat_id": ...}`: Telegram's `sendMessage`, `chat_id` taken from the URL.
    Telegram,
}

impl NotifyFormat {
    /// Every format, in the order the help lists them.
    pub const ALL: [NotifyFormat; 4] = [Self::Json, Self::Slack, Self::Discord, Self::Telegram];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Telegram => "telegram",
        }
    }
}

impl fmt::Display for NotifyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NotifyFormat {
    type Err = NotifyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| NotifyError::UnknownFormat(s.to_owned()))
    }
}

/// What can go wrong before anything is sent. Every URL in these messages is redacted.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("unknown notify format {0:?} (expected json, slack, discord or telegram)")]
    UnknownFormat(String),
    #[error("invalid notify URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot build the HTTP client for notifications: {0}")]
    Client(String),
}

/// The settings of a [`Notifier`](crate::Notifier). Build it with [`NotifyConfig::new`] and change
/// the public fields if the defaults do not suit.
///
/// Its `Debug` shows the URL redacted, so the settings can be logged whole.
#[derive(Clone)]
pub struct NotifyConfig {
    /// The webhook, http or https.
    pub url: Url,
    pub format: NotifyFormat,
    /// Attempts per event, the first one included (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each, up to
    /// [`NotifyConfig::MAX_BACKOFF`], with jitter.
    pub first_backoff: Duration,
    /// One request's timeout, connection included.
    pub timeout: Duration,
    /// Events waiting to be sent (at least 1); beyond it the oldest is dropped.
    pub queue: usize,
}

impl NotifyConfig {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
    pub const DEFAULT_FIRST_BACKOFF: Duration = Duration::from_secs(1);
    /// The longest wait between two attempts, a `Retry-After` included: one receiver's bad
    /// minute should not hold the alerts behind it for longer.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_QUEUE: usize = 256;

    /// The defaults for a webhook URL; fails on a URL that does not parse or is not http(s).
    pub fn new(url: &str, format: NotifyFormat) -> Result<Self, NotifyError> {
        Ok(Self {
            url: parse_url(url)?,
            format,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            first_backoff: Self::DEFAULT_FIRST_BACKOFF,
            timeout: Self::DEFAULT_TIMEOUT,
            queue: Self::DEFAULT_QUEUE,
        })
    }
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("url", &redact_url(self.url.as_str()))
            .field("format", &self.format)
            .field("max_attempts", &self.max_attempts)
            .field("first_backoff", &self.first_backoff)
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .finish()
    }
}

pub(crate) fn parse_url(url: &str) -> Result<Url, NotifyError> {
    let invalid = |reason: String| NotifyError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    // url's parse errors name the problem, never the input, so they are safe to show.
    let parsed = Url::parse(url.trim()).map_err(|e| invalid(e.to_string()))?;
    check_scheme(&parsed)?;
    Ok(parsed)
}

pub(crate) fn check_scheme(url: &Url) -> Result<(), NotifyError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(NotifyError::InvalidUrl {
            url: redact_url(url.as_str()),
            reason: format!("scheme {other:?} is not http or https"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_display() {
        for f in NotifyFormat::ALL {
            assert_eq!(f.to_string().parse::<NotifyFormat>().unwrap(), f);
        }
        assert_eq!("Slack".parse::<NotifyFormat>().unwrap(), NotifyFormat::Slack);
        assert!(matches!(
            "teams".parse::<NotifyFormat>(),
            Err(NotifyError::UnknownFormat(_))
        ));
    }

    #[test]
    fn config_defaults_and_redacted_debug() {
        let c = NotifyConfig::new(
            "https://api.telegram.org/bot123456:AAHsecretsecret/sendMessage?chat_id=42",
            NotifyFormat::Telegram,
        )
        .unwrap();
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.first_backoff, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.queue, 256);
        let shown = format!("{c:?}");
        assert!(!shown.contains("AAHsecretsecret"), "{shown}");
        assert!(shown.contains("api.telegram.org"), "{shown}");
    }

    #[test]
    fn bad_urls_are_refused_without_showing_secrets() {
        let e = NotifyConfig::new("ftp://user:hunter22@example.com/x", NotifyFormat::Json)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp"), "{e}");
        assert!(!e.contains("hunter22"), "{e}");
        assert!(NotifyConfig::new("not a url", NotifyFormat::Json).is_err());
    }
}
