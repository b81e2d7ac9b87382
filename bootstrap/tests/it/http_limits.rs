//! The limits `herald server` puts on HTTP clients (hardening finding 3): slow-header clients
//! and idle kept-alive connections are closed, a flood of them cannot keep a health check
//! out even when the server has few file descriptors, and the inbox watch streams outlive
//! every timeout. Each test runs the real binary; the limits are set through the
//! environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::running::{self, Api, Server};
use crate::support::TestDatabase;

/// The address of a server's `http://host:port` URL.
fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// `GET /healthz` over a fresh connection; the status, or why there is none.
async fn health_check(address: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|err| format!("write: {err}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|err| format!("read: {err}"))?;
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))
}

/// Waits until the server closes `stream` (a read ends or fails); the time it took, or
/// `None` after `patience`.
async fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let deadline = started + patience;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One slow-header client: connects, then sends a request's head one byte a second. The
/// time from connecting until the server closed the connection, or `None` if it was still
/// open after `patience`.
async fn dribble(address: String, patience: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(&address).await.ok()?;
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Slow: ";
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut buf = [0u8; 1024];
    for byte in head.iter().cycle() {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(_) => {}
            },
            _ = ticks.tick() => {
                if stream.write_all(&[*byte]).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
        if started.elapsed() > patience {
            return None;
        }
    }
    None
}

const SLOW_CLIENTS: usize = 300;
/// Below what the slow clients need, so that without a connection limit they would use up
/// the server's file descriptors.
const OPEN_FILES: u32 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_header_clients_are_closed_and_cannot_keep_out_a_health_check() {
    let db = TestDatabase::create().await;
    let header_read_timeout = Duration::from_secs(2);
    let server = Server::start_limited(
        &db.url,
        &[],
        &[("HERALD_HTTP_HEADER_READ_TIMEOUT", "2s")],
        Some(OPEN_FILES),
    );
    let address = address(&server);

    let patience = Duration::from_secs(12);
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(dribble(address.clone(), patience)))
        .collect();
    // Health checks while the slow clients hold (or try to hold) every connection, from once
    // their first burst of connections was accepted: a check connecting inside that burst may
    // be the longest-waiting connection when hundreds more arrive before its request is read,
    // and be closed to make room (a race of the same millisecond, which a client's retry
    // answers; the steady attack is what must not keep checks out).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut checks = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(200));
    let checking = Instant::now();
    while checking.elapsed() < header_read_timeout * 2 {
        every.tick().await;
        let started = Instant::now();
        let answer = timeout(Duration::from_secs(2), health_check(&address)).await;
        checks.push((started.elapsed(), answer));
    }
    let mut lifetimes = Vec::new();
    for client in slow {
        lifetimes.push(client.await.unwrap());
    }

    let unanswered: Vec<_> = checks
        .iter()
        .filter(|(took, answer)| !matches!(answer, Ok(Ok(200))) || *took > Duration::from_secs(1))
        .collect();
    assert!(
        unanswered.is_empty(),
        "health checks not answered promptly: {unanswered:?} of {}",
        checks.len()
    );
    let still_open = lifetimes
        .iter()
        .filter(|lifetime| lifetime.is_none())
        .count();
    assert_eq!(still_open, 0, "slow clients left open after {patience:?}");
    let too_late: Vec<_> = lifetimes
        .iter()
        .flatten()
        .filter(|lifetime| **lifetime > header_read_timeout + Duration::from_millis(1500))
        .collect();
    assert!(
        too_late.is_empty(),
        "slow clients closed later than the header-read timeout: {too_late:?}"
    );

    // Those admitted were closed by the timeout, the others to make room for newer ones.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped = |reason: &str| -> u64 {
        let name = format!("herald_http_connections_dropped_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&name))
            .map_or(0, |value| value.trim().parse().unwrap())
    };
    assert!(dropped("header_timeout") > 0, "{metrics}");
    assert!(dropped("made_room") > 0, "{metrics}");
    assert_eq!(
        dropped("header_timeout") + dropped("made_room"),
        SLOW_CLIENTS as u64,
        "{metrics}"
    );
    let log = server.stop();
    assert!(log.contains("HTTP connection limit reached"), "{log}");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let db = TestDatabase::create().await;
    let server = Server::start_limited(
        &db.url,
        &[],
        &[
            ("HERALD_HTTP_IDLE_TIMEOUT", "1s"),
            ("HERALD_HTTP_HEADER_READ_TIMEOUT", "20s"),
        ],
        None,
    );
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    while !String::from_utf8_lossy(&response).contains("{\"status\":\"ok\"}") {
        let mut buf = [0u8; 1024];
        let read = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "closed before answering");
        response.extend_from_slice(&buf[..read]);
    }
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"),
        "{response:?}"
    );

    // Kept alive, then closed after the idle timeout, long before the header-read one.
    let closed = closed_within(&mut stream, Duration::from_secs(10)).await;
    let closed = closed.expect("the idle connection was still open after 10s");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    server.stop();
    db.drop_now().await;
}

