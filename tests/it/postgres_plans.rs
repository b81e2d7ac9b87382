//! The queue's hot statements on PostgreSQL, planned as a store's sessions plan them (generic
//! plans) with statistics from a quiet moment: a lease reads no row it cannot take, whatever
//! waits ahead of the pending messages (live leases, failures waiting for their retry), and a
//! write-back reads only the rows it writes (migration 0005).

use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{LeaseRequest, MessageQueue, NewMessage, SkipMethods};
use herald_domain::{Completion, Message, Method, RetryPolicy, UserId, catalogue};
use herald_postgres::{WRITE_BACK_STATEMENT, lease_statement, throttled_lease_statement};
use herald_tests::postgres::TestDatabase;
use herald_tests::sample::{self, lease_request, t0};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// How many messages were sent when the statistics were taken: enough that reading the whole
/// table costs the planner more than finding rows by their ids.
const QUIET: usize = 5_000;
/// How many messages wait ahead of the pending ones, of each kind.
const WAITING: usize = 40;
/// An hour between attempts keeps the failures waiting behind the pending messages.
const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: sample::MAX_ATTEMPTS,
    retry_interval: Duration::hours(1),
};

/// Queues `count` messages created a second apart from `t0() + from` seconds.
async fn queue(database: &TestDatabase, from: i64, count: usize) {
    let user = UserId::random();
    let batch: Vec<_> = (from..)
        .take(count)
        .map(|second| sample::new_message(user, t0() + Duration::seconds(second)))
        .collect();
    database.store.enqueue(&batch).await.unwrap();
}

/// A queue whose statistics were taken at a quiet moment, when every message had been sent
/// (as after a burst that autovacuum has not analyzed yet: the planner then expects next to no
/// pending, leased or failed rows), and which now holds, oldest first: WAITING failures whose
/// retry is an hour away, WAITING messages under a live lease (returned), five pending.
async fn queue_after_a_quiet_moment(database: &TestDatabase) -> Vec<Message> {
    let store = &database.store;
    queue(database, -10_000, QUIET).await;
    let sent: Vec<_> = store
        .lease(lease_request(t0(), QUIET))
        .await
        .unwrap()
        .iter()
        .map(|m| m.complete(&Completion::Sent, t0(), POLICY).unwrap())
        .collect();
    assert_eq!(store.mark_sent(&sent).await.unwrap(), QUIET as u64);
    sqlx::query("VACUUM ANALYZE messages")
        .execute(store.pool())
        .await
        .unwrap();

    queue(database, 0, 2 * WAITING).await;
    let retryable = Completion::Failed {
        reason: "connection refused".to_owned(),
        retryable: true,
        retry_after: None,
    };
    let failed: Vec<_> = store
        .lease(lease_request(t0(), WAITING))
        .await
        .unwrap()
        .iter()
        .map(|m| m.complete(&retryable, t0(), POLICY).unwrap())
        .collect();
    assert_eq!(store.mark_failed(&failed).await.unwrap(), WAITING as u64);
    let leased = store.lease(lease_request(t0(), WAITING)).await.unwrap();
    assert_eq!(leased.len(), WAITING);
    queue(database, 1_000, 5).await;
    leased
}

/// `EXPLAIN (ANALYZE, FORMAT JSON)` of `statement` (prepared as `name` with `types`, executed
/// with `arguments`) on a session set up as the store's own, rolled back; the plan's root.
async fn explain(
    database: &TestDatabase,
    (name, types, statement): (&str, &str, &str),
    arguments: &str,
) -> Value {
    let mut connection: PgConnection = database
        .store
        .pool()
        .connect_options()
        .as_ref()
        .clone()
        .connect()
        .await
        .unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::query(&format!("PREPARE {name} ({types}) AS {statement}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let mut transaction = connection.begin().await.unwrap();
    let Json(explained): Json<Value> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name} ({arguments})"
    ))
    .fetch_one(&mut *transaction)
    .await
    .unwrap();
    transaction.rollback().await.unwrap();
    explained[0]["Plan"].clone()
}

/// Every node of a plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    for child in plan["Plans"].as_array().into_iter().flatten() {
        all.extend(nodes(child));
    }
    all
}

/// Asserts that the plan's scans of `messages` read `rows` rows in all, none passed over.
fn assert_reads_exactly(plan: &Value, rows: u64) {
    let scans: Vec<&Value> = nodes(plan)
        .into_iter()
        .filter(|node| {
            node["Relation Name"] == "messages"
                && node["Node Type"]
                    .as_str()
                    .is_some_and(|kind| kind.ends_with("Scan"))
        })
        .collect();
    let mut read = 0;
    for scan in scans {
        // A row read and not used shows as removed by the scan's filter (or recheck).
        let passed_over = scan["Rows Removed by Filter"].as_u64().unwrap_or(0)
            + scan["Rows Removed by Index Recheck"].as_u64().unwrap_or(0);
        assert_eq!(passed_over, 0, "rows read and not used: {scan:#}");
        read +=
            scan["Actual Rows"].as_u64().unwrap_or(0) * scan["Actual Loops"].as_u64().unwrap_or(1);
    }
    assert_eq!(read, rows, "{plan:#}");
}

