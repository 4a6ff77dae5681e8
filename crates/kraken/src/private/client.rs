//! The signed private REST client. Every call: wait for the rate counters, take a nonce, build
//! the body (nonce first, form-encoded once), sign exactly that text, POST it to
//! `/0/private/<Method>`. One request is in flight at a time, so nonces reach Kraken in the
//! order they were taken.
//!
//! The client never loops: on `EAPI:Invalid nonce` it signs once more with a fresh nonce (Kraken
//! did not process the refused request, so this is safe even for AddOrder), and that is all.
//! Reads may be retried by the caller; an AddOrder whose outcome is unknown must be looked up
//! by its `cl_ord_id`, never sent again blindly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use rust_decimal::Decimal;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::credentials::Credentials;
use super::error::{AddOrderOutcome, ApiErrorKind, PrivateError};
use super::limits::{RateLimits, Tier, api_cost, cancel_cost};
use super::nonce::NonceSource;
use super::sign::form_body;
use super::types::{
    CancelResult, ClosedOrdersPage, DeadManSwitch, ExtendedBalance, Order, OrderRef, OrderRequest, Trade, TradesPage,
    WebSocketsToken, envelope, parse_add_order, parse_balance, parse_balance_ex, parse_cancel, parse_cancel_all_after,
    parse_closed_orders, parse_open_orders, parse_query_orders, parse_trades_history, parse_websockets_token,
};

/// QueryOrders takes at most 50 ids per call.
const QUERY_ORDERS_MAX: usize = 50;
/// TradesHistory pages hold at most 50 trades; a shorter page is the last.
const TRADES_PAGE_MAX: usize = 50;
/// Orders older than this cost nothing to cancel, so we stop remembering them.
const CANCEL_COST_HORIZON: Duration = Duration::from_secs(300);

/// A call that failed, and whether its request may have reached Kraken.
struct Failure {
    error: PrivateError,
    maybe_sent: bool,
}

impl Failure {
    fn not_sent(error: PrivateError) -> Self {
        Self {
            error,
            maybe_sent: false,
        }
    }

    fn maybe_sent(error: PrivateError) -> Self {
        Self {
            error,
            maybe_sent: true,
        }
    }
}

#[derive(Debug)]
pub struct PrivateClient {
    http: reqwest::Client,
    base_url: String,
    credentials: Credentials,
    nonces: NonceSource,
    limits: RateLimits,
    /// Held from taking a nonce until the answer: a later nonce must not overtake an earlier one.
    in_flight: Mutex<()>,
    /// Orders this client placed in the last few minutes: their pair and when, which set what a
    /// cancel costs on the trading counter.
    placed: std::sync::Mutex<HashMap<OrderRef, (String, Instant)>>,
}

