//! The server `herald server` runs the HTTP API on: axum's, behind limits that keep slow or
//! greedy clients from holding the process's sockets (and with them its file descriptors).
//!
//! - **Header read**: a connection must deliver a request's head (request line and headers)
//!   within the header-read timeout, counted from its acceptance for its first request and
//!   from the first byte of each later one. A slow-header client (slowloris) is closed.
//! - **Idle**: a kept-alive connection is closed when no byte of a next request arrives within
//!   the idle timeout.
//! - **Request**: a request must be answered (its body read, its handler run) within the
//!   request timeout, else 503. Only the response head is timed: the body of a stream (the
//!   inbox watch's Server-Sent Events) and an upgraded WebSocket run as long as they last.
//! - **Connections**: at most `max_connections` are open. One more makes room by closing the
//!   open connection that has waited longest for a request (a slow-header one, or an idle
//!   one); when every connection is busy with a request or a stream, the new one is answered
//!   503 and closed. So a flood of slow connections cannot keep out a client that sends its
//!   request at once, such as a health check.
//!
//! The timeouts are kept by each connection's socket ([`GuardedIo`]): the service wrapped
//! around the router ([`Tracked`]) tells it whether a request is in progress, and a read
//! past the deadline of the present wait fails, which makes hyper close the connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::serve::{IncomingStream, Listener};
use herald_application::ConfigError;
use herald_application::config::MAX_DURATION;
use herald_http::ApiError;
use herald_http::metrics::{ConnectionMetrics, DropReason};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::Service;

/// The configuration keys of [`HttpLimits`], as its errors name them.
pub mod keys {
    pub const HEADER_READ_TIMEOUT: &str = "http.header_read_timeout";
    pub const IDLE_TIMEOUT: &str = "http.idle_timeout";
    pub const REQUEST_TIMEOUT: &str = "http.request_timeout";
    pub const MAX_CONNECTIONS: &str = "http.max_connections";
}

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The most a request's head may take to arrive.
    pub header_read_timeout: Duration,
    /// The most a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// The most a request may take to be answered (stream bodies excepted).
    pub request_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

/// File descriptors left to the rest of the process (database, SMTP and webhook connections,
/// the built-in cluster's pipes, logs) when the connection limit is derived from the
/// process's limit on open files.
pub const FILES_KEPT_FOR_THE_REST: u64 = 128;
/// The connection limit when the limit on open files cannot be read.
pub const FALLBACK_MAX_CONNECTIONS: usize = 1024;

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(open_files_limit()),
        }
    }
}

impl HttpLimits {
    /// # Errors
    /// [`ConfigError`] naming the first limit that is zero or a timeout over 7 days.
    pub fn validate(self) -> Result<Self, ConfigError> {
        let timeouts = [
            (keys::HEADER_READ_TIMEOUT, self.header_read_timeout),
            (keys::IDLE_TIMEOUT, self.idle_timeout),
            (keys::REQUEST_TIMEOUT, self.request_timeout),
        ];
        for (key, value) in timeouts {
            if value.is_zero() {
                return Err(ConfigError::new(key, "must be greater than zero"));
            }
            if value > MAX_DURATION {
                return Err(ConfigError::new(
                    key,
                    format!("must be at most 7 days ({value:?} given)"),
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                keys::MAX_CONNECTIONS,
                "must be at least 1",
            ));
        }
        Ok(self)
    }
}

/// The process's soft limit on open files (`ulimit -n`), when it can be read and is not
/// unlimited.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The connection limit for a limit on open files: all of them but those the rest of the
/// process needs (half of them, when the limit is very low).
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    match open_files {
        Some(limit) => {
            let connections = limit - FILES_KEPT_FOR_THE_REST.min(limit / 2);
            usize::try_from(connections).unwrap_or(usize::MAX).max(1)
        }
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets requests in progress finish and closes idle connections.
///
/// # Errors
/// Never in practice: axum's server reports no error of its own (accept errors are logged
/// and retried).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    metrics: ConnectionMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listener = GuardedListener {
        listener,
        connections: Arc::new(Connections {
            limits,
            metrics,
            table: Mutex::new(Table::default()),
        }),
    };
    let per_connection = PerConnection {
        router,
        request_timeout: limits.request_timeout,
    };
    axum::serve(listener, per_connection)
        .with_graceful_shutdown(shutdown)
        .await
}

