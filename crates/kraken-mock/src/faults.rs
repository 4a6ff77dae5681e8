//! Fault injection mechanics: the REST middleware (slow, 5xx, rate limit), damaged WebSocket
//! frames, the stall schedule and unknown extra fields. Each injection is counted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::config::Stall;
use super::{App, Market, rest};

/// What a proxy in front of Kraken answers when the origin is down: HTML, not JSON.
const PROXY_503: &str = "<html><head><title>503 Service Temporarily Unavailable</title></head>\
                         <body><center><h1>503 Service Temporarily Unavailable</h1></center>\
                         <hr><center>cloudflare</center></body></html>";
/// A frame no JSON parser accepts.
const GARBAGE: &str = "\u{1}mock garbage frame }{";
const EXTRA_FIELD: &str = "mock_unknown_field";

/// Counts every REST request, then delays, fails or rate-limits it as configured.
pub(super) async fn rest(State(app): State<App>, request: Request, next: Next) -> Response {
    let market = &app.market;
    rest::count(market, request.uri().path());
    let faults = &market.faults;
    let n = market.rest_requests.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(delay) = faults.slow_rest {
        market.counters.bump(|c| c.faults.slow_responses += 1);
        tokio::time::sleep(delay).await;
    }
    if hits(faults.server_error_every, n) {
        market.counters.bump(|c| c.faults.server_errors += 1);
        tracing::debug!("mock kraken: request {n} answered 503 (fault)");
        return (StatusCode::SERVICE_UNAVAILABLE, Html(PROXY_503)).into_response();
    }
    if hits(faults.rate_limit_every, n) {
        market.counters.bump(|c| c.faults.rate_limited += 1);
        return rest::reply(market, Err(rest::RATE_LIMITED.into()));
    }
    next.run(request).await
}

/// Whether the `n`th event (from 1) is one of every `every`th; 0 means never.
fn hits(every: u64, n: u64) -> bool {
    every > 0 && n.is_multiple_of(every)
}

/// The text actually written as a connection's `n`th frame: garbage or cut in half when due.
pub(super) fn frame(market: &Market, n: u64, mut text: String) -> String {
    let faults = &market.faults;
    if hits(faults.garbage_every, n) {
        market.counters.bump(|c| c.faults.garbage_frames += 1);
        return GARBAGE.to_owned();
    }
    if hits(faults.truncate_every, n) {
        market.counters.bump(|c| c.faults.truncated_frames += 1);
        // A strict prefix of a JSON object never parses: its outer brace stays open.
        let mut cut = text.len() / 2;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The silence (1, 2, ...) a connection of this age is in, if any.
pub(super) fn stall_window(stall: Option<Stall>, age: Duration) -> Option<u128> {
    let Stall { every, duration } = stall?;
    let (age, every) = (age.as_nanos(), every.as_nanos());
    let window = age.checked_div(every)?;
    (window >= 1 && age % every < duration.as_nanos()).then_some(window)
}

/// When configured, adds an unknown field to the message, to the objects in its top-level
/// arrays (WS `data`) and to the objects inside its top-level objects (REST `result` entries).
/// Maps keyed by pair are left alone: a new key there would be a new pair, not a new field.
pub(super) fn extra_fields(market: &Market, message: &mut Value) {
    if !market.faults.extra_fields {
        return;
    }
    let Value::Object(top) = message else {
        return;
    };
    market.counters.bump(|c| c.faults.extra_fields += 1);
    for value in top.values_mut() {
        let inner: Box<dyn Iterator<Item = &mut Value>> = match value {
            Value::Array(items) => Box::new(items.iter_mut()),
            Value::Object(fields) => Box::new(fields.values_mut()),
            _ => continue,
        };
        inner.filter_map(Value::as_object_mut).for_each(add_field);
    }
    add_field(top);
}

fn add_field(object: &mut Map<String, Value>) {
    object.insert(EXTRA_FIELD.into(), json!({ "injected_by": "mock" }));
}
