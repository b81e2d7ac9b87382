//! Group enqueue: single events arriving while an enqueue is being stored are stored together
//! afterwards, each caller still getting its own answer.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald_application::ports::{MessageFilter, MessageQueue as _};
use herald_application::{DefaultMethod, Error, Event, Events, MAX_BATCHES_AT_ONCE};
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_domain::{Method, UserId};

use herald_tests::fixture::within;

use super::support::{GatedQueue, Harness, until_idle};

/// A webhook-only harness (one message per event) whose inserts are held at a closed gate.
fn held_events() -> (Harness, Arc<GatedQueue>) {
    let mut gated = None;
    let h = Harness::with_ports(
        DefaultMethod::Webhook,
        &[Method::Webhook],
        |ports, store| {
            let queue = GatedQueue::holding_inserts(store.clone());
            ports.queue = queue.clone();
            gated = Some(queue);
        },
    );
    (h, gated.unwrap())
}

fn event_for(subject: UserId, name: &str) -> Event {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(subject);
    event.labels.insert("name".into(), name.into());
    event
}

type Answer = tokio::task::JoinHandle<Result<herald_application::EnqueueResult, Error>>;

fn spawn_enqueue(events: &Events, event: Event) -> Answer {
    let events = events.clone();
    tokio::spawn(async move { events.enqueue(event).await })
}

/// Starts one enqueue and waits until its insert is held at the gate.
async fn first_held(events: &Events, queue: &GatedQueue, event: Event) -> Answer {
    let first = spawn_enqueue(events, event);
    within("the first insert reaching the gate", async {
        while queue.inserts_waiting.load(Ordering::SeqCst) == 0 {
            until_idle().await;
        }
    })
    .await;
    first
}