/// How often, at most, the connection limit is reported in the log while it holds.
const LIMIT_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// How long to wait before accepting again after the process ran out of file descriptors.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The connections open, for the connection limit.
#[derive(Debug)]
struct Connections {
    limits: HttpLimits,
    metrics: ConnectionMetrics,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    open: HashMap<u64, Arc<Connection>>,
    next_id: u64,
    /// Connections closed to make room, and refused, since the limit was last reported.
    made_room: u64,
    refused: u64,
    last_report: Option<Instant>,
}

impl Connections {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection: a free one, or one taken from the connection that has
    /// waited longest for a request. `None` when every connection is busy.
    fn admit(&self, now: Instant) -> Option<Arc<Connection>> {
        let mut table = self.table();
        if table.open.len() >= self.limits.max_connections {
            let longest_waiting = table
                .open
                .values()
                .filter_map(|connection| connection.waiting_since().map(|s| (s, connection)))
                .min_by_key(|(since, _)| *since)
                .map(|(_, connection)| connection.clone());
            match longest_waiting {
                Some(connection) => {
                    connection.make_room();
                    table.open.remove(&connection.id);
                    table.made_room += 1;
                    self.metrics.dropped(DropReason::MadeRoom);
                }
                None => {
                    table.refused += 1;
                    self.metrics.dropped(DropReason::Refused);
                }
            }
            self.report_limit(&mut table, now);
            if table.open.len() >= self.limits.max_connections {
                return None;
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let connection = Arc::new(Connection {
            id,
            state: Mutex::new(ConnectionState {
                phase: Phase::Waiting {
                    since: now,
                    first_byte: None,
                    kept_alive: false,
                },
                made_room: false,
                reader: None,
            }),
        });
        table.open.insert(id, connection.clone());
        self.metrics.opened();
        Some(connection)
    }

    fn report_limit(&self, table: &mut Table, now: Instant) {
        if table
            .last_report
            .is_some_and(|last| now.duration_since(last) < LIMIT_REPORT_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            max_connections = self.limits.max_connections,
            closed_waiting = table.made_room,
            refused = table.refused,
            "HTTP connection limit reached: closing the connections that wait longest for a \
             request, refusing new ones while every connection is busy"
        );
        table.last_report = Some(now);
        table.made_room = 0;
        table.refused = 0;
    }

    fn remove(&self, id: u64) {
        self.table().open.remove(&id);
        self.metrics.closed();
    }
}

/// One accepted connection, shared by its socket and its service.
#[derive(Debug)]
struct Connection {
    id: u64,
    state: Mutex<ConnectionState>,
}

#[derive(Debug)]
struct ConnectionState {
    phase: Phase,
    /// Closed to make room for a new connection.
    made_room: bool,
    /// The task reading the socket, woken when the connection is closed to make room.
    reader: Option<Waker>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's head.
    Waiting {
        /// Since acceptance, or since the last response.
        since: Instant,
        /// The first byte of the request since then.
        first_byte: Option<Instant>,
        /// Whether a request was answered before on this connection.
        kept_alive: bool,
    },
    /// Requests in progress (their responses not sent in full).
    Busy { requests: usize },
    /// A WebSocket: no longer HTTP.
    Upgraded,
}

/// When a read must have succeeded, and what it means if not.
enum Deadline {
    None,
    At(Instant, DropReason),
    MadeRoom,
}

impl Connection {
    fn state(&self) -> MutexGuard<'_, ConnectionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn waiting_since(&self) -> Option<Instant> {
        match self.state().phase {
            Phase::Waiting { since, .. } => Some(since),
            Phase::Busy { .. } | Phase::Upgraded => None,
        }
    }

    fn make_room(&self) {
        let mut state = self.state();
        state.made_room = true;
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }

    /// The deadline of the present wait; remembers `waker` for [`Connection::make_room`].
    fn deadline(&self, limits: &HttpLimits, waker: &Waker) -> Deadline {
        let mut state = self.state();
        if state.made_room {
            return Deadline::MadeRoom;
        }
        match &state.reader {
            Some(reader) if reader.will_wake(waker) => {}
            _ => state.reader = Some(waker.clone()),
        }
        match state.phase {
            Phase::Waiting {
                since,
                first_byte,
                kept_alive,
            } => match (kept_alive, first_byte) {
                (false, _) => Deadline::At(
                    since + limits.header_read_timeout,
                    DropReason::HeaderTimeout,
                ),
                (true, None) => Deadline::At(since + limits.idle_timeout, DropReason::IdleTimeout),
                (true, Some(first)) => Deadline::At(
                    first + limits.header_read_timeout,
                    DropReason::HeaderTimeout,
                ),
            },
            Phase::Busy { .. } | Phase::Upgraded => Deadline::None,
        }
    }

    fn bytes_arrived(&self, now: Instant) {
        if let Phase::Waiting {
            first_byte: first_byte @ None,
            ..
        } = &mut self.state().phase
        {
            *first_byte = Some(now);
        }
    }

    fn request_started(&self) {
        let mut state = self.state();
        state.phase = match state.phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            Phase::Waiting { .. } => Phase::Busy { requests: 1 },
            Phase::Upgraded => Phase::Upgraded,
        };
    }

