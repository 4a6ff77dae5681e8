//! A running `nanotrader` with its dashboard and both pipes drained, for tests that watch it.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running `nanotrader` with its dashboard; killed when dropped.
pub struct Running {
    pub child: Child,
    pub url: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    drains: Vec<JoinHandle<()>>,
}

/// Everything a stopped process wrote.
pub struct Stopped {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub fn drain(pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut pipe = pipe;
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    })
}

impl Running {
    /// Starts `cmd` and waits for its `dashboard: URL` line.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nanotrader starts");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let drains = vec![
            drain(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            drain(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        let mut running = Self {
            child,
            url: String::new(),
            stdout,
            stderr,
            drains,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        running.url = loop {
            let text = String::from_utf8_lossy(&running.stdout.lock().unwrap()).into_owned();
            if let Some(rest) = text.lines().find_map(|l| l.strip_prefix("dashboard: ")) {
                break rest.split_whitespace().next().unwrap().trim_end_matches('/').to_owned();
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!(
                    "nanotrader exited ({status}) before serving: {}",
                    String::from_utf8_lossy(&running.stderr.lock().unwrap())
                );
            }
            assert!(Instant::now() < deadline, "no dashboard line: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        running
    }

    /// Starts `cmd` (one without a dashboard) with both pipes drained, without waiting.
    pub fn start_without_dashboard(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nanotrader starts");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let drains = vec![
            drain(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            drain(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Self {
            child,
            url: String::new(),
            stdout,
            stderr,
            drains,
        }
    }

    /// Whether it has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills it with -9 (no chance to clean up) and collects what it wrote.
    pub fn kill(mut self) -> Stopped {
        let _ = self.child.kill();
        self.wait(Duration::from_secs(15))
    }

    pub fn host(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    pub fn ws_url(&self) -> String {
        self.url.replacen("http://", "ws://", 1) + "/ws"
    }

    /// Stops it as Ctrl-C would and collects what it wrote.
    pub fn interrupt(self) -> Stopped {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        self.wait(Duration::from_secs(15))
    }

    /// Waits for it to exit by itself (killing it after `timeout`) and collects what it wrote.
    pub fn wait(mut self, timeout: Duration) -> Stopped {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "nanotrader did not stop within {timeout:?}: {}",
                    String::from_utf8_lossy(&self.stderr.lock().unwrap())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for drain in self.drains.drain(..) {
            drain.join().unwrap();
        }
        Stopped {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
        }
    }

    /// What it has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// POST a control (`/api/control/resume`) as the page does, blocking: the status and the
    /// JSON body.
    pub fn post_json(&self, path: &str) -> (u16, serde_json::Value) {
        self.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-Nanotrader-Control: 1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            self.host()
        ))
    }

    /// GET `path` from its API, blocking (no async runtime needed): the status and the JSON body.
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host()
        ))
    }

    fn request(&self, request: &str) -> (u16, serde_json::Value) {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(self.host()).expect("the dashboard accepts connections");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
