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
//! from the server they measure. Prints a summary, one line per metric.
//!
//! Slow readers: `--slow N` makes N of the clients (counted in `--clients`) sleep `--slow-ms MS`
//! (default 500) after each frame, with a kernel receive buffer of `--slow-rcvbuf BYTES` (default
//! 4096, `ws://` only; 0 keeps the system's). The small buffer stands in for a slow network: with
//! loopback's default (up to 32 MiB here) the server would not feel the back-pressure for a long
//! time. The server is expected to resync them with a fresh snapshot; the `slow ...` lines report
//! how many snapshots they got after the first, that their seq never went backwards and whether
//! they still saw the run complete.
//! With `--slow` the other summary lines (frames, resyncs, gaps, latency, bytes, completed)
//! cover only the normal clients, which read every frame at once.

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
    slow: usize,
    slow_pause: Duration,
    slow_rcvbuf: u32,
}

fn usage() -> ! {
    eprintln!(
        "usage: dashboard_clients --url ws://HOST:PORT/ws [--clients N] [--until-finished] [--timeout SECS] \
         [--slow N [--slow-ms MS] [--slow-rcvbuf BYTES]]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        url: String::new(),
        clients: 200,
        until_finished: false,
        timeout: Duration::from_secs(300),
        slow: 0,
        slow_pause: Duration::from_millis(500),
        slow_rcvbuf: 4096,
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
            "--slow" => args.slow = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--slow-ms" => {
                let ms: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage());
                args.slow_pause = Duration::from_millis(ms);
            }
            "--slow-rcvbuf" => args.slow_rcvbuf = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("unknown argument: {arg}");
                usage()
            }
        }
    }
    if args.url.is_empty() || args.clients == 0 || args.slow > args.clients {
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
    slow: bool,
    connected: bool,
    error: Option<String>,
    frames: u64,
    deltas: u64,
    snapshots: u64,
    resyncs: u64,
    gaps: u64,
    missing_seqs: u64,
    backwards: u64,
    bytes: u64,
    completed: bool,
    latencies_ms: Vec<f64>,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// How a slow client reads: a pause after every frame and a small kernel receive buffer.
#[derive(Clone, Copy)]
struct Slow {
    pause: Duration,
    rcvbuf: u32,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects like `connect_async`, but sets SO_RCVBUF first when asked: it must be set before the
/// handshake for the TCP window to be advertised that small.
async fn connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    rcvbuf: u32,
) -> Result<Ws, String> {
    if rcvbuf == 0 {
        return tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| e.to_string());
    }
    let uri = request.uri();
    let host = uri.host().ok_or("no host in url")?.trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("host did not resolve")?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    socket.set_recv_buffer_size(rcvbuf).map_err(|e| e.to_string())?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

async fn client(url: String, until_finished: bool, deadline: tokio::time::Instant, slow: Option<Slow>) -> ClientStats {
    let mut stats = ClientStats {
        slow: slow.is_some(),
        ..ClientStats::default()
    };
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
    let rcvbuf = slow.map_or(0, |s| s.rcvbuf);
    let mut ws = match tokio::time::timeout_at(deadline, connect(request, rcvbuf)).await {
        Ok(Ok(ws)) => ws,
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
        if last_seq.is_some_and(|last| frame.seq < last) {
            stats.backwards += 1;
        }
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
        if let Some(slow) = slow {
            // Not reading is what makes the server's queue for this client overflow.
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + slow.pause)).await;
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
    let slow = Slow {
        pause: args.slow_pause,
        rcvbuf: args.slow_rcvbuf,
    };
    // The slow clients are spread among the others, so they connect at the same moments.
    let is_slow = |i: usize| args.slow > 0 && i * args.slow % args.clients < args.slow;
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let slow = is_slow(i).then_some(slow);
            tokio::spawn(client(args.url.clone(), args.until_finished, deadline, slow))
        })
        .collect();
    let mut all = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(stats) => all.push(stats),
            Err(e) => all.push(ClientStats {
                error: Some(format!("task: {e}")),
                slow: is_slow(i),
                ..ClientStats::default()
            }),
        }
    }
    let wall = start.elapsed();

    let connected = all.iter().filter(|s| s.connected).count();
    let errors: Vec<&str> = all.iter().filter_map(|s| s.error.as_deref()).collect();
    let ok: Vec<&ClientStats> = all.iter().filter(|s| s.connected && !s.slow).collect();
    let normal_connected = ok.len();
    let frames_min = ok.iter().map(|s| s.frames).min().unwrap_or(0);
    let frames_max = ok.iter().map(|s| s.frames).max().unwrap_or(0);
    let frames_mean = ok.iter().map(|s| s.frames).sum::<u64>() as f64 / ok.len().max(1) as f64;
    let deltas: u64 = ok.iter().map(|s| s.deltas).sum();
    let snapshots: u64 = ok.iter().map(|s| s.snapshots).sum();
    let resyncs: u64 = ok.iter().map(|s| s.resyncs).sum();
    let gaps: u64 = ok.iter().map(|s| s.gaps).sum();
    let missing: u64 = ok.iter().map(|s| s.missing_seqs).sum();
    let backwards: u64 = ok.iter().map(|s| s.backwards).sum();
    let bytes: u64 = ok.iter().map(|s| s.bytes).sum();
    let completed = ok.iter().filter(|s| s.completed).count();
    let lat = sorted_latencies(&ok);

    println!(
        "clients            {} (connected {connected}, errors {})",
        args.clients,
        errors.len()
    );
    println!("frames per client  min {frames_min} mean {frames_mean:.1} max {frames_max}");
    println!("frames total       {deltas} delta, {snapshots} snapshot");
    println!("resyncs total      {resyncs}");
    println!("seq gaps           {gaps} ({missing} seqs missing)");
    println!("seq backwards      {backwards}");
    println!("latency ms         {}", latency_line(&lat));
    println!(
        "bytes received     {bytes} ({:.1} MiB)",
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!("run completed      seen by {completed} of {normal_connected} clients");
    if args.slow > 0 {
        let slow: Vec<&ClientStats> = all.iter().filter(|s| s.slow).collect();
        let slow_ok: Vec<&ClientStats> = slow.iter().copied().filter(|s| s.connected).collect();
        let n = slow_ok.len().max(1) as f64;
        let r_min = slow_ok.iter().map(|s| s.resyncs).min().unwrap_or(0);
        let r_max = slow_ok.iter().map(|s| s.resyncs).max().unwrap_or(0);
        let r_sum: u64 = slow_ok.iter().map(|s| s.resyncs).sum();
        let resynced = slow_ok.iter().filter(|s| s.resyncs > 0).count();
        let f_min = slow_ok.iter().map(|s| s.frames).min().unwrap_or(0);
        let f_sum: u64 = slow_ok.iter().map(|s| s.frames).sum();
        let f_max = slow_ok.iter().map(|s| s.frames).max().unwrap_or(0);
        let s_deltas: u64 = slow_ok.iter().map(|s| s.deltas).sum();
        let s_snapshots: u64 = slow_ok.iter().map(|s| s.snapshots).sum();
        let s_gaps: u64 = slow_ok.iter().map(|s| s.gaps).sum();
        let s_missing: u64 = slow_ok.iter().map(|s| s.missing_seqs).sum();
        let s_backwards: u64 = slow_ok.iter().map(|s| s.backwards).sum();
        let s_completed = slow_ok.iter().filter(|s| s.completed).count();
        let s_lat = sorted_latencies(&slow_ok);
        println!(
            "slow clients       {} (connected {}, errors {}), a frame every {} ms, SO_RCVBUF {}",
            slow.len(),
            slow_ok.len(),
            slow.iter().filter(|s| s.error.is_some()).count(),
            args.slow_pause.as_millis(),
            if args.slow_rcvbuf == 0 {
                "default".to_string()
            } else {
                args.slow_rcvbuf.to_string()
            }
        );
        println!(
            "slow frames        min {f_min} mean {:.1} max {f_max} ({s_deltas} delta, {s_snapshots} snapshot)",
            f_sum as f64 / n
        );
        println!(
            "slow resyncs       {r_sum} (per client min {r_min} mean {:.1} max {r_max}; resynced {resynced} of {})",
            r_sum as f64 / n,
            slow_ok.len()
        );
        println!("slow seq           {s_gaps} gaps ({s_missing} seqs missing), {s_backwards} backwards");
        println!("slow latency ms    {}", latency_line(&s_lat));
        println!(
            "slow completed     seen by {s_completed} of {} slow clients",
            slow_ok.len()
        );
    }
    println!("wall time s        {:.2}", wall.as_secs_f64());
    if let Some(first) = errors.first() {
        println!("first error        {first}");
    }
}

fn sorted_latencies(clients: &[&ClientStats]) -> Vec<f64> {
    let mut lat: Vec<f64> = clients.iter().flat_map(|s| s.latencies_ms.iter().copied()).collect();
    lat.sort_by(f64::total_cmp);
    lat
}

fn latency_line(lat: &[f64]) -> String {
    format!(
        "p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} (over {} delta frames)",
        percentile(lat, 50.0),
        percentile(lat, 90.0),
        percentile(lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len()
    )
}
