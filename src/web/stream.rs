//! The page's WebSocket: a snapshot first, then every delta frame. A page whose queue overflows
//! (a slow network, a frozen tab) is not waited for: it gets a fresh snapshot and carries on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::board::Board;

/// The subprotocol the page asks for; the server echoes it.
pub const SUBPROTOCOL: &str = "nanotrader.v1";

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
                    if frame_seq(&text).is_some_and(|s| s <= seq) {
                        continue;
                    }
                    ok = sink.send(Message::Text(text)).await.is_ok();
                }
                Err(RecvError::Lagged(_)) => {
                    board.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                    frames = frames.resubscribe();
                    let (at, snapshot) = board.snapshot();
                    seq = at;
                    ok = sink.send(Message::Text(snapshot)).await.is_ok();
                }
                Err(RecvError::Closed) => break,
            },
            message = incoming.next() => match message {
                // Pages send nothing but pings and the close; anything else is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    clients.fetch_sub(1, Ordering::Relaxed);
}

/// The `seq` of a delta frame, read from its fixed prefix `{"type":"delta","seq":N,...`.
fn frame_seq(text: &Utf8Bytes) -> Option<u64> {
    let rest = text.as_str().strip_prefix(r#"{"type":"delta","seq":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seq_of_a_delta_frame() {
        assert_eq!(
            frame_seq(&Utf8Bytes::from_static(r#"{"type":"delta","seq":42,"sent_ms":1}"#)),
            Some(42)
        );
        assert_eq!(
            frame_seq(&Utf8Bytes::from_static(r#"{"type":"snapshot","seq":42}"#)),
            None
        );
    }
}
