//! Measures the PostgreSQL queue's rates (the figures of the PostgreSQL issue; the full
//! benchmark is `cargo xtask bench`, later):
//! - single-message enqueue: one `MessageQueue::enqueue` call per message, and one whole
//!   `Events::enqueue` use case per event (audience, preferences, rendering, dedupe), from a
//!   few concurrent tasks;
//! - lease + mark-sent with a no-op dispatcher, through the real notifier, for a given lease
//!   count.
//!
//! Run: `HERALD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo run --release -p herald-tests --example queue_rates`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_application::ports::{
    Clock, Delivery, DeliveryError, Dispatcher, MessageQueue, NewMessage, SystemClock,
    UserRegistry, Wakeup,
};
use herald_application::rendering::Renderer;
use herald_application::{
    DeliveryConfig, Event, EventPorts, Events, Notifier, NotifierConfig, NotifierPorts,
};
use herald_domain::Method;
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_postgres::{PgSignals, PgStore};
use herald_tests::postgres::TestDatabase;
use herald_tests::sample;

const CLIENTS: usize = 4;

#[derive(Debug, Default)]
struct NoOp {
    count: AtomicUsize,
}

#[async_trait]
impl Dispatcher for NoOp {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn dispatch(&self, _: &Delivery) -> Result<(), DeliveryError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn users(store: &PgStore, count: usize) -> Vec<herald_domain::UserId> {
    let mut ids = Vec::new();
    for i in 0..count {
        let user = sample::user(&format!("bench-{}-{i}", uuid::Uuid::new_v4().simple()), &[]);
        store.upsert(&user).await.unwrap();
        ids.push(user.id);
    }
    ids
}

async fn enqueue_rate(store: &PgStore, per_client: usize) -> f64 {
    let recipients = Arc::new(users(store, 100).await);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (store, recipients) = (store.clone(), recipients.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let recipient = recipients[(client * per_client + i) % recipients.len()];
                let message = NewMessage {
                    method: Method::Webhook,
                    ..sample::new_message(recipient, SystemClock.now())
                };
                store.enqueue(&[message]).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (CLIENTS * per_client) as f64 / started.elapsed().as_secs_f64()
}

async fn event_rate(store: &PgStore, signals: Arc<PgSignals>, per_client: usize) -> f64 {
    let subjects = Arc::new(users(store, 100).await);
    let shared = Arc::new(store.clone());
    let events = Events::new(
        EventPorts {
            directory: shared.clone(),
            preferences: shared.clone(),
            templates: shared.clone(),
            queue: shared,
            wakeup: signals,
            clock: Arc::new(SystemClock),
        },
        DeliveryConfig::new(Method::Webhook, BTreeSet::from([Method::Webhook]), false).unwrap(),
        Renderer::new("Herald", "https://herald.example.com"),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (events, subjects) = (events.clone(), subjects.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let mut event = Event::new(WORKSPACE_DELETED);
                event.subject = Some(subjects[(client * per_client + i) % subjects.len()]);
                event
                    .labels
                    .insert("name".into(), format!("ws-{client}-{i}"));
                assert_eq!(events.enqueue(event).await.unwrap().message_ids.len(), 1);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (CLIENTS * per_client) as f64 / started.elapsed().as_secs_f64()
}

async fn drain_rate(lease_count: usize, messages: usize) -> f64 {
    let database = TestDatabase::create().await;
    let store = database.store.clone();
    let recipients = users(&store, 100).await;
    let batch: Vec<NewMessage> = (0..messages)
        .map(|i| NewMessage {
            method: Method::Webhook,
            ..sample::new_message(recipients[i % 100], SystemClock.now())
        })
        .collect();
    for chunk in batch.chunks(5_000) {
        store.enqueue(chunk).await.unwrap();
    }
    let signals = PgSignals::start(store.pool().clone()).await.unwrap();
    let shared = Arc::new(store.clone());
    let noop = Arc::new(NoOp::default());
    let config = NotifierConfig {
        lease_count,
        store_sync_buffer_size: lease_count.max(50),
        fetch_interval: Duration::from_secs(3600),
        ..NotifierConfig::default()
    };
    let notifier = Notifier::new(
        "bench",
        config,
        NotifierPorts {
            queue: shared.clone(),
            templates: shared.clone(),
            directory: shared.clone(),
            preferences: shared.clone(),
            settings: shared,
            clock: Arc::new(SystemClock),
        },
        vec![noop.clone()],
        Renderer::new("Herald", "https://herald.example.com"),
        signals.subscribe(),
    )
    .unwrap();
    let started = Instant::now();
    let handle = notifier.spawn();
    while noop.count.load(Ordering::Relaxed) < messages {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.stop().await;
    let elapsed = started.elapsed();
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'sent'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(sent as usize, messages, "every message ends sent");
    messages as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (per_client, drained) = if quick { (250, 5_000) } else { (1_000, 20_000) };

    let database = TestDatabase::create().await;
    let signals = Arc::new(
        PgSignals::start(database.store.pool().clone())
            .await
            .unwrap(),
    );
    let queue_op = enqueue_rate(&database.store, per_client).await;
    let use_case = event_rate(&database.store, signals, per_client).await;
    println!(
        "enqueue, one message per MessageQueue::enqueue, {CLIENTS} clients: {queue_op:>8.0} messages/s"
    );
    println!(
        "enqueue, one event per Events::enqueue, {CLIENTS} clients:        {use_case:>8.0} events/s"
    );
    for lease_count in [20, 500] {
        let rate = drain_rate(lease_count, drained).await;
        println!(
            "lease + mark-sent, no-op dispatcher, lease count {lease_count:>3}:       {rate:>8.0} messages/s ({drained} messages)"
        );
    }
}
