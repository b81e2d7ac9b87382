//! PostgreSQL's purge losing its connection half-way: the chunks it finished stay deleted with
//! their dedupe claims, the chunk it was running is rolled back whole, the lock goes with the
//! connection, and the next purge deletes the rest.

use chrono::Duration;
use herald_application::ports::{MessageQueue, NewMessage, PurgeOutcome, StoreError};
use herald_domain::UserId;
use herald_postgres::{PURGE_CHUNK_ROWS, PgStore};
use herald_tests::fixture::within;
use herald_tests::postgres::TestDatabase;
use herald_tests::sample::{self, t0};
use sqlx::{Connection, PgConnection};

async fn count(store: &PgStore, query: &str) -> i64 {
    sqlx::query_scalar(query)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Dedupe claims whose message is gone: a purge that deleted messages without their claims.
const ORPHAN_CLAIMS: &str = "SELECT count(*) FROM message_dedupe AS d \
     WHERE NOT EXISTS (SELECT 1 FROM messages AS m WHERE m.id = d.message_id)";

#[tokio::test]
async fn a_purge_cut_off_mid_chunk_leaves_whole_chunks_and_the_next_purge_deletes_the_rest() {
    let database = TestDatabase::create().await;
    let store = database.store.clone();
    let chunk = usize::try_from(PURGE_CHUNK_ROWS).unwrap();
    // One second apart, oldest first: the first chunk is the first `chunk` messages.
    let expired: Vec<NewMessage> = (0..chunk * 2 + 7)
        .map(|n| NewMessage {
            dedupe_hash: Some(sample::dedupe_hash()),
            ..sample::new_message(UserId::random(), t0() + Duration::seconds(n as i64))
        })
        .collect();
    store.enqueue(&expired).await.unwrap();
    // Another transaction holds a claim of the second chunk: the purge's second statement
    // waits for it, its first chunk committed.
    let mut blocker = PgConnection::connect_with(&store.pool().connect_options())
        .await
        .unwrap();
    let mut held = blocker.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM message_dedupe WHERE message_id = $1 FOR UPDATE")
        .bind(expired[chunk + chunk / 2].id.as_uuid())
        .execute(&mut *held)
        .await
        .unwrap();
    let cutoff = t0() + Duration::days(1);
    let purge = tokio::spawn({
        let store = store.clone();
        async move { store.purge(cutoff).await }
    });
    let purging: i32 = within("the purge waiting for the held claim", async {
        loop {
            let waiting: Option<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                   AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM message_dedupe%'",
            )
            .fetch_optional(store.pool())
            .await
            .unwrap();
            match waiting {
                Some(pid) => break pid,
                None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    })
    .await;

    // The purge's connection is lost: the server ends its session (waiting up to 10 s).
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 10000)")
        .bind(purging)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(ended);
    let cut = purge.await.unwrap();
    assert!(matches!(cut, Err(StoreError::Unavailable(_))), "{cut:?}");
    held.rollback().await.unwrap();

    let left = expired.len() - chunk;
    assert_eq!(
        count(&store, "SELECT count(*) FROM messages").await,
        left as i64,
        "the first chunk is deleted, the second rolled back whole"
    );
    assert_eq!(count(&store, ORPHAN_CLAIMS).await, 0);
    assert_eq!(
        count(&store, "SELECT count(*) FROM message_dedupe").await,
        left as i64,
        "the deleted messages' claims are freed, the others' kept"
    );

    assert_eq!(
        store.purge(cutoff).await.unwrap(),
        PurgeOutcome::Purged(left as u64),
        "the lock went with the connection and the next purge deleted the rest"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM messages").await, 0);
    assert_eq!(
        count(&store, "SELECT count(*) FROM message_dedupe").await,
        0
    );
}
