//! The JSON API beside the page (described by openapi.json).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Server;
use super::board::Board;
use super::errors::ApiError;
use super::params::Params;
use super::view::FillView;
use nanotrader_engine::Control;
use nanotrader_market::Timestamp;
use nanotrader_store::Store;

const OPENAPI: &str = include_str!("openapi.json");
pub const DEFAULT_BARS: usize = 1_000;
pub const MAX_BARS: usize = 10_000;
/// Fills per /api/fills page by default, and at most: a page is read from the store on its own.
pub const DEFAULT_FILLS: usize = 1_000;
pub const MAX_FILLS: usize = 10_000;

/// The board named by `?run=` (the fleet dashboard), by `?pair=` (any case), or the first one.
pub async fn board(server: &Server, params: &Params) -> Result<Arc<Board>, ApiError> {
    if let Some(run) = params.run()? {
        return super::fleet::board(server, run).await;
    }
    let pair = params.pair()?;
    let boards = server.boards();
    let found = match pair {
        Some(pair) => boards.iter().find(|b| b.meta.pair.eq_ignore_ascii_case(pair)),
        None => boards.first(),
    };
    found.cloned().ok_or_else(|| match pair {
        Some(pair) => ApiError::not_found(format!("no run trades {pair} in this process")),
        None => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no run has started yet"),
    })
}

pub async fn status(State(server): State<Arc<Server>>, params: Params) -> Result<Response, ApiError> {
    let board = board(&server, &params).await?;
    Ok(Json(json!({ "pair": board.meta.pair, "run_id": board.meta.run_id, "status": board.status() })).into_response())
}

pub async fn account(State(server): State<Arc<Server>>, params: Params) -> Result<Response, ApiError> {
    Ok(Json(board(&server, &params).await?.account()).into_response())
}

pub async fn performance(State(server): State<Arc<Server>>, params: Params) -> Result<Response, ApiError> {
    Ok(Json(board(&server, &params).await?.performance()).into_response())
}

pub async fn config(State(server): State<Arc<Server>>, params: Params) -> Result<Response, ApiError> {
    let board = board(&server, &params).await?;
    Ok(Json(json!({ "meta": board.meta, "run": board.config })).into_response())
}

/// The pairs this process trades (one board each), for the page's pair picker.
pub async fn pairs(State(server): State<Arc<Server>>) -> Response {
    let pairs: Vec<_> = (server.boards().iter())
        .map(|b| json!({ "pair": b.meta.pair, "run_id": b.meta.run_id }))
        .collect();
    Json(json!({ "pairs": pairs })).into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Every fill of the run, from the store (the page's snapshot holds only the recent ones).
pub async fn fills(State(server): State<Arc<Server>>, params: Params) -> Result<Response, ApiError> {
    let board = board(&server, &params).await?;
    let limit = params.limit(DEFAULT_FILLS, MAX_FILLS)?;
    let before = params.before()?;
    let run_id = board.meta.run_id;
    let page = read_store(&board, move |store| store.fills_page(run_id, before, limit)).await?;
    // A full page may have older fills before it: the client asks again with `before`.
    let next_before = (page.len() == limit)
        .then(|| page.first().map(|(f, _)| f.order_id))
        .flatten();
    let views: Vec<FillView> = page.iter().map(|(f, reason)| FillView::new(f, *reason)).collect();
    Ok(Json(json!({ "run_id": run_id, "fills": views, "next_before": next_before })).into_response())
}

/// Stored bars in `[from, to]` (unix seconds, a date or RFC 3339): the first `limit` from `from`,
/// or without `from` the last `limit` up to `to`. A range that ends before it starts is empty.
pub async fn bars(State(server): State<Arc<Server>>, params: Params) -> Result<Response, ApiError> {
    let board = board(&server, &params).await?;
    let limit = params.limit(DEFAULT_BARS, MAX_BARS)?;
    let from = params.time("from")?;
    let to = params.time("to")?;
    let series = board.series_id;
    let latest = from.is_none();
    let (from, to) = (
        from.unwrap_or(Timestamp::from_secs(0)),
        to.unwrap_or(Timestamp::from_nanos(i64::MAX)),
    );
    let bars = if to < from {
        Vec::new()
    } else {
        read_store(&board, move |store| store.bars_page(series, from, to, limit, latest)).await?
    };
    let bars: Vec<_> = bars
        .iter()
        .map(|b| {
            let d = |v: rust_decimal::Decimal| v.normalize();
            json!({ "t": b.ts.secs(), "o": d(b.open), "h": d(b.high), "l": d(b.low), "c": d(b.close), "v": d(b.volume), "trades": b.trades })
        })
        .collect();
    Ok(
        Json(json!({ "pair": board.meta.pair, "interval_secs": board.meta.interval_secs, "bars": bars }))
            .into_response(),
    )
}

/// Pause, resume or flatten, answered by the engine itself. The body is checked before anything
/// is sent to the engine: a request refused here changes nothing.
pub async fn control(
    State(server): State<Arc<Server>>,
    action: Result<Path<String>, PathRejection>,
    params: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(action) = action?;
    check_control_body(&body?)?;
    let control = match action.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "flatten" => Control::Flatten,
        other => return Err(ApiError::not_found(format!("no control named '{other}'"))),
    };
    let board = board(&server, &params).await?;
    if board.from_fleet() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the fleet dashboard only watches: steer a run from its own process's dashboard",
        ));
    }
    let (reply_tx, reply) = tokio::sync::oneshot::channel();
    let gone = || ApiError::new(StatusCode::CONFLICT, "the run has ended: nothing to control");
    board.controls.send((control, reply_tx)).await.map_err(|_| gone())?;
    let answer = reply.await.map_err(|_| gone())?;
    Ok(Json(answer).into_response())
}

/// A control's body is an empty JSON object, `{}` (openapi.json: `ControlRequest`): controls take
/// no options today, and a body that says more than nothing is refused rather than ignored.
fn check_control_body(body: &[u8]) -> Result<(), ApiError> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body must be the JSON object {{}}: {e}")))?;
    match object.keys().next() {
        None => Ok(()),
        Some(field) => Err(ApiError::bad_request(format!(
            "the body must be the JSON object {{}}: controls take no field like '{field}'"
        ))),
    }
}

/// Runs a read on the board's own store connection, off the async threads.
async fn read_store<T: Send + 'static>(
    board: &Arc<Board>,
    read: impl FnOnce(&dyn nanotrader_store::RunStore) -> Result<T, nanotrader_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    if board.from_fleet() && board.open_reader.is_none() {
        return Err(ApiError::not_found(
            "this board has no fills or bars pages: `nanotrader fills` and `bars` read them",
        ));
    }
    let board = board.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = board.reader.lock().unwrap_or_else(|e| e.into_inner());
        if reader.is_none() {
            *reader = Some(match &board.open_reader {
                Some(open) => open()?,
                None => Box::new(Store::open_read_only(&board.data_dir)?),
            });
        }
        read(reader.as_deref().expect("opened above"))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("store read: {e}")))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("store read: {e}")))
}
