//! The queue the engine writes to and the task that posts what it holds.

use std::collections::VecDeque;
use std::error::Error as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use url::Url;

use crate::body;
use crate::config::{NotifyConfig, NotifyError, NotifyFormat, check_scheme};
use crate::event::Event;
use crate::redact::Redactor;

/// How much of a refusing receiver's answer goes into the log: enough for Slack's
/// `invalid_payload` or Telegram's `chat not found`.
const ANSWER_SHOWN: usize = 200;

/// Counts of a notifier's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Delivered (a 2xx answer).
    pub sent: u64,
    /// Given up: refused with a 4xx other than 429, or still failing after the last attempt.
    pub failed: u64,
    /// Pushed out of a full queue, or given after shutdown.
    pub dropped: u64,
    /// Still queued or in flight when [`Notifier::shutdown`]'s grace ran out.
    pub abandoned: u64,
}

/// Posts [`Event`]s to one webhook from a task of its own.
///
/// [`notify`](Self::notify) only queues; a sender task posts the queue in order, retrying
/// transport errors, 5xx and 429 with exponential back-off and jitter. Other tasks get a
/// [`NotifyHandle`]. [`shutdown`](Self::shutdown) flushes the queue within a grace period;
/// dropping the notifier instead lets the task finish the queue on its own while the runtime
/// lives.
pub struct Notifier {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

/// A clonable sender of events to a [`Notifier`], for the tasks that report (engine, feed, store).
#[derive(Clone)]
pub struct NotifyHandle {
    shared: Arc<Shared>,
}

impl Notifier {
    /// Starts the sender task on the current tokio runtime.
    ///
    /// Fails on a URL that is not http(s) or when the HTTP client cannot be built.
    ///
    /// # Panics
    /// Outside a tokio runtime, or when no rustls crypto provider is installed (the binary
    /// installs ring at start).
    pub fn spawn(config: NotifyConfig) -> Result<Self, NotifyError> {
        check_scheme(&config.url)?;
        let redactor = Redactor::new(&config.url);
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("nanotrader/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Client(redactor.scrub(&error_chain(e))))?;
        let chat_id = body::chat_id(&config.url);
        if config.format == NotifyFormat::Telegram && chat_id.is_none() {
            warn!(
                url = %redactor.url(),
                "telegram alerts without a chat_id in the URL: Telegram will refuse them"
            );
        }
        info!(url = %redactor.url(), format = %config.format, "alerts go to the webhook");
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                capacity: config.queue.max(1),
                closed: false,
                burst: 0,
            }),
            wake: Notify::new(),
            in_flight: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            url_shown: redactor.url().to_owned(),
        });
        let sender = Sender {
            shared: shared.clone(),
            client,
            url: config.url,
            format: config.format,
            chat_id,
            redactor,
            max_attempts: config.max_attempts.max(1),
            first_backoff: config.first_backoff,
        };
        let task = tokio::spawn(sender.run());
        Ok(Self {
            shared,
            task: Some(task),
        })
    }

    /// Queues `event` and returns at once: no await, no I/O, one short lock. When the queue is
    /// full its oldest event is dropped and counted.
    pub fn notify(&self, event: Event) {
        self.shared.notify(event);
    }

    /// A sender of events for another task.
    pub fn handle(&self) -> NotifyHandle {
        NotifyHandle {
            shared: self.shared.clone(),
        }
    }

    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The counts so far (`abandoned` is 0 until shutdown).
    pub fn stats(&self) -> NotifyStats {
        self.shared.stats(0)
    }

    /// Stops taking events and waits up to `grace` for the queue to be posted (so the last
    /// alert, a `Stopped`, goes out on exit); what is left then is abandoned and counted.
    pub async fn shutdown(mut self, grace: Duration) -> NotifyStats {
        self.shared.close();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(grace, &mut task).await.is_err()
        {
            task.abort();
            // Only to be sure the task no longer touches the queue before counting it.
            let _ = task.await;
        }
        let abandoned = {
            let queue = self.shared.lock();
            queue.events.len() as u64 + u64::from(self.shared.in_flight.load(Ordering::Relaxed))
        };
        if abandoned > 0 {
            warn!(
                url = %self.shared.url_shown,
                abandoned,
                grace_ms = grace.as_millis() as u64,
                "alerts not sent before shutdown"
            );
        }
        self.shared.stats(abandoned)
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if self.task.is_some() {
            // Not shut down: the task posts what is queued and ends; nothing new is taken.
            self.shared.close();
        }
    }
}

impl NotifyHandle {
    /// As [`Notifier::notify`]; once the notifier is shut down or dropped, the event is dropped
    /// and counted.
    pub fn notify(&self, event: Event) {
        self.shared.notify(event);
    }

    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the sender after a push or close; a wake with nobody waiting is kept for it.
    wake: Notify,
    /// The sender holds an event taken from the queue.
    in_flight: AtomicBool,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    url_shown: String,
}

