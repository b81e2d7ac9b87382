//! `herald server --notifications-webhook-format`: a custom notification reaches a webhook
//! receiver as a Slack message or a Microsoft Teams Adaptive Card, signed like Herald's own body,
//! with the sender's text escaped for the receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use herald_tests::fixture::within;
use herald_webhook::WebhookSecret;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::running::{Api, Server, create_user};
use crate::support::TestDatabase;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

async fn receiver() -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&receiver)
        .await;
    receiver
}

/// Starts a server posting webhooks to `receiver` with `extra` options and `envs`, sends one
/// custom notification to the owner, and returns the one body the receiver got, after checking
/// its signature.
async fn custom_notification_as_received(
    db: &TestDatabase,
    owner: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Value {
    let receiver = receiver().await;
    let endpoint = format!("{}/hook", receiver.uri());
    let mut args = vec![
        "--notifications-method",
        "webhook",
        "--notifications-webhook-endpoint",
        &endpoint,
        "--notifications-webhook-secret",
        SECRET,
    ];
    args.extend_from_slice(extra);
    let server = Server::start_limited(&db.url, &args, envs, None);
    let api = Api::new(&server.url, owner);
    let (status, body) = api
        .post(
            "/notifications/custom",
            &json!({"content": {
                "title": "Deploy <!channel> **done**",
                "message": "See [the log](https://evil.example) <@U123> & more",
            }}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let request = within("the webhook arriving", async {
        loop {
            if let Some(request) = receiver.received_requests().await.unwrap().pop() {
                return request;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.stop();

    let id = request.headers["webhook-id"].to_str().unwrap();
    assert_eq!(request.headers["x-message-id"].to_str().unwrap(), id);
    let timestamp: i64 = request.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let signature = WebhookSecret::parse(SECRET)
        .unwrap()
        .sign(id, timestamp, &request.body);
    assert_eq!(
        request.headers["webhook-signature"].to_str().unwrap(),
        signature
    );
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_posts_slack_and_teams_bodies_when_asked() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "olga", "owner");

    let slack = custom_notification_as_received(
        &db,
        &owner,
        &["--notifications-webhook-format", "slack"],
        &[],
    )
    .await;
    assert_eq!(
        slack["blocks"][0],
        json!({"type": "header", "text": {
            "type": "plain_text", "text": "Deploy &lt;!channel&gt; **done**", "emoji": true,
        }})
    );
    assert_eq!(
        slack["blocks"][1]["text"]["text"],
        "See [the log](https://evil.example) &lt;@U123&gt; &amp; more"
    );
    assert!(slack.get("msg_id").is_none(), "{slack}");

    let teams = custom_notification_as_received(
        &db,
        &owner,
        &[],
        &[("HERALD_NOTIFICATIONS_WEBHOOK_FORMAT", "teams")],
    )
    .await;
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["body"][0]["text"],
        "Deploy \\<!channel\\> \\*\\*done\\*\\*"
    );
    assert_eq!(
        card["body"][1]["text"],
        "See \\[the log\\](https://evil.example) \\<@U123\\> \\& more"
    );

    db.drop_now().await;
}
