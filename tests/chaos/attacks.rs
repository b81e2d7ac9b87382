//! What the scenarios do to the server besides delivering: watch `/healthz`, dribble headers
//! on many sockets, flood it with junk bearer tokens, open and close inbox watchers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::client_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use uuid::Uuid;

/// How often `/healthz` is asked, and how long an answer may take before it counts as none.
const HEALTH_EVERY: Duration = Duration::from_millis(250);
const HEALTH_PATIENCE: Duration = Duration::from_secs(2);

/// `/healthz` of one server, asked on a new connection every [`HEALTH_EVERY`] until
/// [`Health::finish`].
#[derive(Debug)]
pub struct Health {
    stop: Arc<AtomicBool>,
    task: JoinHandle<HealthFigures>,
}

#[derive(Debug, Clone, Default)]
pub struct HealthFigures {
    pub checks: usize,
    pub failures: usize,
    pub slowest: Duration,
    /// What the first failure was.
    pub first_failure: Option<String>,
}

impl HealthFigures {
    pub fn add(&mut self, other: &Self) {
        self.checks += other.checks;
        self.failures += other.failures;
        self.slowest = self.slowest.max(other.slowest);
        if self.first_failure.is_none() {
            self.first_failure.clone_from(&other.first_failure);
        }
    }
}

impl Health {
    pub fn watch(base: &str) -> Result<Self> {
        // A new connection each time: an attack on accepting connections must show here.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(HEALTH_PATIENCE)
            .build()?;
        let url = format!("{base}/healthz");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut figures = HealthFigures::default();
            while !stopped.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let failure = match http.get(&url).send().await {
                    Ok(response) if response.status().is_success() => None,
                    Ok(response) => Some(format!("/healthz answered {}", response.status())),
                    Err(err) if err.is_timeout() => Some(format!(
                        "/healthz did not answer within {}s",
                        HEALTH_PATIENCE.as_secs()
                    )),
                    Err(err) => Some(format!("/healthz: {err}")),
                };
                figures.checks += 1;
                figures.slowest = figures.slowest.max(asked.elapsed());
                if let Some(failure) = failure {
                    figures.failures += 1;
                    figures.first_failure.get_or_insert(failure);
                }
                tokio::time::sleep(HEALTH_EVERY.saturating_sub(asked.elapsed())).await;
            }
            figures
        });
        Ok(Self { stop, task })
    }

    pub async fn finish(self) -> HealthFigures {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// Sockets that send a request line and then one byte of a header every second, never
/// finishing it (slowloris).
#[derive(Debug)]
pub struct SlowHeaders {
    stop: Arc<AtomicBool>,
    task: JoinHandle<SlowFigures>,
}

#[derive(Debug, Clone, Default)]
pub struct SlowFigures {
    /// Sockets connected (of those tried).
    pub opened: usize,
    pub tried: usize,
    /// Sockets the server closed (or answered) while they dribbled.
    pub closed_by_server: usize,
}

impl SlowHeaders {
    pub async fn start(address: SocketAddr, sockets: usize) -> Self {
        let mut connecting = JoinSet::new();
        for _ in 0..sockets {
            connecting.spawn(async move {
                let stream =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(address))
                        .await
                        .ok()?
                        .ok()?;
                stream
                    .writable()
                    .await
                    .ok()
                    .and_then(|()| {
                        stream
                            .try_write(b"GET /healthz HTTP/1.1\r\nHost: chaos\r\nX-Slow: ")
                            .ok()
                    })
                    .map(|_| stream)
            });
        }
        let mut open = Vec::new();
        while let Some(stream) = connecting.join_next().await {
            if let Ok(Some(stream)) = stream {
                open.push(Some(stream));
            }
        }
        let mut figures = SlowFigures {
            opened: open.len(),
            tried: sockets,
            closed_by_server: 0,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                for slot in &mut open {
                    let Some(stream) = slot else { continue };
                    let closed = match stream.try_read(&mut buf) {
                        // The end of the stream, or an answer (408): the server let go.
                        Ok(_) => true,
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                            matches!(stream.try_write(b"a"), Err(err) if err.kind() != std::io::ErrorKind::WouldBlock)
                        }
                        Err(_) => true,
                    };
                    if closed {
                        figures.closed_by_server += 1;
                        *slot = None;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            figures
        });
        Self { stop, task }
    }

    /// Stops dribbling and closes every socket.
    pub async fn finish(self) -> SlowFigures {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct JunkFigures {
    pub sent: usize,
    /// Answers by status.
    pub answers: BTreeMap<u16, usize>,
    /// Requests that got no answer (timeout, connection refused or reset).
    pub unanswered: usize,
    pub first_error: Option<String>,
}

impl JunkFigures {
    /// The requests answered otherwise than 401.
    pub fn not_401(&self) -> usize {
        self.unanswered
            + self
                .answers
                .iter()
                .filter(|(status, _)| **status != 401)
                .map(|(_, n)| n)
                .sum::<usize>()
    }
}

/// `total` event requests with junk bearer tokens, `concurrency` at a time: every other one
/// shaped like a Herald token (`herald_` and 43 base64url characters), the others not.
pub async fn junk_tokens(base: &str, total: usize, concurrency: usize) -> Result<JunkFigures> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{base}/api/v2/notifications/events");
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        workers.spawn(async move {
            let mut figures = JunkFigures::default();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let token = if figures.sent % 2 == 0 {
                    token_shaped()
                } else {
                    format!("junk-{}", Uuid::new_v4())
                };
                figures.sent += 1;
                let answer = http
                    .post(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(r#"{"template_name":"Test Notification","labels":{}}"#)
                    .send()
                    .await;
                match answer {
                    Ok(response) => {
                        *figures
                            .answers
                            .entry(response.status().as_u16())
                            .or_default() += 1;
                    }
                    Err(err) => {
                        figures.unanswered += 1;
                        figures.first_error.get_or_insert(err.to_string());
                    }
                }
            }
            figures
        });
    }
    let mut all = JunkFigures::default();
    while let Some(figures) = workers.join_next().await {
        let figures = figures?;
        all.sent += figures.sent;
        all.unanswered += figures.unanswered;
        for (status, n) in figures.answers {
            *all.answers.entry(status).or_default() += n;
        }
        if all.first_error.is_none() {
            all.first_error = figures.first_error;
        }
    }
    Ok(all)
}

/// `herald_` and 43 random base64url characters: shaped as Herald issues tokens, issued never.
fn token_shaped() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let random: Vec<u8> = (0..3).flat_map(|_| Uuid::new_v4().into_bytes()).collect();
    let tail: String = random
        .iter()
        .take(43)
        .map(|byte| char::from(ALPHABET[usize::from(byte % 64)]))
        .collect();
    format!("herald_{tail}")
}

