//! The page's WebSocket: a snapshot first, then every delta frame. A page whose queue overflows
//! (a slow network, a frozen tab) is not waited for: it gets a fresh snapshot and carries on.
//! Pages send nothing but the close: a client's Close is answered with a Close echoing its code,
//! and a message over `MAX_CLIENT_MESSAGE` closes the stream with 1009 (message too big).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::board::Board;

/// The subprotocol the page asks for; the server echoes it.
pub const SUBPROTOCOL: &str = "nanotrader.v1";
/// A delta this much older than the newest frame when its turn comes is not sent: the page is
/// that far behind, and a snapshot brings it to now at once. (Measured against the newest frame,
/// not the clock, so frames that the hub spaced out under load do not count as lateness.)
const MAX_BEHIND_MS: f64 = 3_000.0;
/// Longest message a page may send; a longer one is refused with 1009.
pub const MAX_CLIENT_MESSAGE: usize = 4096;
/// Longest message read at all (to refuse it cleanly); past this the read itself fails, and the
/// 1009 goes out over a connection that may then be reset.
pub const MAX_READ_MESSAGE: usize = 1 << 20;
/// How long a closing page may take to receive our Close: one that reads nothing more must not
/// keep its task (and its place in the client count) forever.
const CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve_page(socket: WebSocket, board: Arc<Board>, clients: Arc<std::sync::atomic::AtomicU64>) {
    clients.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut incoming) = socket.split();
    // Subscribe before the snapshot: every frame after the snapshot's seq is then received.
    let mut frames = board.subscribe();
    let (mut seq, snapshot) = board.snapshot();
    let mut ok = sink.send(Message::Text(snapshot)).await.is_ok();
    while ok {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(text) => {
                    let header = delta_header(&text);
                    if header.is_some_and(|(s, _)| s <= seq) {
                        continue;
                    }
                    if header.is_some_and(|(_, sent_ms)| board.counters.newest_sent_ms() - sent_ms > MAX_BEHIND_MS) {
                        frames = frames.resubscribe();
                        (seq, ok) = resync(&board, &mut sink).await;
                        continue;
                    }
                    ok = sink.send(Message::Text(text)).await.is_ok();
                }
                Err(RecvError::Lagged(_)) => {
                    frames = frames.resubscribe();
                    (seq, ok) = resync(&board, &mut sink).await;
                }
                Err(RecvError::Closed) => break,
            },
            message = incoming.next() => match message {
                // tungstenite has queued the reply to the client's Close (its code echoed);
                // closing our side sends it, then ends the connection.
                Some(Ok(Message::Close(_))) => {
                    let _ = tokio::time::timeout(CLOSE_PATIENCE, sink.close()).await;
                    break;
                }
                Some(Ok(Message::Text(text))) if text.len() > MAX_CLIENT_MESSAGE => {
                    close_too_big(&mut sink).await;
                    break;
                }
                Some(Ok(Message::Binary(bytes))) if bytes.len() > MAX_CLIENT_MESSAGE => {
                    close_too_big(&mut sink).await;
                    break;
                }
                Some(Err(e)) if is_too_big(&e) => {
                    close_too_big(&mut sink).await;
                    break;
                }
                None | Some(Err(_)) => break,
                // Anything else a page sends is ignored (pings are answered by tungstenite).
                Some(Ok(_)) => {}
            },
        }
    }
    clients.fetch_sub(1, Ordering::Relaxed);
}

/// Closes the stream with 1009 (message too big).
async fn close_too_big(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>) {
    let close = CloseFrame {
        code: close_code::SIZE,
        reason: Utf8Bytes::from_static("message too big"),
    };
    let _ = tokio::time::timeout(CLOSE_PATIENCE, sink.send(Message::Close(Some(close)))).await;
}

/// Sends a page that fell behind a fresh snapshot: the seq it is at, and whether the send worked.
async fn resync(board: &Board, sink: &mut futures_util::stream::SplitSink<WebSocket, Message>) -> (u64, bool) {
    board.counters.resyncs.fetch_add(1, Ordering::Relaxed);
    let (at, snapshot) = board.snapshot();
    (at, sink.send(Message::Text(snapshot)).await.is_ok())
}

/// Whether a read failed because the client's message or frame was over the limit.
fn is_too_big(error: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    std::error::Error::source(error)
        .and_then(|inner| inner.downcast_ref::<Error>())
        .is_some_and(|e| matches!(e, Error::Capacity(_)))
}

/// The `seq` and `sent_ms` of a delta frame, read from its fixed prefix
/// `{"type":"delta","seq":N,"sent_ms":T,...` (snapshots have neither).
fn delta_header(text: &Utf8Bytes) -> Option<(u64, f64)> {
    let rest = text.as_str().strip_prefix(r#"{"type":"delta","seq":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    let seq = rest[..end].parse().ok()?;
    let rest = rest[end..].strip_prefix(r#","sent_ms":"#)?;
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))?;
    Some((seq, rest[..end].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seq_and_time_of_a_delta_frame() {
        assert_eq!(
            delta_header(&Utf8Bytes::from_static(
                r#"{"type":"delta","seq":42,"sent_ms":1764012345678.25,"events":[]}"#
            )),
            Some((42, 1764012345678.25))
        );
        assert_eq!(
            delta_header(&Utf8Bytes::from_static(r#"{"type":"snapshot","seq":42}"#)),
            None
        );
    }
}
