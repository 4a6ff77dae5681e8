//! A tiny HTTP/1.1 server for the client's tests: answers each request with the next canned
//! reply, and records what it received with whether its `API-Sign` verifies.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::sign::verify_api_sign;

pub enum Reply {
    /// 200 with this JSON body.
    Json(String),
    /// Another status, with this body.
    Status(u16, String),
    /// Close the connection without answering.
    Close,
    /// Never answer (the client times out).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub api_key: String,
    pub content_type: String,
    pub body: String,
    pub nonce: u64,
    pub sign_ok: bool,
}

pub struct TestServer {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    pub async fn start(secret: Vec<u8>, replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let secret = Arc::new(secret);
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, secret.clone(), record.clone(), replies.clone()));
            }
        });
        Self { url, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (the server task may lag the client on a busy machine),
    /// then a little longer so that one more, which must not come, would have been seen.
    pub async fn settle(&self, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.seen.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.seen()
    }
}

async fn serve(
    mut stream: TcpStream,
    secret: Arc<Vec<u8>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
) {
    let mut buf = Vec::new();
    loop {
        // The head, then Content-Length bytes of body; keep-alive: several requests per connection.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        buf.drain(..head_end + length);
        let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let nonce_text = form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "nonce")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let sign_ok = verify_api_sign(&secret, &path, &nonce_text, &body, &header("api-sign"));
        seen.lock().unwrap().push(Seen {
            path,
            api_key: header("api-key"),
            content_type: header("content-type"),
            body,
            nonce: nonce_text.parse().unwrap_or(0),
            sign_ok,
        });
        let reply = replies.lock().unwrap().pop_front();
        let (status, json) = match reply {
            Some(Reply::Json(json)) => (200, json),
            Some(Reply::Status(status, text)) => (status, text),
            Some(Reply::Close) => return,
            Some(Reply::Hang) => return std::future::pending().await,
            None => (
                200,
                r#"{"error":["EGeneral:Internal error:no canned reply"]}"#.to_owned(),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