    fn request_finished(&self) {
        let mut state = self.state();
        state.phase = match state.phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            Phase::Busy { .. } | Phase::Waiting { .. } => Phase::Waiting {
                since: Instant::now(),
                first_byte: None,
                kept_alive: true,
            },
            Phase::Upgraded => Phase::Upgraded,
        };
        // The reader may be waiting without a deadline, set while the request was busy.
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }

    fn upgraded(&self) {
        self.state().phase = Phase::Upgraded;
    }
}

/// The listener: admits connections within the limit.
#[derive(Debug)]
struct GuardedListener {
    listener: TcpListener,
    connections: Arc<Connections>,
}

/// What a refused connection is told before it is closed.
fn refusal() -> String {
    let body = r#"{"message":"Too many connections.","detail":"the server is at its connection limit and every connection is busy; try again"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Listener for GuardedListener {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, address) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    if !matches!(
                        err.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) {
                        // Out of file descriptors, most likely: wait for some to close.
                        tracing::error!(error = %err, "http: cannot accept connections");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    }
                    continue;
                }
            };
            let now = Instant::now();
            match self.connections.admit(now) {
                Some(connection) => {
                    let io = GuardedIo {
                        stream,
                        connection,
                        connections: self.connections.clone(),
                        timer: Box::pin(tokio::time::sleep_until(now)),
                    };
                    return (io, address);
                }
                None => {
                    // Best effort: the socket's buffer takes the answer at once, or it is
                    // not sent.
                    let _ = stream.try_write(refusal().as_bytes());
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An admitted connection's socket: keeps the timeouts, and frees its place when dropped.
#[derive(Debug)]
struct GuardedIo {
    stream: TcpStream,
    connection: Arc<Connection>,
    connections: Arc<Connections>,
    timer: Pin<Box<Sleep>>,
}

impl GuardedIo {
    /// An error when the present wait is over (the connection is then closed).
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let limits = &self.connections.limits;
        match self.connection.deadline(limits, cx.waker()) {
            Deadline::None => None,
            Deadline::MadeRoom => {
                Some(io::Error::other("closed to make room for a new connection"))
            }
            Deadline::At(at, reason) => {
                if self.timer.deadline() != at {
                    self.timer.as_mut().reset(at);
                }
                if self.timer.as_mut().poll(cx).is_ready() {
                    self.connections.metrics.dropped(reason);
                    tracing::debug!(
                        connection = self.connection.id,
                        reason = reason.as_str(),
                        "http: closing a connection"
                    );
                    Some(io::Error::new(io::ErrorKind::TimedOut, reason.as_str()))
                } else {
                    None
                }
            }
        }
    }
}

impl Drop for GuardedIo {
    fn drop(&mut self) {
        self.connections.remove(self.connection.id);
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(err) = this.check_deadline(cx) {
            return Poll::Ready(Err(err));
        }
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > filled {
            this.connection.bytes_arrived(Instant::now());
        }
        read
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Builds each connection's service: the router, tracked.
#[derive(Debug, Clone)]
struct PerConnection {
    router: Router,
    request_timeout: Duration,
}

impl<'a> Service<IncomingStream<'a, GuardedListener>> for PerConnection {
    type Response = Tracked;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Tracked, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, GuardedListener>) -> Self::Future {
        std::future::ready(Ok(Tracked {
            router: self.router.clone(),
            connection: stream.io().connection.clone(),
            request_timeout: self.request_timeout,
        }))
    }
}

/// The router for one connection: tells the connection when a request is in progress, and
/// answers 503 to one not answered within the request timeout.
#[derive(Debug, Clone)]
struct Tracked {
    router: Router,
    connection: Arc<Connection>,
    request_timeout: Duration,
}

impl Service<Request> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let in_progress = InProgress::start(self.connection.clone());
        let answer = self.router.call(request);
        let timeout = self.request_timeout;
        Box::pin(async move {
            let response = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => too_long(timeout),
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                in_progress.upgraded();
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(Sending {
                    body,
                    _in_progress: in_progress,
                })
            }))
        })
    }
}

