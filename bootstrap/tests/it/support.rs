//! Shared by the bootstrap tests: a fresh database per test, the `herald` binary, and
//! a server process whose log is read line by line.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// The admin URL of the test server, found as `herald-tests` finds it (DESIGN §9):
/// `HERALD_TEST_DATABASE_URL`, else a Docker container, else a cluster from the local
/// PostgreSQL binaries; a failure says how to provide one (never a skip).
pub fn server_url() -> String {
    herald_tests::postgres::server_url()
}

/// A database named `herald_bootstrap_<uuid>` on the test server; [`TestDatabase::drop_now`]
/// removes it.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = server_url();
        let name = format!("herald_bootstrap_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connecting to the test server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("creating the test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("the test server's URL is a URL");
        url.set_path(&name);
        Self {
            admin_url,
            name,
            url: url.to_string(),
        }
    }

    /// The URL with a password added, for checking that it never shows (the test server
    /// trusts local connections, so the password is not checked).
    pub fn url_with_password(&self, password: &str) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        if url.username().is_empty() {
            url.set_username("postgres").unwrap();
        }
        url.set_password(Some(password)).unwrap();
        url.to_string()
    }

    pub async fn drop_now(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.ok();
    }
}

/// A fresh directory under the system's temporary directory, world-traversable so that the
/// `postgres` user can reach a built-in cluster inside it when the tests run as root.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A running `herald` process whose stderr (the log) is collected line by line.
#[derive(Debug)]
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Process {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_limited(args, &[], None)
    }

    /// [`Process::spawn`] with `envs` set and, when given, the process's limit on open files
    /// (`ulimit -n`, set by a shell that then becomes `herald`).
    pub fn spawn_limited(args: &[&str], envs: &[(&str, &str)], open_files: Option<u32>) -> Self {
        let mut command = match open_files {
            Some(limit) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(HERALD);
                command
            }
            None => Command::new(HERALD),
        };
        let mut child = command
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("HERALD_PG_CONNECTION_URL")
            // Any free port, so servers of parallel tests never clash on the default 3000.
            .env("HERALD_HTTP_ADDRESS", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting herald");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Reads the log until a line contains `text`; panics with the log so far after `timeout`.
    pub fn wait_for_line(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.iter().any(|line| line.contains(text)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => panic!(
                    "herald did not log {text:?} within {timeout:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit (killing it after `timeout`), then reads the rest of its
    /// log. Returns the exit status and how long it took.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "herald did not exit within {timeout:?}; log:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        // The rest of the log, until stderr closes; a child process still holding it (the
        // built-in cluster's server) does not keep this waiting.
        let rest = Instant::now() + Duration::from_secs(10);
        while Instant::now() < rest {
            match self.lines.recv_timeout(Duration::from_secs(2)) {
                Ok(line) => self.log.push(line),
                Err(_) => break,
            }
        }
        (status, took)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `herald` to completion: (status, stdout, stderr).
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let output = Command::new(HERALD)
        .args(args)
        .env_remove("HERALD_PG_CONNECTION_URL")
        .env("HERALD_HTTP_ADDRESS", "127.0.0.1:0")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("running herald");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
