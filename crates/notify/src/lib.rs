//! Alerts for a live bot: fills, rejected orders, risk halts, feed and store outages and
//! recoveries, start and stop, posted to one webhook (`--notify-url`) in the shape its receiver
//! wants (`--notify-format json|slack|discord|telegram`).
//!
//! What it owns: the [`Event`]s and their one-line text, the request bodies, a bounded queue and
//! the task that drains it with retries and back-off ([`Notifier`]), and the redaction of the
//! webhook URL ([`redact_url`]), whose path or query usually *is* the credential. Every URL this
//! crate shows or logs goes through it.
//!
//! What it must not know: the engine, the store, the brokers and exchanges. Callers build an
//! [`Event`] from their own types; this crate depends on no other nanotrader crate. The engine's
//! side is [`Notifier::notify`], which never blocks nor awaits: when the receiver is slow or down,
//! the oldest queued alerts are dropped (and counted), not the engine's time.
//!
//! TLS: reqwest runs on rustls without a crypto provider of its own; the binary installs ring at
//! start, before [`Notifier::spawn`].

mod body;
mod config;
mod event;
mod notifier;
mod redact;

pub use config::{NotifyConfig, NotifyError, NotifyFormat};
pub use event::{Event, Side};
pub use notifier::{Notifier, NotifyHandle, NotifyStats};
pub use redact::redact_url;
