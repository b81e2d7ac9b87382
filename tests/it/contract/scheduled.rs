//! The scheduled-send half of the `MessageQueue` contract: a message with `send_after` is not
//! leased before it, and a pending message can be cancelled (deleted, its hash freed) while
//! any other is left alone.

use chrono::Duration;
use herald_application::ports::{CancelOutcome, EnqueueOutcome, NewMessage};
use herald_domain::{MessageId, MessageStatus, UserId};
use herald_tests::fixture::Backend;
use herald_tests::sample::{self, lease_request, t0};

fn scheduled(at: chrono::DateTime<chrono::Utc>) -> NewMessage {
    NewMessage {
        send_after: Some(at),
        ..sample::new_message(UserId::random(), t0())
    }
}

async fn leased_ids(backend: &Backend, now: chrono::DateTime<chrono::Utc>) -> Vec<MessageId> {
    backend
        .queue
        .lease(lease_request(now, 10))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect()
}

async fn a_scheduled_message_is_leased_only_once_its_time_has_come(backend: Backend) {
    let at = t0() + Duration::hours(3);
    let later = scheduled(at);
    let now = sample::new_message(UserId::random(), t0());
    // Both in one batch and each alone: the two insert statements.
    backend
        .queue
        .enqueue(&[later.clone(), now.clone()])
        .await
        .unwrap();
    let alone = scheduled(at);
    backend
        .queue
        .enqueue(std::slice::from_ref(&alone))
        .await
        .unwrap();

    let stored = backend.queue.get(later.id).await.unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Pending);
    assert_eq!(
        stored.next_retry_after,
        Some(at),
        "listed with its send time"
    );
    assert_eq!(leased_ids(&backend, t0()).await, [now.id]);
    // The first message's lease expires meanwhile and may be taken over: only the
    // scheduled ones are looked for.
    let early = leased_ids(&backend, at - Duration::seconds(1)).await;
    assert!(
        !early.contains(&later.id) && !early.contains(&alone.id),
        "leased before its time"
    );
    let due = leased_ids(&backend, at).await;
    assert!(
        due.contains(&later.id) && due.contains(&alone.id),
        "not leased at its time: {due:?}"
    );
}

async fn a_pending_message_is_cancelled_and_its_hash_freed(backend: Backend) {
    let hash = sample::dedupe_hash();
    let message = NewMessage {
        dedupe_hash: Some(hash.clone()),
        ..scheduled(t0() + Duration::hours(1))
    };
    backend
        .queue
        .enqueue(std::slice::from_ref(&message))
        .await
        .unwrap();

    let outcome = backend.queue.cancel(message.id).await.unwrap();

    assert_eq!(outcome, CancelOutcome::Cancelled);
    assert_eq!(backend.queue.get(message.id).await.unwrap(), None);
    assert!(
        leased_ids(&backend, t0() + Duration::hours(2))
            .await
            .is_empty()
    );
    let again = NewMessage {
        dedupe_hash: Some(hash),
        ..sample::new_message(UserId::random(), t0())
    };
    let outcomes = backend
        .queue
        .enqueue(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [EnqueueOutcome::Queued(again.id)],
        "the hash stayed taken"
    );
}

async fn a_message_that_left_pending_is_not_cancelled(backend: Backend) {
    let message = sample::new_message(UserId::random(), t0());
    backend
        .queue
        .enqueue(std::slice::from_ref(&message))
        .await
        .unwrap();
    assert_eq!(leased_ids(&backend, t0()).await, [message.id]);

    let outcome = backend.queue.cancel(message.id).await.unwrap();

    assert_eq!(outcome, CancelOutcome::NotPending(MessageStatus::Leased));
    let stored = backend.queue.get(message.id).await.unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Leased);
}

async fn cancelling_an_unknown_message_finds_nothing(backend: Backend) {
    let outcome = backend.queue.cancel(MessageId::random()).await.unwrap();
    assert_eq!(outcome, CancelOutcome::NotFound);
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_scheduled_message_is_leased_only_once_its_time_has_come,
    a_pending_message_is_cancelled_and_its_hash_freed,
    a_message_that_left_pending_is_not_cancelled,
    cancelling_an_unknown_message_finds_nothing,
}
