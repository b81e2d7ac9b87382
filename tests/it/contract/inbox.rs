//! The `InboxStore` contract: one user's notifications, newest first, filtered and paged.

use chrono::Duration;
use herald_application::ports::{InboxQuery, ReadStatus};
use herald_domain::catalogue::{TEMPLATE_DELETED, WORKSPACE_CREATED, WORKSPACE_DELETED};
use herald_domain::{InboxNotification, InboxNotificationId, UserId};
use herald_tests::fixture::Backend;
use herald_tests::sample::{self, t0};
use uuid::Uuid;

const PAGE: usize = 25;

fn query(user: UserId) -> InboxQuery {
    InboxQuery {
        user,
        templates: vec![],
        targets: vec![],
        read_status: ReadStatus::All,
        starting_before: None,
        limit: PAGE,
    }
}

/// The page of `user`'s notifications older than `cursor`.
fn before(user: UserId, cursor: Option<InboxNotificationId>) -> InboxQuery {
    InboxQuery {
        starting_before: cursor,
        ..query(user)
    }
}

async fn insert_all(backend: &Backend, notifications: &[InboxNotification]) {
    for notification in notifications {
        assert!(backend.inbox.insert(notification).await.unwrap());
    }
}

async fn listed(backend: &Backend, query: &InboxQuery) -> Vec<InboxNotificationId> {
    let page = backend.inbox.list(query).await.unwrap();
    page.iter().map(|n| n.id).collect()
}

/// Ids newest first, by (created_at, id) descending.
fn newest_first(notifications: &[InboxNotification]) -> Vec<InboxNotificationId> {
    let mut sorted: Vec<_> = notifications.iter().map(|n| (n.created_at, n.id)).collect();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.into_iter().map(|(_, id)| id).collect()
}

/// `count` notifications for `user`, two per second from t0, so pairs share a creation time.
fn many(user: UserId, count: i64) -> Vec<InboxNotification> {
    (0..count)
        .map(|i| sample::inbox_notification(user, t0() + Duration::seconds(i / 2)))
        .collect()
}

async fn inserting_a_notification_twice_stores_it_once(backend: Backend) {
    let ann = UserId::random();
    let notification = sample::inbox_notification(ann, t0());
    let redelivered = InboxNotification {
        title: "changed on the second delivery".to_owned(),
        ..notification.clone()
    };

    assert!(backend.inbox.insert(&notification).await.unwrap());
    assert!(!backend.inbox.insert(&redelivered).await.unwrap());

    assert_eq!(
        backend.inbox.list(&query(ann)).await.unwrap(),
        [notification]
    );
    assert_eq!(backend.inbox.unread_count(ann).await.unwrap(), 1);
}

async fn a_listing_pages_newest_first_with_the_cursor(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let anns = many(ann, 45);
    insert_all(&backend, &anns).await;
    insert_all(&backend, &many(bob, 5)).await;
    let expected = newest_first(&anns);

    let first = listed(&backend, &query(ann)).await;
    let second = listed(&backend, &before(ann, first.last().copied())).await;
    let third = listed(&backend, &before(ann, second.last().copied())).await;

    assert_eq!(first, expected[..PAGE]);
    assert_eq!(second, expected[PAGE..]);
    assert!(third.is_empty());
}

async fn an_unknown_or_foreign_cursor_lists_from_the_newest(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let anns = many(ann, 30);
    let bobs = many(bob, 3);
    insert_all(&backend, &anns).await;
    insert_all(&backend, &bobs).await;
    let newest = &newest_first(&anns)[..PAGE];

    for cursor in [InboxNotificationId::random(), bobs[0].id] {
        assert_eq!(listed(&backend, &before(ann, Some(cursor))).await, newest);
    }
}

async fn a_listing_keeps_only_the_templates_asked_for(backend: Backend) {
    let ann = UserId::random();
    let of = |template, seconds| {
        sample::inbox_notification_of(ann, template, t0() + Duration::seconds(seconds), vec![])
    };
    let all = [
        of(WORKSPACE_DELETED, 0),
        of(WORKSPACE_CREATED, 1),
        of(TEMPLATE_DELETED, 2),
    ];
    insert_all(&backend, &all).await;

    let page = InboxQuery {
        templates: vec![WORKSPACE_DELETED, TEMPLATE_DELETED],
        ..query(ann)
    };

    assert_eq!(listed(&backend, &page).await, [all[2].id, all[0].id]);
}

