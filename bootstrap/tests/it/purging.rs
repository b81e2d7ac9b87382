//! The hourly purge in a running `herald server`: a stop gives up a purge in progress at once
//! (its pacing makes a large one run for minutes), and the next start deletes the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::running::{Api, Server, create_user};
use crate::support::TestDatabase;

/// Expired copies of one message: enough chunks that a purge runs for seconds.
const EXPIRED: i64 = 100_000;

async fn expired_left(connection: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE updated_at < now() - interval '7 days'")
        .fetch_one(connection)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_gives_up_a_purge_in_progress_and_the_next_start_deletes_the_rest() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "olga", "owner");
    let server = Server::start(&db.url, &[]);
    let api = Api::new(&server.url, &owner);
    let (status, body) = api.post("/notifications/test", &json!({})).await;
    assert_eq!(status, 204, "{body}");
    server.stop();

    // Sent copies of the test message, last changed 8 to 9 days ago.
    let mut connection = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO messages (id, template_id, recipient, method, status, payload, targets, \
             created_by, created_at, updated_at) \
         SELECT gen_random_uuid(), p.template_id, p.recipient, p.method, 'sent', p.payload, \
             p.targets, p.created_by, \
             now() - interval '9 days' + g * interval '1 second', \
             now() - interval '9 days' + g * interval '1 second' \
         FROM (SELECT * FROM messages LIMIT 1) AS p, generate_series(1, $1) AS g",
    )
    .bind(EXPIRED)
    .execute(&mut connection)
    .await
    .unwrap();
    assert_eq!(expired_left(&mut connection).await, EXPIRED);

    // The purge starts with the server; stop it as soon as the first chunks are gone.
    let server = Server::start(&db.url, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while expired_left(&mut connection).await == EXPIRED {
        assert!(Instant::now() < deadline, "the purge did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop();
    let left = expired_left(&mut connection).await;
    assert!(
        left > 0,
        "the stop waited for the whole purge instead of giving it up"
    );

    // Nothing holds the purge lock, and the next start deletes what was left.
    let server = Server::start(&db.url, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while expired_left(&mut connection).await > 0 {
        assert!(Instant::now() < deadline, "the next purge did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop();
    let young: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(young, 1, "the test message itself is kept");
    connection.close().await.unwrap();
    db.drop_now().await;
}
