//! In-app inbox notifications.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Action, InboxNotificationId, TemplateId, UserId};

/// A notification in a user's in-app inbox. Its id is the id of the message that delivered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxNotification {
    pub id: InboxNotificationId,
    pub user_id: UserId,
    pub template_id: TemplateId,
    pub targets: Vec<Uuid>,
    /// Plain text.
    pub title: String,
    /// Plain text.
    pub content: String,
    /// The Markdown the title and content were made from, for clients that render it.
    pub title_markdown: String,
    pub content_markdown: String,
    pub actions: Vec<Action>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl InboxNotification {
    pub fn is_read(&self) -> bool {
        self.read_at.is_some()
    }

    /// Whether the notification carries every one of `targets`.
    pub fn has_all_targets(&self, targets: &[Uuid]) -> bool {
        targets.iter().all(|t| self.targets.contains(t))
    }
}
