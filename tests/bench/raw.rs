//! The raw limits: Herald's own `messages` table driven by plain SQL, with no dispatch (the
//! ceiling the database gives on this machine), and plain HTTP POSTs to the receiver with no
//! database (the ceiling of the delivery side alone), measured in the same run as Herald.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use chrono::Utc;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use crate::receiver::Receiver;
use crate::workspace_deleted;

/// A payload of the size Herald stores for a workspace-deleted message.
fn payload(recipient: Uuid, i: usize) -> serde_json::Value {
    json!({
        "_version": "1.1",
        "notification_name": "Workspace Deleted",
        "notification_template_id": workspace_deleted(),
        "user_id": recipient,
        "user_email": format!("user{i}@bench.example"),
        "user_name": format!("User {i}"),
        "user_username": format!("user{i}"),
        "actions": [{"label": "View workspaces", "url": "http://127.0.0.1/workspaces"}],
        "labels": {"name": format!("ws-{i}"), "reason": "bench", "initiator": "bench"},
        "data": null,
        "targets": []
    })
}

/// Single-row inserts (autocommit, one statement each) from `clients` connections for
/// `duration`: rows per second, and PostgreSQL's CPU microseconds per row (every `postgres`
/// process, as for Herald's scenarios: the backends, the WAL writer and the rest).
pub async fn single_inserts(url: &str, clients: usize, duration: Duration) -> Result<(f64, f64)> {
    // Connected first and closed last: a backend's CPU time is gone from `/proc` once it exits.
    let connections = connect_all(url, clients).await?;
    let cpu_before = crate::server::postgres_cpu_seconds();
    let (total, open, elapsed) = back_to_back(connections, duration, Statement::Insert).await?;
    let cpu = crate::server::postgres_cpu_seconds() - cpu_before;
    drop(open);
    Ok((
        total as f64 / elapsed.as_secs_f64(),
        cpu * 1e6 / total.max(1) as f64,
    ))
}

/// Who the rows of [`single_enqueues`] are created by, so they can be deleted after.
pub const RAW_ENQUEUE_CREATOR: &str = "bench-raw-enqueue";

/// Single enqueues of Herald's shape with nothing of Herald around them: from `clients`
/// connections for `duration`, each one statement (autocommit) that claims a fresh dedupe hash
/// in `message_dedupe` and inserts a pending webhook message with a time-ordered id, as
/// Herald's single-message insert does. Rows per second.
pub async fn single_enqueues(url: &str, clients: usize, duration: Duration) -> Result<f64> {
    let connections = connect_all(url, clients).await?;
    let (total, open, elapsed) = back_to_back(connections, duration, Statement::Enqueue).await?;
    for connection in open {
        let _ = connection.close().await;
    }
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// What each client of [`back_to_back`] runs.
#[derive(Debug, Clone, Copy)]
enum Statement {
    /// [`insert_one`].
    Insert,
    /// [`enqueue_one`].
    Enqueue,
}

/// `clients` connections to `url`.
async fn connect_all(url: &str, clients: usize) -> Result<Vec<PgConnection>> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(PgConnection::connect(url).await?);
    }
    Ok(connections)
}

/// Runs `statement` back to back on each of `connections` (one client each, its own recipient)
/// for `duration`: how many ran in all, the connections (still open), and the time taken.
async fn back_to_back(
    connections: Vec<PgConnection>,
    duration: Duration,
    statement: Statement,
) -> Result<(usize, Vec<PgConnection>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, mut connection) in connections.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let recipient = Uuid::new_v4();
            let mut rows = 0usize;
            while started.elapsed() < duration {
                let i = client * 1_000_000 + rows;
                match statement {
                    Statement::Insert => {
                        insert_one(&mut connection, recipient, i).await?;
                    }
                    Statement::Enqueue => enqueue_one(&mut connection, recipient, i).await?,
                }
                rows += 1;
            }
            anyhow::Ok((rows, connection))
        }));
    }
    let mut total = 0;
    let mut open = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (rows, connection) = task.await??;
        total += rows;
        open.push(connection);
    }
    Ok((total, open, started.elapsed()))
}