#[tokio::test(start_paused = true)]
async fn events_arriving_during_an_insert_are_stored_together_in_the_next_one() {
    let (h, queue) = held_events();
    let events = h.events.clone();
    let mut users = Vec::new();
    for n in 0..10 {
        users.push(h.user(&format!("user-{n}"), &[]).await);
    }
    let first = first_held(&events, &queue, event_for(users[0].id, "ws-0")).await;
    let rest: Vec<Answer> = users[1..]
        .iter()
        .enumerate()
        .map(|(n, user)| spawn_enqueue(&events, event_for(user.id, &format!("ws-{}", n + 1))))
        .collect();
    until_idle().await;
    assert_eq!(
        queue.inserts_waiting.load(Ordering::SeqCst),
        1,
        "the others wait for the insert in progress"
    );

    queue.open();
    let mut ids = BTreeSet::new();
    for (answer, user) in std::iter::once(first).chain(rest).zip(&users) {
        let result = answer.await.unwrap().unwrap();
        assert_eq!(result.message_ids.len(), 1);
        let message = h.store.get(result.message_ids[0]).await.unwrap().unwrap();
        assert_eq!(
            message.recipient, user.id,
            "each caller gets its own message"
        );
        ids.insert(result.message_ids[0]);
    }
    assert_eq!(ids.len(), 10);
    assert_eq!(
        *queue.inserts.lock().unwrap(),
        [1, 9],
        "the nine waiting events went in one insert"
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_whose_event_went_in_a_group_is_answered_without_waiting_for_the_next_group() {
    let (h, queue) = held_events();
    let events = h.events.clone();
    let user = h.user("u", &[]).await;
    let first = first_held(&events, &queue, event_for(user.id, "first")).await;
    let b = spawn_enqueue(&events, event_for(user.id, "b"));
    let c = spawn_enqueue(&events, event_for(user.id, "c"));
    until_idle().await;
    queue.release_one();
    assert_eq!(first.await.unwrap().unwrap().message_ids.len(), 1);
    until_idle().await;
    assert_eq!(
        queue.inserts_waiting.load(Ordering::SeqCst),
        1,
        "b and c are being stored together"
    );

    // d arrives while b and c's group is held, so it waits to go in the next group.
    let d = spawn_enqueue(&events, event_for(user.id, "d"));
    until_idle().await;
    queue.release_one();
    until_idle().await;
    assert_eq!(
        queue.inserts_waiting.load(Ordering::SeqCst),
        1,
        "d's group is held at the gate"
    );
    assert!(b.is_finished(), "b was answered");
    assert!(
        c.is_finished(),
        "c was answered with b, without waiting for d's group to be stored"
    );
    assert_eq!(b.await.unwrap().unwrap().message_ids.len(), 1);
    assert_eq!(c.await.unwrap().unwrap().message_ids.len(), 1);

    queue.open();
    assert_eq!(d.await.unwrap().unwrap().message_ids.len(), 1);
    assert_eq!(*queue.inserts.lock().unwrap(), [1, 2, 1]);
}

#[tokio::test(start_paused = true)]
async fn an_event_whose_caller_went_away_before_a_group_took_it_is_not_stored() {
    let (h, queue) = held_events();
    let events = h.events.clone();
    let user = h.user("u", &[]).await;
    let first = first_held(&events, &queue, event_for(user.id, "first")).await;
    let gone = spawn_enqueue(&events, event_for(user.id, "gone"));
    let stays = spawn_enqueue(&events, event_for(user.id, "stays"));
    until_idle().await;

    // Its client hangs up while the group before is being stored: it was never answered.
    gone.abort();
    until_idle().await;
    queue.open();

    assert_eq!(first.await.unwrap().unwrap().message_ids.len(), 1);
    assert_eq!(stays.await.unwrap().unwrap().message_ids.len(), 1);
    until_idle().await;
    assert_eq!(*queue.inserts.lock().unwrap(), [1, 1]);
    let stored: Vec<String> = h
        .store
        .list(&MessageFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.payload.labels["name"].clone())
        .collect();
    assert!(!stored.contains(&"gone".to_owned()), "stored: {stored:?}");
}

#[tokio::test(start_paused = true)]
async fn a_bad_event_in_a_group_is_refused_alone_and_the_others_are_queued() {
    let (h, queue) = held_events();
    let events = h.events.clone();
    let good = h.user("good", &[]).await;
    let first = first_held(&events, &queue, event_for(good.id, "first")).await;
    let before = spawn_enqueue(&events, event_for(good.id, "before"));
    let bad = spawn_enqueue(&events, event_for(UserId::random(), "bad"));
    let after = spawn_enqueue(&events, event_for(good.id, "after"));
    until_idle().await;

    queue.open();
    assert_eq!(first.await.unwrap().unwrap().message_ids.len(), 1);
    assert_eq!(before.await.unwrap().unwrap().message_ids.len(), 1);
    assert_eq!(after.await.unwrap().unwrap().message_ids.len(), 1);
    match bad.await.unwrap() {
        Err(Error::Invalid { field, reason }) => {
            assert_eq!(
                field, "user_id",
                "named as for a single event, not events[i]"
            );
            assert!(reason.contains("unknown user"), "{reason}");
        }
        other => panic!("expected the bad event refused, got {other:?}"),
    }
    assert_eq!(
        h.store.list(&MessageFilter::default()).await.unwrap().len(),
        3
    );
    assert_eq!(
        *queue.inserts.lock().unwrap(),
        [1, 1, 1],
        "the refused group stored nothing; its good events went in alone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_while_storing_a_group_loses_no_ones_event() {
    let (h, queue) = held_events();
    let events = h.events.clone();
    let user = h.user("u", &[]).await;
    let leader = first_held(&events, &queue, event_for(user.id, "leader")).await;
    let others: Vec<Answer> = (0..3)
        .map(|n| spawn_enqueue(&events, event_for(user.id, &format!("other-{n}"))))
        .collect();
    until_idle().await;

    // The leader's caller hangs up while its insert is held.
    leader.abort();
    until_idle().await;
    queue.open();
    for other in others {
        assert_eq!(other.await.unwrap().unwrap().message_ids.len(), 1);
    }
    until_idle().await;
    assert_eq!(
        h.store.list(&MessageFilter::default()).await.unwrap().len(),
        4,
        "the leader's own event was stored too"
    );
}

#[tokio::test(start_paused = true)]
async fn at_most_a_few_batches_are_planned_and_stored_at_once() {
    let (h, queue) = held_events();
    let events = h.events.clone();
    let user = h.user("u", &[]).await;
    let batches: Vec<_> = (0..MAX_BATCHES_AT_ONCE + 2)
        .map(|n| {
            let events = events.clone();
            let event = event_for(user.id, &format!("batch-{n}"));
            tokio::spawn(async move { events.enqueue_batch(vec![event]).await })
        })
        .collect();
    until_idle().await;
    assert_eq!(
        queue.inserts_waiting.load(Ordering::SeqCst),
        MAX_BATCHES_AT_ONCE,
        "the other two wait before they are planned"
    );

    queue.release_one();
    until_idle().await;
    assert_eq!(
        queue.inserts_waiting.load(Ordering::SeqCst),
        MAX_BATCHES_AT_ONCE,
        "one was stored and the next took its place"
    );
    assert_eq!(queue.inserts.lock().unwrap().len(), 1);

    queue.open();
    for batch in batches {
        assert_eq!(batch.await.unwrap().unwrap()[0].message_ids.len(), 1);
    }
    assert_eq!(queue.inserts.lock().unwrap().len(), MAX_BATCHES_AT_ONCE + 2);
}

/// A webhook-only harness with inserts held at a gate: one event's insert waits there, and
/// `count` more events wait behind it, to be stored as a group.
struct Waiting {
    h: Harness,
    queue: Arc<GatedQueue>,
    events: Events,
    user: herald_domain::UserId,
    first: Answer,
    behind: Vec<Answer>,
}

async fn waiting_behind_a_held_insert(count: usize) -> Waiting {
    let (h, queue) = held_events();
    let events = h.events.clone();
    let user = h.user("u", &[]).await.id;
    let first = first_held(&events, &queue, event_for(user, "first")).await;
    let behind = (0..count)
        .map(|n| spawn_enqueue(&events, event_for(user, &format!("behind-{n}"))))
        .collect();
    until_idle().await;
    Waiting {
        h,
        queue,
        events,
        user,
        first,
        behind,
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_outage_while_a_group_is_stored_answers_each_of_its_callers_unavailable() {
    let Waiting {
        h,
        queue,
        events,
        user,
        first,
        behind: grouped,
    } = waiting_behind_a_held_insert(3).await;
    queue.release_one();
    assert_eq!(first.await.unwrap().unwrap().message_ids.len(), 1);
    until_idle().await;
    assert_eq!(
        queue.inserts_waiting.load(Ordering::SeqCst),
        1,
        "the group, planned, waits to be inserted"
    );

    // The database goes away between the group's plan and its insert.
    h.store.set_unavailable(true);
    queue.open();
    for answer in grouped {
        let answer = answer.await.unwrap();
        assert!(matches!(answer, Err(Error::Unavailable(_))), "{answer:?}");
    }
    h.store.set_unavailable(false);
    assert_eq!(*queue.inserts.lock().unwrap(), [1, 3]);
    assert_eq!(
        h.store.list(&MessageFilter::default()).await.unwrap().len(),
        1,
        "only the first event's message"
    );

    // Once it is back, no group is left stuck: the next event is stored.
    let later = events.enqueue(event_for(user, "later")).await.unwrap();
    assert_eq!(later.message_ids.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn events_waiting_beyond_five_hundred_go_in_a_group_of_their_own() {
    let Waiting {
        queue,
        first,
        behind: waiting,
        ..
    } = waiting_behind_a_held_insert(600).await;

    queue.open();
    assert_eq!(first.await.unwrap().unwrap().message_ids.len(), 1);
    let mut ids = BTreeSet::new();
    for answer in waiting {
        let result = answer.await.unwrap().unwrap();
        assert_eq!(result.message_ids.len(), 1);
        ids.insert(result.message_ids[0]);
    }
    assert_eq!(ids.len(), 600, "each caller its own message");
    assert_eq!(*queue.inserts.lock().unwrap(), [1, 500, 100]);
}

#[tokio::test(start_paused = true)]
async fn a_group_the_store_is_down_for_answers_each_caller_unavailable_at_once_without_retrying_each()
 {
    let Waiting {
        queue,
        first,
        behind: grouped,
        ..
    } = waiting_behind_a_held_insert(3).await;

    // The first insert goes through; then the store is down for the group's insert.
    queue.release_one();
    assert_eq!(first.await.unwrap().unwrap().message_ids.len(), 1);
    queue
        .failing_inserts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    queue.open();
    for answer in grouped {
        let answer = answer.await.unwrap();
        assert!(matches!(answer, Err(Error::Unavailable(_))), "{answer:?}");
    }

    assert_eq!(
        *queue.inserts.lock().unwrap(),
        [1, 3],
        "an outage is no refusal of one event: nothing is tried again event by event"
    );
}
