//! A live broker's exchange side on the dashboard: the real dashboard server on a loopback port,
//! with a board fed through its bus what a live run's engine publishes (closed bars, the feed,
//! and statuses whose `venue` holds the exchange's balances, two orders and a risk halt), and
//! a controller standing in for the engine: it answers Resume as the engine does and publishes
//! the next status without the halt, as the engine does once the broker lifted it. A paper run
//! (another pair on the same server) has no venue.
//!
//! The API test needs nothing else; the browser test drives tests/browser/venue.mjs in headless
//! Chromium (skipped loudly without it, unless NANOTRADER_REQUIRE_BROWSER=1). Screenshots land in
//! target/dashboard-venue.png and target/dashboard-venue-phone.png.

mod common;
use common::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use nanotrader_broker::{OrderView, VenueView};
use nanotrader_engine::{Bus, Control, ControlReply, ControlRequest, EngineEvent, Metrics, StatusReport};
use nanotrader_format::DataMode;
use nanotrader_market::{Bar, FeedStatus, Interval, Side, Timestamp};
use nanotrader_web::{Board, BoardMeta, BoardSeed, BoardStore, CLIENT_QUEUE_FRAMES, WebConfig, WebHandle};

const LIVE_PAIR: &str = "BTC/USD";
const PAPER_PAIR: &str = "ETH/USD";
const HALT: &str = "daily loss 512.40 USD is over the limit of 500 USD: new entries halted until 00:00 UTC";
/// 2026-12-07 12:00:00 UTC.
const T0: i64 = 1_796_644_800;
/// Any one awaited condition: generous, since the machine may be loaded.
const PATIENCE: Duration = Duration::from_secs(30);
/// venue.mjs stops itself after 120 s; this only catches a stuck `node`.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn meta(pair: &str, paper: bool) -> BoardMeta {
    BoardMeta {
        pair: pair.into(),
        interval_secs: 60,
        source: "kraken".into(),
        data: format!("kraken {pair}"),
        run_id: if paper { 2 } else { 1 },
        strategy: "sma-cross 10/20".into(),
        lines: Vec::new(),
        paper,
        initial_cash: d("10000"),
        fee_rate: d("0.0026"),
        sizing: "fixed:0.01".into(),
    }
}

/// The stop rule a `--stops exchange` run shows.
const STOPS: &str = "on Kraken: stop-loss 2%, take-profit 4%";

/// The exchange's side as a `kraken` broker gives it: two balances, two orders, maybe a halt,
/// its stop rule.
fn venue(halted: Option<&str>) -> VenueView {
    VenueView {
        broker: "kraken".into(),
        live: true,
        balances: [
            ("XXBT".to_owned(), d("0.0123456789")),
            ("ZUSD".to_owned(), d("4321.0987")),
        ]
        .into(),
        orders: vec![
            OrderView {
                cl_ord_id: "6f1c2b9e-4d7a-4c1e-9b2f-2a7d1e0c5b33".into(),
                txid: None,
                ts: Timestamp::from_secs(T0 + 1_800),
                side: Side::Buy,
                order_type: "limit".into(),
                volume: d("0.0100"),
                filled: d("0"),
                limit_price: Some(d("60123.4")),
                state: "rejected".into(),
                detail: Some("EOrder:Insufficient funds".into()),
            },
            OrderView {
                cl_ord_id: "a3f90d42-1b6e-4f0a-8c3d-9e5b7a1f2c64".into(),
                txid: Some("OUF4EM-FRGI2-MQMWZD".into()),
                ts: Timestamp::from_secs(T0 + 600),
                side: Side::Sell,
                order_type: "market".into(),
                volume: d("0.01"),
                filled: d("0.01"),
                limit_price: None,
                state: "filled".into(),
                detail: None,
            },
        ],
        halted: halted.map(str::to_owned),
        stops: Some(STOPS.into()),
    }
}