/// The answer to a request not answered within the request timeout.
fn too_long(timeout: Duration) -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The request took too long.",
        format!(
            "it was not answered within {timeout:?}: it was sent too slowly, or the server is overloaded"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request in progress on its connection, until dropped (its response sent in full, or
/// abandoned) or upgraded.
#[derive(Debug)]
struct InProgress(Option<Arc<Connection>>);

impl InProgress {
    fn start(connection: Arc<Connection>) -> Self {
        connection.request_started();
        Self(Some(connection))
    }

    fn upgraded(mut self) {
        if let Some(connection) = self.0.take() {
            connection.upgraded();
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            connection.request_finished();
        }
    }
}

/// A response body being sent: its request is in progress until hyper drops it.
#[derive(Debug)]
struct Sending {
    body: Body,
    _in_progress: InProgress,
}

impl HttpBody for Sending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_leaves_files_for_the_rest_of_the_process() {
        assert_eq!(
            default_max_connections(Some(1024)),
            1024 - FILES_KEPT_FOR_THE_REST as usize
        );
        assert_eq!(default_max_connections(Some(64)), 32);
        assert_eq!(default_max_connections(Some(1)), 1);
        assert_eq!(default_max_connections(None), FALLBACK_MAX_CONNECTIONS);
    }

    #[test]
    fn zero_limits_are_refused_naming_the_key() {
        let zero_timeout = HttpLimits {
            idle_timeout: Duration::ZERO,
            ..HttpLimits::default()
        };
        assert_eq!(
            zero_timeout.validate().map_err(|err| err.key),
            Err(keys::IDLE_TIMEOUT)
        );
        let no_connections = HttpLimits {
            max_connections: 0,
            ..HttpLimits::default()
        };
        assert_eq!(
            no_connections.validate().map_err(|err| err.key),
            Err(keys::MAX_CONNECTIONS)
        );
    }
}
