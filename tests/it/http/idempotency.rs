//! DESIGN §10.3 over HTTP and PostgreSQL: the `Idempotency-Key` header on single events and
//! `idempotency_key` on batch events — replay, conflict, bad keys, concurrent requests.

use axum::http::{Method as HttpMethod, StatusCode};
use herald_application::ports::{MessageFilter, MessageQueue as _};
use herald_domain::catalogue;
use serde_json::{Value, json};

use super::support::{App, Reply};

const EVENTS: &str = "/api/v2/notifications/events";

fn workspace_deleted(app: &App, workspace: &str) -> Value {
    json!({
        "template_id": catalogue::WORKSPACE_DELETED,
        "user_id": app.member.user.id,
        "labels": {"name": workspace},
        "created_by": "tests",
    })
}

async fn post_keyed(app: &App, key: &[u8], body: &Value) -> Reply {
    app.raw_with(
        HttpMethod::POST,
        EVENTS,
        Some(&app.owner.token),
        &[("Idempotency-Key", key)],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

async fn stored(app: &App) -> usize {
    app.store
        .list(&MessageFilter {
            limit: 1000,
            ..MessageFilter::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_gets_the_first_answer_and_queues_nothing() {
    let app = App::start().await;
    let event = workspace_deleted(&app, "ws-1");

    let first = post_keyed(&app, b"order-1", &event)
        .await
        .expect(StatusCode::ACCEPTED);
    let again = post_keyed(&app, b"order-1", &event)
        .await
        .expect(StatusCode::ACCEPTED);

    // Webhook and inbox; without the key the repeat would report a duplicate instead.
    assert_eq!(first.json()["message_ids"].as_array().unwrap().len(), 2);
    assert_eq!(again.json(), first.json());
    assert_eq!(stored(&app).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_body_is_409_naming_the_key() {
    let app = App::start().await;
    post_keyed(&app, b"order-1", &workspace_deleted(&app, "ws-1"))
        .await
        .expect(StatusCode::ACCEPTED);

    let conflict = post_keyed(&app, b"order-1", &workspace_deleted(&app, "ws-2"))
        .await
        .expect(StatusCode::CONFLICT)
        .json();

    assert!(
        conflict["detail"].as_str().unwrap().contains("`order-1`"),
        "{conflict}"
    );
    assert_eq!(stored(&app).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_is_400_naming_the_header_or_the_field() {
    let app = App::start().await;
    let event = workspace_deleted(&app, "ws-1");
    let long = "k".repeat(256);
    for key in [
        b"".as_slice(),
        long.as_bytes(),
        "clé".as_bytes(),
        b"tab\there",
    ] {
        let refused = post_keyed(&app, key, &event)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert_eq!(refused["field"], "Idempotency-Key", "{refused}");
    }

    let mut bad = workspace_deleted(&app, "ws-2");
    bad["idempotency_key"] = json!("");
    let batch = json!({"events": [workspace_deleted(&app, "ws-1"), bad]});
    let refused = app
        .post("/api/v2/notifications/events/batch", &app.owner, batch)
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(refused["field"], "events[1].idempotency_key", "{refused}");
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_events_with_keys_answered_before_are_replayed() {
    let app = App::start().await;
    let mut first = workspace_deleted(&app, "ws-1");
    first["idempotency_key"] = json!("a");
    let mut second = workspace_deleted(&app, "ws-2");
    second["idempotency_key"] = json!("b");
    let path = "/api/v2/notifications/events/batch";
    let earlier = app
        .post(path, &app.owner, json!({"events": [first.clone()]}))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();

    let batch = app
        .post(path, &app.owner, json!({"events": [second, first]}))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();

    assert_eq!(batch["results"][1], earlier["results"][0]);
    assert_eq!(
        batch["results"][0]["message_ids"].as_array().unwrap().len(),
        2
    );
    assert_eq!(stored(&app).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_queue_once_and_answer_alike() {
    let app = std::sync::Arc::new(App::start().await);
    let event = workspace_deleted(&app, "ws-1");

    let requests: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            let event = event.clone();
            tokio::spawn(async move {
                post_keyed(&app, b"order-1", &event)
                    .await
                    .expect(StatusCode::ACCEPTED)
                    .json()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }

    assert_eq!(stored(&app).await, 2);
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "{answers:?}"
    );
}

/// Two replicas' enqueue use cases (each with its own grouping of single events) over one
/// database: the key's row decides, so the store's claim race is what is exercised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_given_one_key_at_once_queue_once_and_answer_alike() {
    use std::sync::Arc;

    use herald_application::ports::{CallerKey, SystemClock};
    use herald_application::{Event, EventPorts, Events};
    use herald_domain::IdempotencyKey;
    use herald_memory::MemoryWakeup;

    let app = App::start().await;
    let replica = {
        let store = Arc::new(app.store.clone());
        Events::new(
            EventPorts {
                directory: store.clone(),
                preferences: store.clone(),
                templates: store.clone(),
                queue: store,
                wakeup: Arc::new(MemoryWakeup::new()),
                clock: Arc::new(SystemClock),
            },
            app.services.delivery().clone(),
            app.services.renderer().clone(),
        )
    };
    let replicas = [app.services.events().clone(), replica];
    let mut event = Event::new(catalogue::WORKSPACE_DELETED);
    event.subject = Some(app.member.user.id);
    event.labels.insert("name".into(), "ws-1".into());
    event.idempotency = Some(CallerKey {
        caller: Some(app.owner.user.id),
        key: IdempotencyKey::parse("order-1").unwrap(),
    });

    let calls: Vec<_> = (0..8)
        .map(|i| {
            let events = replicas[i % 2].clone();
            let event = event.clone();
            tokio::spawn(async move { events.enqueue(event).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap().unwrap());
    }

    assert_eq!(stored(&app).await, 2);
    assert_eq!(answers[0].message_ids.len(), 2);
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "{answers:?}"
    );
}
