//! The webhook dispatcher delivering to a wiremock receiver, which answers as the case
//! mounts it to (one mock at a time) and records every request it got.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{Delivery, Dispatcher, SystemClock};
use herald_domain::{MessageId, Method};
use herald_tests::sample;
use herald_webhook::{WebhookConfig, WebhookDispatcher, WebhookFormat};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockGuard, MockServer, ResponseTemplate};

use super::OWN_TIMEOUT;
use crate::dispatchers::{Receiver, ReceiverUnderTest};

const PATH: &str = "/hooks/herald";

/// Longer than any case waits: a request held this long is never answered.
const NEVER: Duration = Duration::from_secs(3600);
/// What the receiver says with its failing answers.
const RETRYABLE_WORDS: &str = "queue full, try again in a minute";
const PERMANENT_WORDS: &str = "unknown channel herald-alerts";

/// A fresh wiremock receiver, accepting, and a webhook dispatcher posting to it.
pub async fn webhook() -> Receiver {
    // A server of its own, not one from wiremock's pool: a held request keeps it busy.
    let server = MockServer::builder().start().await;
    let dispatcher = WebhookDispatcher::new(
        WebhookConfig {
            endpoint: format!("{}{PATH}", server.uri()),
            secret: None,
            timeout: OWN_TIMEOUT,
            format: WebhookFormat::Herald,
        },
        Arc::new(SystemClock),
    )
    .expect("the webhook dispatcher builds");
    let receiver = WebhookReceiver {
        server,
        answering: Mutex::new(None),
        dispatcher: Arc::new(dispatcher),
    };
    receiver.answer(ResponseTemplate::new(200)).await;
    Box::new(receiver)
}

struct WebhookReceiver {
    server: MockServer,
    /// The one mock answering now; dropping it unmounts it.
    answering: Mutex<Option<MockGuard>>,
    dispatcher: Arc<WebhookDispatcher>,
}

impl WebhookReceiver {
    async fn answer(&self, response: ResponseTemplate) {
        let previous = self
            .answering
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(previous);
        let guard = Mock::given(method("POST"))
            .and(path(PATH))
            .respond_with(response)
            .mount_as_scoped(&self.server)
            .await;
        *self
            .answering
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(guard);
    }
}

#[async_trait]
impl ReceiverUnderTest for WebhookReceiver {
    fn dispatcher(&self) -> Arc<dyn Dispatcher> {
        self.dispatcher.clone()
    }

    fn delivery(&self) -> Delivery {
        sample::delivery(Method::Webhook)
    }

    async fn accept(&self) {
        self.answer(ResponseTemplate::new(200)).await;
    }

    async fn answer_retryable(&self) {
        self.answer(ResponseTemplate::new(503).set_body_string(RETRYABLE_WORDS))
            .await;
    }

    async fn answer_permanent(&self) {
        self.answer(
            ResponseTemplate::new(400)
                .set_body_string(format!("{{\"error\":\n  \"{PERMANENT_WORDS}\"}}")),
        )
        .await;
    }

    fn failing_words(&self, retryable: bool) -> Option<&'static str> {
        Some(if retryable {
            RETRYABLE_WORDS
        } else {
            PERMANENT_WORDS
        })
    }

    async fn hang(&self) {
        self.answer(ResponseTemplate::new(200).set_delay(NEVER))
            .await;
    }

    /// Each request's `X-Message-Id`, which its body's `msg_id` must repeat.
    async fn received(&self) -> Vec<MessageId> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .map(|request| {
                let header = request
                    .headers
                    .get("x-message-id")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_else(|| {
                        panic!("a webhook request without X-Message-Id: {request:?}")
                    });
                let body: Value = request.body_json().unwrap_or_else(|err| {
                    panic!("a webhook body that is not JSON ({err}): {request:?}")
                });
                assert_eq!(body["msg_id"], header, "msg_id and X-Message-Id differ");
                header
                    .parse()
                    .unwrap_or_else(|err| panic!("X-Message-Id {header:?} is not an id: {err}"))
            })
            .collect()
    }

    fn own_timeout(&self) -> Option<Duration> {
        Some(OWN_TIMEOUT)
    }
}
