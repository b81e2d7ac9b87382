//! Shared by the tests of the client commands: a `herald server` on a free port, an owner
//! created with `herald users create`, and a small JSON client for checking what the server
//! holds.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Process};

/// A running server and its data directory (removed on drop).
#[derive(Debug)]
pub struct Server {
    pub process: Process,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    data_dir: PathBuf,
}

impl Server {
    /// Starts `herald server` on `database_url` with `extra` options and waits until it
    /// listens.
    pub fn start(database_url: &str, extra: &[&str]) -> Self {
        Self::start_limited(database_url, extra, &[], None)
    }

    /// [`Server::start`] with `envs` set and, when given, a limit on open files.
    pub fn start_limited(
        database_url: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
        open_files: Option<u32>,
    ) -> Self {
        let data_dir = support::temp_dir("herald-client-test");
        let mut args = vec![
            "server",
            "--postgres-url",
            database_url,
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--http-address",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let mut process = Process::spawn_limited(&args, envs, open_files);
        process.wait_for_line("HTTP API listening on", Duration::from_secs(30));
        let line = process
            .log
            .iter()
            .find(|line| line.contains("HTTP API listening on http://"))
            .unwrap();
        let address = line
            .split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        Self {
            process,
            url: format!("http://{address}"),
            data_dir,
        }
    }

    /// Stops the server with SIGTERM and checks it exits cleanly; returns its log.
    pub fn stop(mut self) -> String {
        self.process.signal("TERM");
        let (status, _) = self.process.wait_for_exit(Duration::from_secs(15));
        let log = self.process.log.join("\n");
        assert!(status.success(), "log:\n{log}");
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.data_dir).ok();
    }
}

/// `herald users create … --roles <roles>` on the database; the token.
pub fn create_user(database_url: &str, username: &str, roles: &str) -> String {
    let email = format!("{username}@example.com");
    let (status, stdout, stderr) = support::run(
        &[
            "users",
            "create",
            "--email",
            &email,
            "--username",
            username,
            "--roles",
            roles,
            "--postgres-url",
            database_url,
        ],
        &[],
    );
    assert!(status.success(), "stdout: {stdout}\nstderr: {stderr}");
    stdout.trim().to_owned()
}

/// Runs a client command with `HERALD_URL`/`HERALD_TOKEN` unset, so only the arguments
/// count: (status, stdout, stderr).
pub fn herald(args: &[&str]) -> (ExitStatus, String, String) {
    let output = std::process::Command::new(support::HERALD)
        .args(args)
        .env_remove("HERALD_URL")
        .env_remove("HERALD_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running herald");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a client command that must succeed; its stdout.
pub fn herald_ok(args: &[&str]) -> String {
    let (status, stdout, stderr) = herald(args);
    assert!(
        status.success(),
        "herald {args:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

/// A JSON client for the API.
#[derive(Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(server_url: &str, token: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            // A server that stops answering fails the test instead of hanging it.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("{server_url}/api/v2"),
            token: token.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// POSTs `body`; the status and the body (`Null` when empty).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    /// Polls `GET path` until `done` holds for its body; panics with the last body after
    /// `timeout`.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} did not reach the expected state within {timeout:?}; last: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
