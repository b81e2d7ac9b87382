//! DESIGN §10.3 over HTTP and PostgreSQL: `PUT /notifications/templates/{id}/digest` (owner
//! only, a bad window is a 400 naming `window`), the window in the template listing, and the
//! events of a digest template answered with one message id per recipient and method.

use axum::http::StatusCode;
use herald_domain::catalogue;
use serde_json::{Value, json};

use super::support::App;

fn digest_path(template: impl std::fmt::Display) -> String {
    format!("/api/v2/notifications/templates/{template}/digest")
}

fn listed_window(templates: &Value, id: herald_domain::TemplateId) -> Value {
    templates
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(id))
        .map(|t| t["digest_window"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_sets_and_clears_a_digest_window_shown_in_the_listing() {
    let app = App::start().await;
    let path = digest_path(catalogue::WORKSPACE_DELETED);

    app.put(&path, &app.member, json!({"window": "1h"}))
        .await
        .expect(StatusCode::FORBIDDEN);
    let set = app
        .put(&path, &app.owner, json!({"window": "90m"}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(set["digest_window"], "1h30m");
    app.put(&path, &app.owner, json!({"window": "1h30m"}))
        .await
        .expect(StatusCode::NOT_MODIFIED);
    let system = app
        .get("/api/v2/notifications/templates/system", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        listed_window(&system, catalogue::WORKSPACE_DELETED),
        "1h30m"
    );
    assert_eq!(listed_window(&system, catalogue::USER_ACCOUNT_CREATED), "");

    let cleared = app
        .put(&path, &app.owner, json!({"window": ""}))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(cleared["digest_window"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_window_is_refused_naming_the_window() {
    let app = App::start().await;
    let path = digest_path(catalogue::WORKSPACE_DELETED);

    for window in [json!("soon"), json!("0s"), json!("8d"), json!("10")] {
        let refused = app
            .put(&path, &app.owner, json!({ "window": window }))
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert_eq!(refused["field"], "window", "{window}: {refused}");
    }
    let wrong_type = app
        .put(&path, &app.owner, json!({"window": 3600}))
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(wrong_type["field"], "window", "{wrong_type}");
    let security = app
        .put(
            &digest_path(catalogue::ONE_TIME_PASSCODE),
            &app.owner,
            json!({"window": "1h"}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(security["field"], "window", "{security}");
    app.put(
        &digest_path("00000000-0000-4000-8000-000000000000"),
        &app.owner,
        json!({"window": "1h"}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_digest_template_share_one_message_per_recipient_and_method() {
    let app = App::start().await;
    app.put(
        &digest_path(catalogue::WORKSPACE_DELETED),
        &app.owner,
        json!({"window": "1h"}),
    )
    .await
    .expect(StatusCode::OK);
    let event = |name: &str| {
        json!({
            "template_id": catalogue::WORKSPACE_DELETED,
            "user_id": app.member.user.id,
            "labels": {"name": name, "reason": "tidy"},
        })
    };

    let first = app
        .post("/api/v2/notifications/events", &app.owner, event("alpha"))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    let second = app
        .post("/api/v2/notifications/events", &app.owner, event("beta"))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();

    assert_eq!(
        first["message_ids"], second["message_ids"],
        "{first} {second}"
    );
    let listed = app
        .get("/api/v2/notifications/messages?status=pending", &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        first["message_ids"].as_array().unwrap().len()
    );
    for message in messages {
        assert_eq!(message["digest_items"], 2, "{message}");
    }
}