#[derive(Debug, Clone, Default)]
pub struct WatcherFigures {
    pub opened: usize,
    /// Upgrades refused, by answer.
    pub refused: BTreeMap<String, usize>,
}

/// Opens `total` inbox watchers (WebSocket), `at_once` at a time: a wave is opened, then
/// closed, before the next. Watcher `i` uses `tokens[i % tokens.len()]`.
pub async fn watchers(
    address: SocketAddr,
    tokens: &[String],
    total: usize,
    at_once: usize,
) -> Result<WatcherFigures> {
    let mut figures = WatcherFigures::default();
    let mut started = 0;
    while started < total {
        let wave = at_once.min(total - started);
        let mut opening = JoinSet::new();
        for i in started..started + wave {
            let token = tokens[i % tokens.len()].clone();
            opening.spawn(async move {
                let mut request = format!("ws://{address}/api/v2/notifications/inbox/watch")
                    .into_client_request()?;
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                let stream = TcpStream::connect(address).await?;
                anyhow::Ok(client_async(request, stream).await)
            });
        }
        let mut open = Vec::new();
        while let Some(result) = opening.join_next().await {
            match result? {
                Ok(Ok((socket, _))) => open.push(socket),
                Ok(Err(err)) => {
                    let why = match err {
                        tokio_tungstenite::tungstenite::Error::Http(response) => {
                            format!("HTTP {}", response.status().as_u16())
                        }
                        other => other.to_string(),
                    };
                    *figures.refused.entry(why).or_default() += 1;
                }
                Err(err) => {
                    *figures.refused.entry(err.to_string()).or_default() += 1;
                }
            }
        }
        figures.opened += open.len();
        for mut socket in open {
            let _ = socket.close(None).await;
        }
        started += wave;
    }
    if figures.opened == 0 {
        return Err(anyhow!(
            "no inbox watcher could be opened: {:?}",
            figures.refused
        ));
    }
    Ok(figures)
}