fn status(venue: Option<VenueView>) -> EngineEvent {
    EngineEvent::Status(StatusReport {
        events_per_sec: 3.0,
        bars: 40,
        fills: 1,
        equity: d("10000"),
        position: Decimal::ZERO,
        feed_lag_ms: Some(120),
        data_ts: Some(Timestamp::from_secs(T0 + 2_400)),
        store_lag_steps: 0,
        venue,
        protection: None,
    })
}

/// What the stand-in engine was asked.
#[derive(Default)]
struct Asked {
    resumes: AtomicU64,
    others: Mutex<Vec<String>>,
}

/// The server with a live board (halted) and a paper board, and the stand-in engine.
struct Rig {
    web: WebHandle,
    asked: Arc<Asked>,
    _dir: tempfile::TempDir,
    /// Kept so the bus stays open (the hub runs while it is).
    _buses: Vec<Bus>,
}

impl Rig {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let web = nanotrader_web::start(&WebConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            stay: false,
            queue_frames: CLIENT_QUEUE_FRAMES,
        })
        .await
        .expect("the dashboard starts on a free loopback port");
        let asked = Arc::new(Asked::default());
        let mut buses = Vec::new();
        for (pair, paper) in [(LIVE_PAIR, false), (PAPER_PAIR, true)] {
            let bus = Bus::new();
            let (controls, requests) = mpsc::channel(8);
            let meta = meta(pair, paper);
            let seed = BoardSeed::new(&meta, Interval::ONE_MINUTE, &[], HashMap::new(), DataMode::Live);
            let board = Arc::new(Board::new(
                meta,
                seed,
                Arc::new(Metrics::default()),
                controls,
                web.server.clients.clone(),
                CLIENT_QUEUE_FRAMES,
                BoardStore {
                    reader: None,
                    data_dir: dir.path().to_owned(),
                    series_id: 1,
                    config: json!({}),
                },
            ));
            web.server.add_board(board.clone());
            web.server.spawn_hub(board, &bus);
            tokio::spawn(stand_in_engine(requests, bus.clone(), asked.clone()));
            publish_run(&bus, (!paper).then(|| venue(Some(HALT))));
            buses.push(bus);
        }
        Self {
            web,
            asked,
            _dir: dir,
            _buses: buses,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.web.addr)
    }

    async fn status(&self, pair: &str) -> Value {
        let url = format!("{}/api/status?pair={pair}", self.base());
        let response = http().get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until `/api/status` of `pair` satisfies `done`; its last answer.
    async fn status_until(&self, pair: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.status(pair).await;
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a live run's engine publishes before a page looks: the feed up, forty closed bars and
/// a status (with `venue` for a live broker).
fn publish_run(bus: &Bus, venue: Option<VenueView>) {
    let _ = bus.events.send(EngineEvent::Feed(FeedStatus::Connected));
    let bars: Vec<EngineEvent> = (0..40)
        .map(|minute| {
            let close = Decimal::from(60_000 + (minute % 7) * 15);
            EngineEvent::Bar {
                bar: Bar {
                    ts: Timestamp::from_secs(T0 + minute * 60),
                    open: close - Decimal::TEN,
                    high: close + Decimal::from(20),
                    low: close - Decimal::from(20),
                    close,
                    volume: d("1.25"),
                    trades: 4,
                },
                closed: true,
                lines: [None; nanotrader_strategy::MAX_LINES],
                equity: d("10000"),
                position: Decimal::ZERO,
            }
        })
        .collect();
    let _ = bus.market.send(bars.into());
    let _ = bus.events.send(status(venue));
}

/// Answers controls as the engine does. Resume lifts the broker's halt, after which the engine
/// publishes its status: here, the same exchange side without the halt.
async fn stand_in_engine(mut requests: mpsc::Receiver<ControlRequest>, bus: Bus, asked: Arc<Asked>) {
    while let Some((control, reply)) = requests.recv().await {
        let message = match control {
            Control::Resume => {
                asked.resumes.fetch_add(1, Ordering::SeqCst);
                let _ = bus.events.send(status(Some(venue(None))));
                "trading active"
            }
            other => {
                asked.others.lock().unwrap().push(format!("{other:?}"));
                "not expected by the test"
            }
        };
        let _ = reply.send(ControlReply {
            paused: false,
            order_id: None,
            message: message.to_owned(),
        });
    }
}

fn halted(status: &Value) -> bool {
    status["status"]["venue"]["halted"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_api_carries_the_exchange_side_and_a_resume_lifts_the_halt() {
    let rig = Rig::start().await;
    let live = rig.status_until(LIVE_PAIR, "the halted venue", halted).await;
    assert_eq!(
        live["status"]["venue"],
        json!({
            "broker": "kraken",
            "live": true,
            "balances": {"XXBT": "0.0123456789", "ZUSD": "4321.0987"},
            "orders": [
                {"cl_ord_id": "6f1c2b9e-4d7a-4c1e-9b2f-2a7d1e0c5b33", "txid": null, "t": T0 + 1_800, "side": "buy",
                 "order_type": "limit", "volume": "0.01", "filled": "0", "limit_price": "60123.4",
                 "state": "rejected", "detail": "EOrder:Insufficient funds"},
                {"cl_ord_id": "a3f90d42-1b6e-4f0a-8c3d-9e5b7a1f2c64", "txid": "OUF4EM-FRGI2-MQMWZD", "t": T0 + 600,
                 "side": "sell", "order_type": "market", "volume": "0.01", "filled": "0.01",
                 "limit_price": null, "state": "filled", "detail": null}
            ],
            "halted": HALT,
            "stops": STOPS
        })
    );
    // A paper run has no exchange side.
    let paper = rig
        .status_until(PAPER_PAIR, "the paper run's bars", |s| {
            s["status"]["last_price"].is_string()
        })
        .await;
    assert_eq!(paper["status"]["venue"], Value::Null, "{paper}");

    let response = http()
        .post(format!("{}/api/control/resume?pair={LIVE_PAIR}", rig.base()))
        .header("X-Nanotrader-Control", "1")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let lifted = rig.status_until(LIVE_PAIR, "the halt lifted", |s| !halted(s)).await;
    assert_eq!(lifted["status"]["venue"]["halted"], Value::Null);
    assert_eq!(lifted["status"]["venue"]["orders"].as_array().unwrap().len(), 2);
    assert_eq!(rig.asked.resumes.load(Ordering::SeqCst), 1);
    assert!(rig.asked.others.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_exchange_side_and_its_resume_lifts_the_halt_in_a_real_browser() {
    let Some(scripts) = browser_scripts("dashboard_venue") else {
        return;
    };
    let rig = Rig::start().await;
    rig.status_until(LIVE_PAIR, "the halted venue", halted).await;
    let screenshot = repo_file("target/dashboard-venue.png");
    let url = format!("{}/?pair={LIVE_PAIR}", rig.base());
    let paper_url = format!("{}/?pair={PAPER_PAIR}", rig.base());
    let script = scripts.join("venue.mjs");
    let out = tokio::task::spawn_blocking(move || {
        let args = [url.as_ref(), paper_url.as_ref(), screenshot.as_os_str(), HALT.as_ref()];
        run_browser_script(&script, &args, SCRIPT_TIMEOUT)
    })
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("venue.mjs did not finish within {SCRIPT_TIMEOUT:?}"));
    assert!(
        out.status.success(),
        "the browser test failed (its progress is above):\n{}",
        stderr(&out)
    );
    // The banner's button sent the one Resume, and nothing else was asked.
    assert_eq!(rig.asked.resumes.load(Ordering::SeqCst), 1);
    assert!(rig.asked.others.lock().unwrap().is_empty());
    let lifted = rig.status(LIVE_PAIR).await;
    assert!(!halted(&lifted), "{lifted}");
}
