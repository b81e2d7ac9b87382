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

/// Delivers messages by one method (SMTP, webhook, inbox).
///
/// Implementations MUST be safe to call concurrently, MUST NOT retry on their own (the
/// notifier owns retries), and SHOULD make a repeated delivery of the same `message_id`
/// recognisable to the receiver (delivery is at least once).
///
/// # Errors
/// [`DeliveryError`] with `retryable` set for conditions that may clear (connection refused,
/// timeouts, 4xx SMTP replies, HTTP 408/425/429/5xx) and unset for those that will not (bad
/// address, rejected recipient, HTTP 4xx, misconfiguration).
#[async_trait]
pub trait Dispatcher: Send + Sync + std::fmt::Debug {
    fn method(&self) -> Method;

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError>;
}
