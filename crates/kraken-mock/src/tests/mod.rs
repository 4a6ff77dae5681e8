//! Tests over real loopback TCP: reqwest for REST, tokio-tungstenite for WebSocket v2.

mod faults;
mod lifecycle;
mod private;
mod private_ws;
mod rest;
mod ws;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::{Faults, MockConfig, MockKraken};
use nanotrader_market::{CsvReader, MarketEvent, Trade};

/// 2,672 real Kraken BTC/USD trades, 2019-07-01 00:00:03 .. 00:59:51 UTC.
const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/btcusd_trades_kraken_20190701.csv"
);
/// Ten market minutes per wall second: the hour of data plays in six seconds.
const FAST: f64 = 600.0;
/// Market time all but stands still: only the first trade is ever public.
const FROZEN: f64 = 1e-6;
/// The longest any single expected message may take.
const WAIT: Duration = Duration::from_secs(5);

async fn start(speed: f64, faults: Faults) -> MockKraken {
    let mut config = MockConfig::new(DATA);
    config.speed = speed;
    config.faults = faults;
    MockKraken::start(config).await.expect("mock starts")
}

/// The data file's trades, read independently of the mock.
fn data_trades() -> Vec<Trade> {
    let mut reader = CsvReader::open(DATA, false).unwrap();
    std::iter::from_fn(|| reader.read_event().unwrap())
        .filter_map(|event| match event {
            MarketEvent::Trade(trade) => Some(trade),
            _ => None,
        })
        .collect()
}

/// GET `path` on the mock: HTTP status and body text.
async fn get(mock: &MockKraken, path: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(format!("{}{path}", mock.rest_url()))
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// GET `path`, expecting HTTP 200 and JSON.
async fn get_json(mock: &MockKraken, path: &str) -> Value {
    let (status, body) = get(mock, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A REST decimal string.
fn dec(value: &Value) -> Decimal {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .parse()
        .unwrap()
}

fn f64_of(value: Decimal) -> f64 {
    value.to_f64().unwrap()
}

struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    async fn connect(mock: &MockKraken) -> Self {
        Self::connect_to(&mock.ws_url()).await
    }

    async fn connect_to(url: &str) -> Self {
        let (stream, _) = connect_async(url).await.expect("ws connects");
        Self { stream }
    }

    async fn send(&mut self, request: Value) {
        self.stream.send(Message::text(request.to_string())).await.unwrap();
    }

    /// The next frame within `wait`: `None` on timeout.
    async fn frame(&mut self, wait: Duration) -> Option<Message> {
        match tokio::time::timeout(wait, self.stream.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(other) => panic!("connection ended: {other:?}"),
            Err(_) => None,
        }
    }

    /// The next text frame as it came (protocol pings and pongs skipped).
    async fn text(&mut self) -> String {
        loop {
            match self.frame(WAIT).await {
                Some(Message::Text(text)) => return text.as_str().to_owned(),
                Some(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    async fn json(&mut self) -> Value {
        let text = self.text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Skips messages until one matches.
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let message = self.json().await;
            if wanted(&message) {
                return message;
            }
        }
    }

    /// Connects and reads the `status` greeting.
    async fn greeted(mock: &MockKraken) -> Self {
        let mut client = Self::connect(mock).await;
        let status = client.json().await;
        assert_eq!(status["channel"], "status", "{status}");
        client
    }
}

fn channel(message: &Value) -> &str {
    message["channel"].as_str().unwrap_or_default()
}
