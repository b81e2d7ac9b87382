//! The API cannot starve the notifier: on Herald's own pools, requests holding every API
//! connection leave leases and write-backs unaffected, and junk bearer tokens are refused
//! without touching the database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::Herald;
use herald_application::{Event, NotifierConfig, Settings, UserInput};
use herald_domain::{UserId, catalogue};
use herald_postgres::{PgSignals, PgStore};
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::support::TestDatabase;

const MESSAGES: usize = 1_000;
const JUNK_REQUESTS: usize = 2_000;

/// How many messages of the queue have this status.
async fn count(connection: &mut PgConnection, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE status::text = $1")
        .bind(status)
        .fetch_one(connection)
        .await
        .unwrap()
}

/// Sessions waiting for a lock on `api_tokens`: API requests stuck in a token lookup, each
/// holding an API connection.
async fn waiting_on_tokens(connection: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE relation = 'api_tokens'::regclass AND NOT granted",
    )
    .fetch_one(connection)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_holding_every_api_connection_leave_the_notifier_draining() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDatabase::create().await;
    let herald = Herald::builder()
        .database_url(&db.url)
        .notifier_config(NotifierConfig {
            lease_count: 50,
            store_sync_interval: Duration::from_millis(50),
            ..NotifierConfig::default()
        })
        .build()
        .await
        .unwrap();
    let owner = herald
        .users()
        .unwrap()
        .upsert(
            UserId::random(),
            UserInput::parse(
                "owner@example.com",
                "owner",
                "Owner",
                &["owner".to_owned()],
                "active",
            )
            .unwrap(),
        )
        .await
        .unwrap();
    // Queued while the notifier is paused, to drain once every API connection is held.
    herald.settings().set_notifier_paused(true).await.unwrap();
    for _ in 0..MESSAGES / 100 {
        let events = (0..100)
            .map(|_| {
                let mut event = Event::new(catalogue::TEST_NOTIFICATION);
                event.initiator = Some(owner.id);
                event.created_by = "pools-test".to_owned();
                event
            })
            .collect();
        let queued = herald.events().enqueue_batch(events).await.unwrap();
        assert!(queued.iter().all(|result| result.message_ids.len() == 1));
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let router = herald.http_router().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    let me = format!("{api}/api/v2/users/me");

    // Token lookups wait behind this lock, each holding an API connection, until it is
    // released; the requests beyond the pool's size wait for a connection.
    let mut observer = PgConnection::connect(&db.url).await.unwrap();
    let mut blocker = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let pool = herald.pool().clone();
    let max = pool.options().get_max_connections();
    let holding: Vec<_> = (0..2 * max)
        .map(|n| {
            let request = http.get(&me).bearer_auth(format!("herald_{n:0>43}")).send();
            tokio::spawn(request)
        })
        .collect();
    let saturated = Instant::now() + Duration::from_secs(30);
    while !(pool.size() == max
        && pool.num_idle() == 0
        && waiting_on_tokens(&mut observer).await >= i64::from(max / 2))
    {
        assert!(
            Instant::now() < saturated,
            "the API pool was not saturated: {} of {max} open, {} idle",
            pool.size(),
            pool.num_idle()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Junk tokens are refused without a connection: none is free.
    let mut junk = tokio::task::JoinSet::new();
    for n in 0..JUNK_REQUESTS {
        junk.spawn(
            http.get(&me)
                .bearer_auth(format!("junk-{n}"))
                .timeout(Duration::from_secs(20))
                .send(),
        );
    }
    while let Some(answer) = junk.join_next().await {
        assert_eq!(answer.unwrap().unwrap().status(), 401);
    }
    assert_eq!((pool.size(), pool.num_idle()), (max, 0), "still saturated");

    // Resumed by another replica; this one's notifier drains on connections of its own.
    let other = PgStore::connect(&db.url).await.unwrap();
    let signals = Arc::new(PgSignals::start(other.pool().clone()).await.unwrap());
    Settings::new(Arc::new(other.clone()), signals.clone())
        .set_notifier_paused(false)
        .await
        .unwrap();
    let drained = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = count(&mut observer, "sent").await;
        if sent == MESSAGES as i64 {
            break;
        }
        assert!(
            Instant::now() < drained,
            "{sent} of {MESSAGES} messages sent while the API held every connection of its pool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox_notifications")
        .fetch_one(&mut observer)
        .await
        .unwrap();
    assert_eq!(inbox, MESSAGES as i64, "each message delivered once");
    assert_eq!(
        (pool.size(), pool.num_idle()),
        (max, 0),
        "saturated throughout"
    );
    assert!(waiting_on_tokens(&mut observer).await >= i64::from(max / 2));

    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    for request in holding {
        assert_eq!(request.await.unwrap().unwrap().status(), 401);
    }
    drop(signals);
    other.close().await;
    herald.shutdown().await.unwrap();
    db.drop_now().await;
}
