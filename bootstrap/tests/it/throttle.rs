//! `herald server --notifications-user-rate-limit`: past the limit a recipient's messages wait,
//! listed by the troubleshooting API with the reason and the time they may go.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, Duration as Age, DurationRound as _, Utc};
use herald_tests::fixture::within;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::running::{Api, Server, create_user};
use crate::support::TestDatabase;

#[tokio::test(flavor = "multi_thread")]
async fn past_the_user_rate_limit_a_message_waits_listed_with_its_reason_and_time() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "olga", "owner");
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let endpoint = format!("{}/hook", receiver.uri());
    let server = Server::start_limited(
        &db.url,
        &[
            "--notifications-method",
            "webhook",
            "--notifications-webhook-endpoint",
            &endpoint,
            "--notifications-inbox-enabled=false",
        ],
        &[("HERALD_NOTIFICATIONS_USER_RATE_LIMIT", "2/1h")],
        None,
    );
    let api = Api::new(&server.url, &owner);

    for i in 0..3 {
        let (status, body) = api
            .post(
                "/notifications/custom",
                &json!({"content": {"title": format!("Deploy {i}"), "message": "done"}}),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let held = api
        .wait_for(
            "/notifications/messages?status=pending",
            Duration::from_secs(30),
            |body| {
                body["messages"].as_array().is_some_and(|m| {
                    m.len() == 1
                        && m[0]["status_reason"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("throttled"))
                })
            },
        )
        .await;
    let hour_end = Utc::now().duration_trunc(Age::hours(1)).unwrap() + Age::hours(1);
    within("two webhooks arriving", async {
        while receiver.received_requests().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.stop();

    let message: &Value = &held["messages"][0];
    assert_eq!(
        message["status_reason"],
        "throttled: 2 per 1h for this recipient and method"
    );
    let next: DateTime<Utc> = serde_json::from_value(message["next_retry_after"].clone()).unwrap();
    assert_eq!(next, hour_end, "it may go when the window ends");
    assert_eq!(receiver.received_requests().await.unwrap().len(), 2);
    db.drop_now().await;
}
