use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{InboxQuery, InboxStore, ReadStatus, StoreError};
use herald_domain::{InboxNotification, InboxNotificationId, UserId};

use super::MemoryStore;

/// The in-app inbox of every user.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    by_id: HashMap<InboxNotificationId, InboxNotification>,
}

/// Listing order: newest first by this key, descending.
fn order_key(notification: &InboxNotification) -> (DateTime<Utc>, InboxNotificationId) {
    (notification.created_at, notification.id)
}

impl Inbox {
    /// How many notifications a listing returns when the query gives no limit.
    const DEFAULT_PAGE: usize = 25;

    fn owned_by(&self, user: UserId, id: InboxNotificationId) -> Option<&InboxNotification> {
        self.by_id.get(&id).filter(|n| n.user_id == user)
    }

    fn list(&self, query: &InboxQuery) -> Vec<InboxNotification> {
        // A cursor that is not one of the user's notifications lists from the newest.
        let before = query
            .starting_before
            .and_then(|id| self.owned_by(query.user, id))
            .map(order_key);
        let mut page: Vec<_> = self
            .by_id
            .values()
            .filter(|n| n.user_id == query.user)
            .filter(|n| query.templates.is_empty() || query.templates.contains(&n.template_id))
            .filter(|n| n.has_all_targets(&query.targets))
            .filter(|n| match query.read_status {
                ReadStatus::All => true,
                ReadStatus::Unread => !n.is_read(),
                ReadStatus::Read => n.is_read(),
            })
            .filter(|n| before.is_none_or(|cursor| order_key(n) < cursor))
            .collect();
        page.sort_by_key(|n| std::cmp::Reverse(order_key(n)));
        let limit = match query.limit {
            0 => Self::DEFAULT_PAGE,
            limit => limit,
        };
        page.into_iter().take(limit).cloned().collect()
    }
}

#[async_trait]
impl InboxStore for MemoryStore {
    async fn insert(&self, notification: &InboxNotification) -> Result<bool, StoreError> {
        self.with(|state| {
            if state.inbox.by_id.contains_key(&notification.id) {
                return false;
            }
            state
                .inbox
                .by_id
                .insert(notification.id, notification.clone());
            true
        })
    }

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxNotification>, StoreError> {
        self.with(|state| state.inbox.list(query))
    }

    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError> {
        self.with(|state| {
            let unread = state
                .inbox
                .by_id
                .values()
                .filter(|n| n.user_id == user && !n.is_read())
                .count();
            u64::try_from(unread).unwrap_or(u64::MAX)
        })
    }

    async fn set_read(
        &self,
        user: UserId,
        id: InboxNotificationId,
        read_at: Option<DateTime<Utc>>,
    ) -> Result<Option<InboxNotification>, StoreError> {
        self.with(|state| {
            let notification = state
                .inbox
                .by_id
                .get_mut(&id)
                .filter(|n| n.user_id == user)?;
            notification.read_at = read_at;
            Some(notification.clone())
        })
    }

    async fn mark_all_read(&self, user: UserId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|state| {
            let mut marked = 0;
            for notification in state.inbox.by_id.values_mut() {
                if notification.user_id == user && !notification.is_read() {
                    notification.read_at = Some(at);
                    marked += 1;
                }
            }
            marked
        })
    }
}
