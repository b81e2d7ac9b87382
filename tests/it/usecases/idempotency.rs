//! DESIGN §10.3: idempotency keys on enqueue, over the in-memory store and a manual clock.

use chrono::Duration;
use herald_application::ports::{
    CallerKey, Clock, IDEMPOTENCY_WINDOW, MessageFilter, MessageQueue,
};
use herald_application::{Error, Event};
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_domain::{IdempotencyKey, Role, UserId};

use super::support::Harness;

fn keyed(subject: UserId, name: &str, caller: Option<UserId>, key: &str) -> Event {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(subject);
    event.created_by = "tests".into();
    event.labels.insert("name".into(), name.into());
    event.idempotency = Some(CallerKey {
        caller,
        key: IdempotencyKey::parse(key).unwrap(),
    });
    event
}

async fn stored_count(h: &Harness) -> usize {
    h.store
        .list(&MessageFilter {
            limit: 10_000,
            ..MessageFilter::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn the_same_key_and_event_answers_the_first_result_and_queues_nothing() {
    let h = Harness::webhook_only();
    let subject = h.user("ann", &[Role::Member]).await;
    let caller = Some(UserId::random());

    let first = h
        .events
        .enqueue(keyed(subject.id, "ws-1", caller, "order-1"))
        .await
        .unwrap();
    h.clock.advance(Duration::hours(1));
    let again = h
        .events
        .enqueue(keyed(subject.id, "ws-1", caller, "order-1"))
        .await
        .unwrap();

    assert_eq!(first.message_ids.len(), 1);
    assert_eq!(again, first);
    assert_eq!(stored_count(&h).await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_event_is_a_conflict_naming_the_key() {
    let h = Harness::webhook_only();
    let subject = h.user("ann", &[Role::Member]).await;
    let caller = Some(UserId::random());
    h.events
        .enqueue(keyed(subject.id, "ws-1", caller, "order-1"))
        .await
        .unwrap();

    let err = h
        .events
        .enqueue(keyed(subject.id, "ws-2", caller, "order-1"))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::Conflict(what) if what.contains("`order-1`")),
        "{err:?}"
    );
    assert_eq!(stored_count(&h).await, 1);
}

#[tokio::test]
async fn another_caller_may_use_the_same_key() {
    let h = Harness::webhook_only();
    let subject = h.user("ann", &[Role::Member]).await;

    let ann = h
        .events
        .enqueue(keyed(subject.id, "ws-1", Some(UserId::random()), "k"))
        .await
        .unwrap();
    let bob = h
        .events
        .enqueue(keyed(subject.id, "ws-2", Some(UserId::random()), "k"))
        .await
        .unwrap();

    assert_ne!(ann.message_ids, bob.message_ids);
    assert_eq!(stored_count(&h).await, 2);
}

#[tokio::test]
async fn a_key_older_than_a_day_queues_again_and_the_purge_forgets_it() {
    let h = Harness::webhook_only();
    let subject = h.user("ann", &[Role::Member]).await;
    let caller = Some(UserId::random());
    let start = h.clock.now();
    let first = h
        .events
        .enqueue(keyed(subject.id, "ws-1", caller, "order-1"))
        .await
        .unwrap();

    h.clock.advance(IDEMPOTENCY_WINDOW + Duration::seconds(1));
    h.purger.purge().await.unwrap();
    let key = CallerKey {
        caller,
        key: IdempotencyKey::parse("order-1").unwrap(),
    };
    let left = h
        .store
        .claimed_answers(std::slice::from_ref(&key), start)
        .await
        .unwrap();
    assert_eq!(left, [None], "the purge kept a key older than the window");
    // Another event with the old key is no conflict any more.
    let later = h
        .events
        .enqueue(keyed(subject.id, "ws-2", caller, "order-1"))
        .await
        .unwrap();

    assert_ne!(later.message_ids, first.message_ids);
    assert_eq!(later.message_ids.len(), 1);
}

#[tokio::test]
async fn a_batch_replays_keyed_events_answered_before_and_queues_the_others() {
    let h = Harness::webhook_only();
    let subject = h.user("ann", &[Role::Member]).await;
    let caller = Some(UserId::random());
    let first = h
        .events
        .enqueue(keyed(subject.id, "ws-1", caller, "a"))
        .await
        .unwrap();

    let results = h
        .events
        .enqueue_batch(vec![
            keyed(subject.id, "ws-2", caller, "b"),
            keyed(subject.id, "ws-1", caller, "a"),
            keyed(subject.id, "ws-2", caller, "b"),
        ])
        .await
        .unwrap();

    assert_eq!(results[1], first, "a key answered before was not replayed");
    assert_eq!(
        results[2], results[0],
        "a key repeated in the batch was queued twice"
    );
    assert_eq!(results[0].message_ids.len(), 1);
    assert_eq!(stored_count(&h).await, 2);
}

#[tokio::test]
async fn a_batch_repeating_a_key_with_another_event_is_a_conflict_and_queues_nothing() {
    let h = Harness::webhook_only();
    let subject = h.user("ann", &[Role::Member]).await;
    let caller = Some(UserId::random());

    let err = h
        .events
        .enqueue_batch(vec![
            keyed(subject.id, "ws-1", caller, "a"),
            keyed(subject.id, "ws-2", caller, "a"),
        ])
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(stored_count(&h).await, 0);
}

#[tokio::test]
async fn concurrent_events_with_one_key_queue_once_and_answer_alike() {
    let h = Harness::webhook_only();
    let subject = h.user("ann", &[Role::Member]).await;
    let caller = Some(UserId::random());

    let calls: Vec<_> = (0..6)
        .map(|_| {
            let events = h.events.clone();
            let event = keyed(subject.id, "ws-1", caller, "order-1");
            tokio::spawn(async move { events.enqueue(event).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap().unwrap());
    }

    assert_eq!(stored_count(&h).await, 1);
    assert!(answers.iter().all(|answer| *answer == answers[0]));
}
