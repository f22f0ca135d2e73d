//! Headless Chromium for the browser tests, driven over the DevTools protocol (a WebSocket on
//! loopback): open a page, evaluate JavaScript in it, press keys, take a screenshot. The
//! browser is Debian's `chromium` (or `SCBE_CHROMIUM`); nothing is installed at run time: a
//! missing browser is an error that says how to install it. The process and its profile
//! directory are removed on drop, also when a test fails.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Where Chromium is: `SCBE_CHROMIUM`, else the first of the usual names on the `PATH`.
pub fn chromium() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SCBE_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(
        "the browser test needs Chromium and found none on the PATH: install Debian's \
         package (`apt-get install -y chromium`; .ci/run does) or set SCBE_CHROMIUM to a \
         Chromium or Chrome binary"
            .into(),
    )
}

/// A headless browser with one page, attached.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium headless with a fresh profile and opens `url` in a page of `width` x
    /// `height` CSS pixels.
    pub fn open(url: &str, width: u32, height: u32) -> Result<Self, String> {
        let exe = chromium()?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new(&exe)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
            }
        });
        let ws_url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("Chromium did not open its DevTools endpoint within 60 s".into());
            }
        };
        let mut browser = Self::attach(child, profile, &ws_url)?;
        let target = browser.call(
            "Target.createTarget",
            json!({ "url": "about:blank", "newWindow": false }),
            false,
        )?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or("no targetId")?
            .to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
            false,
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or("no sessionId")?
            .to_string();
        browser.page("Page.enable", json!({}))?;
        browser.page("Runtime.enable", json!({}))?;
        browser.page(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )?;
        browser.page("Page.navigate", json!({ "url": url }))?;
        Ok(browser)
    }

    fn attach(child: Child, profile: tempfile::TempDir, ws_url: &str) -> Result<Self, String> {
        let rest = ws_url.strip_prefix("ws://").ok_or("not a ws:// URL")?;
        let host = rest.split('/').next().ok_or("no host")?;
        if !host.starts_with("127.") {
            return Err(format!("DevTools endpoint {host} is not on loopback"));
        }
        let stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let (socket, _) = tungstenite::client(ws_url, stream).map_err(|e| e.to_string())?;
        Ok(Self {
            child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 1,
        })
    }

    /// One DevTools command (to the page's session unless `browser_level`); its result.
    fn call(&mut self, method: &str, params: Value, on_page: bool) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if on_page {
            msg["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(msg.to_string()))
            .map_err(|e| format!("{method}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if Instant::now() > deadline {
                return Err(format!("{method}: no answer within 60 s"));
            }
            let m = self.socket.read().map_err(|e| format!("{method}: {e}"))?;
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
            // Events (no id) and answers to nothing we wait for are passed over.
            if v["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(e) = v.get("error") {
                return Err(format!("{method}: {e}"));
            }
            return Ok(v["result"].clone());
        }
    }

    fn page(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.call(method, params, true)
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value as JSON.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.page(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("script failed: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `expression` until it is `true`, for at most `within`.
    pub fn until(&mut self, what: &str, expression: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if self.eval(expression)? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Presses a key (e.g. "Tab") as a user would.
    pub fn press(&mut self, key: &str) -> Result<(), String> {
        for kind in ["rawKeyDown", "keyUp"] {
            self.page(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": key, "code": key,
                        "windowsVirtualKeyCode": if key == "Tab" { 9 } else { 0 } }),
            )?;
        }
        Ok(())
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        let r = self.page(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        )?;
        let data = r["data"].as_str().ok_or("no screenshot data")?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| e.to_string())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