/// One raw enqueue of Herald's shape (autocommit, one statement): claims a fresh dedupe hash
/// in `message_dedupe` and inserts a pending webhook message for `recipient` with a
/// time-ordered id, created by [`RAW_ENQUEUE_CREATOR`].
async fn enqueue_one<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    recipient: Uuid,
    i: usize,
) -> Result<()> {
    let inserted = sqlx::query(
        "WITH claimed AS ( \
             INSERT INTO message_dedupe (dedupe_hash, message_id) VALUES ($6, $1) \
             ON CONFLICT (dedupe_hash) DO NOTHING RETURNING message_id) \
         INSERT INTO messages (id, template_id, recipient, method, payload, \
             targets, created_by, created_at, updated_at, dedupe_hash) \
         SELECT $1, $2, $3, 'webhook', $4::json, '{}', $7, $5, $5, $6 \
         WHERE EXISTS (SELECT FROM claimed)",
    )
    .bind(Uuid::now_v7())
    .bind(workspace_deleted())
    .bind(recipient)
    .bind(payload(recipient, i).to_string())
    .bind(Utc::now())
    .bind(format!(
        "{:x}{:x}",
        Uuid::new_v4().as_u128(),
        Uuid::new_v4().as_u128()
    ))
    .bind(RAW_ENQUEUE_CREATOR)
    .execute(executor)
    .await?;
    if inserted.rows_affected() != 1 {
        anyhow::bail!("a raw enqueue stored {} rows", inserted.rows_affected());
    }
    Ok(())
}

/// Raw enqueues ([`enqueue_one`]) offered at `rate` per second (open loop, over a pool of
/// `clients` connections, as Herald's API holds one) until `stop` is set or `at_most` has
/// passed: each one's start and its time to commit, a pool wait included.
pub async fn steady_enqueues(
    url: &str,
    rate: u32,
    clients: u32,
    at_most: Duration,
    stop: Arc<AtomicBool>,
) -> Result<Vec<(Instant, Duration)>> {
    let pool = PgPoolOptions::new()
        .max_connections(clients)
        .min_connections(clients)
        .connect(url)
        .await?;
    let sent = open_loop(rate, at_most, &stop, |i| {
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            enqueue_one(&pool, Uuid::new_v4(), i as usize).await?;
            Ok((started, started.elapsed()))
        }
    })
    .await;
    pool.close().await;
    sent
}

/// Starts `start(i)` as a task `rate` times a second (open loop: on schedule, however long the
/// earlier ones take) until `stop` is set or `at_most` has passed; every task's result, in
/// order.
pub async fn open_loop<T, F, Started>(
    rate: u32,
    at_most: Duration,
    stop: &AtomicBool,
    mut start: F,
) -> Result<Vec<T>>
where
    F: FnMut(u32) -> Started,
    Started: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let interval = Duration::from_secs(1) / rate;
    let begun = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0u32.. {
        let at = begun + interval * i;
        if stop.load(Ordering::Relaxed) || at.duration_since(begun) >= at_most {
            break;
        }
        tokio::time::sleep_until(at).await;
        tasks.push(tokio::spawn(start(i)));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await??);
    }
    Ok(results)
}

/// Inserts one pending webhook message for `recipient` (autocommit, one statement), as the raw
/// single inserts do; returns its id.
async fn insert_one<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    recipient: Uuid,
    i: usize,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO messages (id, template_id, recipient, method, payload, targets, \
             created_by, created_at, updated_at, dedupe_hash) \
         VALUES ($1, $2, $3, 'webhook', $4::json, '{}', 'bench', $5, $5, $6)",
    )
    .bind(id)
    .bind(workspace_deleted())
    .bind(recipient)
    .bind(payload(recipient, i).to_string())
    .bind(now)
    .bind(format!(
        "{:x}{:x}",
        Uuid::new_v4().as_u128(),
        Uuid::new_v4().as_u128()
    ))
    .execute(executor)
    .await?;
    Ok(id)
}

