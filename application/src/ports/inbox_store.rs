use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::{InboxNotification, InboxNotificationId, TemplateId, UserId};
use uuid::Uuid;

use super::StoreError;

/// Which notifications an inbox listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadStatus {
    #[default]
    All,
    Unread,
    Read,
}

/// An inbox listing: one user's notifications, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    pub user: UserId,
    /// Only these templates (any of them); empty means all.
    pub templates: Vec<TemplateId>,
    /// Only notifications carrying every one of these targets; empty means all.
    pub targets: Vec<Uuid>,
    pub read_status: ReadStatus,
    /// Keyset cursor: only notifications older than this one (by creation time, then id).
    pub starting_before: Option<InboxNotificationId>,
    pub limit: usize,
}

/// The in-app inbox.
///
/// Implementations MUST order listings newest first by `(created_at, id)` descending, apply
/// every filter of [`InboxQuery`], treat an unknown cursor as "from the newest", and never
/// show or change one user's notification for another.
///
/// # Errors
/// [`StoreError`] when the store fails.
#[async_trait]
pub trait InboxStore: Send + Sync + std::fmt::Debug {
    /// Stores a notification. Idempotent: storing an id that exists changes nothing and
    /// returns `false` (a message may be delivered twice).
    async fn insert(&self, notification: &InboxNotification) -> Result<bool, StoreError>;

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxNotification>, StoreError>;

    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError>;

    /// Marks one of `user`'s notifications read (`Some(at)`) or unread (`None`). `None` when
    /// no such notification belongs to `user`.
    async fn set_read(
        &self,
        user: UserId,
        id: InboxNotificationId,
        read_at: Option<DateTime<Utc>>,
    ) -> Result<Option<InboxNotification>, StoreError>;

    /// Marks every unread notification of `user` read; returns how many changed.
    async fn mark_all_read(&self, user: UserId, at: DateTime<Utc>) -> Result<u64, StoreError>;
}
