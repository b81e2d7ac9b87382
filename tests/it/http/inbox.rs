//! `/notifications/inbox…`: one's own inbox only.

use axum::http::StatusCode;
use chrono::Duration;
use herald_application::ports::InboxStore as _;
use herald_domain::{InboxNotification, catalogue};
use serde_json::json;
use uuid::Uuid;

use super::support::App;
use herald_tests::sample;

/// Stores `count` notifications for the member, a minute apart, newest last; the first
/// carries `target`.
async fn fill(app: &App, count: usize, target: Uuid) -> Vec<InboxNotification> {
    let mut stored = Vec::new();
    for i in 0..count {
        let template = if i % 2 == 0 {
            catalogue::WORKSPACE_DELETED
        } else {
            catalogue::TEMPLATE_DELETED
        };
        let targets = if i == 0 { vec![target] } else { vec![] };
        let created = sample::t0() + Duration::minutes(i as i64);
        let n = sample::inbox_notification_of(app.member.user.id, template, created, targets);
        assert!(app.store.insert(&n).await.unwrap());
        stored.push(n);
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_lists_newest_first_in_pages_of_25_with_filters() {
    let app = App::start().await;
    let target = Uuid::new_v4();
    let stored = fill(&app, 30, target).await;

    let page = app
        .get("/api/v2/notifications/inbox", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    let listed = page["notifications"].as_array().unwrap();
    assert_eq!(listed.len(), 25);
    assert_eq!(page["unread_count"], 30);
    assert_eq!(listed[0]["id"], json!(stored[29].id));
    for key in [
        "id",
        "user_id",
        "template_id",
        "targets",
        "title",
        "content",
        "actions",
        "read_at",
        "created_at",
    ] {
        assert!(listed[0].get(key).is_some(), "{key} missing: {}", listed[0]);
    }

    let next = app
        .get(
            &format!(
                "/api/v2/notifications/inbox?starting_before={}",
                stored[5].id
            ),
            &app.member,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(next["notifications"].as_array().unwrap().len(), 5);

    let by_template = app
        .get(
            &format!(
                "/api/v2/notifications/inbox?templates={}",
                catalogue::TEMPLATE_DELETED
            ),
            &app.member,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(by_template["notifications"].as_array().unwrap().len(), 15);
    let by_target = app
        .get(
            &format!("/api/v2/notifications/inbox?targets={target}"),
            &app.member,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(by_target["notifications"], json!([stored[0]]));

    // Someone else's inbox is empty.
    let others = app
        .get("/api/v2/notifications/inbox", &app.other)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(others, json!({"notifications": [], "unread_count": 0}));

    for bad in [
        "read_status=maybe",
        "templates=x",
        "targets=1,2",
        "starting_before=nope",
    ] {
        app.get(&format!("/api/v2/notifications/inbox?{bad}"), &app.member)
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_marked_read_one_by_one_or_all_at_once() {
    let app = App::start().await;
    let stored = fill(&app, 3, Uuid::new_v4()).await;
    let path = format!("/api/v2/notifications/inbox/{}/read-status", stored[1].id);

    let read = app
        .put(&path, &app.member, json!({"is_read": true}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(read["unread_count"], 2);
    assert_eq!(read["notification"]["id"], json!(stored[1].id));
    assert!(read["notification"]["read_at"].is_string(), "{read}");
    let unread = app
        .get("/api/v2/notifications/inbox?read_status=read", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(unread["notifications"].as_array().unwrap().len(), 1);

    // Not someone else's.
    app.put(&path, &app.other, json!({"is_read": false}))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.put(&path, &app.member, json!({"is_read": "no"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.put(
        "/api/v2/notifications/inbox/not-a-uuid/read-status",
        &app.member,
        json!({"is_read": true}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    app.put(
        "/api/v2/notifications/inbox/mark-all-as-read",
        &app.member,
        json!(null),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let after = app
        .get(
            "/api/v2/notifications/inbox?read_status=unread",
            &app.member,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(after, json!({"notifications": [], "unread_count": 0}));
}
