//! DESIGN §10.3 over HTTP and PostgreSQL: `send_after` on an event, listed with its send time,
//! and `DELETE /notifications/messages/{id}` while the message is pending.

use axum::http::{Method as HttpMethod, StatusCode};
use chrono::{Duration, SubsecRound, Utc};
use herald_application::ports::MessageQueue as _;
use herald_domain::{MessageId, catalogue};
use serde_json::{Value, json};

use super::support::App;

fn scheduled(app: &App, send_after: &str) -> Value {
    json!({
        "template_id": catalogue::WORKSPACE_DELETED,
        "user_id": app.member.user.id,
        "labels": {"name": "ws-1"},
        "send_after": send_after,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_is_listed_with_its_send_time_and_cancelled_once() {
    let app = App::start().await;
    let at = (Utc::now() + Duration::hours(3)).trunc_subsecs(0);
    let queued = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            scheduled(&app, &at.to_rfc3339()),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    let ids: Vec<String> = queued["message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{queued}");

    let listed = app
        .get("/api/v2/notifications/messages?status=pending", &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    for message in listed["messages"].as_array().unwrap() {
        let next: chrono::DateTime<Utc> =
            serde_json::from_value(message["next_retry_after"].clone()).unwrap();
        assert_eq!(next, at, "{message}");
    }

    let path = format!("/api/v2/notifications/messages/{}", ids[0]);
    app.send(HttpMethod::DELETE, &path, &app.member, Value::Null)
        .await
        .expect(StatusCode::FORBIDDEN);
    app.send(HttpMethod::DELETE, &path, &app.owner, Value::Null)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.send(HttpMethod::DELETE, &path, &app.owner, Value::Null)
        .await
        .expect(StatusCode::NOT_FOUND);
    let id: MessageId = ids[0].parse().unwrap();
    assert_eq!(app.store.get(id).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_left_pending_is_409() {
    let app = App::start().await;
    let queued = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            scheduled(&app, &Utc::now().to_rfc3339()),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    let id = queued["message_ids"][0].as_str().unwrap().to_owned();
    let leased = app
        .store
        .lease(herald_tests::sample::lease_request(
            Utc::now() + Duration::seconds(1),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(leased.len(), 2);

    let conflict = app
        .send(
            HttpMethod::DELETE,
            &format!("/api/v2/notifications/messages/{id}"),
            &app.owner,
            Value::Null,
        )
        .await
        .expect(StatusCode::CONFLICT)
        .json();

    assert!(
        conflict["detail"].as_str().unwrap().contains("leased"),
        "{conflict}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_send_time_is_400_naming_send_after() {
    let app = App::start().await;
    for bad in ["tomorrow", &(Utc::now() + Duration::days(8)).to_rfc3339()] {
        let refused = app
            .post(
                "/api/v2/notifications/events",
                &app.owner,
                scheduled(&app, bad),
            )
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert!(
            refused["field"] == "send_after"
                || refused["detail"].as_str().unwrap().contains("send_after"),
            "{refused}"
        );
    }
}