fn timestamp(at: DateTime<Utc>) -> String {
    format!("'{}'", at.to_rfc3339())
}

/// The parameter types of the lease statement, `$1`–`$8`.
const LEASE_TYPES: &str = "timestamptz, timestamptz, int4, int8, int4, text, text[], text";

/// The parameter types of the throttled lease statement: the lease's, then `$9`–`$12`.
const THROTTLED_LEASE_TYPES: &str = "timestamptz, timestamptz, int4, int8, int4, text, text[], \
                                     text, timestamptz, timestamptz, int8, text";

/// The lease statement's arguments `$1`–`$8`: a lease of three at `now` for two minutes,
/// leaving the methods `skip` queued.
fn lease_arguments(now: DateTime<Utc>, skip: &[&str]) -> String {
    format!(
        "{}, {}, {}, 3, {}, 'expired %s times', '{{{}}}', 'leased by notifier plans'",
        timestamp(now),
        timestamp(now + Duration::minutes(2)),
        POLICY.max_attempts,
        sample::MAX_LEASE_EXPIRIES,
        skip.join(",")
    )
}

/// The throttled lease statement's arguments: [`lease_arguments`] leaving nothing queued, then
/// a throttle window from `from` to `to` of `limit` messages.
fn throttled_lease_arguments(
    now: DateTime<Utc>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    limit: u32,
) -> String {
    format!(
        "{}, {}, {}, {limit}, 'throttled'",
        lease_arguments(now, &[]),
        timestamp(from),
        timestamp(to)
    )
}

#[tokio::test]
async fn a_lease_reads_no_row_under_a_live_lease_or_waiting_for_its_retry() {
    let database = TestDatabase::create().await;
    queue_after_a_quiet_moment(&database).await;
    let now = t0() + Duration::minutes(1);

    let plan = explain(
        &database,
        ("lease", LEASE_TYPES, lease_statement()),
        &lease_arguments(now, &[]),
    )
    .await;

    assert_eq!(plan["Actual Rows"], 3, "the three oldest pending: {plan:#}");
    // Three pending (walking their index in order, not reading all five and sorting), then
    // each found again by its id for the update.
    assert_reads_exactly(&plan, 6);
}

#[tokio::test]
async fn a_lease_leaving_a_method_queued_reads_none_of_its_messages() {
    let database = TestDatabase::create().await;
    // Emails oldest: failures due for their retry and five pending; five webhook messages
    // behind them. The live leases are written back, so none has expired by `now`.
    let leased = queue_after_a_quiet_moment(&database).await;
    let sent: Vec<_> = leased
        .iter()
        .map(|m| m.complete(&Completion::Sent, t0(), POLICY).unwrap())
        .collect();
    database.store.mark_sent(&sent).await.unwrap();
    let user = UserId::random();
    let webhooks: Vec<_> = (2_000..2_005)
        .map(|second| NewMessage {
            method: Method::Webhook,
            ..sample::new_message(user, t0() + Duration::seconds(second))
        })
        .collect();
    database.store.enqueue(&webhooks).await.unwrap();
    let now = t0() + Duration::hours(2);

    let plan = explain(
        &database,
        ("lease_skipping", LEASE_TYPES, lease_statement()),
        &lease_arguments(now, &["smtp"]),
    )
    .await;

    assert_eq!(
        plan["Actual Rows"], 3,
        "the three oldest webhook messages: {plan:#}"
    );
    // Three webhook messages from their method's range of the pending index, then each found
    // by its id: none of the older emails, pending or due for a retry, read and passed over.
    assert_reads_exactly(&plan, 6);
}

#[tokio::test]
async fn a_lease_planned_before_any_statistics_walks_its_methods_index_in_order() {
    // A fresh deployment's first burst, before autovacuum ever analyzed the table (or with it
    // off): the sessions plan their lease with no statistics at all, and keep that plan.
    let database = TestDatabase::create().await;
    sqlx::query(
        "INSERT INTO messages (id, template_id, recipient, method, payload, targets, \
             created_by, created_at, updated_at) \
         SELECT gen_random_uuid(), $1, gen_random_uuid(), 'webhook', \
             json_build_object('text', repeat('x', 700)), '{}', 'tests', \
             $2 + make_interval(secs => g), $2 + make_interval(secs => g) \
         FROM generate_series(1, 50000) AS g",
    )
    .bind(catalogue::WORKSPACE_DELETED.as_uuid())
    .bind(t0())
    .execute(database.store.pool())
    .await
    .unwrap();
    let now = t0() + Duration::days(1);
    let throttled = throttled_lease_arguments(now, (now, now + Duration::hours(1)), 1_000_000);

    for (name, types, statement, arguments) in [
        (
            "lease",
            LEASE_TYPES,
            lease_statement(),
            lease_arguments(now, &[]),
        ),
        (
            "throttled_lease",
            THROTTLED_LEASE_TYPES,
            throttled_lease_statement(),
            throttled,
        ),
    ] {
        let plan = explain(&database, (name, types, statement), &arguments).await;

        assert_eq!(plan["Actual Rows"], 3, "{name}: the three oldest: {plan:#}");
        // The three oldest from the webhook index, walked in order (not all 50,000 read and
        // sorted), then each found by its id.
        assert_reads_exactly(&plan, 6);
    }
}

