//! The digest half of the `MessageQueue` contract: a digest row opens a digest or appends its
//! items to the open one of its template, recipient and method; a closed or leased digest is
//! never appended to; concurrent enqueues open one digest and lose no item.

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use herald_application::ports::{EnqueueOutcome, NewMessage};
use herald_domain::{Labels, Message, MessageId, MessageStatus, Method, UserId, digest};
use herald_tests::fixture::Backend;
use herald_tests::sample::{self, lease_request, t0};

const WINDOW: Duration = Duration::hours(1);

/// A digest row for `recipient` with one item named `name`, its window closing an hour after
/// `at`.
fn digest_row(recipient: UserId, at: DateTime<Utc>, name: &str) -> NewMessage {
    let mut row = sample::new_message(recipient, at);
    let labels = Labels::from([("name".to_owned(), name.to_owned())]);
    row.payload.data = Some(digest::data(vec![digest::item(&labels, None)]));
    row.payload.labels = Labels::new();
    row.send_after = Some(at + WINDOW);
    row.digest = true;
    row
}

async fn stored(backend: &Backend, id: MessageId) -> Message {
    backend.queue.get(id).await.unwrap().expect("stored")
}

fn item_names(message: &Message) -> Vec<String> {
    digest::items(message.payload.data.as_ref())
        .iter()
        .map(|item| {
            item["labels"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn enqueue_one(backend: &Backend, row: &NewMessage) -> MessageId {
    match backend
        .queue
        .enqueue(std::slice::from_ref(row))
        .await
        .unwrap()[..]
    {
        [EnqueueOutcome::Queued(id)] => id,
        ref other => panic!("not queued: {other:?}"),
    }
}

async fn later_rows_inside_the_window_append_to_the_open_digest(backend: Backend) {
    let recipient = UserId::random();
    let first = digest_row(recipient, t0(), "alpha");
    let opened = enqueue_one(&backend, &first).await;
    let second = enqueue_one(
        &backend,
        &digest_row(recipient, t0() + Duration::minutes(10), "beta"),
    )
    .await;
    let third = enqueue_one(
        &backend,
        &digest_row(recipient, t0() + Duration::minutes(59), "gamma"),
    )
    .await;

    assert_eq!(opened, first.id);
    assert_eq!(
        [second, third],
        [first.id, first.id],
        "appended to the open digest"
    );
    let digest = stored(&backend, first.id).await;
    assert!(digest.digest);
    assert_eq!(digest.status, MessageStatus::Pending);
    assert_eq!(item_names(&digest), ["alpha", "beta", "gamma"]);
    assert_eq!(
        digest.next_retry_after,
        Some(t0() + WINDOW),
        "the window keeps its close"
    );
    assert_eq!(digest.updated_at, t0() + Duration::minutes(59));
    let early = backend
        .queue
        .lease(lease_request(t0() + WINDOW - Duration::seconds(1), 10))
        .await
        .unwrap();
    assert!(early.is_empty(), "leased before the window closed");
    let due = backend
        .queue
        .lease(lease_request(t0() + WINDOW, 10))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(item_names(&due[0]), ["alpha", "beta", "gamma"]);
    assert!(due[0].digest);
}

async fn a_row_after_the_close_or_the_lease_opens_a_new_digest(backend: Backend) {
    let recipient = UserId::random();
    let first = digest_row(recipient, t0(), "alpha");
    enqueue_one(&backend, &first).await;

    // The window closed but no notifier leased it yet: a new digest all the same.
    let after_close = digest_row(recipient, t0() + WINDOW, "beta");
    assert_eq!(enqueue_one(&backend, &after_close).await, after_close.id);
    // Leased (being sent): never appended to.
    let leased = backend
        .queue
        .lease(lease_request(t0() + WINDOW, 10))
        .await
        .unwrap();
    assert_eq!(leased.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id]);
    let while_sending = digest_row(recipient, t0() + WINDOW + Duration::minutes(1), "gamma");
    assert_eq!(
        enqueue_one(&backend, &while_sending).await,
        after_close.id,
        "the second digest is open"
    );

    assert_eq!(item_names(&stored(&backend, first.id).await), ["alpha"]);
    assert_eq!(
        item_names(&stored(&backend, after_close.id).await),
        ["beta", "gamma"]
    );
}

async fn a_leased_digest_is_never_appended_to_even_by_a_clock_behind(backend: Backend) {
    let recipient = UserId::random();
    let first = digest_row(recipient, t0(), "alpha");
    enqueue_one(&backend, &first).await;
    let leased = backend
        .queue
        .lease(lease_request(t0() + WINDOW, 10))
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);

    // A replica whose clock is behind still sees the window open: the status decides.
    let late = digest_row(recipient, t0() + Duration::minutes(30), "beta");
    assert_eq!(enqueue_one(&backend, &late).await, late.id);
    assert_eq!(item_names(&stored(&backend, first.id).await), ["alpha"]);
}

async fn digests_are_kept_apart_by_recipient_template_and_method(backend: Backend) {
    let recipient = UserId::random();
    let first = digest_row(recipient, t0(), "alpha");
    let other_recipient = digest_row(UserId::random(), t0(), "beta");
    let other_method = NewMessage {
        method: Method::Webhook,
        ..digest_row(recipient, t0(), "gamma")
    };
    let other_template = NewMessage {
        template_id: herald_domain::catalogue::USER_ACCOUNT_CREATED,
        ..digest_row(recipient, t0(), "delta")
    };
    // A plain message of the template is never a digest to append to.
    let plain = NewMessage {
        send_after: Some(t0() + WINDOW),
        ..sample::new_message(recipient, t0())
    };
    let batch = [
        plain.clone(),
        first.clone(),
        other_recipient.clone(),
        other_method.clone(),
        other_template.clone(),
    ];

    let outcomes = backend.queue.enqueue(&batch).await.unwrap();

    let expected: Vec<_> = batch
        .iter()
        .map(|row| EnqueueOutcome::Queued(row.id))
        .collect();
    assert_eq!(outcomes, expected);
    assert!(!stored(&backend, plain.id).await.digest);
    assert_eq!(
        item_names(&stored(&backend, plain.id).await),
        Vec::<String>::new()
    );
}

async fn rows_for_one_recipient_in_one_batch_make_one_digest(backend: Backend) {
    let recipient = UserId::random();
    let plain = sample::new_message(recipient, t0());
    let batch = [
        digest_row(recipient, t0(), "alpha"),
        plain.clone(),
        digest_row(recipient, t0(), "beta"),
    ];

    let outcomes = backend.queue.enqueue(&batch).await.unwrap();

    assert_eq!(
        outcomes,
        [
            EnqueueOutcome::Queued(batch[0].id),
            EnqueueOutcome::Queued(plain.id),
            EnqueueOutcome::Queued(batch[0].id)
        ]
    );
    assert_eq!(
        item_names(&stored(&backend, batch[0].id).await),
        ["alpha", "beta"]
    );
    assert_eq!(backend.queue.get(batch[2].id).await.unwrap(), None);
}

async fn concurrent_enqueues_on_two_replicas_open_one_digest_and_lose_no_item(backend: Backend) {
    let replica = backend.replica().await;
    let recipient = UserId::random();
    let rows: Vec<NewMessage> = (0..16)
        .map(|n| digest_row(recipient, t0(), &format!("item-{n:02}")))
        .collect();

    let outcomes = join_all(rows.iter().enumerate().map(|(n, row)| {
        let queue = if n % 2 == 0 {
            &backend.queue
        } else {
            &replica.queue
        };
        queue.enqueue(std::slice::from_ref(row))
    }))
    .await;

    let ids: std::collections::BTreeSet<MessageId> = outcomes
        .into_iter()
        .map(|outcome| match outcome.unwrap()[..] {
            [EnqueueOutcome::Queued(id)] => id,
            ref other => panic!("not queued: {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 1, "one open digest: {ids:?}");
    let digest = stored(&backend, *ids.first().unwrap()).await;
    let mut names = item_names(&digest);
    names.sort();
    let expected: Vec<String> = (0..16).map(|n| format!("item-{n:02}")).collect();
    assert_eq!(names, expected);
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    later_rows_inside_the_window_append_to_the_open_digest,
    a_row_after_the_close_or_the_lease_opens_a_new_digest,
    a_leased_digest_is_never_appended_to_even_by_a_clock_behind,
    digests_are_kept_apart_by_recipient_template_and_method,
    rows_for_one_recipient_in_one_batch_make_one_digest,
    concurrent_enqueues_on_two_replicas_open_one_digest_and_lose_no_item,
}
