//! DESIGN §10.3: digests — a template's events for one recipient within its window go out as
//! one message, rendered by the template's digest form. Time moves by hand (`ManualClock`).

use chrono::Duration as Age;
use herald_application::{Cycle, Error, Event};
use herald_domain::catalogue::{ONE_TIME_PASSCODE, WORKSPACE_DELETED};
use herald_domain::{DigestWindow, MessageId, MessageStatus, Method, Role, UserId, digest};

use super::notifier::{as_dispatchers, webhook_only};
use super::support::{Harness, ScriptedDispatcher, quiet_config};

fn deleted(subject: UserId, name: &str) -> Event {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(subject);
    event.labels.insert("name".into(), name.into());
    event
}

async fn with_hourly_digest() -> Harness {
    let h = webhook_only();
    let window = DigestWindow::parse("1h").unwrap();
    assert!(
        h.templates
            .set_digest(WORKSPACE_DELETED, Some(window))
            .await
            .unwrap()
    );
    h
}

async fn enqueue(h: &Harness, subject: UserId, name: &str) -> MessageId {
    let ids = h
        .events
        .enqueue(deleted(subject, name))
        .await
        .unwrap()
        .message_ids;
    assert_eq!(ids.len(), 1);
    ids[0]
}

fn item_names(message: &herald_domain::Message) -> Vec<String> {
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

#[tokio::test]
async fn a_windows_events_go_out_as_one_message_when_it_closes() {
    let h = with_hourly_digest().await;
    let ann = h.user("ann", &[Role::Member]).await;
    let opened_at = h.clock_now();
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    let first = enqueue(&h, ann.id, "alpha").await;
    h.clock.advance(Age::minutes(20));
    let second = enqueue(&h, ann.id, "beta").await;
    h.clock.advance(Age::minutes(39));
    let third = enqueue(&h, ann.id, "gamma").await;

    assert_eq!([second, third], [first, first], "one digest");
    let message = h.message(first).await;
    assert!(message.digest);
    assert_eq!(message.status, MessageStatus::Pending);
    assert_eq!(message.next_retry_after, Some(opened_at + Age::hours(1)));
    assert_eq!(item_names(&message), ["alpha", "beta", "gamma"]);
    assert_eq!(
        notifier.run_cycle().await.unwrap(),
        Cycle::Dispatched(0),
        "window open"
    );

    h.clock.set(opened_at + Age::hours(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;

    assert_eq!(h.message(first).await.status, MessageStatus::Sent);
    let sent = webhook.delivered();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].rendered.title, "Workspace Deleted: 3 notifications");
    let body = &sent[0].rendered.body;
    for name in ["alpha", "beta", "gamma"] {
        assert!(
            body.contains(&format!("Workspace \"{name}\" deleted")),
            "{body}"
        );
    }
    assert_eq!(
        sent[0].payload.data, message.payload.data,
        "data.items travel with it"
    );
}

#[tokio::test]
async fn an_event_arriving_while_the_digest_is_being_sent_starts_a_new_digest() {
    let h = with_hourly_digest().await;
    let ann = h.user("ann", &[Role::Member]).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));
    let first = enqueue(&h, ann.id, "alpha").await;
    h.clock.advance(Age::hours(1));
    // Leased and dispatched; its result is not written back yet: still being sent.
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    assert_eq!(h.message(first).await.status, MessageStatus::Leased);

    let second = enqueue(&h, ann.id, "beta").await;
    notifier.flush().await;

    assert_ne!(second, first, "a new digest");
    assert_eq!(item_names(&h.message(first).await), ["alpha"]);
    assert_eq!(h.message(first).await.status, MessageStatus::Sent);
    assert_eq!(item_names(&h.message(second).await), ["beta"]);
    h.clock.advance(Age::minutes(59));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));
    h.clock.advance(Age::minutes(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    assert_eq!(webhook.delivered_ids(), [first, second]);
    assert_eq!(
        webhook.delivered()[1].rendered.title,
        "Workspace Deleted: 1 notification"
    );
}

#[tokio::test]
async fn each_recipient_gets_a_digest_of_their_own() {
    let h = with_hourly_digest().await;
    let ann = h.user("ann", &[Role::Member]).await;
    let bob = h.user("bob", &[Role::Member]).await;

    let anns = [
        enqueue(&h, ann.id, "a1").await,
        enqueue(&h, ann.id, "a2").await,
    ];
    let bobs = enqueue(&h, bob.id, "b1").await;

    assert_eq!(anns[0], anns[1]);
    assert_ne!(anns[0], bobs);
    assert_eq!(item_names(&h.message(bobs).await), ["b1"]);
}

#[tokio::test]
async fn two_notifiers_closing_the_same_window_send_it_once() {
    let h = with_hourly_digest().await;
    let ann = h.user("ann", &[Role::Member]).await;
    let id = enqueue(&h, ann.id, "alpha").await;
    let one = ScriptedDispatcher::ok(Method::Webhook);
    let two = ScriptedDispatcher::ok(Method::Webhook);
    let mut first = h.notifier(quiet_config(), as_dispatchers(&one));
    let replica = h.replica();
    let mut second = h.notifier_with_ports(
        replica.notifier_ports().clone(),
        quiet_config(),
        as_dispatchers(&two),
    );
    h.clock.advance(Age::hours(1));

    let (a, b) = tokio::join!(first.run_cycle(), second.run_cycle());
    first.flush().await;
    second.flush().await;

    let dispatched = [a.unwrap(), b.unwrap()];
    assert!(
        dispatched.contains(&Cycle::Dispatched(1)) && dispatched.contains(&Cycle::Dispatched(0)),
        "{dispatched:?}"
    );
    let mut ids = one.delivered_ids();
    ids.extend(two.delivered_ids());
    assert_eq!(ids, [id]);
}

#[tokio::test]
async fn clearing_the_window_sends_each_event_at_once_again() {
    let h = with_hourly_digest().await;
    let ann = h.user("ann", &[Role::Member]).await;
    let gathered = enqueue(&h, ann.id, "alpha").await;

    assert!(
        h.templates
            .set_digest(WORKSPACE_DELETED, None)
            .await
            .unwrap()
    );
    let alone = enqueue(&h, ann.id, "beta").await;

    assert_ne!(alone, gathered);
    let message = h.message(alone).await;
    assert!(!message.digest);
    assert_eq!(message.next_retry_after, None);
}

#[tokio::test]
async fn a_security_message_is_never_gathered_into_a_digest() {
    let h = webhook_only();
    let window = DigestWindow::parse("1h").unwrap();

    let err = h
        .templates
        .set_digest(ONE_TIME_PASSCODE, Some(window))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "window"),
        "{err:?}"
    );
}