impl PrivateClient {
    /// `base_url` is e.g. `https://api.kraken.com` (or a mock's `http://127.0.0.1:PORT`).
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        nonces: NonceSource,
        tier: Tier,
        request_timeout: Duration,
    ) -> Result<Self, PrivateError> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .user_agent(concat!("nanotrader/", env!("CARGO_PKG_VERSION")))
            // reqwest may resend on some HTTP/2 refusals; an order is sent once, by us.
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| PrivateError::Connect(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            nonces,
            limits: RateLimits::new(tier),
            in_flight: Mutex::new(()),
            placed: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Asset id -> total balance (amounts held by open orders included).
    pub async fn balance(&self) -> Result<BTreeMap<String, Decimal>, PrivateError> {
        self.call("Balance", Vec::new(), parse_balance).await
    }

    /// Asset id -> balance with what open orders hold; see [`ExtendedBalance::available`].
    pub async fn balance_ex(&self) -> Result<BTreeMap<String, ExtendedBalance>, PrivateError> {
        self.call("BalanceEx", Vec::new(), parse_balance_ex).await
    }

    /// Places an order (or validates it). Never retried, except one re-sign after an invalid
    /// nonce; see [`AddOrderOutcome`] for what the caller must do with each outcome.
    pub async fn add_order(&self, order: &OrderRequest) -> AddOrderOutcome {
        let fields = match order.fields() {
            Ok(fields) => fields,
            Err(e) => return AddOrderOutcome::NotSent(e),
        };
        self.limits.acquire_trading(&order.pair, 1).await;
        let body = match self.signed("AddOrder", &fields).await {
            Ok(body) => body,
            Err(Failure {
                error,
                maybe_sent: false,
            }) => return AddOrderOutcome::NotSent(error),
            Err(Failure { error, .. }) => return AddOrderOutcome::Unknown(error),
        };
        match parse_add_order(&body) {
            Ok(added) => {
                if !order.validate {
                    self.remember(order, &added.txids);
                }
                AddOrderOutcome::Accepted(added)
            }
            Err(PrivateError::Api(e)) => {
                if e.kind == ApiErrorKind::TradingRateLimited {
                    self.limits.trading_exceeded(&order.pair).await;
                }
                AddOrderOutcome::Rejected(e)
            }
            // A 200 we cannot read: Kraken may well have placed it.
            Err(e) => AddOrderOutcome::Unknown(e),
        }
    }

    /// Cancels one order. An order this client placed in the last five minutes is charged to
    /// its pair's trading counter by its age; others (placed before a restart) are not, as
    /// their pair is not known here. `EOrder:Unknown order` means it is no longer open.
    pub async fn cancel_order(&self, order: OrderRef) -> Result<CancelResult, PrivateError> {
        let known = self.placed_lock().get(&order).cloned();
        if let Some((pair, at)) = &known {
            self.limits.acquire_trading(pair, cancel_cost(at.elapsed())).await;
        }
        let result = self.call("CancelOrder", vec![order.field()], parse_cancel).await;
        let gone = match &result {
            Ok(_) => true,
            Err(e) => e.api_kind() == Some(ApiErrorKind::UnknownOrder),
        };
        if gone {
            self.placed_lock().remove(&order);
        }
        result
    }

    /// Cancels every open order of the account.
    pub async fn cancel_all(&self) -> Result<CancelResult, PrivateError> {
        let result = self.call("CancelAll", Vec::new(), parse_cancel).await;
        if result.is_ok() {
            self.placed_lock().clear();
        }
        result
    }

    /// The dead-man switch: Kraken cancels every order unless called again within `secs`
    /// (0 turns it off).
    pub async fn cancel_all_orders_after(&self, secs: u32) -> Result<DeadManSwitch, PrivateError> {
        self.call(
            "CancelAllOrdersAfter",
            vec![("timeout", secs.to_string())],
            parse_cancel_all_after,
        )
        .await
    }

    /// Open orders, oldest first; only the one with `cl_ord_id` when given; with their fill ids
    /// when `trades`.
    pub async fn open_orders(&self, cl_ord_id: Option<&str>, trades: bool) -> Result<Vec<Order>, PrivateError> {
        let mut fields = Vec::new();
        if trades {
            fields.push(("trades", "true".to_owned()));
        }
        if let Some(id) = cl_ord_id {
            fields.push(("cl_ord_id", id.to_owned()));
        }
        self.call("OpenOrders", fields, parse_open_orders).await
    }

    /// One page (50) of closed orders after `start` (Unix seconds, exclusive), from offset `ofs`.
    pub async fn closed_orders(
        &self,
        start: Option<i64>,
        cl_ord_id: Option<&str>,
        ofs: Option<u64>,
    ) -> Result<ClosedOrdersPage, PrivateError> {
        let mut fields = Vec::new();
        if let Some(start) = start {
            fields.push(("start", start.to_string()));
        }
        if let Some(id) = cl_ord_id {
            fields.push(("cl_ord_id", id.to_owned()));
        }
        if let Some(ofs) = ofs {
            fields.push(("ofs", ofs.to_string()));
        }
        self.call("ClosedOrders", fields, parse_closed_orders).await
    }

    /// Orders by id, with their fill ids, oldest first; 50 ids per call.
    pub async fn query_orders(&self, txids: &[&str]) -> Result<Vec<Order>, PrivateError> {
        let mut orders = Vec::new();
        for chunk in txids.chunks(QUERY_ORDERS_MAX) {
            let fields = vec![("trades", "true".to_owned()), ("txid", chunk.join(","))];
            orders.extend(self.call("QueryOrders", fields, parse_query_orders).await?);
        }
        orders.sort_by(|a, b| (a.opened, &a.txid).cmp(&(b.opened, &b.txid)));
        Ok(orders)
    }

    /// One page of the account's fills, newest first: after `start`, up to `end` (Unix
    /// seconds), from offset `ofs`. Costs 2 on the API counter.
    pub async fn trades_history(
        &self,
        start: Option<i64>,
        end: Option<i64>,
        ofs: Option<u64>,
    ) -> Result<TradesPage, PrivateError> {
        let mut fields = Vec::new();
        if let Some(start) = start {
            fields.push(("start", start.to_string()));
        }
        if let Some(end) = end {
            fields.push(("end", end.to_string()));
        }
        if let Some(ofs) = ofs {
            fields.push(("ofs", ofs.to_string()));
        }
        self.call("TradesHistory", fields, parse_trades_history).await
    }

    /// Every fill after `start` up to `end`, page by page, newest first. Give `end` (e.g. now)
    /// so that fills arriving meanwhile do not shift the pages; a fill seen twice is kept once.
    pub async fn trades_history_all(&self, start: Option<i64>, end: Option<i64>) -> Result<Vec<Trade>, PrivateError> {
        let mut trades: Vec<Trade> = Vec::new();
        let mut seen = HashSet::new();
        let mut ofs = 0u64;
        loop {
            let page = self.trades_history(start, end, Some(ofs)).await?;
            let got = page.trades.len();
            ofs += got as u64;
            trades.extend(page.trades.into_iter().filter(|t| seen.insert(t.txid.clone())));
            let done = match page.count {
                Some(count) => ofs >= count,
                None => got < TRADES_PAGE_MAX,
            };
            if got == 0 || done {
                break;
            }
        }
        trades.sort_by(|a, b| (b.time, &b.txid).cmp(&(a.time, &a.txid)));
        Ok(trades)
    }

    /// A token for the private WebSocket (valid 15 minutes unless a subscription keeps it).
    pub async fn get_websockets_token(&self) -> Result<WebSocketsToken, PrivateError> {
        self.call("GetWebSocketsToken", Vec::new(), parse_websockets_token)
            .await
    }

    // ---- plumbing ----

    async fn call<T>(
        &self,
        method: &'static str,
        fields: Vec<(&'static str, String)>,
        parse: fn(&[u8]) -> Result<T, PrivateError>,
    ) -> Result<T, PrivateError> {
        let body = self.signed(method, &fields).await.map_err(|f| f.error)?;
        parse(&body)
    }

    /// Signs and sends `method`, and once more with a fresh nonce if Kraken refused the nonce.
    /// Hands back the body of a 200 answer, whatever it says.
    async fn signed(&self, method: &'static str, fields: &[(&'static str, String)]) -> Result<Vec<u8>, Failure> {
        let path = format!("/0/private/{method}");
        let mut resigned = false;
        loop {
            self.limits.acquire_api(api_cost(method)).await;
            let body = self.send(&path, fields).await?;
            match envelope(&body, method).err().and_then(|e| e.api_kind()) {
                Some(ApiErrorKind::InvalidNonce) if !resigned => {
                    resigned = true;
                    tracing::warn!(method, "Kraken refused the nonce; signing once more with a fresh one");
                }
                Some(ApiErrorKind::RateLimited) => {
                    self.limits.api_exceeded().await;
                    return Ok(body);
                }
                _ => return Ok(body),
            }
        }
    }

    /// One signed POST. Transport failures say whether the request may have gone out.
    async fn send(&self, path: &str, fields: &[(&'static str, String)]) -> Result<Vec<u8>, Failure> {
        let _turn = self.in_flight.lock().await;
        let nonce = self.nonces.next().map_err(|e| Failure::not_sent(e.into()))?.to_string();
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = form_body(&nonce, &pairs);
        let sign = self.credentials.sign(path, &nonce, &body);
        let mut key = HeaderValue::from_str(self.credentials.api_key())
            .map_err(|_| Failure::not_sent(PrivateError::InvalidRequest("API key not a header value".into())))?;
        key.set_sensitive(true);
        let mut sign = HeaderValue::from_str(&sign).expect("base64 is a valid header value");
        sign.set_sensitive(true);
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("API-Key", key)
            .header("API-Sign", sign)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status().as_u16();
        // Kraken answers 200 even for its own errors; anything else came from in front of it,
        // after the request went out.
        if status != 200 {
            return Err(Failure::maybe_sent(PrivateError::Http { status }));
        }
        let body = response.bytes().await.map_err(transport_failure)?;
        Ok(body.to_vec())
    }

    fn placed_lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrderRef, (String, Instant)>> {
        self.placed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, order: &OrderRequest, txids: &[String]) {
        let now = Instant::now();
        let mut placed = self.placed_lock();
        placed.retain(|_, (_, at)| now - *at < CANCEL_COST_HORIZON);
        let refs = txids
            .iter()
            .map(|t| OrderRef::Txid(t.clone()))
            .chain(order.cl_ord_id.clone().map(OrderRef::ClOrdId));
        for r in refs {
            placed.insert(r, (order.pair.clone(), now));
        }
    }
}

/// Could not connect: nothing went out. Anything later (timeout, reset, a cut-off body): the
/// request may have reached Kraken.
fn transport_failure(e: reqwest::Error) -> Failure {
    if e.is_connect() || e.is_builder() {
        return Failure::not_sent(PrivateError::Connect(message(&e)));
    }
    if e.is_timeout() {
        return Failure::maybe_sent(PrivateError::Timeout);
    }
    Failure::maybe_sent(PrivateError::Transport(message(&e)))
}

/// reqwest's message with its causes ("error sending request" alone says little), without the URL.
fn message(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{d, fixture};
    use crate::private::error::ApiError;
    use crate::private::test_server::{Reply, TestServer};
    use crate::private::types::OrderType;
    use nanotrader_market::Side;

    const KEY: &str = "nanotrader-test-key";
    const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
    /// Long enough for a loaded machine; only the `Hang` test waits for it.
    const TIMEOUT: Duration = Duration::from_secs(2);

    struct Setup {
        client: PrivateClient,
        server: TestServer,
        _dir: tempfile::TempDir,
    }

    async fn setup(replies: Vec<Reply>) -> Setup {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let creds = Credentials::new(KEY, SECRET).unwrap();
        let server = TestServer::start(creds.secret().to_vec(), replies).await;
        let dir = tempfile::tempdir().unwrap();
        let nonces = NonceSource::open(dir.path().join(NonceSource::file_name(&creds))).unwrap();
        let client = PrivateClient::new(&server.url, creds, nonces, Tier::Pro, TIMEOUT).unwrap();
        Setup {
            client,
            server,
            _dir: dir,
        }
    }

    fn json(name: &str) -> Reply {
        Reply::Json(fixture(name))
    }

    fn invalid_nonce() -> Reply {
        json("rest_error_invalid_nonce.json")
    }

    fn order() -> OrderRequest {
        OrderRequest {
            pair: "XBTUSD".into(),
            side: Side::Buy,
            order_type: OrderType::Limit {
                price: d("37500"),
                post_only: true,
            },
            volume: d("1.25"),
            cl_ord_id: Some("nt+1".into()),
            validate: false,
        }
    }

    #[tokio::test]
    async fn a_call_is_signed_exactly_as_sent() {
        let s = setup(vec![json("private_balance.json")]).await;
        let balances = s.client.balance().await.unwrap();
        assert_eq!(balances["XXBT"], d("1011.1908877900"));
        let seen = s.server.seen();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.path, "/0/private/Balance");
        assert_eq!(req.api_key, KEY);
        assert_eq!(req.content_type, "application/x-www-form-urlencoded");
        assert_eq!(req.body, format!("nonce={}", req.nonce));
        assert!(req.sign_ok, "{req:?}");
        let shown = format!("{:?}", s.client);
        assert!(!shown.contains(KEY) && !shown.contains(&SECRET[..12]), "{shown}");
    }

    #[tokio::test]
    async fn an_order_body_is_encoded_once_and_signed_as_sent() {
        let s = setup(vec![json("private_addorder.json")]).await;
        let outcome = s.client.add_order(&order()).await;
        let AddOrderOutcome::Accepted(added) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(added.txids, ["OU22CG-KLAF2-FWUDD7"]);
        let req = &s.server.seen()[0];
        assert_eq!(req.path, "/0/private/AddOrder");
        assert_eq!(
            req.body,
            format!(
                "nonce={}&pair=XBTUSD&type=buy&ordertype=limit&volume=1.25&price=37500&oflags=post&cl_ord_id=nt%2B1",
                req.nonce
            )
        );
        assert!(req.sign_ok);
    }

    #[tokio::test]
    async fn an_invalid_nonce_is_signed_again_once_with_a_larger_nonce() {
        let s = setup(vec![invalid_nonce(), json("private_balance.json")]).await;
        assert!(s.client.balance().await.is_ok());
        let s2 = setup(vec![invalid_nonce(), json("private_addorder.json")]).await;
        let outcome = s2.client.add_order(&order()).await;
        assert!(matches!(outcome, AddOrderOutcome::Accepted(_)), "{outcome:?}");
        for server in [&s.server, &s2.server] {
            let seen = server.seen();
            assert_eq!(seen.len(), 2);
            assert!(seen[1].nonce > seen[0].nonce, "{seen:?}");
            assert!(seen.iter().all(|r| r.sign_ok));
            // The same request, only the nonce differs.
            let rest = |r: &crate::private::test_server::Seen| r.body.split_once('&').map(|(_, t)| t.to_owned());
            assert_eq!(rest(&seen[0]), rest(&seen[1]));
        }
    }

    #[tokio::test]
    async fn a_second_invalid_nonce_is_an_error_not_a_loop() {
        let s = setup(vec![invalid_nonce(), invalid_nonce()]).await;
        let err = s.client.balance().await.unwrap_err();
        assert_eq!(err.api_kind(), Some(ApiErrorKind::InvalidNonce));
        assert_eq!(s.server.settle(2).await.len(), 2);

        let s = setup(vec![invalid_nonce(), invalid_nonce()]).await;
        let outcome = s.client.add_order(&order()).await;
        assert_eq!(outcome, AddOrderOutcome::Rejected(ApiError::new("EAPI:Invalid nonce")));
        assert!(outcome.is_not_placed());
        assert_eq!(s.server.settle(2).await.len(), 2);
    }

    #[tokio::test]
    async fn an_add_order_without_a_readable_answer_is_unknown_and_sent_once() {
        type Expected = fn(&PrivateError) -> bool;
        let cases: Vec<(Reply, Expected)> = vec![
            (Reply::Hang, |e| matches!(e, PrivateError::Timeout)),
            (Reply::Status(500, "oops".into()), |e| {
                matches!(e, PrivateError::Http { status: 500 })
            }),
            (Reply::Status(502, "<html>bad gateway</html>".into()), |e| {
                matches!(e, PrivateError::Http { status: 502 })
            }),
            (Reply::Close, |e| matches!(e, PrivateError::Transport(_))),
            (Reply::Json("<html>cloudflare</html>".into()), |e| {
                matches!(e, PrivateError::Malformed(_))
            }),
            (Reply::Json(r#"{"error":[],"result":{"txid":"#.into()), |e| {
                matches!(e, PrivateError::Malformed(_))
            }),
        ];
        for (reply, expected) in cases {
            let s = setup(vec![reply]).await;
            let outcome = s.client.add_order(&order()).await;
            match &outcome {
                AddOrderOutcome::Unknown(e) => assert!(expected(e), "{e:?}"),
                other => panic!("expected Unknown, got {other:?}"),
            }
            assert!(!outcome.is_not_placed());
            let seen = s.server.settle(1).await;
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert!(seen[0].sign_ok);
        }
    }

    #[tokio::test]
    async fn a_refused_order_is_rejected_and_not_sent_again() {
        let s = setup(vec![json("private_addorder_insufficient_funds.json")]).await;
        let outcome = s.client.add_order(&order()).await;
        let AddOrderOutcome::Rejected(e) = &outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(e.kind, ApiErrorKind::InsufficientFunds);
        assert_eq!(s.server.settle(1).await.len(), 1);
    }

    #[tokio::test]
    async fn an_order_that_never_left_is_not_sent() {
        let s = setup(vec![]).await;
        let bad = OrderRequest {
            volume: Decimal::ZERO,
            ..order()
        };
        let outcome = s.client.add_order(&bad).await;
        assert!(matches!(
            outcome,
            AddOrderOutcome::NotSent(PrivateError::InvalidRequest(_))
        ));
        assert!(s.server.seen().is_empty());

        // Nobody listening: the connection failed, so nothing was sent.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let creds = Credentials::new(KEY, SECRET).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let nonces = NonceSource::open(dir.path().join("nonce")).unwrap();
        let client = PrivateClient::new(&url, creds, nonces, Tier::Starter, TIMEOUT).unwrap();
        let outcome = client.add_order(&order()).await;
        assert!(
            matches!(outcome, AddOrderOutcome::NotSent(PrivateError::Connect(_))),
            "{outcome:?}"
        );
        assert!(outcome.is_not_placed());
    }

    #[tokio::test]
    async fn reads_parse_into_typed_results_with_their_fields() {
        let s = setup(vec![
            json("private_openorders.json"),
            json("private_queryorders.json"),
            json("private_cancelorder.json"),
            json("private_getwebsocketstoken.json"),
            Reply::Json(
                r#"{"error":[],"result":{"currentTime":"2023-03-24T17:41:56Z","triggerTime":"2023-03-24T17:42:56Z"}}"#
                    .into(),
            ),
            Reply::Json(r#"{"error":[],"result":{"count":2}}"#.into()),
            Reply::Json(r#"{"error":[],"result":{"closed":{},"count":0}}"#.into()),
            Reply::Json(r#"{"error":[],"result":{"ZUSD":{"balance":"10.5","hold_trade":"0.5"}}}"#.into()),
        ])
        .await;
        let c = &s.client;
        let open = c.open_orders(Some("nt-7"), true).await.unwrap();
        assert_eq!(open.len(), 2);
        let queried = c
            .query_orders(&["OBCMZD-JIEE7-77TH3F", "OMMDB2-FSB6Z-7W3HPO"])
            .await
            .unwrap();
        assert_eq!(queried.len(), 2);
        let cancelled = c.cancel_order(OrderRef::ClOrdId("nt-7".into())).await.unwrap();
        assert_eq!(cancelled.count, 1);
        let token = c.get_websockets_token().await.unwrap();
        assert_eq!(token.expires, 900);
        let switch = c.cancel_all_orders_after(60).await.unwrap();
        assert!(switch.trigger_time > switch.current_time);
        assert_eq!(c.cancel_all().await.unwrap().count, 2);
        assert_eq!(
            c.closed_orders(Some(1_688_000_000), None, Some(50))
                .await
                .unwrap()
                .count,
            0
        );
        assert_eq!(c.balance_ex().await.unwrap()["ZUSD"].available(), d("10.0"));

        let seen = s.server.seen();
        let got: Vec<(String, String)> = seen
            .iter()
            .map(|r| {
                assert!(r.sign_ok, "{r:?}");
                let fields = r.body.split_once('&').map_or("", |(_, f)| f);
                (r.path.trim_start_matches("/0/private/").to_owned(), fields.to_owned())
            })
            .collect();
        let expected = [
            ("OpenOrders", "trades=true&cl_ord_id=nt-7"),
            (
                "QueryOrders",
                "trades=true&txid=OBCMZD-JIEE7-77TH3F%2COMMDB2-FSB6Z-7W3HPO",
            ),
            ("CancelOrder", "cl_ord_id=nt-7"),
            ("GetWebSocketsToken", ""),
            ("CancelAllOrdersAfter", "timeout=60"),
            ("CancelAll", ""),
            ("ClosedOrders", "start=1688000000&ofs=50"),
            ("BalanceEx", ""),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, expected);
        // Nonces strictly increase across calls.
        assert!(seen.windows(2).all(|w| w[1].nonce > w[0].nonce));
    }

    #[tokio::test]
    async fn trades_history_pages_until_the_count() {
        let trade = |id: &str, time: u32| {
            format!(
                r#""{id}":{{"ordertxid":"O1","pair":"XXBTZUSD","time":{time},"type":"buy","ordertype":"limit",
                "price":"30010.0","cost":"300.1","fee":"0","vol":"0.01","margin":"0","misc":""}}"#
            )
        };
        let page1 = format!(
            r#"{{"error":[],"result":{{"count":3,"trades":{{{},{}}}}}}}"#,
            trade("T3", 30),
            trade("T2", 20)
        );
        let page2 = format!(
            r#"{{"error":[],"result":{{"count":3,"trades":{{{}}}}}}}"#,
            trade("T1", 10)
        );
        let s = setup(vec![Reply::Json(page1), Reply::Json(page2)]).await;
        let trades = s.client.trades_history_all(Some(5), Some(40)).await.unwrap();
        let ids: Vec<&str> = trades.iter().map(|t| t.txid.as_str()).collect();
        assert_eq!(ids, ["T3", "T2", "T1"]);
        let bodies: Vec<String> = s
            .server
            .seen()
            .iter()
            .map(|r| r.body.split_once('&').unwrap().1.to_owned())
            .collect();
        assert_eq!(bodies, ["start=5&end=40&ofs=0", "start=5&end=40&ofs=2"]);
    }

    #[tokio::test]
    async fn a_rate_limit_answer_fills_the_api_counter() {
        let s = setup(vec![json("rest_error_rate_limit.json")]).await;
        let err = s.client.balance().await.unwrap_err();
        assert_eq!(err.api_kind(), Some(ApiErrorKind::RateLimited));
        assert!(err.is_retryable());
        assert!(s.client.limits().api_level().await >= 19.0);
    }
}