/// The API side's limit: a plain HTTP endpoint in this process (the receiver's server, axum)
/// that answers each event `POST` with one single-row INSERT of a message for the event's
/// subject ([`insert_one`], over a pool of `clients` connections) and its id, driven by the
/// same `clients` connections and requests as Herald's single-event scenario
/// ([`crate::single_events`]) for `duration`. No template, recipient or preference is read
/// and nothing is batched: what an HTTP API costs on top of the raw single inserts on this
/// machine. Every returned id must be stored exactly once. Returns events per second, and the
/// CPU microseconds per event of PostgreSQL (every `postgres` process) and of this process
/// (the endpoint and the clients together).
pub async fn plain_api_inserts(
    url: &str,
    subjects: &[Uuid],
    clients: usize,
    duration: Duration,
) -> Result<(f64, f64, f64)> {
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(clients)?)
        .min_connections(u32::try_from(clients)?)
        // No extra round trip per event (Herald's pool does not test either).
        .test_before_acquire(false)
        .connect(url)
        .await?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/api/v2/notifications/events", post(plain_event))
        .with_state(PlainApi {
            pool: pool.clone(),
            next: Arc::new(AtomicUsize::new(0)),
        });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let api = crate::server::Api::new(&format!("http://{address}"), "plain")?;
    let cpu_before = crate::server::postgres_cpu_seconds();
    let own_before = crate::server::cpu_seconds("self").unwrap_or(0.0);
    let measured = crate::single_events(&api, subjects, clients, duration, false).await;
    let cpu = crate::server::postgres_cpu_seconds() - cpu_before;
    let own = crate::server::cpu_seconds("self").unwrap_or(0.0) - own_before;
    server.abort();
    let (rate, ids) = measured?;
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    if distinct.len() != ids.len() || usize::try_from(stored)? != ids.len() {
        anyhow::bail!(
            "the plain endpoint answered {} ids ({} distinct) and stored {stored} of them",
            ids.len(),
            distinct.len()
        );
    }
    let done = ids.len().max(1) as f64;
    Ok((rate, cpu * 1e6 / done, own * 1e6 / done))
}

#[derive(Clone)]
struct PlainApi {
    pool: sqlx::PgPool,
    /// Numbers the stored payloads' user fields, as the raw inserts do.
    next: Arc<AtomicUsize>,
}

