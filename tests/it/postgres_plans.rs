//! The lease's plan on PostgreSQL, as a store's session runs it (generic plans): whatever waits
//! ahead of the pending messages — live leases, failures waiting for their retry — a lease
//! reads no row it cannot take, so its cost does not grow with what waits (migration 0005).

use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{LeaseRequest, MessageQueue};
use herald_domain::{Completion, RetryPolicy, UserId};
use herald_postgres::lease_statement;
use herald_tests::postgres::TestDatabase;
use herald_tests::sample::{self, t0};
use serde_json::Value;
use sqlx::Connection;
use sqlx::types::Json;

/// How many messages wait ahead of the pending ones, of each kind.
const WAITING: usize = 40;
const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    retry_interval: Duration::hours(1),
};

fn request(now: DateTime<Utc>, count: usize) -> LeaseRequest {
    LeaseRequest {
        now,
        lease_period: Duration::minutes(2),
        count,
        max_attempts: POLICY.max_attempts,
    }
}

/// Queues `count` messages created a second apart from `t0() + from` seconds.
async fn queue(database: &TestDatabase, from: i64, count: usize) {
    let user = UserId::random();
    let batch: Vec<_> = (from..)
        .take(count)
        .map(|second| sample::new_message(user, t0() + Duration::seconds(second)))
        .collect();
    database.store.enqueue(&batch).await.unwrap();
}

/// Every node of an `EXPLAIN (ANALYZE, FORMAT JSON)` plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    for child in plan["Plans"].as_array().into_iter().flatten() {
        all.extend(nodes(child));
    }
    all
}

#[tokio::test]
async fn a_lease_reads_no_row_under_a_live_lease_or_waiting_for_its_retry() {
    let database = TestDatabase::create().await;
    let store = &database.store;
    // The oldest messages: WAITING failures whose retry is an hour away, then WAITING under a
    // live lease; the newest: five pending.
    queue(&database, 0, 2 * WAITING).await;
    let failed = store.lease(request(t0(), WAITING)).await.unwrap();
    let retryable = Completion::Failed {
        reason: "connection refused".to_owned(),
        retryable: true,
        retry_after: None,
    };
    let changes: Vec<_> = failed
        .iter()
        .map(|m| m.complete(&retryable, t0(), POLICY).unwrap())
        .collect();
    assert_eq!(store.mark_failed(&changes).await.unwrap(), WAITING as u64);
    assert_eq!(
        store.lease(request(t0(), WAITING)).await.unwrap().len(),
        WAITING
    );
    queue(&database, 1_000, 5).await;
    let now = t0() + Duration::minutes(1);

    let mut connection = store.pool().acquire().await.unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::query(&format!(
        "PREPARE lease (timestamptz, timestamptz, int4, int8) AS {}",
        lease_statement()
    ))
    .execute(&mut *connection)
    .await
    .unwrap();
    // EXPLAIN ANALYZE runs the lease: rolled back.
    let mut transaction = connection.begin().await.unwrap();
    let Json(explained): Json<Value> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE lease ('{}', '{}', {}, 100)",
        now.to_rfc3339(),
        (now + Duration::minutes(2)).to_rfc3339(),
        POLICY.max_attempts
    ))
    .fetch_one(&mut *transaction)
    .await
    .unwrap();
    transaction.rollback().await.unwrap();

    let plan = &explained[0]["Plan"];
    assert_eq!(
        plan["Actual Rows"], 5,
        "the five pending are leased: {plan:#}"
    );
    let scans: Vec<&Value> = nodes(plan)
        .into_iter()
        .filter(|node| {
            node["Relation Name"] == "messages"
                && node["Node Type"]
                    .as_str()
                    .is_some_and(|kind| kind.ends_with("Scan"))
        })
        .collect();
    assert!(!scans.is_empty(), "{plan:#}");
    // A row read and not taken shows as removed by the scan's filter (or recheck).
    for scan in scans {
        let passed_over = scan["Rows Removed by Filter"].as_u64().unwrap_or(0)
            + scan["Rows Removed by Index Recheck"].as_u64().unwrap_or(0);
        assert_eq!(passed_over, 0, "rows read and not leased: {scan:#}");
    }
}