struct Queue {
    events: VecDeque<Queued>,
    capacity: usize,
    closed: bool,
    /// Events dropped since the queue was last empty: one warning per burst, not per event.
    burst: u64,
}

struct Queued {
    event: Event,
    at: DateTime<Utc>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue stays consistent at every step, so a panic elsewhere cannot spoil it.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self, event: Event) {
        let at = Utc::now();
        let burst_started = {
            let mut queue = self.lock();
            if queue.closed {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut burst_started = false;
            if queue.events.len() >= queue.capacity {
                queue.events.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
                queue.burst += 1;
                burst_started = queue.burst == 1;
            }
            queue.events.push_back(Queued { event, at });
            burst_started
        };
        self.wake.notify_one();
        if burst_started {
            warn!(
                url = %self.url_shown,
                "alert queue full: dropping the oldest alerts until the webhook catches up"
            );
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    fn stats(&self, abandoned: u64) -> NotifyStats {
        NotifyStats {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            abandoned,
        }
    }
}

struct Sender {
    shared: Arc<Shared>,
    client: reqwest::Client,
    url: Url,
    format: NotifyFormat,
    chat_id: Option<String>,
    redactor: Redactor,
    max_attempts: u32,
    first_backoff: Duration,
}

/// What became of one attempt.
enum Attempt {
    Delivered,
    /// Not worth repeating (a 4xx other than 429).
    Refused(String),
    /// Worth another attempt, after `retry_after` if the receiver said so.
    Failed {
        why: String,
        retry_after: Option<Duration>,
    },
}

impl Sender {
    async fn run(self) {
        loop {
            let next = {
                let mut queue = self.shared.lock();
                let next = queue.events.pop_front();
                if next.is_some() {
                    self.shared.in_flight.store(true, Ordering::Relaxed);
                } else {
                    let dropped = std::mem::take(&mut queue.burst);
                    if dropped > 0 {
                        warn!(url = %self.redactor.url(), dropped, "alert queue drained");
                    }
                    if queue.closed {
                        return;
                    }
                }
                next
            };
            match next {
                Some(queued) => {
                    self.deliver(queued).await;
                    self.shared.in_flight.store(false, Ordering::Relaxed);
                }
                None => self.shared.wake.notified().await,
            }
        }
    }

    async fn deliver(&self, queued: Queued) {
        let kind = queued.event.kind();
        let body = body::render(self.format, &queued.event, queued.at, self.chat_id.as_deref());
        let body = body.to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (why, retry_after) = match self.attempt(&body).await {
                Attempt::Delivered => {
                    self.shared.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Attempt::Refused(why) => {
                    self.shared.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        url = %self.redactor.url(),
                        event = kind,
                        error = %self.redactor.scrub(&why),
                        "alert refused by the webhook; not retried"
                    );
                    return;
                }
                Attempt::Failed { why, retry_after } => (why, retry_after),
            };
            if attempts >= self.max_attempts {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                warn!(
                    url = %self.redactor.url(),
                    event = kind,
                    attempts,
                    error = %self.redactor.scrub(&why),
                    "alert not delivered; giving up"
                );
                return;
            }
            let wait = match retry_after {
                Some(after) => after.min(NotifyConfig::MAX_BACKOFF),
                None => backoff(self.first_backoff, attempts),
            };
            debug!(
                url = %self.redactor.url(),
                event = kind,
                attempts,
                wait_ms = wait.as_millis() as u64,
                error = %self.redactor.scrub(&why),
                "alert not delivered; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, body: &str) -> Attempt {
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Failed {
                    why: error_chain(e),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        let retry_after = retry_after(response.headers());
        let answer = response.text().await.unwrap_or_default();
        let why = format!("HTTP {status}: {}", shorten(answer.trim(), ANSWER_SHOWN));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Attempt::Failed { why, retry_after }
        } else {
            Attempt::Refused(why)
        }
    }
}

/// The wait after `failures` failed attempts: `first` doubled each time, capped, then jittered
/// into [half, whole] ("equal jitter") so bots sharing a receiver do not retry in step.
fn backoff(first: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let base = first.saturating_mul(1u32 << doublings).min(NotifyConfig::MAX_BACKOFF);
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// `Retry-After` in seconds; its HTTP-date form is rare from webhooks and falls back to back-off.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// reqwest's error with its causes, without the URL (the caller shows it redacted).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn shorten(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let first = Duration::from_secs(1);
        for _ in 0..200 {
            for (failures, whole) in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 60), (40, 60)] {
                let whole = Duration::from_secs(whole);
                let wait = backoff(first, failures);
                assert!(wait >= whole / 2 && wait <= whole, "{failures}: {wait:?}");
            }
        }
        assert!(backoff(Duration::from_secs(600), 1) <= NotifyConfig::MAX_BACKOFF);
        assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
