//! The webhook dispatcher against a real HTTP receiver (wiremock).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use herald_application::ports::{Delivery, DeliveryError, Dispatcher, SystemClock};
use herald_application::rendering::RenderedMessage;
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_domain::{Action, Labels, MessageId, Method, Payload, UserId};
use herald_webhook::{WebhookConfig, WebhookDispatcher, WebhookFormat, WebhookSecret};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn delivery() -> Delivery {
    let user = UserId::random();
    Delivery {
        message_id: MessageId::random(),
        method: Method::Webhook,
        template_id: WORKSPACE_DELETED,
        recipient: user,
        payload: Payload {
            version: Payload::VERSION.into(),
            notification_name: "Workspace Deleted".into(),
            notification_template_id: WORKSPACE_DELETED,
            user_id: user,
            user_email: "danny@example.com".into(),
            user_name: "Danny".into(),
            user_username: "danny".into(),
            actions: vec![Action {
                label: "View workspaces".into(),
                url: "https://h.example/workspaces".into(),
            }],
            labels: Labels::from([("name".to_owned(), "my-workspace".to_owned())]),
            data: None,
            targets: vec![],
        },
        targets: vec![],
        rendered: RenderedMessage {
            title_markdown: "Workspace \"my\\-workspace\" deleted".into(),
            body_markdown: "Hi Danny,\n\nYour workspace **my\\-workspace** was deleted.".into(),
            title: "Workspace \"my-workspace\" deleted".into(),
            body: "Hi Danny,\n\nYour workspace my-workspace was deleted.".into(),
        },
    }
}

fn dispatcher(endpoint: &str, secret: Option<&str>, timeout: Duration) -> WebhookDispatcher {
    WebhookDispatcher::new(
        WebhookConfig {
            endpoint: endpoint.to_owned(),
            secret: secret.map(|s| WebhookSecret::parse(s).unwrap()),
            timeout,
            format: WebhookFormat::Herald,
        },
        Arc::new(SystemClock),
    )
    .unwrap()
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

async fn send_to(server: &MockServer, response: ResponseTemplate) -> Result<(), DeliveryError> {
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(server)
        .await;
    dispatcher(
        &format!("{}/hook", server.uri()),
        None,
        Duration::from_secs(5),
    )
    .dispatch(&delivery())
    .await
}

#[tokio::test]
async fn the_body_and_headers_are_exactly_the_designed_ones() {
    let server = receiver(200).await;
    let delivery = delivery();
    dispatcher(
        &format!("{}/hook", server.uri()),
        None,
        Duration::from_secs(5),
    )
    .dispatch(&delivery)
    .await
    .unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        request.headers["x-message-id"],
        delivery.message_id.to_string().as_str()
    );
    assert!(
        request.headers.get("webhook-signature").is_none(),
        "no secret, no signature"
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "_version": "1.1",
            "msg_id": delivery.message_id,
            "payload": serde_json::to_value(&delivery.payload).unwrap(),
            "title": "Workspace \"my-workspace\" deleted",
            "title_markdown": "Workspace \"my\\-workspace\" deleted",
            "body": "Hi Danny,\n\nYour workspace my-workspace was deleted.",
            "body_markdown": "Hi Danny,\n\nYour workspace **my\\-workspace** was deleted.",
        })
    );
    assert_eq!(body["payload"]["notification_name"], "Workspace Deleted");
    assert_eq!(body["payload"]["labels"]["name"], "my-workspace");
}

#[tokio::test]
async fn a_configured_secret_signs_each_request_per_standard_webhooks() {
    let server = receiver(204).await;
    let delivery = delivery();
    dispatcher(
        &format!("{}/hook", server.uri()),
        Some(SECRET),
        Duration::from_secs(5),
    )
    .dispatch(&delivery)
    .await
    .unwrap();

    let request = &server.received_requests().await.unwrap()[0];
    let id = request.headers["webhook-id"].to_str().unwrap();
    let timestamp: i64 = request.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let signature = request.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(
        id,
        delivery.message_id.to_string(),
        "the id is the message id, stable across retries"
    );
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    // What a receiver does: recompute over the raw body it got.
    let expected = WebhookSecret::parse(SECRET)
        .unwrap()
        .sign(id, timestamp, &request.body);
    assert_eq!(signature, expected);
    assert!(signature.starts_with("v1,"));
    let wrong = WebhookSecret::parse("whsec_dGhlIHdyb25nIGtleQ==")
        .unwrap()
        .sign(id, timestamp, &request.body);
    assert_ne!(signature, wrong);
}

#[tokio::test]
async fn two_xx_answers_are_sent() {
    for status in [200, 201, 202, 204] {
        let server = MockServer::start().await;
        assert_eq!(
            send_to(&server, ResponseTemplate::new(status)).await,
            Ok(()),
            "{status}"
        );
    }
}