#[tokio::test]
async fn each_methods_lease_walks_its_own_indexes() {
    let database = TestDatabase::create().await;
    let store = &database.store;
    let retryable = Completion::Failed {
        reason: "connection refused".to_owned(),
        retryable: true,
        retry_after: None,
    };
    for (i, method) in Method::ALL.into_iter().enumerate() {
        let others: Vec<&str> = Method::ALL
            .into_iter()
            .filter(|other| *other != method)
            .map(Method::as_str)
            .collect();
        let skip = Method::ALL
            .into_iter()
            .filter(|other| *other != method)
            .fold(SkipMethods::NONE, |skip, other| skip.with(other));
        // Five failures due for their retry, then five pending, all of `method`.
        let user = UserId::random();
        let at = |second: i64| t0() + Duration::seconds(second + 100 * i as i64);
        let messages = |from: i64| -> Vec<NewMessage> {
            (from..from + 5)
                .map(|second| NewMessage {
                    method,
                    ..sample::new_message(user, at(second))
                })
                .collect()
        };
        store.enqueue(&messages(0)).await.unwrap();
        let leased = store
            .lease(LeaseRequest {
                skip,
                ..lease_request(t0(), 5)
            })
            .await
            .unwrap();
        assert_eq!(leased.len(), 5, "{method}");
        let failed: Vec<_> = leased
            .iter()
            .map(|m| m.complete(&retryable, t0(), POLICY).unwrap())
            .collect();
        store.mark_failed(&failed).await.unwrap();
        store.enqueue(&messages(10)).await.unwrap();
        let now = t0() + Duration::hours(2);

        let plan = explain(
            &database,
            (&format!("lease_{method}"), LEASE_TYPES, lease_statement()),
            &lease_arguments(now, &others),
        )
        .await;

        assert_eq!(
            plan["Actual Rows"], 3,
            "{method}: the three oldest failures: {plan:#}"
        );
        // Three due failures and three pending, each from its method's index, then the three
        // oldest found by their id: the other methods' messages, left queued, never read.
        assert_reads_exactly(&plan, 9);
    }
}

#[tokio::test]
async fn a_throttled_lease_reads_no_more_messages_than_the_plain_lease() {
    let database = TestDatabase::create().await;
    queue_after_a_quiet_moment(&database).await;
    let now = t0() + Duration::minutes(1);

    let plan = explain(
        &database,
        (
            "throttled_lease",
            THROTTLED_LEASE_TYPES,
            throttled_lease_statement(),
        ),
        &throttled_lease_arguments(now, (t0(), t0() + Duration::hours(1)), 1000),
    )
    .await;

    assert_eq!(plan["Actual Rows"], 3, "the three oldest pending: {plan:#}");
    // As the plain lease: three pending from their index, then each found by its id.
    assert_reads_exactly(&plan, 6);
}

#[tokio::test]
async fn a_write_back_reads_only_the_messages_it_writes() {
    let database = TestDatabase::create().await;
    let leased = queue_after_a_quiet_moment(&database).await;
    let now = t0() + Duration::minutes(1);
    let written = &leased[..10];
    let array = |items: Vec<String>, of: &str| format!("'{{{}}}'::{of}[]", items.join(","));
    let each = |value: &str| vec![value.to_owned(); written.len()];

    let plan = explain(
        &database,
        (
            "write_back",
            "uuid[], text[], text[], int4[], timestamptz[], timestamptz[], timestamptz[]",
            WRITE_BACK_STATEMENT,
        ),
        &[
            array(written.iter().map(|m| m.id.to_string()).collect(), "uuid"),
            array(each("sent"), "text"),
            array(each("NULL"), "text"),
            array(each("1"), "int4"),
            array(each("NULL"), "timestamptz"),
            array(each(&now.to_rfc3339()), "timestamptz"),
            array(
                written
                    .iter()
                    .map(|m| m.leased_until.unwrap().to_rfc3339())
                    .collect(),
                "timestamptz",
            ),
        ]
        .join(", "),
    )
    .await;

    assert_eq!(plan["Plans"][0]["Actual Rows"], 10, "{plan:#}");
    assert_reads_exactly(&plan, 10);
}
