//! The `herald server` process under test, and a client of its HTTP API.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use uuid::Uuid;

/// The notifier settings the drain runs with (the server's flags).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub lease_count: usize,
    pub buffer: usize,
    pub sync_interval_ms: u64,
}

#[derive(Debug)]
pub struct Server {
    child: Child,
    pub pid: u32,
    pub url: String,
    _data_dir: TempDir,
}

#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    pub fn start(
        herald: &Path,
        database_url: &str,
        receiver: &str,
        tuning: Tuning,
        extra: &[String],
    ) -> Result<Self> {
        let mut command = Command::new(herald);
        command
            .args(["server", "--postgres-url", database_url])
            .args([
                "--notifications-method",
                "webhook",
                "--notifications-webhook-endpoint",
                receiver,
                "--notifications-inbox-enabled=false",
                "--notifications-lease-count",
                &tuning.lease_count.to_string(),
                "--notifications-store-sync-buffer-size",
                &tuning.buffer.to_string(),
                "--notifications-store-sync-interval",
                &format!("{}ms", tuning.sync_interval_ms),
                "--log-filter",
                "info",
            ])
            .args(extra);
        Self::launch(command, None)
    }

    /// Starts `command` (`herald server` and its flags, possibly behind a wrapper such as
    /// `prlimit` that execs it) with a data directory of its own and the API on a free port,
    /// and returns once the API listens. Its log goes to `log` when given, else its warnings
    /// and errors to stderr.
    pub fn launch(mut command: Command, log: Option<PathBuf>) -> Result<Self> {
        let data_dir =
            std::env::temp_dir().join(format!("herald-bench-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data_dir)?;
        let data_dir = TempDir(data_dir);
        let mut child = command
            .arg("--data-dir")
            .arg(&data_dir.0)
            .args(["--http-address", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        let pid = child.id();
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let mut log = match log {
            Some(path) => Some(
                std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => None,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                match &mut log {
                    Some(file) => {
                        let _ = writeln!(file, "{line}");
                    }
                    // Warnings and errors of the server under test are part of the result.
                    None if line.contains("WARN") || line.contains("ERROR") => {
                        eprintln!("herald: {line}");
                    }
                    None => {}
                }
            }
        });
        let mut server = Self {
            child,
            pid,
            url: String::new(),
            _data_dir: data_dir,
        };
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| anyhow!("herald server did not start within 60 s"))?;
            if let Some(rest) = line.split("HTTP API listening on http://").nth(1) {
                let address = rest.split('/').next().unwrap_or_default();
                server.url = format!("http://{address}");
                break;
            }
        }
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(server)
    }

    /// Ends the server with SIGKILL (no shutdown of its own) and waits for it.
    #[allow(
        dead_code,
        reason = "the chaos suite's (tests/chaos), which shares this module"
    )]
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's resident set now, in bytes.
    #[allow(
        dead_code,
        reason = "the chaos suite's (tests/chaos), which shares this module"
    )]
    pub fn rss(&self) -> Result<u64> {
        self.status_kib("VmRSS:").map(|kib| kib * 1024)
    }

    fn status_kib(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .ok_or_else(|| anyhow!("no {field} in /proc/{}/status", self.pid))?;
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("unreadable {line:?}"))
    }

    /// The server's peak resident set since the last [`Server::reset_peak_rss`], in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        self.status_kib("VmHWM:").map(|kib| kib * 1024)
    }

    /// Starts a new peak-RSS measurement (Linux: `5` to `/proc/<pid>/clear_refs`).
    pub fn reset_peak_rss(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .context("resetting the peak RSS (/proc/<pid>/clear_refs)")
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Creates the benchmark's owner with `herald users create`; returns its token.
pub fn create_owner(herald: &Path, database_url: &str) -> Result<String> {
    create_user(herald, database_url, "bench", "owner")
}

/// Creates a user `username` (email `<username>@example.com`) holding `roles` (comma-separated)
/// with `herald users create`; returns its token.
pub fn create_user(
    herald: &Path,
    database_url: &str,
    username: &str,
    roles: &str,
) -> Result<String> {
    let out = Command::new(herald)
        .args([
            "users",
            "create",
            "--postgres-url",
            database_url,
            "--email",
            &format!("{username}@example.com"),
            "--username",
            username,
            "--roles",
            roles,
        ])
        .output()
        .context("running herald users create")?;
    if !out.status.success() {
        bail!(
            "herald users create failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A client of the API with one bearer token; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Result<Self> {
        Ok(Self {
            // Every client connection stays open between requests, whatever `--clients` is.
            http: reqwest::Client::builder().build()?,
            base: format!("{base}/api/v2"),
            auth: format!("Bearer {token}"),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value)> {
        self.send_keyed(method, path, body, None).await
    }

    /// [`Api::send`] with an `Idempotency-Key` header when `key` is given.
    async fn send_keyed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request
            .body(serde_json::to_vec(body)?)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, value))
    }

    /// `GET path` (under `/api/v2`): the status and the JSON body.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    pub async fn set_paused(&self, paused: bool) -> Result<()> {
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                "/notifications/settings",
                &json!({ "notifier_paused": paused }),
            )
            .await?;
        if status != 200 && status != 304 {
            bail!("PUT /notifications/settings answered {status}: {body}");
        }
        Ok(())
    }

    /// `PUT /notifications/templates/{id}/method`: events of `template` go out by `method`.
    pub async fn set_template_method(&self, template: Uuid, method: &str) -> Result<()> {
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                &format!("/notifications/templates/{template}/method"),
                &json!({ "method": method }),
            )
            .await?;
        if status != 200 && status != 304 {
            bail!("PUT /notifications/templates/{template}/method answered {status}: {body}");
        }
        Ok(())
    }

    /// `POST /notifications/events`; the ids of the queued messages.
    pub async fn event(&self, event: &Value) -> Result<Vec<Uuid>> {
        self.event_keyed(event, None).await
    }

    /// `POST /notifications/events` with an `Idempotency-Key` header when `key` is given; the
    /// ids of the queued messages.
    pub async fn event_keyed(&self, event: &Value, key: Option<&str>) -> Result<Vec<Uuid>> {
        let (status, body) = self
            .send_keyed(reqwest::Method::POST, "/notifications/events", event, key)
            .await?;
        if status != 202 {
            bail!("POST /notifications/events answered {status}: {body}");
        }
        message_ids(&body)
    }

    /// `POST /notifications/events/batch`; the ids of the queued messages, all events together.
    pub async fn batch(&self, events: &[Value]) -> Result<Vec<Uuid>> {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/notifications/events/batch",
                &json!({ "events": events }),
            )
            .await?;
        if status != 202 {
            bail!("POST /notifications/events/batch answered {status}: {body}");
        }
        let mut ids = Vec::new();
        for result in body["results"]
            .as_array()
            .ok_or_else(|| anyhow!("no results in {body}"))?
        {
            ids.extend(message_ids(result)?);
        }
        Ok(ids)
    }
}

