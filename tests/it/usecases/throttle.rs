//! DESIGN §10.3: the per-recipient throttle — at most N messages per recipient and method per
//! window; the excess waits (pending, with the reason and the time it may go) and goes out
//! oldest first as the window moves. Time moves by hand (`ManualClock`, which starts on a
//! whole hour, so the hour-long windows here start with the test).

use std::time::Duration;

use chrono::Duration as Age;
use herald_application::{Cycle, NotifierConfig, RateLimit};
use herald_domain::{MessageId, MessageStatus, Method, Role, UserId};

use super::notifier::{as_dispatchers, enqueue_for, webhook_only};
use super::support::{Harness, ScriptedDispatcher, quiet_config};

const REASON: &str = "throttled: 2 per 1h for this recipient and method";

fn throttled(count: u32) -> NotifierConfig {
    NotifierConfig {
        user_rate_limit: Some(
            RateLimit::new(
                "notifier.user_rate_limit",
                count,
                Duration::from_secs(3_600),
            )
            .unwrap(),
        ),
        ..quiet_config()
    }
}

/// `count` events for `user`, a second apart (so their age order is plain); their message ids.
async fn events(h: &Harness, user: UserId, count: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..count {
        ids.extend(enqueue_for(h, user, &format!("ws-{user}-{i}")).await);
        h.clock.advance(Age::seconds(1));
    }
    ids
}

#[tokio::test]
async fn the_excess_waits_for_the_next_window_and_goes_out_oldest_first() {
    let h = webhook_only();
    let ann = h.user("ann", &[Role::Member]).await;
    let start = h.clock_now();
    let ids = events(&h, ann.id, 5).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(throttled(2), as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(2));
    notifier.flush().await;
    assert_eq!(webhook.delivered_ids(), ids[..2]);
    let next_window = start + Age::hours(1);
    for id in &ids[2..] {
        let waiting = h.message(*id).await;
        assert_eq!(
            waiting.status,
            MessageStatus::Pending,
            "held back, not dropped"
        );
        assert_eq!(waiting.status_reason.as_deref(), Some(REASON));
        assert_eq!(waiting.next_retry_after, Some(next_window));
    }

    // The window is full until it ends.
    h.clock.set(next_window - Age::seconds(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));

    h.clock.set(next_window);
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(2));
    notifier.flush().await;
    assert_eq!(webhook.delivered_ids(), ids[..4]);
    assert_eq!(
        h.message(ids[4]).await.next_retry_after,
        Some(next_window + Age::hours(1))
    );

    h.clock.set(next_window + Age::hours(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    assert_eq!(webhook.delivered_ids(), ids);
    assert_eq!(h.message(ids[4]).await.status, MessageStatus::Sent);
}

#[tokio::test]
async fn each_method_has_a_window_of_its_own() {
    let h = Harness::new();
    let ann = h.user("ann", &[Role::Member]).await;
    let ids = events(&h, ann.id, 2).await;
    assert_eq!(ids.len(), 4, "webhook and inbox each");
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let inbox = ScriptedDispatcher::ok(Method::Inbox);
    let mut notifier = h.notifier(throttled(1), vec![webhook.clone(), inbox.clone()]);

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(2));
    assert_eq!(webhook.delivered().len(), 1);
    assert_eq!(inbox.delivered().len(), 1);
}

#[tokio::test]
async fn each_recipient_has_a_window_of_their_own() {
    let h = webhook_only();
    let ann = h.user("ann", &[Role::Member]).await;
    let bob = h.user("bob", &[Role::Member]).await;
    events(&h, ann.id, 3).await;
    events(&h, bob.id, 3).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(throttled(2), as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(4));
    let recipients: Vec<UserId> = webhook.delivered().iter().map(|d| d.recipient).collect();
    assert_eq!(recipients, [ann.id, ann.id, bob.id, bob.id]);
}

#[tokio::test]
async fn without_a_throttle_nothing_waits() {
    let h = webhook_only();
    let ann = h.user("ann", &[Role::Member]).await;
    events(&h, ann.id, 5).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(5));
}

#[tokio::test(start_paused = true)]
async fn a_lease_the_throttle_held_back_is_not_short_so_other_recipients_go_out_at_once() {
    let h = webhook_only();
    let ann = h.user("ann", &[Role::Member]).await;
    let bob = h.user("bob", &[Role::Member]).await;
    // Ann's ten are older: the first two leases of five find mostly hers to hold back.
    events(&h, ann.id, 10).await;
    let bobs = events(&h, bob.id, 2).await;
    let config = NotifierConfig {
        lease_count: 5,
        ..throttled(2)
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let handle = h.notifier(config, as_dispatchers(&webhook)).spawn();

    tokio::time::timeout(Duration::from_secs(1), webhook.wait_for(4))
        .await
        .expect("Bob's messages go out after Ann's were held back, not at the 1 h poll");
    handle.stop().await;
    let delivered = webhook.delivered_ids();
    assert!(
        bobs.iter().all(|id| delivered.contains(id)),
        "{delivered:?}"
    );
}

/// DESIGN §10.3: a digest the throttle holds back stays open, so the events of its template
/// that arrive while it waits fold into it, and it goes out once, whole, when the window allows.
#[tokio::test]
async fn a_digest_held_back_by_the_throttle_gathers_the_events_that_arrive_meanwhile() {
    use herald_domain::catalogue::WORKSPACE_DELETED;
    use herald_domain::{DigestWindow, digest};

    let h = webhook_only();
    assert!(
        h.templates
            .set_digest(WORKSPACE_DELETED, Some(DigestWindow::parse("10m").unwrap()))
            .await
            .unwrap()
    );
    let ann = h.user("ann", &[Role::Member]).await;
    let start = h.clock_now();
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(throttled(1), as_dispatchers(&webhook));
    let deleted = |name: &str| {
        let mut event = herald_application::Event::new(WORKSPACE_DELETED);
        event.subject = Some(ann.id);
        event.labels.insert("name".into(), name.into());
        event
    };

    // The first digest takes the window's one place.
    let first = h
        .events
        .enqueue(deleted("alpha"))
        .await
        .unwrap()
        .message_ids;
    h.clock.set(start + Age::minutes(10));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    assert_eq!(webhook.delivered_ids(), first);

    // The second closes when the window is full: held back until the hour ends.
    h.clock.set(start + Age::minutes(11));
    let second = h.events.enqueue(deleted("beta")).await.unwrap().message_ids;
    h.clock.set(start + Age::minutes(21));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));
    let held = h.message(second[0]).await;
    assert_eq!(held.status, MessageStatus::Pending);
    assert_eq!(held.next_retry_after, Some(start + Age::hours(1)));

    // An event while it waits joins it rather than waiting on its own.
    h.clock.set(start + Age::minutes(30));
    let third = h
        .events
        .enqueue(deleted("gamma"))
        .await
        .unwrap()
        .message_ids;
    assert_eq!(third, second, "folded into the held-back digest");

    h.clock.set(start + Age::hours(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    assert_eq!(webhook.delivered_ids(), [first[0], second[0]]);
    let sent = h.message(second[0]).await;
    let names: Vec<&str> = digest::items(sent.payload.data.as_ref())
        .iter()
        .map(|item| item["labels"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["beta", "gamma"]);
}
