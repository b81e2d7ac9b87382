//! The webhook receiver the drain and latency scenarios deliver to: an HTTP/1.1 server with
//! keep-alive that answers 200 and records, per message id, when it first arrived and how many
//! times it came (and how large the bodies were). With a latency tail set, one request in so
//! many waits before its answer, as real receivers now and then do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use uuid::Uuid;

#[derive(Debug, Default)]
struct Seen {
    first: HashMap<Uuid, Instant>,
    repeats: usize,
    unreadable: usize,
    body_bytes: usize,
    requests: usize,
    /// Every `.0`-th request waits `.1` before its answer.
    tail: Option<(usize, Duration)>,
}

/// A running receiver; it stops with the process.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Seen>>,
}

async fn hook(State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let id = headers
        .get("x-message-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok());
    let wait = {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.requests += 1;
        seen.body_bytes += body.len();
        match id {
            Some(id) => {
                if seen.first.insert(id, now).is_some() {
                    seen.repeats += 1;
                }
            }
            None => seen.unreadable += 1,
        }
        seen.tail
            .filter(|(every, _)| seen.requests % every == 0)
            .map(|(_, wait)| wait)
    };
    if let Some(wait) = wait {
        tokio::time::sleep(wait).await;
    }
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Result<Self> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the webhook receiver")?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(seen.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("bench: the webhook receiver stopped: {err}");
            }
        });
        Ok(Self {
            url: format!("http://{address}/hook"),
            seen,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets everything received so far (between scenarios).
    pub fn reset(&self) {
        let mut seen = self.lock();
        *seen = Seen {
            tail: seen.tail,
            ..Seen::default()
        };
    }

    /// From now on every `every`-th request waits `wait` before its answer (`None`: none).
    pub fn set_tail(&self, tail: Option<(usize, Duration)>) {
        self.lock().tail = tail;
    }

    /// The mean size of the request bodies received since the last reset.
    pub fn mean_body_bytes(&self) -> usize {
        let seen = self.lock();
        seen.body_bytes.checked_div(seen.requests).unwrap_or(0)
    }

    /// How many distinct messages arrived.
    pub fn received(&self) -> usize {
        self.lock().first.len()
    }

    /// Messages per second from `started` to the last of `arrivals`.
    pub fn rate_since(started: Instant, arrivals: &[Instant]) -> f64 {
        let last = arrivals.iter().max().copied().unwrap_or(started);
        arrivals.len() as f64 / last.duration_since(started).as_secs_f64()
    }

    /// Waits until every one of `expected` arrived, then checks that each came exactly once
    /// and nothing else came. Returns when each first arrived, in `expected`'s order.
    pub async fn expect_exactly(
        &self,
        expected: &[Uuid],
        within: Duration,
    ) -> Result<Vec<Instant>> {
        let (times, repeats) = self.expect_each(expected, within).await?;
        if repeats > 0 {
            bail!("{repeats} messages were delivered more than once");
        }
        Ok(times)
    }

    /// As [`Receiver::expect_exactly`], but a message that came more than once is counted, not
    /// an error: returns when each first arrived, and how many deliveries were repeats.
    pub async fn expect_each(
        &self,
        expected: &[Uuid],
        within: Duration,
    ) -> Result<(Vec<Instant>, usize)> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received >= expected.len() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the receiver got {received} of {} messages within {within:?}: messages were lost",
                    expected.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Anything still in flight (a duplicate) would arrive now.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = self.lock();
        if seen.unreadable > 0 {
            bail!(
                "{} webhook requests carried no X-Message-Id",
                seen.unreadable
            );
        }
        let mut times = Vec::with_capacity(expected.len());
        for id in expected {
            match seen.first.get(id) {
                Some(at) => times.push(*at),
                None => bail!("message {id} never reached the receiver"),
            }
        }
        if seen.first.len() != expected.len() {
            bail!(
                "the receiver got {} distinct messages, {} were queued: unexpected deliveries",
                seen.first.len(),
                expected.len()
            );
        }
        Ok((times, seen.repeats))
    }
}
