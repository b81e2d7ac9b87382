//! `GET /notifications/inbox/watch`: the caller's new inbox notifications, live.
//!
//! One route, two transports: a WebSocket when the request asks to upgrade (text frames), or
//! Server-Sent Events when it accepts `text/event-stream` (`event: notification` records and
//! keep-alive comments). Anything else is a 400 saying which to use. Each update is
//! `{"notification": {…as in the inbox listing…}, "unread_count": n}`; `format=markdown`
//! puts the Markdown sources in `title`/`content` instead of the plain text (the default,
//! `format=plaintext`).
//!
//! The watcher subscribes to the inbox feed of the caller only, before the response is sent,
//! so whatever is delivered after the upgrade (or the SSE response head) reaches it. It is
//! refused before the upgrade when the caller has their most watchers open on this replica
//! (429) or the replica holds its most watchers (503), with a JSON error naming the limit. An
//! open watch ends when its token stops authenticating or its user is suspended
//! ([`herald_application::Watching`]): a WebSocket is closed with code 1008 and the reason, an
//! SSE stream just ends.
//!
//! Authentication is the usual bearer token. Browsers' `WebSocket` and `EventSource` cannot
//! set an `Authorization` header, so this route alone also takes the token as `?token=` when
//! no `Authorization` header is sent (prefer the header elsewhere: query strings end up in
//! access logs).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use herald_application::ports::TokenHash;
use herald_application::{Inbox, Watch, WatchEnd};
use herald_domain::InboxNotification;

use crate::extract::{Caller, QueryPairs, bearer_token};
use crate::inbox::UpdateJson;
use crate::{ApiError, State as ApiState};

/// How often an idle SSE stream sends a keep-alive comment.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Whether `title`/`content` carry plain text or Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    PlainText,
    Markdown,
}

pub(crate) async fn watch(
    State(api): State<ApiState>,
    query: QueryPairs,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Who, first: a 401 comes before any complaint about the request.
    let token = match query.one("token") {
        Some(token) if !headers.contains_key(header::AUTHORIZATION) => token,
        _ => bearer_token(&headers)?,
    };
    let caller = Caller::with_token(&api, token).await?;
    let format = match query.one("format") {
        None | Some("plaintext") => Format::PlainText,
        Some("markdown") => Format::Markdown,
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("{other:?} is not one of plaintext, markdown"),
            ));
        }
    };
    let wants_socket = headers.contains_key(header::UPGRADE);
    if !wants_socket && !accepts_event_stream(&headers) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Not a watch request.",
            "open a WebSocket (Upgrade: websocket) or send Accept: text/event-stream for Server-Sent Events",
        ));
    }
    let upgrade = if wants_socket {
        Some(upgrade.map_err(|rejection| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid WebSocket upgrade.",
                rejection.body_text(),
            )
        })?)
    } else {
        None
    };
    let watch = api
        .services
        .watching()
        .open(caller.0.id, TokenHash::of(token))
        .await?;
    let watcher = Watcher {
        watch,
        inbox: api.services.inbox().clone(),
        format,
    };
    Ok(match upgrade {
        Some(upgrade) => upgrade
            .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
            .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
            .on_upgrade(move |socket| watcher.serve_socket(socket)),
        None => watcher.serve_events().into_response(),
    })
}

/// The largest message (and frame) a watcher's client may send: clients send nothing but
/// pings and the close handshake, so a large message only costs the server memory (the
/// WebSocket library's own limit is 64 MiB); one over it ends the connection.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;

/// An open watch as Server-Sent Events of plain-text updates (the web inbox's live part).
pub(crate) fn events(watch: Watch, inbox: Inbox) -> Response {
    Watcher {
        watch,
        inbox,
        format: Format::PlainText,
    }
    .serve_events()
    .into_response()
}

/// Whether the `Accept` headers name `text/event-stream`.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// One live watcher: the caller's watch and how to render what arrives.
#[derive(Debug)]
struct Watcher {
    watch: Watch,
    inbox: Inbox,
    format: Format,
}

impl Watcher {
    /// The next update as JSON, or why the watch ended.
    async fn next_update(&mut self) -> Result<String, WatchEnd> {
        let notification = self.watch.next().await?;
        self.render(notification).await.ok_or(WatchEnd::FeedEnded)
    }

    /// A notification as an update, with the caller's unread count now.
    async fn render(&self, mut notification: InboxNotification) -> Option<String> {
        let user = self.watch.user();
        if notification.user_id != user {
            // The feed promises this never happens; never leak another user's notification.
            tracing::error!(user = %user, "http: the inbox feed offered another user's notification");
            return None;
        }
        let unread_count = match self.inbox.unread_count(user).await {
            Ok(count) => count,
            Err(err) => {
                tracing::warn!(user = %user, error = %err, "http: inbox watch ended: cannot count unread notifications");
                return None;
            }
        };
        if self.format == Format::Markdown {
            notification.title.clone_from(&notification.title_markdown);
            notification
                .content
                .clone_from(&notification.content_markdown);
        }
        match serde_json::to_string(&UpdateJson::new(&notification, unread_count)) {
            Ok(json) => Some(json),
            Err(err) => {
                tracing::error!(error = %err, "http: inbox watch ended: cannot serialize an update");
                None
            }
        }
    }

    /// Text frames until the client closes or the watch ends; pings are answered by the
    /// socket.
    async fn serve_socket(mut self, mut socket: WebSocket) {
        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    // Closed (the close handshake is answered by the socket) or broken.
                    None | Some(Err(_) | Ok(Message::Close(_))) => return,
                    // Pongs to pings go out with the next read or write; clients send nothing else.
                    Some(Ok(_)) => {}
                },
                // Only cancel-safe futures race here: a notification taken is always sent.
                next = self.watch.next() => {
                    let update = match next {
                        Ok(notification) => self.render(notification).await.ok_or(WatchEnd::FeedEnded),
                        Err(end) => Err(end),
                    };
                    let json = match update {
                        Ok(json) => json,
                        Err(end) => {
                            let code = match end {
                                WatchEnd::FeedEnded => close_code::AWAY,
                                WatchEnd::Revoked | WatchEnd::Suspended => close_code::POLICY,
                            };
                            let close = CloseFrame {
                                code,
                                reason: end.reason().into(),
                            };
                            // The client may already be gone.
                            let _ = socket.send(Message::Close(Some(close))).await;
                            return;
                        }
                    };
                    if socket.send(Message::Text(json.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// `event: notification` records with keep-alive comments, until the watch ends.
    fn serve_events(self) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
        let stream = futures_util::stream::unfold(self, |mut watcher| async move {
            let json = watcher.next_update().await.ok()?;
            let event = Event::default().event("notification").data(json);
            Some((Ok(event), watcher))
        });
        Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
    }
}