/// One event: its subject (`user_id`) gets one message, inserted before the answer.
async fn plain_event(State(api): State<PlainApi>, body: Bytes) -> Response {
    let subject = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|event| {
            event["user_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
        });
    let Some(subject) = subject else {
        return (StatusCode::BAD_REQUEST, "user_id: missing or not a UUID").into_response();
    };
    let i = api.next.fetch_add(1, Ordering::Relaxed);
    match insert_one(&api.pool, subject, i).await {
        Ok(id) => (
            StatusCode::ACCEPTED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "message_ids": [id], "skipped": [] }).to_string(),
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// Empties the queue, then queues `count` pending messages in bulk (setup, not measured).
pub async fn fill(url: &str, count: usize) -> Result<()> {
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    sqlx::query("TRUNCATE messages").execute(&pool).await?;
    let recipient = Uuid::new_v4();
    for start in (0..count).step_by(5_000) {
        let n = (count - start).min(5_000);
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        let payloads: Vec<String> = (0..n)
            .map(|i| payload(recipient, start + i).to_string())
            .collect();
        sqlx::query(
            "INSERT INTO messages (id, template_id, recipient, method, payload, created_by, \
                 created_at, updated_at) \
             SELECT id, $2, $3, 'webhook', p::json, 'bench', now(), now() \
             FROM UNNEST($1::uuid[], $4::text[]) AS b(id, p)",
        )
        .bind(&ids)
        .bind(workspace_deleted())
        .bind(recipient)
        .bind(&payloads)
        .execute(&pool)
        .await?;
    }
    sqlx::query("VACUUM ANALYZE messages")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

/// `VACUUM ANALYZE messages` between scenarios (setup, not measured): what autovacuum does in
/// a real deployment, which may be off on the benchmark machine. Without it each scenario would
/// run over the dead row versions of the ones before.
pub async fn vacuum(pool: &sqlx::PgPool) -> Result<()> {
    sqlx::query("VACUUM ANALYZE messages").execute(pool).await?;
    Ok(())
}

/// One worker leasing `lease_count` messages at a time with Herald's lease predicate (oldest
/// first, `FOR UPDATE SKIP LOCKED`, returning what a worker needs: id and payload) and marking
/// them sent in one statement, until the queue is empty: messages per second, how many, and
/// PostgreSQL's CPU microseconds per message (every `postgres` process, as for Herald's).
pub async fn lease_and_mark_sent(url: &str, lease_count: usize) -> Result<(f64, usize, f64)> {
    let mut connection = PgConnection::connect(url).await?;
    let cpu_before = crate::server::postgres_cpu_seconds();
    let started = Instant::now();
    let mut done = 0usize;
    loop {
        let leased = lease(&mut connection, lease_count).await?;
        if leased.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = leased.iter().map(|(id, _)| *id).collect();
        mark_sent(&mut connection, &ids).await?;
        done += ids.len();
    }
    let elapsed = started.elapsed();
    let cpu = crate::server::postgres_cpu_seconds() - cpu_before;
    Ok((
        done as f64 / elapsed.as_secs_f64(),
        done,
        cpu * 1e6 / done.max(1) as f64,
    ))
}

/// The delivery side's limit: `count` plain POSTs of `body_bytes` bytes each (a JSON object)
/// to the receiver, with an `X-Message-Id` each, `in_flight` at a time and batch after batch as
/// the notifier dispatches what one lease returned, over the webhook dispatcher's client
/// (`herald_webhook::client`); no database. Every POST must arrive exactly once. Returns messages
/// per second (to the last arrival) and this process's CPU microseconds per message (the
/// client and the receiver together).
pub async fn webhook_posts(
    receiver: &Receiver,
    count: usize,
    in_flight: usize,
    body_bytes: usize,
) -> Result<(f64, f64)> {
    let client = herald_webhook::client(CLIENT_TIMEOUT)?;
    let body = format!(
        r#"{{"pad":"{}"}}"#,
        "x".repeat(body_bytes.saturating_sub(10))
    );
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    let cpu_before = crate::server::cpu_seconds("self").unwrap_or(0.0);
    let started = Instant::now();
    for batch in ids.chunks(in_flight.max(1)) {
        post_all(
            &client,
            receiver,
            batch.iter().map(|id| (*id, body.clone())),
        )
        .await?;
    }
    let arrivals = receiver
        .expect_exactly(&ids, Duration::from_secs(120))
        .await?;
    let rate = Receiver::rate_since(started, &arrivals);
    let cpu = (crate::server::cpu_seconds("self").unwrap_or(0.0) - cpu_before) * 1e6 / count as f64;
    Ok((rate, cpu))
}

/// A plain queue worker that delivers, the delivery side and the queue together with nothing
/// of Herald's: one worker leasing `lease_count` messages at a time with the statement of
/// [`lease_and_mark_sent`], POSTing each leased payload (padded to `body_bytes`) to the
/// receiver, all of a lease at once over the webhook dispatcher's client, leasing the next
/// batch while they are in flight, and marking each batch
/// sent once its POSTs are answered, until the queue is empty. Every message must arrive
/// exactly once. Returns messages per second (to the last mark sent) and the CPU microseconds
/// per message of PostgreSQL (every `postgres` process) and of this process (the worker and the
/// receiver).
pub async fn lease_post_mark_sent(
    url: &str,
    lease_count: usize,
    receiver: &Receiver,
    body_bytes: usize,
) -> Result<(f64, f64, f64)> {
    let client = herald_webhook::client(CLIENT_TIMEOUT)?;
    let mut connection = PgConnection::connect(url).await?;
    let cpu_before = crate::server::postgres_cpu_seconds();
    let own_before = crate::server::cpu_seconds("self").unwrap_or(0.0);
    let started = Instant::now();
    let mut delivered = Vec::new();
    let mut next = lease(&mut connection, lease_count).await?;
    while !next.is_empty() {
        let batch = std::mem::take(&mut next);
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let bodies = batch.into_iter().map(|(id, payload)| {
            let pad = body_bytes.saturating_sub(payload.len() + 20);
            let body = format!(r#"{{"payload":{payload},"pad":"{}"}}"#, "x".repeat(pad));
            (id, body)
        });
        let (posted, leased) = tokio::join!(
            post_all(&client, receiver, bodies),
            lease(&mut connection, lease_count)
        );
        posted?;
        next = leased?;
        mark_sent(&mut connection, &ids).await?;
        delivered.extend(ids);
    }
    let elapsed = started.elapsed();
    let cpu = crate::server::postgres_cpu_seconds() - cpu_before;
    let own = crate::server::cpu_seconds("self").unwrap_or(0.0) - own_before;
    receiver
        .expect_exactly(&delivered, Duration::from_secs(120))
        .await?;
    let done = delivered.len().max(1) as f64;
    Ok((
        done / elapsed.as_secs_f64(),
        cpu * 1e6 / done,
        own * 1e6 / done,
    ))
}

/// A plain worker pool, as graphile_worker and the like run: `slots` POSTs in flight, each
/// slot refilled from a local queue as its POST is answered; the local queue leased in bulk
/// (raw SQL, as [`lease_post_mark_sent`]) whenever it holds less than `slots`; answered
/// messages marked sent in bulk, `slots` at a time. Returns messages per second (to the last
/// mark sent); every message must arrive exactly once.
pub async fn lease_pool_post_mark_sent(
    url: &str,
    slots: usize,
    receiver: &Receiver,
    body_bytes: usize,
) -> Result<f64> {
    let client = herald_webhook::client(CLIENT_TIMEOUT)?;
    let mut connection = PgConnection::connect(url).await?;
    let started = Instant::now();
    let mut queue: std::collections::VecDeque<(Uuid, String)> = Default::default();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut answered = Vec::new();
    let mut delivered = Vec::new();
    let mut drained = false;
    loop {
        if !drained && queue.len() < slots {
            let leased = lease(&mut connection, slots).await?;
            drained = leased.len() < slots;
            queue.extend(leased);
        }
        while in_flight.len() < slots {
            let Some((id, payload)) = queue.pop_front() else {
                break;
            };
            let pad = body_bytes.saturating_sub(payload.len() + 20);
            let body = format!(r#"{{"payload":{payload},"pad":"{}"}}"#, "x".repeat(pad));
            let request = client
                .post(&receiver.url)
                .header("content-type", "application/json")
                .header("x-message-id", id.to_string())
                .body(body);
            in_flight.spawn(async move {
                request.send().await?.error_for_status()?;
                anyhow::Ok(id)
            });
        }
        let Some(posted) = in_flight.join_next().await else {
            break;
        };
        answered.push(posted??);
        if answered.len() >= slots || (in_flight.is_empty() && queue.is_empty()) {
            mark_sent(&mut connection, &answered).await?;
            delivered.append(&mut answered);
        }
    }
    mark_sent(&mut connection, &answered).await?;
    delivered.append(&mut answered);
    let elapsed = started.elapsed();
    receiver
        .expect_exactly(&delivered, Duration::from_secs(120))
        .await?;
    Ok(delivered.len().max(1) as f64 / elapsed.as_secs_f64())
}

/// How long one plain POST may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// POSTs every `(message id, body)` to the receiver at once (a task each, as the notifier
/// dispatches a lease) and waits for them all; fails unless each was answered 2xx.
async fn post_all(
    client: &reqwest::Client,
    receiver: &Receiver,
    posts: impl IntoIterator<Item = (Uuid, String)>,
) -> Result<()> {
    let mut sending = tokio::task::JoinSet::new();
    for (id, body) in posts {
        let request = client
            .post(&receiver.url)
            .header("content-type", "application/json")
            .header("x-message-id", id.to_string())
            .body(body);
        sending.spawn(async move { request.send().await?.error_for_status().map(drop) });
    }
    while let Some(posted) = sending.join_next().await {
        posted??;
    }
    Ok(())
}

/// Leases up to `count` webhook messages (every raw scenario's) as [`lease_and_mark_sent`]
/// does, each kind from its index (pending messages and failures have one per method, whose
/// predicate names the other methods): their ids and payloads.
async fn lease(connection: &mut PgConnection, count: usize) -> Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "WITH pending AS ( \
             SELECT id, created_at FROM messages \
             WHERE status = 'pending' AND method <> 'smtp' AND method <> 'inbox' \
               AND attempt_count < 5 \
             ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
         retries AS ( \
             SELECT id, created_at FROM messages \
             WHERE status = 'temporary_failure' AND method <> 'smtp' AND method <> 'inbox' \
               AND attempt_count < 5 \
               AND COALESCE(next_retry_after, '-infinity'::timestamptz) <= $1 \
             ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
         expired AS ( \
             SELECT id, created_at FROM messages \
             WHERE status = 'leased' AND attempt_count < 5 \
               AND COALESCE(leased_until, '-infinity'::timestamptz) < $1 \
             ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
         leasable AS ( \
             SELECT id FROM ( \
                 SELECT * FROM pending UNION ALL SELECT * FROM retries \
                 UNION ALL SELECT * FROM expired) AS due \
             ORDER BY created_at, id LIMIT $2) \
         UPDATE messages AS m SET status = 'leased', \
             leased_until = $1 + interval '2 minutes', updated_at = $1 \
         FROM leasable WHERE m.id = leasable.id \
         RETURNING m.id, m.payload::text",
    )
    .bind(Utc::now())
    .bind(i64::try_from(count)?)
    .fetch_all(connection)
    .await?)
}

/// Marks the leased messages `ids` sent, in one statement.
async fn mark_sent(connection: &mut PgConnection, ids: &[Uuid]) -> Result<()> {
    sqlx::query(
        "UPDATE messages SET status = 'sent', leased_until = NULL, attempt_count = \
             attempt_count + 1, updated_at = $2 \
         WHERE id = ANY($1) AND status = 'leased'",
    )
    .bind(ids)
    .bind(Utc::now())
    .execute(connection)
    .await?;
    Ok(())
}

/// Sends each of `messages` (whole RFC 5322 texts) to the SMTP server on 127.0.0.1:`port`, over
/// `connections` connections kept open, each a plain conversation (`MAIL`, `RCPT`, `DATA`) with
/// nothing else: the SMTP server's part of an email, without Herald's.
pub async fn smtp_sends(port: u16, messages: Vec<String>, connections: usize) -> Result<()> {
    let queue = Arc::new(std::sync::Mutex::new(messages));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let queue = Arc::clone(&queue);
        senders.spawn(async move {
            let mut smtp = PlainSmtp::connect(port).await?;
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                let Some(message) = next else { break };
                smtp.send(&message).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(sent) = senders.join_next().await {
        sent??;
    }
    Ok(())
}

/// One SMTP connection, spoken by hand.
struct PlainSmtp {
    stream: tokio::io::BufStream<tokio::net::TcpStream>,
}

impl PlainSmtp {
    async fn connect(port: u16) -> Result<Self> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let mut smtp = Self {
            stream: tokio::io::BufStream::new(stream),
        };
        smtp.reply("220").await?;
        smtp.command("EHLO bench.example\r\n", "250").await?;
        Ok(smtp)
    }

    async fn send(&mut self, message: &str) -> Result<()> {
        self.command("MAIL FROM:<bench@example.com>\r\n", "250")
            .await?;
        self.command("RCPT TO:<raw@bench.example>\r\n", "250")
            .await?;
        self.command("DATA\r\n", "354").await?;
        let mut data = String::with_capacity(message.len() + 64);
        for line in message
            .replace("\r\n", "\n")
            .trim_end_matches('\n')
            .split('\n')
        {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.command(&data, "250").await
    }

    async fn command(&mut self, text: &str, expected: &str) -> Result<()> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(text.as_bytes()).await?;
        self.stream.flush().await?;
        self.reply(expected).await
    }

    /// Reads one reply, every line of it, and checks its code.
    async fn reply(&mut self, expected: &str) -> Result<()> {
        use tokio::io::AsyncBufReadExt as _;
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                anyhow::bail!("the SMTP server closed the connection");
            }
            if !line.starts_with(expected) {
                anyhow::bail!("the SMTP server answered {line:?}, not {expected}");
            }
            // `250-…` continues the reply; `250 …` ends it.
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
}
