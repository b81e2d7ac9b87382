//! DESIGN §10.3: scheduled send — an event with `send_after` is not sent before it, and can be
//! cancelled while pending. Time moves by hand (`ManualClock`).

use chrono::Duration as Age;
use herald_application::{Cycle, Error, Event};
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_domain::{MessageStatus, Method, Role, UserId};

use super::notifier::{as_dispatchers, webhook_only};
use super::support::{Harness, ScriptedDispatcher, quiet_config};

fn scheduled(subject: UserId, after: chrono::DateTime<chrono::Utc>) -> Event {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(subject);
    event.labels.insert("name".into(), "ws".into());
    event.send_after = Some(after);
    event
}

async fn one_scheduled(h: &Harness, after: Age) -> herald_domain::MessageId {
    let user = h.user("ann", &[Role::Member]).await;
    let ids = h
        .events
        .enqueue(scheduled(user.id, h.clock_now() + after))
        .await
        .unwrap()
        .message_ids;
    assert_eq!(ids.len(), 1);
    ids[0]
}

#[tokio::test]
async fn a_scheduled_event_is_sent_once_its_time_has_come_and_not_before() {
    let h = webhook_only();
    let send_at = h.clock_now() + Age::hours(20);
    let id = one_scheduled(&h, Age::hours(20)).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Pending);
    assert_eq!(message.next_retry_after, Some(send_at));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));
    h.clock.set(send_at - Age::seconds(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));

    h.clock.set(send_at);
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    assert_eq!(h.message(id).await.status, MessageStatus::Sent);
    assert_eq!(webhook.delivered_ids(), [id]);
}

#[tokio::test]
async fn a_cancelled_scheduled_event_is_never_sent_and_cannot_be_cancelled_twice() {
    let h = webhook_only();
    let id = one_scheduled(&h, Age::hours(1)).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    h.services.messages().cancel(id).await.unwrap();

    h.clock.advance(Age::hours(2));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));
    assert!(webhook.delivered().is_empty());
    let again = h.services.messages().cancel(id).await.unwrap_err();
    assert!(matches!(again, Error::NotFound(_)), "{again:?}");
}

#[tokio::test]
async fn a_message_already_sent_is_not_cancelled() {
    let h = webhook_only();
    let id = one_scheduled(&h, Age::zero()).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;

    let err = h.services.messages().cancel(id).await.unwrap_err();

    assert!(
        matches!(&err, Error::Conflict(what) if what.contains("sent")),
        "{err:?}"
    );
    assert_eq!(h.message(id).await.status, MessageStatus::Sent);
}

#[tokio::test]
async fn a_send_time_beyond_the_retention_is_refused_naming_send_after() {
    let h = webhook_only();
    let user = h.user("ann", &[Role::Member]).await;

    let err = h
        .events
        .enqueue(scheduled(user.id, h.clock_now() + Age::days(8)))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "send_after"),
        "{err:?}"
    );
}
