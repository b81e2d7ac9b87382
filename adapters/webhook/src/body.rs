use herald_application::ports::Delivery;
use herald_domain::{MessageId, Payload};
use serde::Serialize;

/// The JSON a receiver gets: the reference's fields plus the Markdown of title and body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookBody<'a> {
    #[serde(rename = "_version")]
    pub version: &'static str,
    pub msg_id: MessageId,
    pub payload: &'a Payload,
    /// Plain text.
    pub title: &'a str,
    pub title_markdown: &'a str,
    /// Plain text.
    pub body: &'a str,
    pub body_markdown: &'a str,
}

impl<'a> WebhookBody<'a> {
    /// The schema version of the outer object.
    pub const VERSION: &'static str = "1.1";

    pub fn of(delivery: &'a Delivery) -> Self {
        Self {
            version: Self::VERSION,
            msg_id: delivery.message_id,
            payload: &delivery.payload,
            title: &delivery.rendered.title,
            title_markdown: &delivery.rendered.title_markdown,
            body: &delivery.rendered.body,
            body_markdown: &delivery.rendered.body_markdown,
        }
    }
}