fn message_ids(result: &Value) -> Result<Vec<Uuid>> {
    if let Some(skipped) = result["skipped"].as_array()
        && !skipped.is_empty()
    {
        bail!("recipients were skipped: {skipped:?}");
    }
    result["message_ids"]
        .as_array()
        .ok_or_else(|| anyhow!("no message_ids in {result}"))?
        .iter()
        .map(|id| {
            id.as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| anyhow!("bad message id {id}"))
        })
        .collect()
}

/// CPU time (user + system) a process has used, in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// CPU time used so far by every process named `postgres` (the server and its backends,
/// including ones that already exited are not counted: take the difference over a span in
/// which the connections stay open).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "postgres")
                .then(|| cpu_seconds(&pid))
                .flatten()
        })
        .sum()
}

/// CPU used by the server, PostgreSQL and this process (the receiver and clients).
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub herald: f64,
    pub postgres: f64,
    pub bench: f64,
}

impl CpuSample {
    pub fn take(server: &Server) -> Self {
        Self {
            herald: cpu_seconds(&server.pid.to_string()).unwrap_or(0.0),
            postgres: postgres_cpu_seconds(),
            bench: cpu_seconds("self").unwrap_or(0.0),
        }
    }

    /// The CPU seconds each spent since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            herald: self.herald - earlier.herald,
            postgres: self.postgres - earlier.postgres,
            bench: self.bench - earlier.bench,
        }
    }

    /// CPU microseconds per message spent by each since `earlier`.
    pub fn per_message_since(&self, earlier: &Self, messages: usize) -> String {
        let spent = self.since(earlier);
        let per = |seconds: f64| seconds * 1e6 / messages as f64;
        format!(
            "CPU per message: herald {:.0} µs, postgres {:.0} µs, receiver+clients {:.0} µs",
            per(spent.herald),
            per(spent.postgres),
            per(spent.bench)
        )
    }
}
