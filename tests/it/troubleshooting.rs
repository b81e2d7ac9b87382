//! The reference's troubleshooting, as its documentation words it, run verbatim on
//! PostgreSQL against the views of migration 0009: "Ensure notifications are being added to
//! the `notification_messages` table", "Review any available error messages in the
//! `status_reason` column".

use herald_application::ports::{MessageQueue, TemplateStore};
use herald_domain::{Completion, RetryPolicy, UserId, catalogue};
use herald_tests::postgres::TestDatabase;
use herald_tests::sample::{self, lease_request, t0};
use sqlx::Row;

/// Step one: are notifications being added to the `notification_messages` table?
const RECENT_MESSAGES: &str = "SELECT id, notification_template_id, user_id, method, status, \
     status_reason, attempt_count, created_at, updated_at \
     FROM notification_messages ORDER BY created_at DESC LIMIT 10";

/// Step two: the error messages in the `status_reason` column, with each template's name.
const STATUS_REASONS: &str = "SELECT nm.id, nt.name, nm.status::text AS status, nm.status_reason \
     FROM notification_messages nm \
     JOIN notification_templates nt ON nt.id = nm.notification_template_id \
     WHERE nm.status_reason IS NOT NULL \
     ORDER BY nm.updated_at DESC";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_references_troubleshooting_queries_run_as_written_on_the_views() {
    let database = TestDatabase::create().await;
    let store = &database.store;
    store.seed(&catalogue::templates()).await.unwrap();
    let recipient = UserId::random();
    let failing = sample::new_message(recipient, t0());
    let waiting = sample::new_message(recipient, t0() + chrono::Duration::seconds(1));
    store
        .enqueue(&[failing.clone(), waiting.clone()])
        .await
        .unwrap();
    let leased = store.lease(lease_request(t0(), 1)).await.unwrap();
    let change = leased[0]
        .complete(
            &Completion::Failed {
                reason: "the mail server answered 451 to DATA: Try again later".to_owned(),
                retryable: true,
                retry_after: None,
            },
            t0(),
            RetryPolicy {
                max_attempts: sample::MAX_ATTEMPTS,
                retry_interval: chrono::Duration::minutes(5),
            },
        )
        .unwrap();
    store.mark_failed(&[change]).await.unwrap();

    let recent = sqlx::query(RECENT_MESSAGES)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let ids: Vec<uuid::Uuid> = recent.iter().map(|row| row.get("id")).collect();
    assert_eq!(
        ids,
        [*waiting.id.as_uuid(), *failing.id.as_uuid()],
        "newest first"
    );
    assert!(recent.iter().all(|row| {
        row.get::<uuid::Uuid, _>("user_id") == *recipient.as_uuid()
            && row.get::<uuid::Uuid, _>("notification_template_id")
                == *catalogue::WORKSPACE_DELETED.as_uuid()
    }));

    let reasons = sqlx::query(STATUS_REASONS)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let [reason] = reasons.as_slice() else {
        panic!("one message has a reason, got {}", reasons.len());
    };
    assert_eq!(reason.get::<uuid::Uuid, _>("id"), *failing.id.as_uuid());
    assert_eq!(reason.get::<String, _>("name"), "Workspace Deleted");
    assert_eq!(reason.get::<String, _>("status"), "temporary_failure");
    assert_eq!(
        reason.get::<String, _>("status_reason"),
        "the mail server answered 451 to DATA: Try again later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_troubleshooting_views_refuse_writes_saying_why() {
    let database = TestDatabase::create().await;
    let store = &database.store;
    store
        .enqueue(&[sample::new_message(UserId::random(), t0())])
        .await
        .unwrap();
    for write in [
        "UPDATE notification_messages SET status = 'sent'",
        "DELETE FROM notification_messages",
        "UPDATE notification_templates SET enabled_by_default = false",
    ] {
        let err = sqlx::query(write)
            .execute(store.pool())
            .await
            .expect_err(write);
        assert!(err.to_string().contains("read-only view"), "{write}: {err}");
    }
    let status: String = sqlx::query_scalar("SELECT status::text FROM messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(status, "pending");
}