/// A server whose every timeout is short, and an owner's token.
fn hurried_server(db: &TestDatabase) -> (Server, String) {
    let token = running::create_user(&db.url, "ann", "owner");
    let server = Server::start_limited(
        &db.url,
        &[],
        &[
            ("HERALD_HTTP_HEADER_READ_TIMEOUT", "1s"),
            ("HERALD_HTTP_IDLE_TIMEOUT", "1s"),
            ("HERALD_HTTP_REQUEST_TIMEOUT", "1s"),
        ],
        None,
    );
    (server, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_watch_streams_outlive_every_timeout() {
    let db = TestDatabase::create().await;
    let (server, token) = hurried_server(&db);
    let address = address(&server);
    let watch = "/api/v2/notifications/inbox/watch";

    let mut request = format!("ws://{address}{watch}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut events = TcpStream::connect(&address).await.unwrap();
    events
        .write_all(
            format!(
                "GET {watch} HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    // Three times every timeout, the WebSocket client pinging as clients do.
    let quiet_until = Instant::now() + Duration::from_secs(3);
    let mut pings = tokio::time::interval(Duration::from_millis(300));
    while Instant::now() < quiet_until {
        pings.tick().await;
        socket.send(Message::Ping(vec![1].into())).await.unwrap();
        let pong = timeout(Duration::from_secs(2), socket.next())
            .await
            .expect("no pong")
            .expect("the WebSocket ended")
            .unwrap();
        assert!(matches!(pong, Message::Pong(_)), "{pong:?}");
    }

    let api = Api::new(&server.url, &token);
    let (status, body) = api
        .post(
            "/notifications/custom",
            &json!({"content": {"title": "Still there", "message": "after the timeouts"}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let update = loop {
        let message = timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no notification on the WebSocket")
            .expect("the WebSocket ended")
            .unwrap();
        if let Message::Text(text) = message {
            break text.to_string();
        }
    };
    assert!(update.contains("Still there"), "{update}");
    let mut stream = Vec::new();
    while !String::from_utf8_lossy(&stream).contains("Still there") {
        let mut buf = [0u8; 4096];
        let read = timeout(Duration::from_secs(10), events.read(&mut buf))
            .await
            .expect("no notification on the event stream")
            .unwrap();
        assert!(
            read > 0,
            "the event stream ended: {:?}",
            String::from_utf8_lossy(&stream)
        );
        stream.extend_from_slice(&buf[..read]);
    }
    drop(socket);
    drop(events);
    server.stop();
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_whose_body_dribbles_is_answered_503_after_the_request_timeout() {
    let db = TestDatabase::create().await;
    let (server, token) = hurried_server(&db);
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    let body = json!({"content": {"title": "Slow", "message": "body"}}).to_string();
    stream
        .write_all(
            format!(
                "POST /api/v2/notifications/custom HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                &body[..5]
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let read = timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "no answer within 10s");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 503"),
        "{response:?} after {:?}",
        started.elapsed()
    );
    assert!(response.contains("took too long"), "{response}");
    server.stop();
    db.drop_now().await;
}
