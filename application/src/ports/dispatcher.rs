use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::{MessageId, Method, Payload, TemplateId, UserId};
use uuid::Uuid;

use crate::rendering::RenderedMessage;

/// One message ready to go out: who, what, and the rendered text.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub message_id: MessageId,
    pub method: Method,
    pub template_id: TemplateId,
    pub recipient: UserId,
    pub payload: Payload,
    pub targets: Vec<Uuid>,
    pub rendered: RenderedMessage,
}

/// Why a delivery failed, and whether trying again may help. The adapter decides
/// `retryable`; nothing upstream guesses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    pub reason: String,
    pub retryable: bool,
    /// The earliest time the receiver asked to be retried at.
    pub retry_after: Option<DateTime<Utc>>,
}

impl DeliveryError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
            retry_after: None,
        }
    }
}

/// One setting of a dispatcher's configuration, as an operator may see it (the admin page's
/// delivery settings): never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherSetting {
    pub name: &'static str,
    pub value: String,
}

impl DispatcherSetting {
    pub fn new(name: &'static str, value: impl Into<String>) -> Self {
        Self {
            name,
            value: value.into(),
        }
    }

    /// A secret, shown only as whether it is configured.
    pub fn secret(name: &'static str, configured: bool) -> Self {
        Self::new(
            name,
            if configured {
                "set (hidden)"
            } else {
                "not set"
            },
        )
    }
}

/// Delivers messages by one method (SMTP, webhook, inbox).
///
/// Implementations MUST:
/// - be safe to call concurrently;
/// - make one attempt per call and never retry on their own (the notifier owns retries): a
///   failing receiver sees exactly one attempt per `dispatch`;
/// - carry `message_id` to the receiver, the same on every delivery of one message, so that a
///   repeated delivery is recognisable (delivery is at least once): SMTP `Message-ID`, webhook
///   `X-Message-Id` and `msg_id`, the inbox notification's id;
/// - be cancel-safe: the notifier bounds every call by its `dispatch-timeout` and drops a call
///   still running then (a retryable failure), so a dropped call MUST leave the dispatcher
///   delivering the next message (never reusing a connection left mid-conversation);
/// - when a call waits on a network peer, bound it by a timeout of the dispatcher's own and end
///   it as a retryable error when the peer has not answered by then.
///
/// A new delivery method is done when it passes the dispatcher contract suite in herald-tests,
/// `tests/it/dispatchers`: give it a receiver harness there (`ReceiverUnderTest`: accept, fail
/// retryably, fail permanently, hang, read back what arrived) and list every case it can take.
/// A method that fails its own way (the inbox: its store) takes the cases named for that way.
///
/// # Errors
/// [`DeliveryError`] with `retryable` set for conditions that may clear (connection refused,
/// timeouts, 4xx SMTP replies, HTTP 408/425/429/5xx) and unset for those that will not (bad
/// address, rejected recipient, HTTP 4xx, misconfiguration).
#[async_trait]
pub trait Dispatcher: Send + Sync + std::fmt::Debug {
    fn method(&self) -> Method;

    /// The configuration an operator may see, in the order to show it. MUST NOT carry a
    /// secret's value (a password, a signing secret, a token in a URL): a secret is shown only
    /// as whether it is set ([`DispatcherSetting::secret`]). Default: nothing to show.
    fn settings(&self) -> Vec<DispatcherSetting> {
        Vec::new()
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError>;
}
