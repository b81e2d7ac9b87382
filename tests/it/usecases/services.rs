//! Templates, inbox, users and purge use cases (preferences: `preferences`).

use chrono::Duration;
use herald_application::ports::{InboxStore, MessageQueue, PurgeOutcome, ReadStatus};
use herald_application::{Error, Event, InboxFilter, UserInput};
use herald_domain::catalogue::{ONE_TIME_PASSCODE, TEMPLATE_DELETED, WORKSPACE_DELETED};
use herald_domain::{MessageStatus, Method, Role, TemplateId, TemplateKind, UserId};

use super::support::Harness;

#[tokio::test]
async fn the_method_override_is_set_reported_unchanged_and_reset_to_the_default() {
    let h = Harness::new();
    let methods_of = |views: Vec<herald_application::TemplateView>, id| {
        views
            .into_iter()
            .find(|v| v.template.id == id)
            .unwrap()
            .methods
    };
    let before = methods_of(
        h.templates.list(TemplateKind::System).await.unwrap(),
        WORKSPACE_DELETED,
    );
    assert_eq!(before, vec![Method::Webhook, Method::Inbox]);

    assert!(
        h.templates
            .set_method(WORKSPACE_DELETED, Some(Method::Inbox))
            .await
            .unwrap()
    );
    assert!(
        !h.templates
            .set_method(WORKSPACE_DELETED, Some(Method::Inbox))
            .await
            .unwrap(),
        "unchanged"
    );
    let overridden = methods_of(
        h.templates.list(TemplateKind::System).await.unwrap(),
        WORKSPACE_DELETED,
    );
    assert_eq!(overridden, vec![Method::Inbox], "the inbox once");

    assert!(
        h.templates
            .set_method(WORKSPACE_DELETED, None)
            .await
            .unwrap()
    );
    let reset = methods_of(
        h.templates.list(TemplateKind::System).await.unwrap(),
        WORKSPACE_DELETED,
    );
    assert_eq!(reset, before);
}

#[tokio::test]
async fn the_method_override_refuses_unavailable_methods_and_unknown_templates() {
    let h = Harness::new();
    let err = h
        .templates
        .set_method(WORKSPACE_DELETED, Some(Method::Smtp))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, reason } if field == "method" && reason.contains("not available")),
        "{err:?}"
    );
    assert!(
        h.templates
            .set_method(ONE_TIME_PASSCODE, Some(Method::Inbox))
            .await
            .is_err()
    );
    assert!(matches!(
        h.templates.set_method(TemplateId::random(), None).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn templates_are_listed_by_kind() {
    let h = Harness::new();
    let system = h.templates.list(TemplateKind::System).await.unwrap();
    let custom = h.templates.list(TemplateKind::Custom).await.unwrap();
    assert_eq!(system.len(), 23);
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0].template.name, "Custom Notification");
}

