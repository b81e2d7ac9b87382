//! Herald's pure model.
//!
//! Everything here is plain data and pure functions: no async runtime, no I/O, no database,
//! HTTP or mail types. The application layer drives these types through its ports; adapters
//! store and transport them.

pub mod build;
pub mod catalogue;
pub mod dedupe;
pub mod digest;
pub mod email;
pub mod id;
pub mod idempotency;
pub mod inbox;
pub mod message;
pub mod method;
pub mod payload;
pub mod preference;
pub mod signals;
pub mod template;
pub mod user;

pub use build::{Build, BuildInitiator, BuildInput, BuildStatus, BuildTransition};
pub use dedupe::DedupeHash;
pub use digest::DigestWindow;
pub use email::EmailAddress;
pub use id::{InboxNotificationId, MessageId, TemplateId, UserId};
pub use idempotency::IdempotencyKey;
pub use inbox::InboxNotification;
pub use message::{
    Completion, IllegalTransition, Leasing, Message, MessageStatus, RetryPolicy, StatusChange,
};
pub use method::Method;
pub use payload::{Action, Labels, Payload};
pub use preference::{PreferenceScope, StoredPreference, is_enabled, is_security, receives};
pub use template::{ActionTemplate, Audience, Template, TemplateKind};
pub use user::{Role, User, UserStatus, Username};

/// Why a value given to the domain was refused: the field it came from and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
