//! Kraken public REST client: every call through the shared request budget, with a timeout,
//! and retried with back-off when the failure is worth retrying.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::budget::{Backoff, RequestBudget};
use super::consts::{
    PATH_ASSET_PAIRS, PATH_OHLC, PATH_TICKER, PATH_TIME, PATH_TRADES, RECONNECT_INITIAL, RECONNECT_JITTER,
    RECONNECT_MAX, REQUEST_TIMEOUT,
};
use super::error::KrakenError;
use super::parse::{
    AssetPair, OhlcPage, RestTicker, TradesPage, parse_asset_pairs, parse_ohlc, parse_ticker, parse_time, parse_trades,
};
use nanotrader_market::Timestamp;

/// How hard one call tries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Retries {
    /// One attempt: a poller simply tries again at its next tick.
    None,
    /// Retry retryable failures up to this many times, with back-off.
    UpTo(u32),
}

/// What the client has done, for logs, /metrics and tests.
#[derive(Debug, Default)]
pub struct RestStats {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct RestClient {
    http: reqwest::Client,
    base_url: String,
    budget: Arc<RequestBudget>,
    stats: Arc<RestStats>,
}

impl RestClient {
    /// `base_url` is e.g. `https://api.kraken.com` (or a mock's `http://127.0.0.1:PORT`).
    pub fn new(base_url: &str, min_interval: Duration) -> Result<Self, KrakenError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("nanotrader/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KrakenError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            budget: Arc::new(RequestBudget::new(min_interval)),
            stats: Arc::new(RestStats::default()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn stats(&self) -> &RestStats {
        &self.stats
    }

    pub async fn server_time(&self, retries: Retries) -> Result<Timestamp, KrakenError> {
        self.call(PATH_TIME, &[], retries, parse_time).await
    }

    pub async fn asset_pairs(&self, retries: Retries) -> Result<Vec<AssetPair>, KrakenError> {
        self.call(PATH_ASSET_PAIRS, &[], retries, parse_asset_pairs).await
    }

    /// The ticker of one pair, by its REST name (`XBTUSD`).
    pub async fn ticker(&self, rest_pair: &str, retries: Retries) -> Result<RestTicker, KrakenError> {
        let mut tickers = self
            .call(PATH_TICKER, &[("pair", rest_pair.to_owned())], retries, parse_ticker)
            .await?;
        tickers
            .pop()
            .ok_or_else(|| KrakenError::Malformed("Ticker result is empty".into()))
    }

    /// Candles of `interval_minutes` after `since` (unix seconds): at most 720, the last still forming.
    pub async fn ohlc(
        &self,
        rest_pair: &str,
        interval_minutes: u32,
        since: Option<i64>,
        retries: Retries,
    ) -> Result<OhlcPage, KrakenError> {
        let mut query = vec![
            ("pair", rest_pair.to_owned()),
            ("interval", interval_minutes.to_string()),
        ];
        if let Some(since) = since {
            query.push(("since", since.to_string()));
        }
        self.call(PATH_OHLC, &query, retries, parse_ohlc).await
    }

    /// Up to 1,000 trades after the `since` cursor (nanoseconds as Kraken writes them).
    pub async fn trades(
        &self,
        rest_pair: &str,
        since: Option<&str>,
        retries: Retries,
    ) -> Result<TradesPage, KrakenError> {
        let mut query = vec![("pair", rest_pair.to_owned())];
        if let Some(since) = since {
            query.push(("since", since.to_owned()));
        }
        self.call(PATH_TRADES, &query, retries, parse_trades).await
    }

    async fn call<T>(
        &self,
        path: &str,
        query: &[(&str, String)],
        retries: Retries,
        parse: fn(&[u8]) -> Result<T, KrakenError>,
    ) -> Result<T, KrakenError> {
        let max_retries = match retries {
            Retries::None => 0,
            Retries::UpTo(n) => n,
        };
        let mut backoff = Backoff::new(RECONNECT_INITIAL, RECONNECT_MAX, RECONNECT_JITTER);
        loop {
            let result = self.get(path, query).await.and_then(|body| parse(&body));
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            let delay = backoff.next_delay();
            if matches!(error, KrakenError::RateLimited(_) | KrakenError::Http { status: 429 }) {
                // Every caller waits, not only this one: the budget is shared.
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                self.budget.pause_for(delay).await;
            }
            if !error.is_retryable() || backoff.attempts() > max_retries {
                return Err(error);
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                path,
                attempt = backoff.attempts(),
                "Kraken REST call failed, retrying in {delay:?}: {error}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One request: waits for the budget, sends, and maps transport and HTTP failures.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<u8>, KrakenError> {
        self.budget.acquire().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .get(format!("{}{}", self.base_url, path))
            .query(query)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        // Kraken answers 200 even for its own errors; anything else came from in front of it.
        if status != 200 {
            return Err(KrakenError::Http { status });
        }
        let body = response.bytes().await.map_err(transport_error)?;
        Ok(body.to_vec())
    }
}

fn transport_error(e: reqwest::Error) -> KrakenError {
    if e.is_timeout() {
        return KrakenError::Timeout;
    }
    if let Some(reason) = super::reach::tls_failure(&e) {
        return KrakenError::Tls(reason);
    }
    // Without the URL's query: nothing secret is in public calls, but keep logs short. reqwest's
    // own message ("error sending request") says little: its causes follow it.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    KrakenError::Transport(message)
}
