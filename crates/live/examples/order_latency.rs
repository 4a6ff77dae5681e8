//! BENCHMARKS.md section 10 (issue 18, point 9): from a decision (the engine calling the broker
//! at a bar's close) to the AddOrder request's first bytes on the wire, over loopback against
//! the mock exchange. A TCP relay in front of the mock notes when each AddOrder request's first
//! bytes reach it, and the kernel's receive time of those bytes (on loopback, the moment the
//! sender's write hands them over: the end of the way inside the process); the decision time
//! is taken just before `follow`. Also: the relay's own delay (kernel stamp to its read), the
//! journal's part of the way now (take a client id committed ahead, note the order) and a
//! durable commit alone (what each order waited for before client ids were committed ahead).
//!
//! The arrangement is the product's (`nanotrader run` with a Kraken broker, src/lane.rs): the
//! decision loop (standing for the engine), the broker, its tasks (the validation submitter, the
//! real-money desk) and the signed client's HTTP connections all on one current-thread runtime
//! (this program's main thread); the mock exchange and the relay, which stand for the exchange
//! and the network, on a runtime and thread of their own. A `follow` queues the order to the
//! broker's task and the loop yields (`Broker::answer` for the validate path, the broker's
//! wake-up for the real one), so that task and hyper's connection task run in the same thread's
//! next slot.
//!
//! The real-money path: each order is filled (market) and the loop then waits until the desk is
//! idle (the order ended, the balances after it read) before the next decision, as in a live run,
//! where decisions are a bar apart and the desk has long finished.
//!
//! `cargo run --release -p nanotrader-live --example order_latency [ORDERS]`
//! (`PAUSE_MS=N` before it: the thread idles N ms before each decision.)

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nanotrader_broker::{Broker, BrokerConfig, Fill, Order, PaperBroker, Sizing};
use nanotrader_kraken::private::{Credentials, NonceSource, PrivateClient, Tier};
use nanotrader_kraken_mock::{Limits, MockConfig, MockKraken, PrivateConfig};
use nanotrader_live::{Assets, LiveBroker, LiveSettings, OrderKind, PairRules, Rails, RunOrders, ValidateBroker};
use nanotrader_market::{Interval, Side, Timestamp};
use nanotrader_store::{DataDirLock, NewRun, OrderState, SentOrder, Store};
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "mock-api-key";
const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

/// When an AddOrder request's first bytes were seen: by the kernel (the loopback receive
/// timestamp, `SO_TIMESTAMPNS`: taken while the sender's write runs, so the time its bytes left
/// the process) and by the relay's task (after its own wake-up and read).
#[derive(Clone, Copy)]
struct Seen {
    kernel: SystemTime,
    relay: Instant,
}

