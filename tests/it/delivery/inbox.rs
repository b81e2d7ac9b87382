//! The inbox dispatcher: stores the notification and publishes it to the recipient's
//! watchers, never blocking on a slow one.

use std::sync::Arc;
use std::time::Duration;

use herald_application::ports::{
    Clock, Delivery, Dispatcher, InboxFeed, InboxQuery, InboxStore, ReadStatus,
};
use herald_application::rendering::RenderedMessage;
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_domain::{Action, InboxNotificationId, MessageId, Method, UserId};
use herald_inbox::InboxDispatcher;
use herald_memory::{ManualClock, MemoryInboxFeed, MemoryStore};

struct Setup {
    store: MemoryStore,
    feed: Arc<MemoryInboxFeed>,
    clock: ManualClock,
    inbox: InboxDispatcher,
}

fn setup() -> Setup {
    let store = MemoryStore::new();
    let feed = Arc::new(MemoryInboxFeed::new());
    let clock = ManualClock::default();
    let inbox = InboxDispatcher::new(
        Arc::new(store.clone()),
        feed.clone(),
        Arc::new(clock.clone()),
    );
    Setup {
        store,
        feed,
        clock,
        inbox,
    }
}

fn delivery_to(recipient: UserId) -> Delivery {
    let target = uuid::Uuid::new_v4();
    let mut payload = herald_tests::sample::payload(recipient);
    payload.actions = vec![Action {
        label: "View workspaces".into(),
        url: "https://h.example/workspaces".into(),
    }];
    Delivery {
        message_id: MessageId::random(),
        method: Method::Inbox,
        template_id: WORKSPACE_DELETED,
        recipient,
        payload,
        targets: vec![target],
        rendered: RenderedMessage {
            title_markdown: "Workspace \"a\\-b\" deleted".into(),
            body_markdown: "Your workspace **a\\-b** was deleted.".into(),
            title: "Workspace \"a-b\" deleted".into(),
            body: "Your workspace a-b was deleted.".into(),
        },
    }
}

async fn listed(store: &MemoryStore, user: UserId) -> Vec<herald_domain::InboxNotification> {
    store
        .list(&InboxQuery {
            user,
            templates: vec![],
            targets: vec![],
            read_status: ReadStatus::All,
            starting_before: None,
            limit: 100,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_delivery_is_stored_unread_with_the_message_id_plain_text_actions_and_targets() {
    let s = setup();
    let user = UserId::random();
    let delivery = delivery_to(user);
    assert_eq!(s.inbox.method(), Method::Inbox);
    s.inbox.dispatch(&delivery).await.unwrap();

    let stored = listed(&s.store, user).await;
    assert_eq!(stored.len(), 1);
    let n = &stored[0];
    assert_eq!(n.id, InboxNotificationId::from(delivery.message_id));
    assert_eq!(n.user_id, user);
    assert_eq!(n.template_id, WORKSPACE_DELETED);
    assert_eq!(n.title, "Workspace \"a-b\" deleted");
    assert_eq!(n.content, "Your workspace a-b was deleted.");
    assert_eq!(n.content_markdown, "Your workspace **a\\-b** was deleted.");
    assert_eq!(n.actions, delivery.payload.actions);
    assert_eq!(n.targets, delivery.targets);
    assert_eq!(n.read_at, None);
    assert_eq!(n.created_at, s.clock.now());
    assert_eq!(s.store.unread_count(user).await.unwrap(), 1);
}

#[tokio::test]
async fn a_watcher_of_the_recipient_receives_it_and_a_watcher_of_another_user_does_not() {
    let s = setup();
    let user = UserId::random();
    let mut mine = s.feed.subscribe(user).await.unwrap();
    let mut theirs = s.feed.subscribe(UserId::random()).await.unwrap();
    let delivery = delivery_to(user);
    s.inbox.dispatch(&delivery).await.unwrap();

    let got = tokio::time::timeout(Duration::from_secs(5), mine.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, InboxNotificationId::from(delivery.message_id));
    assert!(theirs.try_next().is_none());
}

#[tokio::test]
async fn a_repeated_delivery_is_stored_and_announced_once() {
    let s = setup();
    let user = UserId::random();
    let mut watcher = s.feed.subscribe(user).await.unwrap();
    let delivery = delivery_to(user);
    s.inbox.dispatch(&delivery).await.unwrap();
    s.inbox.dispatch(&delivery).await.unwrap();
    assert_eq!(listed(&s.store, user).await.len(), 1);
    assert!(watcher.try_next().is_some());
    assert!(watcher.try_next().is_none());
}

#[tokio::test]
async fn a_slow_watcher_never_blocks_delivery_and_is_dropped() {
    let s = setup();
    let user = UserId::random();
    let mut stalled = s.feed.subscribe(user).await.unwrap(); // not read until the end
    let mut live = s.feed.subscribe(user).await.unwrap();
    let count = MemoryInboxFeed::WATCHER_CAPACITY + 10;
    tokio::time::timeout(Duration::from_secs(5), async {
        for _ in 0..count {
            s.inbox.dispatch(&delivery_to(user)).await.unwrap();
            // The live watcher keeps up.
            assert!(live.next().await.is_some());
        }
    })
    .await
    .expect("delivery never waits for a stalled watcher");
    assert_eq!(listed(&s.store, user).await.len(), count);

    let mut kept = 0;
    let dropped = tokio::time::timeout(Duration::from_secs(5), async {
        while stalled.next().await.is_some() {
            kept += 1;
        }
    })
    .await;
    assert!(dropped.is_ok(), "the stalled watcher is still subscribed");
    assert_eq!(
        kept,
        MemoryInboxFeed::WATCHER_CAPACITY,
        "what it held when dropped"
    );
}

#[tokio::test]
async fn a_store_outage_is_a_retryable_failure_and_nothing_is_published() {
    let s = setup();
    let user = UserId::random();
    let mut watcher = s.feed.subscribe(user).await.unwrap();
    s.store.set_unavailable(true);
    let err = s.inbox.dispatch(&delivery_to(user)).await.unwrap_err();
    assert!(err.retryable);
    assert!(watcher.try_next().is_none());
}
