//! `herald users create` and the HTTP API `herald server` serves, end to end against a fresh
//! database on the test server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{self, Process, TestDatabase};

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn request(address: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The address from the server's "HTTP API listening on http://…/api/v2" log line.
fn listening_address(log: &[String]) -> String {
    let line = log
        .iter()
        .find(|line| line.contains("HTTP API listening on http://"))
        .unwrap();
    let after = line.split("http://").nth(1).unwrap();
    after.split('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_create_prints_only_a_token_that_authenticates_against_the_server() {
    let db = TestDatabase::create().await;
    let (status, stdout, stderr) = support::run(
        &[
            "users",
            "create",
            "--email",
            "ann@example.com",
            "--username",
            "ann",
            "--name",
            "Ann",
            "--roles",
            "owner,member",
            "--postgres-url",
            &db.url,
        ],
        &[],
    );
    assert!(status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let token = stdout.trim().to_owned();
    assert!(
        token.len() >= 43
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{token}"
    );

    // The same username again is refused in one line on stderr, nothing on stdout.
    let (status, stdout, stderr) = support::run(
        &[
            "users",
            "create",
            "--email",
            "ann2@example.com",
            "--username",
            "ann",
            "--roles",
            "member",
            "--postgres-url",
            &db.url,
        ],
        &[],
    );
    assert!(!status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("username"), "{stderr}");
    let (status, _, stderr) = support::run(
        &[
            "users",
            "create",
            "--email",
            "x@example.com",
            "--username",
            "x",
            "--roles",
            "king",
            "--postgres-url",
            &db.url,
        ],
        &[],
    );
    assert!(!status.success());
    assert!(stderr.starts_with("herald: --roles:"), "{stderr}");

    let data_dir = support::temp_dir("herald-http-test");
    let mut server = Process::spawn(&[
        "server",
        "--postgres-url",
        &db.url,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--http-address",
        "127.0.0.1:0",
    ]);
    server.wait_for_line("HTTP API listening on", Duration::from_secs(30));
    let address = listening_address(&server.log);

    let (status, body) = request(&address, "GET", "/api/v2/users/me", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"username\":\"ann\""), "{body}");
    assert!(body.contains("\"roles\":[\"owner\",\"member\"]"), "{body}");
    let (status, _) = request(&address, "GET", "/api/v2/users/me", Some("wrong"));
    assert_eq!(status, 401);
    let (status, body) = request(&address, "GET", "/readyz", None);
    assert_eq!(status, 200, "{body}");

    server.signal("TERM");
    let (status, _) = server.wait_for_exit(Duration::from_secs(10));
    let log = server.log.join("\n");
    assert!(status.success(), "log:\n{log}");
    assert!(log.contains("HTTP API stopped"), "{log}");
    assert!(!log.contains(&token), "the log shows the token:\n{log}");
    std::fs::remove_dir_all(&data_dir).ok();
    db.drop_now().await;
}