#[tokio::test]
async fn server_errors_timeouts_and_throttling_are_retryable() {
    for status in [500, 502, 503, 408, 425] {
        let server = MockServer::start().await;
        let err = send_to(&server, ResponseTemplate::new(status))
            .await
            .unwrap_err();
        assert!(err.retryable, "{status}: {err:?}");
        assert!(err.reason.contains(&status.to_string()), "{err:?}");
        assert_eq!(err.retry_after, None);
    }
}

#[tokio::test]
async fn retry_after_on_429_and_503_becomes_the_earliest_retry_time() {
    for status in [429, 503] {
        let server = MockServer::start().await;
        let before = chrono::Utc::now();
        let err = send_to(
            &server,
            ResponseTemplate::new(status).insert_header("Retry-After", "120"),
        )
        .await
        .unwrap_err();
        assert!(err.retryable);
        let at = err.retry_after.expect("Retry-After honoured");
        let waited = at - before;
        assert!(
            waited >= chrono::Duration::seconds(119) && waited <= chrono::Duration::seconds(125),
            "{waited}"
        );
    }
}

#[tokio::test]
async fn other_client_errors_are_permanent() {
    for status in [400, 401, 403, 404, 410] {
        let server = MockServer::start().await;
        let err = send_to(&server, ResponseTemplate::new(status))
            .await
            .unwrap_err();
        assert!(!err.retryable, "{status}: {err:?}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_permanent() {
    let server = MockServer::start().await;
    let err = send_to(
        &server,
        ResponseTemplate::new(301).insert_header("Location", "http://127.0.0.1:9/elsewhere"),
    )
    .await
    .unwrap_err();
    assert!(!err.retryable);
    assert!(err.reason.contains("301"));
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let err = dispatcher(&server.uri(), None, Duration::from_millis(300))
        .dispatch(&delivery())
        .await
        .unwrap_err();
    assert!(err.retryable);
    assert!(err.reason.contains("timed out"), "{err:?}");
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    // A port held by a socket that never listens: connections to it are refused, and no
    // other process can start listening there meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let err = dispatcher(
        &format!("http://127.0.0.1:{port}/hook"),
        None,
        Duration::from_secs(5),
    )
    .dispatch(&delivery())
    .await
    .unwrap_err();
    assert!(err.retryable);
    assert!(err.reason.contains("connect"), "{err:?}");
    drop(held);
}

#[tokio::test]
async fn an_unparsable_endpoint_is_permanent() {
    for endpoint in ["not a url", "ftp://files.example.com/x", ""] {
        let err = dispatcher(endpoint, None, Duration::from_secs(5))
            .dispatch(&delivery())
            .await
            .unwrap_err();
        assert!(!err.retryable, "{endpoint}");
        assert!(err.reason.contains("webhook endpoint"), "{err:?}");
    }
}

/// A bare HTTP/1.1 receiver that answers 200 to every request and counts the TCP
/// connections it accepted. With `answer_together` set, it holds each answer until that many
/// requests are waiting for one, then answers them all.
async fn counting_receiver(
    answer_together: Option<usize>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let together = answer_together.map(|n| Arc::new(tokio::sync::Barrier::new(n)));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let together = together.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let Some(end) = find(&pending, b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while pending.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&chunk[..n]),
                        }
                    }
                    pending.drain(..end + 4 + length);
                    if let Some(together) = &together {
                        together.wait().await;
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if socket.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, accepted)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn connections_are_pooled_and_reused_across_messages() {
    let (endpoint, accepted) = counting_receiver(None).await;
    let webhook = dispatcher(&endpoint, None, Duration::from_secs(5));
    for _ in 0..20 {
        webhook.dispatch(&delivery()).await.unwrap();
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one keep-alive connection for 20 messages"
    );
}

/// The notifier dispatches a whole lease at once (`--notifications-lease-count` messages): the
/// connections one lease opened are all kept for the next, however many there were.
#[tokio::test]
async fn every_connection_a_lease_opened_is_reused_by_the_next() {
    const LEASE: usize = 100;
    let (endpoint, accepted) = counting_receiver(Some(LEASE)).await;
    let webhook = Arc::new(dispatcher(&endpoint, None, Duration::from_secs(10)));
    for lease in 0..3 {
        let mut sends = tokio::task::JoinSet::new();
        for _ in 0..LEASE {
            let webhook = Arc::clone(&webhook);
            sends.spawn(async move { webhook.dispatch(&delivery()).await });
        }
        while let Some(sent) = sends.join_next().await {
            sent.unwrap().unwrap();
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            LEASE,
            "lease {lease}: {LEASE} messages answered together need {LEASE} connections, once"
        );
    }
}