#[tokio::test]
async fn the_inbox_pages_filters_and_counts_unread() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let other = h.user("o", &[]).await;
    let target = uuid::Uuid::new_v4();
    let start = herald_application::ports::Clock::now(&h.clock);
    let mut ids = Vec::new();
    for i in 0..30 {
        let template = if i % 3 == 0 {
            TEMPLATE_DELETED
        } else {
            WORKSPACE_DELETED
        };
        let targets = if i % 2 == 0 { vec![target] } else { vec![] };
        let n = herald_tests::sample::inbox_notification_of(
            user.id,
            template,
            start + Duration::seconds(i),
            targets,
        );
        ids.push(n.id);
        h.store.insert(&n).await.unwrap();
    }
    h.store
        .insert(&herald_tests::sample::inbox_notification_of(
            other.id,
            WORKSPACE_DELETED,
            start,
            vec![],
        ))
        .await
        .unwrap();

    let first = h.inbox.list(user.id, InboxFilter::default()).await.unwrap();
    assert_eq!(first.notifications.len(), 25);
    assert_eq!(first.unread_count, 30);
    assert_eq!(first.notifications[0].id, ids[29], "newest first");
    let second = h
        .inbox
        .list(
            user.id,
            InboxFilter {
                starting_before: first.notifications.last().map(|n| n.id),
                ..InboxFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second
            .notifications
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        ids[..5].iter().rev().copied().collect::<Vec<_>>()
    );

    let by_template = h
        .inbox
        .list(
            user.id,
            InboxFilter {
                templates: vec![TEMPLATE_DELETED],
                ..InboxFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_template.notifications.len(), 10);
    let by_target = h
        .inbox
        .list(
            user.id,
            InboxFilter {
                targets: vec![target],
                ..InboxFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_target.notifications.len(), 15);

    let (read, unread) = h.inbox.set_read(user.id, ids[0], true).await.unwrap();
    assert!(read.read_at.is_some());
    assert_eq!(unread, 29);
    let read_only = h
        .inbox
        .list(
            user.id,
            InboxFilter {
                read_status: ReadStatus::Read,
                ..InboxFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        read_only
            .notifications
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let (again_unread, unread) = h.inbox.set_read(user.id, ids[0], false).await.unwrap();
    assert!(again_unread.read_at.is_none());
    assert_eq!(unread, 30);

    assert!(
        matches!(
            h.inbox.set_read(other.id, ids[1], true).await,
            Err(Error::NotFound(_))
        ),
        "not theirs"
    );
    assert_eq!(h.inbox.mark_all_read(user.id).await.unwrap(), 30);
    assert_eq!(
        h.inbox
            .list(user.id, InboxFilter::default())
            .await
            .unwrap()
            .unread_count,
        0
    );
    assert_eq!(
        h.inbox
            .list(other.id, InboxFilter::default())
            .await
            .unwrap()
            .unread_count,
        1,
        "others untouched"
    );
}

#[tokio::test]
async fn users_are_validated_unique_and_deletable_once() {
    let h = Harness::new();
    let err = UserInput::parse("not-an-email", "u", "", &[], "active").unwrap_err();
    assert!(matches!(err, Error::Invalid { ref field, .. } if field == "email"));
    let err = UserInput::parse("a@b.io", "u", "", &["boss".to_owned()], "active").unwrap_err();
    assert!(matches!(err, Error::Invalid { ref field, .. } if field == "roles"));
    let err = UserInput::parse("a@b.io", "u", "", &[], "gone").unwrap_err();
    assert!(matches!(err, Error::Invalid { ref field, .. } if field == "status"));

    let first = h.user("taken", &[Role::Member]).await;
    let clash = UserInput::parse("other@example.com", "taken", "", &[], "active").unwrap();
    assert!(matches!(
        h.users.upsert(UserId::random(), clash).await,
        Err(Error::Conflict(_))
    ));

    let renamed =
        UserInput::parse("taken@example.com", "taken", "Ta Ken", &[], "suspended").unwrap();
    let updated = h.users.upsert(first.id, renamed).await.unwrap();
    assert_eq!(updated.display_name(), "Ta Ken");
    assert_eq!(h.users.get(first.id).await.unwrap(), updated);

    h.users.delete(first.id).await.unwrap();
    assert!(matches!(
        h.users.get(first.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        h.users.delete(first.id).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn purge_removes_only_messages_not_updated_for_seven_days() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let mut old = Event::new(WORKSPACE_DELETED);
    old.subject = Some(user.id);
    old.labels.insert("name".into(), "old".into());
    let old_ids = h.events.enqueue(old).await.unwrap().message_ids;

    h.clock.advance(Duration::days(6));
    let mut recent = Event::new(WORKSPACE_DELETED);
    recent.subject = Some(user.id);
    recent.labels.insert("name".into(), "recent".into());
    let recent_ids = h.events.enqueue(recent).await.unwrap().message_ids;

    h.clock.advance(Duration::days(1));
    assert_eq!(
        h.purger.purge().await.unwrap(),
        PurgeOutcome::Purged(0),
        "exactly 7 days is kept"
    );
    h.clock.advance(Duration::seconds(1));
    assert_eq!(h.purger.purge().await.unwrap(), PurgeOutcome::Purged(2));
    for id in old_ids {
        assert!(h.store.get(id).await.unwrap().is_none());
    }
    for id in recent_ids {
        assert_eq!(
            h.store.get(id).await.unwrap().unwrap().status,
            MessageStatus::Pending
        );
    }

    let _held = h.store.hold_purge_lock();
    assert_eq!(h.purger.purge().await.unwrap(), PurgeOutcome::Skipped);
}

#[tokio::test]
async fn pause_and_resume_report_whether_they_changed_anything() {
    let h = Harness::new();
    assert!(!h.settings.notifier_paused().await.unwrap());
    assert!(!h.settings.set_notifier_paused(false).await.unwrap());
    assert!(h.settings.set_notifier_paused(true).await.unwrap());
    assert!(h.settings.notifier_paused().await.unwrap());

    let listener = herald_application::ports::Wakeup::subscribe(h.wakeup.as_ref());
    assert!(h.settings.set_notifier_paused(false).await.unwrap());
    tokio::time::timeout(std::time::Duration::from_secs(5), listener.wait())
        .await
        .expect("resuming wakes the notifiers");
}
