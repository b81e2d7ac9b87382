//! A lean WebDriver client for the browser tests: Debian's Chromium, headless, driven by
//! `chromedriver` through the W3C WebDriver protocol — plain JSON over HTTP/1.1 on a local
//! socket, so the tests need no WebDriver crate. [`Browser::start`] fails, saying how to
//! install the packages, when they are missing: the browser tests never skip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The Escape key, for [`Browser::press`].
pub const ESCAPE: &str = "\u{E00C}";

/// How long a wait for something on a page lasts before the test fails.
pub const PAGE_WAIT: Duration = Duration::from_secs(15);

const INSTALL: &str = "the browser tests drive Chromium through chromedriver: install them \
                       with `apt-get install -y chromium chromium-driver` (Debian), or put a \
                       `chromedriver` matching your Chromium on PATH (CHROMEDRIVER names \
                       another; CHROMIUM names the browser binary)";

/// A headless Chromium session, ended (and its driver stopped) when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    /// Names the screenshots: `target/ui-screenshots/<test>.png`.
    test: String,
}

/// A found element's WebDriver reference.
#[derive(Debug, Clone)]
pub struct Element(String);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromium_binary() -> String {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return path;
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.to_owned();
        }
    }
    panic!("no Chromium found: {INSTALL}");
}

impl Browser {
    /// Starts `chromedriver` on a free port and a headless Chromium session, a phone-wide
    /// window when `narrow`.
    pub fn start(test: &str) -> Self {
        Self::start_sized(test, 1000, 800)
    }

    pub fn start_sized(test: &str, width: u32, height: u32) -> Self {
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {driver_path} ({err}): {INSTALL}"));
        let binary = chromium_binary();
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
            test: test.to_owned(),
        };
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            if let Ok(status) = browser.call("GET", "/status", None)
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready: {INSTALL}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let created = browser
            .call(
                "POST",
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": binary,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--hide-scrollbars",
                                 format!("--window-size={width},{height}")],
                    },
                }}})),
            )
            .unwrap_or_else(|err| panic!("cannot start a Chromium session ({err}): {INSTALL}"));
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session in {created}: {INSTALL}"))
            .to_owned();
        browser
    }

    /// One WebDriver command: the answer's JSON, or the error it carries.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|err| err.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .map_err(|err| err.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .map_err(|err| err.to_string())?;
        let mut chunked = false;
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|err| err.to_string())?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut bytes = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).map_err(|err| err.to_string())?;
                let size = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
                if size == 0 {
                    break;
                }
                let mut chunk = vec![0; size + 2];
                reader
                    .read_exact(&mut chunk)
                    .map_err(|err| err.to_string())?;
                bytes.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            bytes.resize(length, 0);
            reader
                .read_exact(&mut bytes)
                .map_err(|err| err.to_string())?;
        } else {
            reader
                .read_to_end(&mut bytes)
                .map_err(|err| err.to_string())?;
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|err| err.to_string())?;
        if status_line.split(' ').nth(1) != Some("200") {
            return Err(format!("{} {}", status_line.trim(), value["value"]));
        }
        Ok(value)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|err| panic!("WebDriver {method} {path}: {err}"))["value"]
            .clone()
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The page's HTML now.
    pub fn source(&self) -> String {
        self.session_call("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs `script` in the page (its `return` value).
    pub fn run(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The elements matching a CSS selector now.
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.session_call(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            Element(
                e.as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
    }

    /// The first element matching `css`, waiting for one to appear.
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("an element {css}"), || {
            self.all(css).into_iter().next()
        })
    }

    pub fn text(&self, element: &Element) -> String {
        self.session_call("GET", &format!("/element/{}/text", element.0), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The text of the first element matching `css`.
    pub fn text_of(&self, css: &str) -> String {
        self.text(&self.find(css))
    }

    pub fn click(&self, element: &Element) {
        self.session_call(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        );
    }

    pub fn type_into(&self, element: &Element, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        );
    }

    /// The first element matching `css` inside the open shadow root of the element matching
    /// `host`, waiting for one to appear (a custom element's insides).
    pub fn find_in_shadow(&self, host: &str, css: &str) -> Element {
        let host_element = self.find(host);
        let root = self.session_call("GET", &format!("/element/{}/shadow", host_element.0), None);
        let root = root
            .as_object()
            .and_then(|root| root.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{host} has no open shadow root: {root}"))
            .to_owned();
        self.wait_for(&format!("an element {css} in {host}"), || {
            self.session_call(
                "POST",
                &format!("/shadow/{root}/elements"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .as_array()
            .unwrap()
            .first()
            .and_then(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .map(Element)
        })
    }

    /// Presses one key (a WebDriver key code such as [`ESCAPE`]) where the focus is.
    pub fn press(&self, key: &str) {
        self.session_call(
            "POST",
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": key},
                    {"type": "keyUp", "value": key},
                ]}]}),
            ),
        );
    }

    /// Polls `probe` until it gives a value; fails the test naming `what` after
    /// [`PAGE_WAIT`], with a screenshot of the page as it was.
    pub fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot_named(&format!("{}-failed", self.test));
                panic!(
                    "waited {PAGE_WAIT:?} for {what}; the page ({}) is in {}:\n{}",
                    self.url(),
                    shot.display(),
                    self.source()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves the page as `target/ui-screenshots/<test>.png`; returns the path.
    pub fn screenshot(&self) -> PathBuf {
        self.screenshot_named(&self.test.clone())
    }

    /// Saves the page as `target/ui-screenshots/<name>.png`; returns the path.
    pub fn screenshot_named(&self, name: &str) -> PathBuf {
        let png = self.session_call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// `target/ui-screenshots` in the workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("ui-screenshots")
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
