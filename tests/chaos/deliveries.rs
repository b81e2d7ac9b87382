//! Where the messages arrive, and the tally of each one's deliveries: the webhook receiver
//! (answering, failing half its requests at random, or hanging on some until the sender gives
//! up) and a follower of the SMTP server's record. A delivery is a request the receiver
//! answered 2xx (a message the SMTP server accepted); a message delivered twice is a duplicate.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Default)]
struct Tally {
    delivered: HashMap<Uuid, u32>,
    last: Option<Instant>,
    refused: usize,
    hung: usize,
    unreadable: usize,
}

/// Every delivery seen so far; clones share one tally.
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    tally: Arc<Mutex<Tally>>,
}

/// What arrived of the messages expected.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Expected messages delivered at least once.
    pub delivered: usize,
    /// Deliveries beyond each message's first.
    pub duplicates: usize,
    /// Deliveries of messages that were not expected.
    pub unexpected: usize,
    /// Requests answered with a failure, or left hanging.
    pub refused: usize,
    pub hung: usize,
    /// Requests or records without a readable message id.
    pub unreadable: usize,
    /// When the last delivery arrived.
    pub last: Option<Instant>,
}

impl Deliveries {
    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, id: Option<Uuid>) {
        let mut tally = self.lock();
        match id {
            Some(id) => {
                *tally.delivered.entry(id).or_default() += 1;
                tally.last = Some(Instant::now());
            }
            None => tally.unreadable += 1,
        }
    }

    /// How many distinct messages were delivered.
    pub fn distinct(&self) -> usize {
        self.lock().delivered.len()
    }

    pub fn summary(&self, expected: &[Uuid]) -> Summary {
        let tally = self.lock();
        let delivered = expected
            .iter()
            .filter(|id| tally.delivered.contains_key(id))
            .count();
        Summary {
            delivered,
            duplicates: tally
                .delivered
                .values()
                .map(|times| (*times as usize).saturating_sub(1))
                .sum(),
            unexpected: tally.delivered.len().saturating_sub(delivered),
            refused: tally.refused,
            hung: tally.hung,
            unreadable: tally.unreadable,
            last: tally.last,
        }
    }
}

/// How the webhook receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 to every request.
    Answer,
    /// 200 to every request, after this long (a receiver with work to do).
    Slow(Duration),
    /// 500 to half the requests, at random; 200 to the others.
    FailHalf,
    /// Never answers one request in `one_in`, at random (the sender's timeout ends it); 200
    /// to the others.
    Hang { one_in: u8 },
}

#[derive(Debug, Clone)]
struct Hook {
    deliveries: Deliveries,
    behaviour: Behaviour,
}

/// A random byte (from the operating system, as UUIDs are made).
fn random_byte() -> u8 {
    Uuid::new_v4().as_bytes()[0]
}

async fn hook(State(hook): State<Hook>, headers: HeaderMap) -> StatusCode {
    match hook.behaviour {
        Behaviour::FailHalf if random_byte() & 1 == 0 => {
            hook.deliveries.lock().refused += 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        Behaviour::Hang { one_in } if random_byte().is_multiple_of(one_in) => {
            hook.deliveries.lock().hung += 1;
            return std::future::pending().await;
        }
        Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let id = headers
        .get("x-message-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok());
    hook.deliveries.record(id);
    StatusCode::OK
}

/// A running webhook receiver; it stops with the process.
#[derive(Debug)]
pub struct Receiver {
    pub url: String,
    pub deliveries: Deliveries,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Result<Self> {
        let deliveries = Deliveries::default();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the webhook receiver")?;
        let address = listener.local_addr()?;
        let app = Router::new().route("/hook", post(hook)).with_state(Hook {
            deliveries: deliveries.clone(),
            behaviour,
        });
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("chaos: the webhook receiver stopped: {err}");
            }
        });
        Ok(Self {
            url: format!("http://{address}/hook"),
            deliveries,
        })
    }
}

/// Follows the records of the SMTP server (every run of it: a restarted server writes a new
/// file) as they grow, counting each accepted message by the id in its `Message-ID`
/// (`<message id@domain>`).
#[derive(Debug, Clone, Default)]
pub struct SmtpRecords {
    pub deliveries: Deliveries,
    files: Arc<Mutex<Vec<PathBuf>>>,
}

impl SmtpRecords {
    /// Starts following; the task ends with the process.
    pub fn follow() -> Self {
        let records = Self::default();
        let following = records.clone();
        tokio::spawn(async move {
            let mut read: HashMap<PathBuf, (u64, String)> = HashMap::new();
            loop {
                let files = following
                    .files
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                for file in files {
                    let (offset, partial) = read.entry(file.clone()).or_default();
                    following.read_new(&file, offset, partial);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        records
    }

    /// Follows `file` too (a new run of the server).
    pub fn add(&self, file: PathBuf) {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(file);
    }

    fn read_new(&self, file: &PathBuf, offset: &mut u64, partial: &mut String) {
        let Ok(mut handle) = std::fs::File::open(file) else {
            return;
        };
        let mut bytes = Vec::new();
        if handle.seek(SeekFrom::Start(*offset)).is_err() || handle.read_to_end(&mut bytes).is_err()
        {
            return;
        }
        *offset += bytes.len() as u64;
        partial.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                self.deliveries.record(None);
                continue;
            };
            if event["event"] == "message" {
                self.deliveries.record(message_id(&event));
            }
        }
    }
}

/// The Herald message id in a recorded message's `Message-ID` header.
fn message_id(event: &Value) -> Option<Uuid> {
    event["headers"].as_array()?.iter().find_map(|pair| {
        let name = pair[0].as_str()?;
        if !name.eq_ignore_ascii_case("message-id") {
            return None;
        }
        let value = pair[1].as_str()?.trim();
        let id = value.strip_prefix('<')?.split('@').next()?;
        Uuid::parse_str(id).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_count_every_delivery_after_a_message_s_first() {
        let deliveries = Deliveries::default();
        let (a, b, stray) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for id in [a, a, a, b, stray] {
            deliveries.record(Some(id));
        }
        deliveries.record(None);

        let summary = deliveries.summary(&[a, b, Uuid::new_v4()]);

        assert_eq!(summary.delivered, 2);
        assert_eq!(summary.duplicates, 2);
        assert_eq!(summary.unexpected, 1);
        assert_eq!(summary.unreadable, 1);
    }

    #[test]
    fn a_recorded_email_is_known_by_the_id_in_its_message_id() {
        let id = Uuid::new_v4();
        let event = json!({"event": "message", "headers": [
            ["From", "herald@chaos.example"], ["Message-ID", format!("<{id}@chaos.example>")]]});

        assert_eq!(message_id(&event), Some(id));
        assert_eq!(message_id(&json!({"headers": [["Subject", "x"]]})), None);
    }
}
