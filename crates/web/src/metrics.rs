//! `/metrics` in Prometheus' text format, through the `prometheus` crate (its encoder, label
//! escaping and process collector), not by hand.
//!
//! The figures live where they are made (the engine's and the dashboard's atomic counters, the
//! boards' accounts); a scrape reads them into a registry of its own and encodes it. A counter
//! here mirrors a count kept elsewhere, so each scrape's counter starts at zero and is raised to
//! that count: nothing is counted twice and nothing is shared between scrapes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{CounterVec, Encoder, GaugeVec, Opts, Registry, TextEncoder};
use rust_decimal::prelude::ToPrimitive;

use super::Server;
use super::board::Board;

/// One figure per pair: its name, help text and how it is read off a board.
struct PerPair {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    value: fn(&Board) -> f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

const PER_PAIR: &[PerPair] = &[
    PerPair {
        name: "nanotrader_events_total",
        help: "Market events processed by the engine.",
        kind: Kind::Counter,
        value: |b| load(&b.metrics.events),
    },
    PerPair {
        name: "nanotrader_bars_closed_total",
        help: "Bars closed and fed to the strategy.",
        kind: Kind::Counter,
        value: |b| load(&b.metrics.bars_closed),
    },
    PerPair {
        name: "nanotrader_fills_total",
        help: "Fills stored (a fill counts once it is durable).",
        kind: Kind::Counter,
        value: |b| load(&b.metrics.fills_stored),
    },
    PerPair {
        name: "nanotrader_gaps_total",
        help: "Gaps (intervals without data) detected.",
        kind: Kind::Counter,
        value: |b| load(&b.metrics.gaps),
    },
    PerPair {
        name: "nanotrader_feed_lag_seconds",
        help: "Wall clock minus the market time of the last event.",
        kind: Kind::Gauge,
        value: |b| b.status().feed_lag_ms.map_or(f64::NAN, |ms| ms as f64 / 1e3),
    },
    PerPair {
        name: "nanotrader_feed_reconnects_total",
        help: "Times the market feed disconnected.",
        kind: Kind::Counter,
        value: |b| b.status().reconnects as f64,
    },
    PerPair {
        name: "nanotrader_feed_backfilled_trades_total",
        help: "Trades fetched over REST to fill feed gaps.",
        kind: Kind::Counter,
        value: |b| b.status().backfilled_trades as f64,
    },
    PerPair {
        name: "nanotrader_store_lag_steps",
        help: "Engine steps not yet committed to the store.",
        kind: Kind::Gauge,
        value: |b| {
            b.metrics
                .steps_produced
                .load(Ordering::Relaxed)
                .saturating_sub(b.metrics.steps_stored.load(Ordering::Relaxed)) as f64
        },
    },
    PerPair {
        name: "nanotrader_store_failing",
        help: "1 while store writes fail (they are retried with back-off).",
        kind: Kind::Gauge,
        value: |b| f64::from(u8::from(b.metrics.store_error().is_some())),
    },
    PerPair {
        name: "nanotrader_store_outages_total",
        help: "Times store writes started failing.",
        kind: Kind::Counter,
        value: |b| load(&b.metrics.store_outages),
    },
    PerPair {
        name: "nanotrader_store_commits_total",
        help: "Store transactions committed.",
        kind: Kind::Counter,
        value: |b| load(&b.metrics.store_commits),
    },
    PerPair {
        name: "nanotrader_store_write_seconds_total",
        help: "Time spent writing store transactions.",
        kind: Kind::Counter,
        value: |b| load(&b.metrics.store_write_nanos) / 1e9,
    },
    PerPair {
        name: "nanotrader_trading_paused",
        help: "1 while trading is paused from the dashboard.",
        kind: Kind::Gauge,
        value: |b| f64::from(u8::from(b.paused())),
    },
    PerPair {
        name: "nanotrader_dashboard_frames_total",
        help: "Delta frames sent to pages.",
        kind: Kind::Counter,
        value: |b| load(&b.counters.frames),
    },
    PerPair {
        name: "nanotrader_dashboard_resyncs_total",
        help: "Snapshots sent to pages that fell behind.",
        kind: Kind::Counter,
        value: |b| load(&b.counters.resyncs),
    },
    PerPair {
        name: "nanotrader_dashboard_skipped_events_total",
        help: "Engine events the dashboard fell too far behind to show.",
        kind: Kind::Counter,
        value: |b| load(&b.counters.skipped_events),
    },
    PerPair {
        name: "nanotrader_equity",
        help: "The account's equity in the quote currency (cash plus the position at the last price).",
        kind: Kind::Gauge,
        value: |b| b.account().equity.to_f64().unwrap_or(f64::NAN),
    },
    PerPair {
        name: "nanotrader_position",
        help: "The position held, in the base currency.",
        kind: Kind::Gauge,
        value: |b| b.account().position.to_f64().unwrap_or(f64::NAN),
    },
];

/// Prometheus text exposition of every board's figures, the server's own and the process's.
pub async fn metrics(State(server): State<Arc<Server>>) -> Response {
    match encode(&server) {
        Ok(text) => ([(header::CONTENT_TYPE, TextEncoder::new().format_type())], text).into_response(),
        Err(e) => {
            tracing::warn!("cannot encode /metrics: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics").into_response()
        }
    }
}

fn encode(server: &Server) -> prometheus::Result<String> {
    let registry = Registry::new();
    let boards = server.boards();
    for figure in PER_PAIR {
        let opts = Opts::new(figure.name, figure.help);
        match figure.kind {
            Kind::Counter => {
                let family = CounterVec::new(opts, &["pair"])?;
                for board in &boards {
                    family
                        .with_label_values(&[board.meta.pair.as_str()])
                        .inc_by((figure.value)(board));
                }
                registry.register(Box::new(family))?;
            }
            Kind::Gauge => {
                let family = GaugeVec::new(opts, &["pair"])?;
                for board in &boards {
                    family
                        .with_label_values(&[board.meta.pair.as_str()])
                        .set((figure.value)(board));
                }
                registry.register(Box::new(family))?;
            }
        }
    }
    let clients = prometheus::Gauge::new("nanotrader_dashboard_clients", "Pages connected to the live stream.")?;
    clients.set(load(&server.clients));
    registry.register(Box::new(clients))?;
    let build = GaugeVec::new(
        Opts::new(
            "nanotrader_build_info",
            "The running build: always 1, its version as a label.",
        ),
        &["version"],
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
    registry.register(Box::new(build))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;

    let mut text = Vec::with_capacity(8 << 10);
    TextEncoder::new().encode(&registry.gather(), &mut text)?;
    String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
