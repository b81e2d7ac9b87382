//! `GET /notifications/inbox/watch`: the real router served on a TCP port over PostgreSQL,
//! watched with a WebSocket client and an SSE client. Notifications travel the real path: a
//! custom notification is enqueued through the API, a notifier with the inbox dispatcher
//! delivers it (stored, then published on the PostgreSQL feed), and the watcher receives it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::{SinkExt as _, StreamExt as _};
use herald_application::ports::SystemClock;
use herald_application::{Limits, WatchLimits};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

use super::support::{App, Caller};

const WATCH: &str = "/api/v2/notifications/inbox/watch";
const PATIENCE: Duration = Duration::from_secs(10);

/// Serves the app's router on a fresh local port.
async fn serve(app: &App) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// Sends the caller a custom notification through the API, and delivers it with a notifier
/// that has the inbox dispatcher.
async fn deliver_custom(app: &App, caller: &Caller, title: &str, message: &str) {
    app.post(
        "/api/v2/notifications/custom",
        caller,
        json!({"content": {"title": title, "message": message}}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let mut notifier = app.services.notifier("watch-test");
    notifier.run_cycle().await.unwrap();
    let flushed = notifier.flush().await;
    assert!(flushed.sent >= 1, "nothing delivered: {flushed:?}");
}

/// The same notification, in the same shape as the inbox listing (timestamps aside: the
/// store keeps microseconds).
fn same_as_listed(watched: &Value, listed: &Value) {
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(watched), keys(listed), "{watched} vs {listed}");
    for key in [
        "id",
        "user_id",
        "template_id",
        "targets",
        "title",
        "content",
        "actions",
    ] {
        assert_eq!(watched[key], listed[key], "{key}: {watched} vs {listed}");
    }
}

/// A plain-HTTP client (reqwest is built without a TLS provider of its own).
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

type Socket = WebSocketStream<TcpStream>;

async fn connect(addr: SocketAddr, query: &str, token: &str) -> Result<Socket, tungstenite::Error> {
    let mut request = format!("ws://{addr}{WATCH}{query}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let stream = TcpStream::connect(addr).await.unwrap();
    client_async(request, stream)
        .await
        .map(|(socket, _)| socket)
}

/// The next data frame (text), skipping control frames.
async fn next_update(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("no update in time")
            .expect("the socket ended")
            .unwrap();
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// An SSE stream: reads the body chunk by chunk into records.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(addr: SocketAddr, query: &str, token: &str) -> Events {
        let response = http()
            .get(format!("http://{addr}{WATCH}{query}"))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The data of the next `notification` event, skipping keep-alive comments.
    async fn next_update(&mut self) -> Value {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let record: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in record.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = Some(name.trim().to_owned());
                    } else if let Some(chunk) = line.strip_prefix("data:") {
                        data.push_str(chunk.trim_start());
                    }
                }
                if event.as_deref() == Some("notification") {
                    return serde_json::from_str(&data).unwrap();
                }
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("no event in time")
                .unwrap()
                .expect("the stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Whether the server ends the stream within [`PATIENCE`] (keep-alives aside).
    async fn ends(&mut self) -> bool {
        tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(_)) = self.response.chunk().await {}
        })
        .await
        .is_ok()
    }
}

/// The status and JSON body of a refused WebSocket handshake.
fn refused(result: Result<Socket, tungstenite::Error>) -> (StatusCode, Value) {
    match result {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or_else(|err| {
                panic!("not JSON ({err}): {:?}", String::from_utf8_lossy(&body))
            });
            (
                StatusCode::from_u16(response.status().as_u16()).unwrap(),
                json,
            )
        }
        Err(other) => panic!("failed otherwise: {other}"),
        Ok(_) => panic!("the watcher was let in"),
    }
}

/// The close frame the server ends the socket with, within [`PATIENCE`].
async fn close_frame(socket: &mut Socket) -> (u16, String) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("not a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("the socket stayed open")
}

