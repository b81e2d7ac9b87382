//! The `InboxFeed` contract: live notifications reach their user's watchers, on every replica,
//! and a slow watcher never holds publishing up.

use herald_domain::{InboxNotification, UserId};
use herald_tests::fixture::{Backend, within};
use herald_tests::sample::{self, t0};

async fn publish(backend: &Backend, notification: &InboxNotification) {
    within("publishing", backend.inbox_feed.publish(notification))
        .await
        .unwrap();
}

async fn a_watcher_receives_its_users_notifications_and_no_one_elses(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let mut anns_watch = backend.inbox_feed.subscribe(ann).await.unwrap();
    let mut bobs_watch = backend.inbox_feed.subscribe(bob).await.unwrap();
    let for_ann = sample::inbox_notification(ann, t0());
    let for_bob = sample::inbox_notification(bob, t0());

    publish(&backend, &for_ann).await;
    publish(&backend, &for_bob).await;

    let received = within("bob's notification", bobs_watch.next()).await;
    assert_eq!(
        received,
        Some(for_bob),
        "bob's watcher received only bob's notification"
    );
    assert_eq!(
        within("ann's notification", anns_watch.next()).await,
        Some(for_ann)
    );
}

async fn a_notification_reaches_every_watcher_of_its_user_on_every_replica(backend: Backend) {
    let ann = UserId::random();
    let replica = backend.replica().await;
    let mut here = backend.inbox_feed.subscribe(ann).await.unwrap();
    let mut also_here = backend.inbox_feed.subscribe(ann).await.unwrap();
    let mut there = replica.inbox_feed.subscribe(ann).await.unwrap();
    let notification = sample::inbox_notification(ann, t0());

    publish(&backend, &notification).await;

    for watch in [&mut here, &mut also_here, &mut there] {
        let received = within("the notification", watch.next()).await;
        assert_eq!(received.as_ref(), Some(&notification));
    }
}

async fn a_full_slow_watcher_is_dropped_and_publishing_never_waits_for_it(backend: Backend) {
    const FLOOD: usize = 1_000;
    let (ann, bob) = (UserId::random(), UserId::random());
    let mut slow = backend.inbox_feed.subscribe(ann).await.unwrap();

    for _ in 0..FLOOD {
        publish(&backend, &sample::inbox_notification(ann, t0())).await;
    }
    // Bob's marker comes after the flood, so once it arrives every flood notification has been
    // handed to (or refused by) the slow watcher.
    let mut bobs_watch = backend.inbox_feed.subscribe(bob).await.unwrap();
    let marker = sample::inbox_notification(bob, t0());
    publish(&backend, &marker).await;
    assert_eq!(within("the marker", bobs_watch.next()).await, Some(marker));

    let mut kept = 0;
    while within("the slow watcher's backlog", slow.next())
        .await
        .is_some()
    {
        kept += 1;
    }
    assert!(kept < FLOOD, "the slow watcher was never dropped");

    let mut fresh = backend.inbox_feed.subscribe(ann).await.unwrap();
    let after = sample::inbox_notification(ann, t0());
    publish(&backend, &after).await;
    assert_eq!(
        within("the next notification", fresh.next()).await,
        Some(after)
    );
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_watcher_receives_its_users_notifications_and_no_one_elses,
    a_notification_reaches_every_watcher_of_its_user_on_every_replica,
    a_full_slow_watcher_is_dropped_and_publishing_never_waits_for_it,
}
