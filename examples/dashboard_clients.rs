//! Load test for the dashboard's live stream: N WebSocket clients on one `/ws` URL, each reading
//! every frame, measuring delivery latency (`now - sent_ms` of each delta frame) and checking the
//! seq continuity of docs/dashboard.md.
//!
//! ```sh
//! cargo run --release --example dashboard_clients -- --url ws://127.0.0.1:PORT/ws --clients 200 --until-finished
//! ```
//!
//! Options: `--url URL` (required), `--clients N` (default 200), `--until-finished` (each client
//! stops once a status says `"run":"completed"`; without it clients read until the timeout),
//! `--timeout SECS` (default 300). The clients share one thread, so they take at most one core
//! from the server they measure. Prints one line when every client is connected, then a summary,
//! one line per metric.

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SUBPROTOCOL: &str = "nanotrader.v1";

struct Args {
    url: String,
    clients: usize,
    until_finished: bool,
    timeout: Duration,
}

fn usage() -> ! {
    eprintln!("usage: dashboard_clients --url ws://HOST:PORT/ws [--clients N] [--until-finished] [--timeout SECS]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        url: String::new(),
        clients: 200,
        until_finished: false,
        timeout: Duration::from_secs(300),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--url" => args.url = it.next().unwrap_or_else(|| usage()),
            "--clients" => args.clients = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--timeout" => {
                let secs: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage());
                args.timeout = Duration::from_secs_f64(secs);
            }
            "--until-finished" => args.until_finished = true,
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("unknown argument: {arg}");
                usage()
            }
        }
    }
    if args.url.is_empty() || args.clients == 0 {
        usage()
    }
    args
}

/// Only the fields the check needs; serde skips the rest without allocating.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: u64,
    sent_ms: Option<f64>,
    #[serde(borrow, default)]
    events: Vec<Event<'a>>,
    #[serde(borrow)]
    status: Option<Status<'a>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    k: Cow<'a, str>,
    #[serde(borrow)]
    status: Option<Status<'a>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(borrow)]
    run: Cow<'a, str>,
}

#[derive(Default)]
struct ClientStats {
    connected: bool,
    error: Option<String>,
    frames: u64,
    deltas: u64,
    snapshots: u64,
    resyncs: u64,
    gaps: u64,
    missing_seqs: u64,
    bytes: u64,
    completed: bool,
    latencies_ms: Vec<f64>,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn client(url: String, until_finished: bool, deadline: tokio::time::Instant) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            stats.error = Some(format!("bad url: {e}"));
            return stats;
        }
    };
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
    let mut ws = match tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            stats.error = Some(format!("connect: {e}"));
            return stats;
        }
        Err(_) => {
            stats.error = Some("connect: timed out".into());
            return stats;
        }
    };
    stats.connected = true;
    let mut last_seq: Option<u64> = None;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(e))) => {
                stats.error = Some(format!("read: {e}"));
                break;
            }
            Ok(None) | Err(_) => break,
        };
        let text = match &msg {
            Message::Text(t) => t.as_str(),
            Message::Close(_) => break,
            _ => continue,
        };
        let received_ms = now_ms();
        stats.frames += 1;
        stats.bytes += text.len() as u64;
        let frame: Frame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                stats.error = Some(format!("bad frame: {e}"));
                break;
            }
        };
        let mut completed = false;
        match frame.kind.as_ref() {
            "snapshot" => {
                stats.snapshots += 1;
                if last_seq.is_some() {
                    stats.resyncs += 1;
                }
                completed = frame.status.is_some_and(|s| s.run == "completed");
            }
            "delta" => {
                stats.deltas += 1;
                if let Some(last) = last_seq
                    && frame.seq != last + 1
                {
                    stats.gaps += 1;
                    stats.missing_seqs += frame.seq.saturating_sub(last + 1);
                }
                if let Some(sent) = frame.sent_ms {
                    stats.latencies_ms.push(received_ms - sent);
                }
                completed = frame
                    .events
                    .iter()
                    .any(|e| e.k == "status" && e.status.as_ref().is_some_and(|s| s.run == "completed"));
            }
            _ => {}
        }
        last_seq = Some(frame.seq);
        if completed {
            stats.completed = true;
            if until_finished {
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    stats
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + args.timeout;
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| tokio::spawn(client(args.url.clone(), args.until_finished, deadline)))
        .collect();
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(stats) => all.push(stats),
            Err(e) => all.push(ClientStats {
                error: Some(format!("task: {e}")),
                ..ClientStats::default()
            }),
        }
    }
    let wall = start.elapsed();

    let connected = all.iter().filter(|s| s.connected).count();
    let errors: Vec<&str> = all.iter().filter_map(|s| s.error.as_deref()).collect();
    let ok: Vec<&ClientStats> = all.iter().filter(|s| s.connected).collect();
    let frames_min = ok.iter().map(|s| s.frames).min().unwrap_or(0);
    let frames_max = ok.iter().map(|s| s.frames).max().unwrap_or(0);
    let frames_mean = ok.iter().map(|s| s.frames).sum::<u64>() as f64 / ok.len().max(1) as f64;
    let deltas: u64 = ok.iter().map(|s| s.deltas).sum();
    let snapshots: u64 = ok.iter().map(|s| s.snapshots).sum();
    let resyncs: u64 = ok.iter().map(|s| s.resyncs).sum();
    let gaps: u64 = ok.iter().map(|s| s.gaps).sum();
    let missing: u64 = ok.iter().map(|s| s.missing_seqs).sum();
    let bytes: u64 = ok.iter().map(|s| s.bytes).sum();
    let completed = ok.iter().filter(|s| s.completed).count();
    let mut lat: Vec<f64> = ok.iter().flat_map(|s| s.latencies_ms.iter().copied()).collect();
    lat.sort_by(f64::total_cmp);

    println!(
        "clients            {} (connected {connected}, errors {})",
        args.clients,
        errors.len()
    );
    println!("frames per client  min {frames_min} mean {frames_mean:.1} max {frames_max}");
    println!("frames total       {deltas} delta, {snapshots} snapshot");
    println!("resyncs total      {resyncs}");
    println!("seq gaps           {gaps} ({missing} seqs missing)");
    println!(
        "latency ms         p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} (over {} delta frames)",
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len()
    );
    println!(
        "bytes received     {bytes} ({:.1} MiB)",
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!("run completed      seen by {completed} of {connected} clients");
    println!("wall time s        {:.2}", wall.as_secs_f64());
    if let Some(first) = errors.first() {
        println!("first error        {first}");
    }
}