/// 1008: the socket's user may no longer watch.
const POLICY_VIOLATION: u16 = 1008;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_watcher_receives_new_notifications_with_the_unread_count() {
    let app = App::start().await;
    let addr = serve(&app).await;
    let mut socket = connect(addr, "", &app.member.token).await.unwrap();

    // Pings are answered.
    socket.send(Message::Ping("hi".into())).await.unwrap();
    let pong = tokio::time::timeout(PATIENCE, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong("hi".into()));

    deliver_custom(&app, &app.member, "Build done", "It **passed**.").await;
    let update = next_update(&mut socket).await;
    let listed = app
        .get("/api/v2/notifications/inbox", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(update["unread_count"], listed["unread_count"]);
    assert!(update["unread_count"].as_u64().unwrap() >= 1, "{update}");
    // Same shape as the listing, plain text by default.
    same_as_listed(&update["notification"], &listed["notifications"][0]);
    assert_eq!(update["notification"]["user_id"], json!(app.member.user.id));
    // A custom message is the caller's literal text: plain as sent, escaped in Markdown.
    assert_eq!(update["notification"]["content"], "It **passed**.");

    // A second one counts up.
    deliver_custom(&app, &app.member, "Build done again", "Still fine.").await;
    let second = next_update(&mut socket).await;
    assert_eq!(
        second["unread_count"].as_u64().unwrap(),
        update["unread_count"].as_u64().unwrap() + 1
    );

    // The client closes; the server answers the close handshake.
    socket.close(None).await.unwrap();
    let end = tokio::time::timeout(PATIENCE, async {
        while let Some(frame) = socket.next().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the server did not close the socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_watcher_receives_new_notifications_with_the_unread_count() {
    let app = App::start().await;
    let addr = serve(&app).await;
    let mut events = Events::open(addr, "", &app.member.token).await;

    deliver_custom(&app, &app.member, "Build done", "It **passed**.").await;
    let update = events.next_update().await;
    let listed = app
        .get("/api/v2/notifications/inbox", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(update["unread_count"], listed["unread_count"]);
    same_as_listed(&update["notification"], &listed["notifications"][0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_never_sees_another_users_notifications() {
    let app = App::start().await;
    let addr = serve(&app).await;
    let mut socket = connect(addr, "", &app.other.token).await.unwrap();
    let mut events = Events::open(addr, "", &app.other.token).await;

    deliver_custom(&app, &app.member, "For the member", "Not for other.").await;
    deliver_custom(&app, &app.other, "For other", "Yours.").await;

    // The first thing each of other's watchers gets is other's own notification.
    for update in [next_update(&mut socket).await, events.next_update().await] {
        assert_eq!(update["notification"]["user_id"], json!(app.other.user.id));
        assert_eq!(update["notification"]["title"], "For other", "{update}");
        assert_eq!(update["unread_count"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_markdown_carries_the_markdown() {
    let app = App::start().await;
    let addr = serve(&app).await;
    let mut socket = connect(addr, "?format=markdown", &app.member.token)
        .await
        .unwrap();
    let mut events = Events::open(addr, "?format=plaintext", &app.member.token).await;

    deliver_custom(&app, &app.member, "Build done", "It **passed**.").await;
    let markdown = next_update(&mut socket).await;
    let plain = events.next_update().await;
    // The caller's literal text, escaped as Markdown so it renders as sent.
    assert_eq!(
        markdown["notification"]["content"], r"It \*\*passed\*\*\.",
        "{markdown}"
    );
    assert_eq!(
        markdown["notification"]["content"],
        markdown["notification"]["content_markdown"]
    );
    assert_eq!(
        markdown["notification"]["title"],
        markdown["notification"]["title_markdown"]
    );
    assert_eq!(
        plain["notification"]["content"], "It **passed**.",
        "{plain}"
    );
    assert_eq!(markdown["notification"]["id"], plain["notification"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_needs_a_token_a_transport_and_a_known_format() {
    let app = App::start().await;
    let addr = serve(&app).await;

    app.raw(axum::http::Method::GET, WATCH, None, Vec::new())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    app.raw(
        axum::http::Method::GET,
        WATCH,
        Some("not-a-token"),
        Vec::new(),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    match connect(addr, "", "not-a-token").await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let sse = http()
        .get(format!("http://{addr}{WATCH}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::UNAUTHORIZED);

    let plain = app
        .get(WATCH, &app.member)
        .await
        .expect(StatusCode::BAD_REQUEST);
    let detail = plain.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("WebSocket") && detail.contains("text/event-stream"),
        "{detail}"
    );

    let bad = app
        .get(&format!("{WATCH}?format=html"), &app.member)
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(bad["field"], "format", "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_may_pass_the_token_in_the_query() {
    let app = App::start().await;
    let addr = serve(&app).await;
    // Browsers' WebSocket cannot send an Authorization header.
    let request = format!("ws://{addr}{WATCH}?token={}", app.member.token)
        .into_client_request()
        .unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut socket, _) = client_async(request, stream).await.unwrap();
    // Nor can EventSource.
    let events = http()
        .get(format!("http://{addr}{WATCH}?token={}", app.member.token))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);

    deliver_custom(&app, &app.member, "Hello", "Browser.").await;
    let update = next_update(&mut socket).await;
    assert_eq!(update["notification"]["user_id"], json!(app.member.user.id));

    app.raw(
        axum::http::Method::GET,
        &format!("{WATCH}?token=not-a-token"),
        None,
        Vec::new(),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sending_a_large_message_is_disconnected() {
    let app = App::start().await;
    let addr = serve(&app).await;
    let mut socket = connect(addr, "", &app.member.token).await.unwrap();

    // A small message is fine: the connection still answers pings.
    socket
        .send(Message::Binary(vec![0; 1024].into()))
        .await
        .unwrap();
    socket.send(Message::Ping("hi".into())).await.unwrap();
    let pong = tokio::time::timeout(PATIENCE, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong("hi".into()));

    // One over the limit ends the connection.
    let big = vec![0; herald_http::watch::MAX_CLIENT_MESSAGE_BYTES + 1];
    let _ = socket.send(Message::Binary(big.into())).await;
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server kept a connection sending a large message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_are_capped_per_user_and_in_all_and_a_closed_one_frees_its_slot() {
    let limits = Limits {
        watchers: WatchLimits::new(2, 3).unwrap(),
        ..Limits::default()
    };
    let app = App::start_with(limits, Arc::new(SystemClock)).await;
    let addr = serve(&app).await;
    let mut first = connect(addr, "", &app.member.token).await.unwrap();
    let _second = Events::open(addr, "", &app.member.token).await;

    // A third of the member's, by either transport: 429 naming the limit, before the upgrade.
    let (status, body) = refused(connect(addr, "", &app.member.token).await);
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["limit"], "inbox.max_watchers_per_user", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 2 inbox watchers per user"),
        "{body}"
    );
    let sse = http()
        .get(format!("http://{addr}{WATCH}"))
        .bearer_auth(&app.member.token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::TOO_MANY_REQUESTS);

    // The server's third and last slot; then everyone is refused with 503.
    let _others = connect(addr, "", &app.other.token).await.unwrap();
    let (status, body) = refused(connect(addr, "", &app.admin.token).await);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["limit"], "inbox.max_watchers", "{body}");
    let metrics = app.get("/metrics", &app.owner).await.expect(StatusCode::OK);
    assert!(
        metrics.text().contains("\nherald_inbox_watchers 3\n"),
        "{}",
        metrics.text()
    );

    // The member closes one: its slot goes back, and another user gets in.
    first.close(None).await.unwrap();
    let freed = tokio::time::timeout(PATIENCE, async {
        while app.services.watching().open_count() > 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(freed.is_ok(), "the closed watcher kept its slot");
    connect(addr, "", &app.admin.token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_when_its_token_is_revoked() {
    let app = App::start().await;
    let addr = serve(&app).await;
    let mut socket = connect(addr, "", &app.member.token).await.unwrap();
    let mut events = Events::open(addr, "", &app.member.token).await;
    let mut others = connect(addr, "", &app.other.token).await.unwrap();

    app.services
        .tokens()
        .revoke_all(app.member.user.id)
        .await
        .unwrap();

    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, POLICY_VIOLATION);
    assert!(reason.contains("revoked"), "{reason}");
    assert!(events.ends().await, "the SSE stream went on");
    // Another user's watch goes on.
    others.send(Message::Ping("hi".into())).await.unwrap();
    let pong = tokio::time::timeout(PATIENCE, others.next()).await.unwrap();
    assert_eq!(pong.unwrap().unwrap(), Message::Pong("hi".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_when_its_user_is_deleted_or_suspended() {
    let app = App::start().await;
    let addr = serve(&app).await;
    let mut deleted = connect(addr, "", &app.member.token).await.unwrap();
    let mut deleted_events = Events::open(addr, "", &app.member.token).await;
    let mut suspended = connect(addr, "", &app.other.token).await.unwrap();

    app.send(
        axum::http::Method::DELETE,
        &format!("/api/v2/users/{}", app.member.user.id),
        &app.admin,
        Value::Null,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let other = &app.other.user;
    app.put(
        &format!("/api/v2/users/{}", other.id),
        &app.admin,
        json!({
            "email": other.email.as_str(),
            "username": other.username.as_str(),
            "name": "",
            "roles": ["member"],
            "status": "suspended",
        }),
    )
    .await
    .expect(StatusCode::OK);

    assert_eq!(close_frame(&mut deleted).await.0, POLICY_VIOLATION);
    assert!(deleted_events.ends().await, "the SSE stream went on");
    let (code, reason) = close_frame(&mut suspended).await;
    assert_eq!(code, POLICY_VIOLATION);
    assert!(reason.contains("suspended"), "{reason}");
}
