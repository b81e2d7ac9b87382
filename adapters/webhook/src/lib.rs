//! Herald's webhook dispatcher (DESIGN §6).
//!
//! `POST`s each message as JSON to the configured endpoint with `X-Message-Id`, signed per the
//! Standard Webhooks spec when a secret is configured, and classifies the answer: 2xx sent;
//! 408, 425, 429, 5xx, connection errors and timeouts retryable (honouring `Retry-After`);
//! any other status, or an unusable endpoint, permanent.
//!
//! The body is Herald's JSON, a Slack message or a Microsoft Teams Adaptive Card, as the
//! [`WebhookFormat`] configured says (module `formats`).

mod body;
mod dispatcher;
pub mod formats;
mod signature;

pub use body::WebhookBody;
pub use dispatcher::{WebhookConfig, WebhookDispatcher, client};
pub use formats::{UnknownFormat, WebhookFormat};
pub use signature::{InvalidSecret, WebhookSecret};