/// Relays loopback TCP to `target`, noting when each AddOrder request's first bytes arrive.
async fn relay(target: String, seen: Arc<Mutex<Vec<Seen>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(&target).await.unwrap();
            timestamps_on(&client);
            let seen = seen.clone();
            tokio::spawn(async move {
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        if client.readable().await.is_err() {
                            break;
                        }
                        let read = client.try_io(tokio::io::Interest::READABLE, || recv_stamped(&client, &mut buf));
                        let (n, kernel) = match read {
                            Ok((0, _)) => break,
                            Ok(got) => got,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(_) => break,
                        };
                        let relay = Instant::now();
                        if buf[..n].starts_with(b"POST /0/private/AddOrder") {
                            let kernel = kernel.unwrap_or_else(SystemTime::now);
                            seen.lock().unwrap().push(Seen { kernel, relay });
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = sr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        let mut written = 0;
                        while written < n {
                            if client.writable().await.is_err() {
                                return;
                            }
                            match client.try_write(&buf[written..n]) {
                                Ok(w) => written += w,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(_) => return,
                            }
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

/// Asks the kernel to stamp each received segment with the time it arrived (CLOCK_REALTIME).
fn timestamps_on(socket: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_TIMESTAMPNS: {}", std::io::Error::last_os_error());
}

/// One `recvmsg`: the bytes and the kernel's receive time of the data read.
fn recv_stamped(socket: &TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Option<SystemTime>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; zeroed is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the buffers outlive the call and their sizes are given.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote, with its own macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The mock exchange behind the relay, a store with a run, and the signed client through the
/// relay: what both measurements start from.
struct Bench {
    mock: MockKraken,
    seen: Arc<Mutex<Vec<Seen>>>,
    dir: tempfile::TempDir,
    lock: DataDirLock,
    store: Store,
    run_id: i64,
    client: PrivateClient,
}

impl Bench {
    /// An account of 1,000,000 USD and `btc`; the mock and the relay on `exchange`.
    async fn start(btc: Decimal, run_key: &str, exchange: &tokio::runtime::Handle) -> Self {
        let data = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/btcusd_trades_kraken_20190701.csv"
        );
        let mut config = MockConfig::new(data);
        let mut account = PrivateConfig::new(KEY, SECRET);
        account.usd = Decimal::from(1_000_000);
        account.btc = btc;
        // The trading counter is the exchange's business, not this measurement's.
        account.limits = Limits {
            trading_max: 1e9,
            ..Limits::tier(nanotrader_kraken_mock::Tier::Pro)
        };
        config.private = Some(account);
        let (mock, seen, url) = exchange
            .spawn(async move {
                let mock = MockKraken::start(config).await.unwrap();
                let seen = Arc::new(Mutex::new(Vec::new()));
                let target = mock.rest_url().trim_start_matches("http://").to_owned();
                let url = relay(target, seen.clone()).await;
                (mock, seen, url)
            })
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let store = Store::open(&lock).unwrap();
        let series = store
            .series_id("kraken:BTC/USD", "BTC/USD", Interval::ONE_MINUTE)
            .unwrap();
        let run_id = store
            .create_run(&NewRun {
                run_key,
                series_id: series,
                config: "{}",
                source_params: "{}",
                initial_cash: Decimal::from(1_000_000),
            })
            .unwrap()
            .id;
        let credentials = Credentials::new(KEY, SECRET).unwrap();
        // As the binary's: the nonce file's mark kept ahead off the way.
        let nonces = NonceSource::open(dir.path().join(NonceSource::file_name(&credentials)))
            .unwrap()
            .renewed_ahead();
        let client = PrivateClient::new(&url, credentials, nonces, Tier::Pro, Duration::from_secs(10)).unwrap();
        Self {
            mock,
            seen,
            dir,
            lock,
            store,
            run_id,
            client,
        }
    }
}

/// `PAUSE_MS=N`: the thread idles N ms before each decision (as between bars in a live run,
/// where the caches and the connection are not as warm as with decisions back to back).
async fn pause() {
    if let Some(ms) = std::env::var("PAUSE_MS").ok().and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// `follow`, and its answer awaited when the broker left it for the engine to await (its tasks
/// share this thread), as the engine does.
async fn decide(broker: &mut ValidateBroker, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
    if let Some(done) = broker.follow(change, ts, price) {
        return Some(done);
    }
    broker.answer()?.await
}

fn main() {
    let orders: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(150);
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The exchange and the network: the mock and the relay, on a thread of their own.
    let exchange = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("exchange")
        .enable_all()
        .build()
        .unwrap();
    // The engine's thread, as the binary's with a Kraken broker: the loop, the broker, its
    // tasks and the client's connections.
    let engine = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    engine.block_on(validate_orders(orders, exchange.handle()));
    engine.block_on(real_orders(orders, exchange.handle()));
}

/// The validate path (`kraken-validate`): each order checked by the mock, then filled on paper.
async fn validate_orders(orders: usize, exchange: &tokio::runtime::Handle) {
    let Bench {
        mock,
        seen,
        dir: _dir,
        lock,
        store,
        run_id,
        client,
    } = Bench::start(Decimal::from(100), "bench", exchange).await;
    let paper = PaperBroker::new(BrokerConfig {
        initial_cash: Decimal::from(1_000_000),
        fee_rate: Decimal::ZERO,
        sizing: Sizing::Fixed(Decimal::new(1, 3)),
        qty_step: Decimal::new(1, 8),
    });
    let mut rails = Rails::new(Decimal::from(1_000_000));
    rails.max_orders_per_hour = u32::MAX;
    let rules = PairRules {
        rest_pair: "XBTUSD".into(),
        lot_decimals: 8,
        ordermin: None,
        ..PairRules::default()
    };
    let mut broker = ValidateBroker::start(
        paper,
        client,
        Store::open(&lock).unwrap(),
        run_id,
        rules,
        rails,
        Duration::from_secs(30),
    );

    // Warm: the connection open, the statements prepared.
    let price = Decimal::from(10_749);
    let mut change = 1;
    for _ in 0..10 {
        decide(&mut broker, change, Timestamp::from_secs(60), price).await;
        change = -change;
    }
    let mut wire = Vec::with_capacity(orders);
    let mut out = Vec::with_capacity(orders);
    for i in 0..orders {
        pause().await;
        let before = seen.lock().unwrap().len();
        let decided_wall = SystemTime::now();
        let decided = Instant::now();
        decide(&mut broker, change, Timestamp::from_secs(120 + i as i64), price)
            .await
            .expect("validated");
        change = -change;
        let sent = seen.lock().unwrap()[before];
        wire.push(sent.relay - decided);
        out.push(sent.kernel.duration_since(decided_wall).unwrap_or_default());
    }
    // The journal's part of the way now: a reserved id taken, the order noted (written later,
    // with the outcome; not timed here).
    let mut hot = Vec::with_capacity(orders);
    store
        .reserve_client_ids(run_id, nanotrader_store::RESERVE_BATCH)
        .unwrap();
    for i in 0..orders {
        let t = Instant::now();
        let id = store.take_client_id(run_id).unwrap();
        let order = SentOrder {
            cl_ord_id: id.clone(),
            run_id,
            order_id: 2_000_000 + i as u64,
            ts: Timestamp::from_secs(60),
            side: Side::Buy,
            volume: Decimal::new(1, 3),
            validate: true,
            state: OrderState::Sending,
            txid: None,
            detail: None,
        };
        store.journal_reserved(&order);
        hot.push(t.elapsed());
        store.set_order_state(&id, OrderState::Validated, None, None).unwrap();
    }
    // A durable commit alone (synchronous=FULL: one fsync of the WAL), which each order waited
    // for before its client id was committed ahead.
    let mut commits = Vec::with_capacity(orders);
    for i in 0..orders {
        let t = Instant::now();
        store
            .journal_order(&SentOrder {
                cl_ord_id: format!("bench-{i}"),
                run_id,
                order_id: 1_000_000 + i as u64,
                ts: Timestamp::from_secs(60),
                side: Side::Buy,
                volume: Decimal::new(1, 3),
                validate: true,
                state: OrderState::Sending,
                txid: None,
                detail: None,
            })
            .unwrap();
        commits.push(t.elapsed());
    }
    // The relay's own delay: from the kernel's stamp to its task's read (what the figures of
    // the first measurement of this section included).
    let mut relay_delay: Vec<Duration> = wire.iter().zip(&out).map(|(w, o)| w.saturating_sub(*o)).collect();
    let mut slowest: Vec<(usize, Duration)> = out.iter().copied().enumerate().collect();
    slowest.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    wire.sort();
    out.sort();
    commits.sort();
    relay_delay.sort();
    hot.sort();
    println!("orders: {orders}");
    println!(
        "decision -> AddOrder bytes out of the process (kernel receive stamp): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&out, 0.5),
        percentile(&out, 0.99),
        out[out.len() - 1]
    );
    println!(
        "decision -> AddOrder bytes noted by the relay (as measured before): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&wire, 0.5),
        percentile(&wire, 0.99),
        wire[wire.len() - 1]
    );
    println!(
        "of which the relay's own delay (kernel stamp -> its read): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&relay_delay, 0.5),
        percentile(&relay_delay, 0.99),
        relay_delay[relay_delay.len() - 1]
    );
    println!(
        "the journal on the way (take a reserved id, note the order): p50 {:?}, p99 {:?}",
        percentile(&hot, 0.5),
        percentile(&hot, 0.99)
    );
    println!(
        "a durable commit alone (before: one per order, on the way): p50 {:?}, p99 {:?}",
        percentile(&commits, 0.5),
        percentile(&commits, 0.99)
    );
    println!(
        "the five slowest orders (index, time): {:?}",
        &slowest[..slowest.len().min(5)]
    );
    exchange.spawn(mock.shutdown()).await.unwrap();
}

/// The real-money broker: `follow` hands the order to its desk task and returns; the engine
/// then waits for the broker's wake-up (as its event loop does), so the desk runs as soon as
/// the engine's task yields. Each order is filled (market) and the desk idle again (the order
/// ended, the balances after it read) before the next decision, as a bar apart in a live run.
async fn real_orders(orders: usize, exchange: &tokio::runtime::Handle) {
    let Bench {
        mock,
        seen,
        dir: _dir,
        lock,
        store: _store,
        run_id,
        client,
    } = Bench::start(Decimal::ZERO, "bench-live", exchange).await;
    let mut rails = Rails::new(Decimal::from(1_000_000));
    rails.max_orders_per_hour = u32::MAX;
    let mut broker = LiveBroker::start(
        BrokerConfig {
            initial_cash: Decimal::from(1_000_000),
            fee_rate: Decimal::ZERO,
            sizing: Sizing::Fixed(Decimal::new(1, 3)),
            qty_step: Decimal::new(1, 8),
        },
        RunOrders::fresh(),
        client,
        Store::open(&lock).unwrap(),
        run_id,
        PairRules {
            rest_pair: "XBTUSD".into(),
            lot_decimals: 8,
            ..PairRules::default()
        },
        rails,
        Assets {
            base: "XXBT".into(),
            quote: "ZUSD".into(),
        },
        LiveSettings {
            order_kind: OrderKind::Market,
            cancel_on_exit: true,
            ws_auth_url: Some(mock.ws_auth_url()),
            ws_quote: "USD".into(),
            ws_base: "BTC".into(),
            stops_on_exchange: false,
            stop_rule: String::new(),
        },
    )
    .await
    .unwrap();
    let wake = broker.updates().unwrap();
    let price = Decimal::from(10_749);
    broker.mark(price);
    let mut change = 1;
    let mut out = Vec::with_capacity(orders);
    for i in 0..orders + 10 {
        let before = seen.lock().unwrap().iter().filter(|_| true).count();
        let decided_wall = SystemTime::now();
        assert!(
            broker
                .follow(change, Timestamp::from_secs(60 + i as i64), price)
                .is_none()
        );
        change = -change;
        // The engine's loop: wait for the broker's wake-up, take the fills.
        let mut filled = 0;
        while filled == 0 {
            wake.notified().await;
            filled = broker.poll().len();
        }
        // The desk idle again: the order ended and the balances after it read.
        while !broker.venue().is_some_and(|v| {
            v.orders
                .first()
                .is_some_and(|o| !matches!(o.state.as_str(), "sending" | "placed" | "open"))
        }) {
            wake.notified().await;
            broker.poll();
        }
        pause().await;
        broker.poll();
        let sent = seen.lock().unwrap()[before];
        if i >= 10 {
            out.push(sent.kernel.duration_since(decided_wall).unwrap_or_default());
        }
    }
    let mut slowest: Vec<(usize, Duration)> = out.iter().copied().enumerate().collect();
    slowest.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    out.sort();
    println!(
        "real orders (LiveBroker, the engine yielding after the hand-over): decision -> AddOrder bytes out of the process: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&out, 0.5),
        percentile(&out, 0.99),
        out[out.len() - 1]
    );
    println!(
        "the five slowest real orders (index, time): {:?}",
        &slowest[..slowest.len().min(5)]
    );
    exchange.spawn(mock.shutdown()).await.unwrap();
}
