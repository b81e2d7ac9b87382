//! Events, settings, templates, dispatch methods, test and custom notifications,
//! preferences and messages.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use herald_application::limits::limit_keys;
use herald_application::{Limits, RateLimit};
use herald_domain::catalogue;
use herald_memory::ManualClock;
use serde_json::{Value, json};

use super::support::App;

fn workspace_deleted(app: &App, workspace: &str) -> Value {
    json!({
        "template_id": catalogue::WORKSPACE_DELETED,
        "user_id": app.member.user.id,
        "initiator_id": app.owner.user.id,
        "labels": {"name": workspace, "reason": "tidy", "initiator": "owner"},
        "data": {"workspace_id": "w-1"},
        "targets": [],
        "created_by": "tests",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_enqueues_an_event_and_a_repeat_is_reported_as_a_duplicate() {
    let app = App::start().await;
    let event = workspace_deleted(&app, "ws-1");

    let first = app
        .post("/api/v2/notifications/events", &app.owner, event.clone())
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    // Webhook (the default) and the inbox.
    assert_eq!(first["message_ids"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["skipped"], json!([]));

    let again = app
        .post("/api/v2/notifications/events", &app.owner, event)
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(again["message_ids"], json!([]));
    assert_eq!(
        again["skipped"],
        json!([{"user_id": app.member.user.id, "reason": "duplicate"}])
    );

    let by_name = json!({
        "template_name": "Workspace Deleted",
        "user_id": app.member.user.id,
        "labels": {"name": "ws-2"},
    });
    let named = app
        .post("/api/v2/notifications/events", &app.owner, by_name)
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(named["message_ids"].as_array().unwrap().len(), 2, "{named}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_one_result_per_event_in_order() {
    let app = App::start().await;
    let batch = json!({"events": [workspace_deleted(&app, "a"), workspace_deleted(&app, "a"), workspace_deleted(&app, "b")]});

    let reply = app
        .post("/api/v2/notifications/events/batch", &app.owner, batch)
        .await
        .expect(StatusCode::ACCEPTED)
        .json();

    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{reply}");
    assert_eq!(results[0]["message_ids"].as_array().unwrap().len(), 2);
    assert_eq!(results[1]["skipped"][0]["reason"], "duplicate");
    assert_eq!(results[2]["message_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_400s_naming_the_field_and_members_may_not_send_them() {
    let app = App::start().await;
    let unknown = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            json!({"template_id": "00000000-0000-4000-8000-000000000000", "user_id": app.member.user.id}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(unknown["field"], "template_id", "{unknown}");
    let missing_subject = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            json!({"template_id": catalogue::WORKSPACE_DELETED}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(missing_subject["field"], "user_id", "{missing_subject}");
    let batch = app
        .post(
            "/api/v2/notifications/events/batch",
            &app.owner,
            json!({"events": [workspace_deleted(&app, "a"), {"template_name": "No Such Event"}]}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(batch["field"], "events[1].template_name", "{batch}");
    let wrong_type = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            json!({"template_id": catalogue::WORKSPACE_DELETED, "user_id": 42}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(wrong_type["field"], "user_id", "{wrong_type}");

    app.post(
        "/api/v2/notifications/events",
        &app.member,
        workspace_deleted(&app, "x"),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_in_a_batch_is_named_by_its_index_and_a_single_one_by_its_field() {
    let app = App::start().await;
    let both_templates = json!({
        "template_id": catalogue::WORKSPACE_DELETED,
        "template_name": "Workspace Deleted",
        "user_id": app.member.user.id,
    });
    let mut unnamed_label = workspace_deleted(&app, "d");
    unnamed_label["labels"][""] = json!("x");
    let refused = |reply: Value| (reply["field"].clone(), reply["detail"].clone());

    let reply = app
        .post(
            "/api/v2/notifications/events/batch",
            &app.owner,
            json!({"events": [workspace_deleted(&app, "a"), workspace_deleted(&app, "b"), both_templates]}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(
        refused(reply),
        (
            json!("events[2].template_id"),
            json!("events[2].template_id: give template_id or template_name, not both")
        )
    );

    let batch = json!({"events": [
        workspace_deleted(&app, "a"),
        workspace_deleted(&app, "b"),
        workspace_deleted(&app, "c"),
        unnamed_label.clone(),
    ]});
    let reply = app
        .post("/api/v2/notifications/events/batch", &app.owner, batch)
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(reply["field"], "events[3].labels", "{reply}");

    let reply = app
        .post("/api/v2/notifications/events", &app.owner, unnamed_label)
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(reply["field"], "labels", "{reply}");
    let listed = app
        .get("/api/v2/notifications/messages", &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        listed["messages"],
        json!([]),
        "a refused batch queues nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_owners_pause_and_an_unchanged_setting_is_304() {
    let app = App::start().await;
    let path = "/api/v2/notifications/settings";

    let read = app
        .get(path, &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(read, json!({"notifier_paused": false}));

    app.put(path, &app.member, json!({"notifier_paused": true}))
        .await
        .expect(StatusCode::FORBIDDEN);
    let paused = app
        .put(path, &app.owner, json!({"notifier_paused": true}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(paused, json!({"notifier_paused": true}));
    let unchanged = app
        .put(path, &app.owner, json!({"notifier_paused": true}))
        .await
        .expect(StatusCode::NOT_MODIFIED);
    assert!(unchanged.body.is_empty());
    let read = app
        .get(path, &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(read, json!({"notifier_paused": true}));
    app.put(path, &app.owner, json!({"notifier_paused": "yes"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_list_by_kind_and_owners_set_their_method() {
    let app = App::start().await;

    let system = app
        .get("/api/v2/notifications/templates/system", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    let system = system.as_array().unwrap();
    assert!(system.len() > 20, "{system:?}");
    let deleted = system
        .iter()
        .find(|t| t["id"] == json!(catalogue::WORKSPACE_DELETED))
        .unwrap();
    assert_eq!(deleted["name"], "Workspace Deleted");
    assert_eq!(deleted["group"], "Workspace Events");
    assert_eq!(deleted["kind"], "system");
    assert_eq!(deleted["enabled_by_default"], true);
    assert_eq!(deleted["method"], "");
    assert_eq!(deleted["methods"], json!(["webhook", "inbox"]));
    let custom = app
        .get("/api/v2/notifications/templates/custom", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert!(
        custom
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] == "custom"),
        "{custom}"
    );
    assert!(
        custom
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(catalogue::CUSTOM_NOTIFICATION)),
        "{custom}"
    );

    let path = format!(
        "/api/v2/notifications/templates/{}/method",
        catalogue::WORKSPACE_DELETED
    );
    app.put(&path, &app.member, json!({"method": "inbox"}))
        .await
        .expect(StatusCode::FORBIDDEN);
    let set = app
        .put(&path, &app.owner, json!({"method": "inbox"}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(set["method"], "inbox");
    assert_eq!(set["methods"], json!(["inbox"]));
    app.put(&path, &app.owner, json!({"method": "inbox"}))
        .await
        .expect(StatusCode::NOT_MODIFIED);
    let reset = app
        .put(&path, &app.owner, json!({"method": ""}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(reset["method"], "");
    app.put(&path, &app.owner, json!({"method": ""}))
        .await
        .expect(StatusCode::NOT_MODIFIED);

    let bad = app
        .put(&path, &app.owner, json!({"method": "pigeon"}))
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(bad["field"], "method");
    // SMTP is not configured on this deployment.
    app.put(&path, &app.owner, json!({"method": "smtp"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.put(
        "/api/v2/notifications/templates/00000000-0000-4000-8000-000000000000/method",
        &app.owner,
        json!({"method": "inbox"}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_methods_name_the_available_ones_and_the_default() {
    let app = App::start().await;
    let methods = app
        .get("/api/v2/notifications/dispatch-methods", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        methods,
        json!({"available": ["webhook", "inbox"], "default": "webhook"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_send_test_notifications_and_anyone_custom_ones_to_themselves() {
    let app = App::start().await;

    app.post("/api/v2/notifications/test", &app.member, json!(null))
        .await
        .expect(StatusCode::FORBIDDEN);
    let sent = app
        .post("/api/v2/notifications/test", &app.owner, json!(null))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(sent.body.is_empty());

    app.post(
        "/api/v2/notifications/custom",
        &app.member,
        json!({"content": {"title": " Hello ", "message": "From the tests"}}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let empty = app
        .post(
            "/api/v2/notifications/custom",
            &app.member,
            json!({"content": {"title": "  ", "message": "x"}}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(empty["field"], "content.title", "{empty}");
    let long = app
        .post(
            "/api/v2/notifications/custom",
            &app.member,
            json!({"content": {"title": "t", "message": "m".repeat(2001)}}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(long["field"], "content.message", "{long}");
    let missing = app
        .post(
            "/api/v2/notifications/custom",
            &app.member,
            json!({"content": {"title": "t"}}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(missing["field"], "content", "{missing}");

    let messages = app
        .get(
            &format!(
                "/api/v2/notifications/messages?user_id={}",
                app.member.user.id
            ),
            &app.owner,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    let messages = messages["messages"].as_array().unwrap();
    assert!(!messages.is_empty());
    assert!(
        messages
            .iter()
            .all(|m| m["template_id"] == json!(catalogue::CUSTOM_NOTIFICATION))
    );
}

/// The list form of a user's preferences without the times written, which the test cannot
/// know: (id, disabled, methods) per entry.
fn without_times(list: &Value) -> Vec<(String, bool, Value)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|entry| {
            assert!(
                entry["updated_at"]
                    .as_str()
                    .is_some_and(|at| chrono::DateTime::parse_from_rfc3339(at).is_ok()),
                "{entry}"
            );
            (
                entry["id"].as_str().unwrap().to_owned(),
                entry["disabled"].as_bool().unwrap(),
                entry["methods"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_are_read_and_set_by_the_user_owners_and_user_admins_only() {
    let app = App::start().await;
    let path = format!(
        "/api/v2/users/{}/notifications/preferences",
        app.member.user.id
    );
    let deleted = catalogue::WORKSPACE_DELETED.to_string();

    let empty = app
        .get(&path, &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(empty, json!([]));

    let set = app
        .put(
            &path,
            &app.member,
            json!({"template_disabled_map": {&deleted: true}}),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    let all_off = json!({"smtp": true, "webhook": true, "inbox": true});
    assert_eq!(without_times(&set), [(deleted.clone(), true, all_off)]);
    for reader in [&app.owner, &app.admin] {
        let read = app.get(&path, reader).await.expect(StatusCode::OK).json();
        assert_eq!(read, set);
    }

    app.get(&path, &app.other)
        .await
        .expect(StatusCode::FORBIDDEN);
    app.put(
        &path,
        &app.other,
        json!({"template_disabled_map": {&deleted: false}}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);

    // A disabled template is skipped for that user.
    let skipped = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            workspace_deleted(&app, "quiet"),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(
        skipped["skipped"],
        json!([{"user_id": app.member.user.id, "reason": "disabled"}]),
        "{skipped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_take_both_maps_and_enqueue_skips_only_the_disabled_method() {
    let app = App::start().await;
    let path = format!(
        "/api/v2/users/{}/notifications/preferences",
        app.member.user.id
    );
    let (deleted, created) = (
        catalogue::WORKSPACE_DELETED.to_string(),
        catalogue::WORKSPACE_CREATED.to_string(),
    );

    // Per method only: the webhook off for one template, the inbox on for an
    // off-by-default one.
    let list = app
        .put(
            &path,
            &app.member,
            json!({"method_disabled_map": {
                &deleted: {"webhook": true},
                &created: {"inbox": false},
            }}),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    let mut expected = vec![
        (
            deleted.clone(),
            false,
            json!({"smtp": false, "webhook": true, "inbox": false}),
        ),
        (
            created.clone(),
            true,
            json!({"smtp": true, "webhook": true, "inbox": false}),
        ),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let mut listed = without_times(&list);
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, expected);
    let read = app
        .get(&path, &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(read, list);

    let result = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            workspace_deleted(&app, "inbox-only"),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(
        result["skipped"],
        json!([{"user_id": app.member.user.id, "reason": "disabled", "method": "webhook"}]),
        "{result}"
    );
    let id = result["message_ids"][0].as_str().unwrap().to_owned();
    assert_eq!(result["message_ids"].as_array().unwrap().len(), 1);
    let messages = app
        .get("/api/v2/notifications/messages", &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    let message = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert_eq!(message["method"], "inbox");

    // Both maps in one body: off for every method, except in the inbox.
    let list = app
        .put(
            &path,
            &app.member,
            json!({
                "template_disabled_map": {&created: true},
                "method_disabled_map": {&created: {"inbox": false}},
            }),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    let created_entry = without_times(&list)
        .into_iter()
        .find(|(id, _, _)| *id == created)
        .unwrap();
    assert_eq!(
        created_entry,
        (
            created.clone(),
            true,
            json!({"smtp": true, "webhook": true, "inbox": false})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_preferences_are_refused_naming_the_field_and_change_nothing() {
    let app = App::start().await;
    let path = format!(
        "/api/v2/users/{}/notifications/preferences",
        app.member.user.id
    );
    let deleted = catalogue::WORKSPACE_DELETED.to_string();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let otp = catalogue::ONE_TIME_PASSCODE.to_string();
    let cases = [
        (
            json!({"template_disabled_map": {unknown: true}}),
            "template_disabled_map",
            "unknown template",
        ),
        (
            json!({"method_disabled_map": {unknown: {"smtp": true}}}),
            "method_disabled_map",
            "unknown template",
        ),
        (
            json!({"template_disabled_map": {"not-a-uuid": true}}),
            "template_disabled_map",
            "",
        ),
        (
            json!({"method_disabled_map": {"not-a-uuid": {"smtp": true}}}),
            "method_disabled_map",
            "",
        ),
        (
            json!({"method_disabled_map": {&deleted: {"email": true}}}),
            "method_disabled_map",
            "email",
        ),
        (
            json!({"method_disabled_map": {&deleted: {"smtp": "yes"}}}),
            "method_disabled_map",
            "",
        ),
        (
            json!({"template_disabled_map": {&otp: true}}),
            "template_disabled_map",
            "security messages cannot be disabled",
        ),
        (
            json!({"method_disabled_map": {&otp: {"smtp": true}}}),
            "method_disabled_map",
            "security messages cannot be disabled",
        ),
    ];
    for (body, field, reason) in cases {
        let refused = app
            .put(&path, &app.member, body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        let named = refused["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{body}: {refused}");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{body}: {refused}"
        );
    }
    let otp_refused = app
        .put(
            &path,
            &app.member,
            json!({"template_disabled_map": {&otp: true}}),
        )
        .await
        .json();
    assert!(
        otp_refused["detail"]
            .as_str()
            .unwrap()
            .contains("One-Time Passcode"),
        "{otp_refused}"
    );
    let untouched = app
        .get(&path, &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(untouched, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_list_messages_newest_first_with_filters() {
    let app = App::start().await;
    app.post(
        "/api/v2/notifications/events",
        &app.owner,
        workspace_deleted(&app, "listed"),
    )
    .await
    .expect(StatusCode::ACCEPTED);

    let all = app
        .get("/api/v2/notifications/messages", &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    let messages = all["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{all}");
    let keys: Vec<_> = messages[0].as_object().unwrap().keys().cloned().collect();
    for key in [
        "id",
        "template_id",
        "user_id",
        "method",
        "status",
        "status_reason",
        "attempt_count",
        "lease_expiries",
        "created_at",
        "updated_at",
        "next_retry_after",
        "leased_until",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing: {keys:?}");
    }
    assert_eq!(messages[0]["status"], "pending");
    assert_eq!(messages[0]["user_id"], json!(app.member.user.id));

    let sent = app
        .get("/api/v2/notifications/messages?status=sent", &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(sent["messages"], json!([]));
    let limited = app
        .get(
            &format!(
                "/api/v2/notifications/messages?template_id={}&limit=1",
                catalogue::WORKSPACE_DELETED
            ),
            &app.owner,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(limited["messages"].as_array().unwrap().len(), 1);

    for bad in [
        "status=lost",
        "user_id=nope",
        "template_id=1",
        "limit=-1",
        "limit=100000",
    ] {
        app.get(&format!("/api/v2/notifications/messages?{bad}"), &app.owner)
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
    app.get("/api/v2/notifications/messages", &app.member)
        .await
        .expect(StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_a_nul_character_is_a_400_naming_the_field_and_stores_nothing() {
    let app = App::start().await;
    let subject = app.member.user.id;
    let event = |extra: Value| {
        let mut event = json!({
            "template_id": catalogue::WORKSPACE_DELETED,
            "user_id": subject,
            "labels": {"name": "dev"},
        });
        event
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        event
    };
    let cases = [
        (
            json!({"template_id": null, "template_name": "Workspace\u{0}Deleted"}),
            "template_name",
        ),
        (json!({"created_by": "host\u{0}"}), "created_by"),
        (json!({"labels": {"name": "d\u{0}ev"}}), "labels.name"),
        (json!({"labels": {"na\u{0}me": "dev"}}), "labels"),
    ];
    for (extra, field) in cases {
        let body = event(extra);
        let refused = app
            .post("/api/v2/notifications/events", &app.owner, body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert_eq!(refused["field"], field, "{body}: {refused}");
    }
    let custom = app
        .post(
            "/api/v2/notifications/custom",
            &app.member,
            json!({"content": {"title": "hi\u{0}", "message": "there"}}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(custom["field"], "content.title", "{custom}");

    let listed = app
        .get("/api/v2/notifications/messages", &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(listed["messages"], json!([]), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_notifications_over_the_rate_limit_answer_429_with_retry_after() {
    // The clock stands 20 seconds into a minute, so the window has 40 seconds left.
    let now = chrono::Utc::now();
    let minute = now - chrono::TimeDelta::seconds(now.timestamp() % 60);
    let clock = ManualClock::new(minute + chrono::TimeDelta::seconds(20));
    let limits = Limits {
        custom_notifications: Some(
            RateLimit::new(limit_keys::CUSTOM_NOTIFICATIONS, 2, Duration::from_secs(60)).unwrap(),
        ),
        ..Limits::default()
    };
    let app = App::start_with(limits, Arc::new(clock.clone())).await;
    let custom = |title: &str| json!({"content": {"title": title, "message": "m"}});
    const CUSTOM: &str = "/api/v2/notifications/custom";

    for i in 0..2 {
        app.post(CUSTOM, &app.member, custom(&format!("n{i}")))
            .await
            .expect(StatusCode::NO_CONTENT);
    }
    let refused = app
        .post(CUSTOM, &app.member, custom("n2"))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "40");
    let body = refused.json();
    assert_eq!(body["limit"], "events.custom_rate_limit", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 2 custom notifications per 60s"),
        "{body}"
    );

    // Other users are not held to the member's count.
    app.post(CUSTOM, &app.other, custom("theirs"))
        .await
        .expect(StatusCode::NO_CONTENT);

    // Once the window ends, the member may send again.
    clock.advance(chrono::TimeDelta::seconds(40));
    app.post(CUSTOM, &app.member, custom("n3"))
        .await
        .expect(StatusCode::NO_CONTENT);
}

/// Hardening finding 10: a member flooding the queue with custom notifications. Leasing is
/// oldest first, so every message a member queues ahead of another user's delays it; the
/// limit bounds how many that can be, whatever the member sends.
#[tokio::test]
async fn a_member_flooding_custom_notifications_queues_at_most_the_limits_worth_ahead_of_others() {
    // A clock that stands still, so the flood falls in one window of the limit.
    let clock = ManualClock::new(chrono::Utc::now());
    let app = App::start_with(Limits::default(), Arc::new(clock)).await;
    let custom = |title: &str| json!({"content": {"title": title, "message": "m"}});
    const CUSTOM: &str = "/api/v2/notifications/custom";

    let mut refused = 0;
    for i in 0..200 {
        let answer = app
            .post(CUSTOM, &app.member, custom(&format!("flood {i}")))
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    app.post(CUSTOM, &app.other, custom("theirs"))
        .await
        .expect(StatusCode::NO_CONTENT);

    use herald_application::ports::MessageQueue as _;
    let queued = app
        .store
        .list(&herald_application::ports::MessageFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let theirs = queued
        .iter()
        .filter(|m| m.recipient == app.other.user.id)
        .map(|m| m.created_at)
        .min()
        .expect("the other user's notification is queued");
    let ahead = queued
        .iter()
        .filter(|m| m.recipient == app.member.user.id && m.created_at <= theirs)
        .count();
    let limit = RateLimit::DEFAULT_CUSTOM.count() as usize;
    // One message per method the deployment has (webhook and inbox here).
    assert!(
        ahead <= limit * 2,
        "{ahead} of the member's messages wait ahead of the other user's (limit {limit} a window)"
    );
    assert_eq!(refused, 200 - limit, "every request over the limit refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_send_custom_notifications_to_roles_and_users_members_only_to_themselves() {
    let app = App::start().await;
    let content = json!({"title": "Maintenance", "message": "Tonight at 22:00"});
    app.put(
        &format!(
            "/api/v2/users/{}/notifications/preferences",
            app.other.user.id
        ),
        &app.other,
        json!({"template_disabled_map": {catalogue::CUSTOM_NOTIFICATION.to_string(): true}}),
    )
    .await
    .expect(StatusCode::OK);

    let sent = app
        .post(
            "/api/v2/notifications/custom",
            &app.admin,
            json!({"content": content, "roles": ["member"]}),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(
        sent["skipped"],
        json!([{"user_id": app.other.user.id, "reason": "disabled"}]),
        "{sent}"
    );
    let ids = sent["message_ids"].as_array().unwrap();
    assert_eq!(
        ids.len(),
        2,
        "the member's webhook and inbox messages: {sent}"
    );
    let to_member = app
        .get(
            &format!(
                "/api/v2/notifications/messages?user_id={}",
                app.member.user.id
            ),
            &app.owner,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(to_member["messages"].as_array().unwrap().len(), 2);

    let unknown = uuid::Uuid::new_v4();
    let named = app
        .post(
            "/api/v2/notifications/custom",
            &app.owner,
            json!({"content": content, "user_ids": [unknown, app.admin.user.id]}),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(
        named["skipped"],
        json!([{"user_id": unknown, "reason": "unknown"}]),
        "{named}"
    );
    assert_eq!(named["message_ids"].as_array().unwrap().len(), 2);

    let refused = app
        .post(
            "/api/v2/notifications/custom",
            &app.member,
            json!({"content": content, "user_ids": [app.other.user.id]}),
        )
        .await
        .expect(StatusCode::FORBIDDEN)
        .json();
    assert!(
        refused["detail"].as_str().unwrap().contains("other users"),
        "{refused}"
    );
    app.post(
        "/api/v2/notifications/custom",
        &app.member,
        json!({"content": content, "roles": ["member"]}),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        "/api/v2/notifications/custom",
        &app.member,
        json!({"content": content, "user_ids": [app.member.user.id]}),
    )
    .await
    .expect(StatusCode::ACCEPTED);

    let bad_role = app
        .post(
            "/api/v2/notifications/custom",
            &app.owner,
            json!({"content": content, "roles": ["boss"]}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(bad_role["field"], "roles", "{bad_role}");
    let nobody = app
        .post(
            "/api/v2/notifications/custom",
            &app.owner,
            json!({"content": content, "user_ids": []}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(nobody["field"], "user_ids", "{nobody}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_build_failure_reaches_the_workspace_owner_and_the_template_admins() {
    let app = App::start().await;
    let templater = uuid::Uuid::new_v4();
    app.put(
        &format!("/api/v2/users/{templater}"),
        &app.owner,
        json!({"email": "tina@example.com", "username": "tina", "name": "Tina",
               "roles": ["template-admin"], "status": "active"}),
    )
    .await
    .expect(StatusCode::OK);

    let queued = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            json!({
                "template_id": catalogue::WORKSPACE_MANUAL_BUILD_FAILED,
                "user_id": app.member.user.id,
                "labels": {"name": "dev", "template_name": "docker", "template_version_name": "v1",
                           "initiator": "member", "workspace_owner_username": "member",
                           "workspace_build_number": "7"},
            }),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(
        queued["message_ids"].as_array().unwrap().len(),
        4,
        "the owner and the template admin, webhook and inbox each: {queued}"
    );
    for user in [app.member.user.id.to_string(), templater.to_string()] {
        let listed = app
            .get(
                &format!("/api/v2/notifications/messages?user_id={user}"),
                &app.owner,
            )
            .await
            .expect(StatusCode::OK)
            .json();
        assert_eq!(listed["messages"].as_array().unwrap().len(), 2, "{user}");
    }
}