async fn a_listing_keeps_only_notifications_carrying_every_target(backend: Backend) {
    let ann = UserId::random();
    let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
    let carrying = |targets, seconds| {
        sample::inbox_notification_of(
            ann,
            WORKSPACE_DELETED,
            t0() + Duration::seconds(seconds),
            targets,
        )
    };
    let all = [
        carrying(vec![x], 0),
        carrying(vec![y, x], 1),
        carrying(vec![y], 2),
        carrying(vec![], 3),
    ];
    insert_all(&backend, &all).await;
    let targeting = |targets| InboxQuery {
        targets,
        ..query(ann)
    };

    assert_eq!(listed(&backend, &targeting(vec![x, y])).await, [all[1].id]);
    assert_eq!(
        listed(&backend, &targeting(vec![x])).await,
        [all[1].id, all[0].id]
    );
    assert_eq!(
        listed(&backend, &targeting(vec![])).await,
        newest_first(&all)
    );
}

async fn a_listing_keeps_only_the_read_status_asked_for(backend: Backend) {
    let ann = UserId::random();
    let all = many(ann, 4);
    insert_all(&backend, &all).await;
    for read in [&all[0], &all[3]] {
        backend
            .inbox
            .set_read(ann, read.id, Some(t0()))
            .await
            .unwrap();
    }
    let with_status = |read_status| InboxQuery {
        read_status,
        ..query(ann)
    };

    assert_eq!(
        listed(&backend, &with_status(ReadStatus::Read)).await,
        newest_first(&[all[0].clone(), all[3].clone()])
    );
    assert_eq!(
        listed(&backend, &with_status(ReadStatus::Unread)).await,
        newest_first(&all[1..3])
    );
    assert_eq!(
        listed(&backend, &with_status(ReadStatus::All)).await,
        newest_first(&all)
    );
}

async fn set_read_changes_only_a_notification_of_its_owner(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let notification = sample::inbox_notification(ann, t0());
    insert_all(&backend, std::slice::from_ref(&notification)).await;
    let read_at = t0() + Duration::minutes(1);

    let by_bob = backend
        .inbox
        .set_read(bob, notification.id, Some(read_at))
        .await
        .unwrap();
    assert_eq!(by_bob, None);
    assert_eq!(backend.inbox.unread_count(ann).await.unwrap(), 1);

    let read = backend
        .inbox
        .set_read(ann, notification.id, Some(read_at))
        .await
        .unwrap();
    assert_eq!(read.map(|n| n.read_at), Some(Some(read_at)));
    assert_eq!(backend.inbox.unread_count(ann).await.unwrap(), 0);

    let unread = backend
        .inbox
        .set_read(ann, notification.id, None)
        .await
        .unwrap();
    assert_eq!(unread, Some(notification.clone()));
    assert_eq!(backend.inbox.unread_count(ann).await.unwrap(), 1);
    let unknown = backend
        .inbox
        .set_read(ann, InboxNotificationId::random(), None)
        .await
        .unwrap();
    assert_eq!(unknown, None);
}

async fn unread_count_counts_only_that_users_unread_notifications(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let anns = many(ann, 3);
    insert_all(&backend, &anns).await;
    insert_all(&backend, &many(bob, 2)).await;
    backend
        .inbox
        .set_read(ann, anns[1].id, Some(t0()))
        .await
        .unwrap();

    assert_eq!(backend.inbox.unread_count(ann).await.unwrap(), 2);
    assert_eq!(backend.inbox.unread_count(bob).await.unwrap(), 2);
    assert_eq!(
        backend.inbox.unread_count(UserId::random()).await.unwrap(),
        0
    );
}

async fn mark_all_read_marks_each_unread_notification_of_the_user_once(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let anns = many(ann, 4);
    insert_all(&backend, &anns).await;
    insert_all(&backend, &many(bob, 2)).await;
    let earlier = t0() + Duration::minutes(1);
    backend
        .inbox
        .set_read(ann, anns[0].id, Some(earlier))
        .await
        .unwrap();
    let now = t0() + Duration::hours(1);

    assert_eq!(backend.inbox.mark_all_read(ann, now).await.unwrap(), 3);

    assert_eq!(backend.inbox.unread_count(ann).await.unwrap(), 0);
    assert_eq!(backend.inbox.unread_count(bob).await.unwrap(), 2);
    let read_times: Vec<_> = backend
        .inbox
        .list(&query(ann))
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.read_at))
        .collect();
    assert!(
        read_times.contains(&(anns[0].id, Some(earlier))),
        "{read_times:?}"
    );
    assert_eq!(
        read_times.iter().filter(|(_, at)| *at == Some(now)).count(),
        3
    );
    assert_eq!(backend.inbox.mark_all_read(ann, now).await.unwrap(), 0);
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    inserting_a_notification_twice_stores_it_once,
    a_listing_pages_newest_first_with_the_cursor,
    an_unknown_or_foreign_cursor_lists_from_the_newest,
    a_listing_keeps_only_the_templates_asked_for,
    a_listing_keeps_only_notifications_carrying_every_target,
    a_listing_keeps_only_the_read_status_asked_for,
    set_read_changes_only_a_notification_of_its_owner,
    unread_count_counts_only_that_users_unread_notifications,
    mark_all_read_marks_each_unread_notification_of_the_user_once,
}
