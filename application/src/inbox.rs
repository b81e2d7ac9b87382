//! The in-app inbox as its owner sees it.

use std::sync::Arc;

use herald_domain::{InboxNotification, InboxNotificationId, TemplateId, UserId};
use uuid::Uuid;

use crate::Error;
use crate::ports::{Clock, InboxQuery, InboxStore, ReadStatus};

/// Notifications per inbox page.
pub const PAGE_SIZE: usize = 25;

/// Filters of an inbox listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboxFilter {
    pub templates: Vec<TemplateId>,
    pub targets: Vec<Uuid>,
    pub read_status: ReadStatus,
    pub starting_before: Option<InboxNotificationId>,
}

/// One page of a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPage {
    pub notifications: Vec<InboxNotification>,
    pub unread_count: u64,
}

/// Inbox use cases.
#[derive(Debug, Clone)]
pub struct Inbox {
    store: Arc<dyn InboxStore>,
    clock: Arc<dyn Clock>,
}

impl Inbox {
    pub fn new(store: Arc<dyn InboxStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Up to [`PAGE_SIZE`] of the user's notifications, newest first, and their unread count.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn list(&self, user: UserId, filter: InboxFilter) -> Result<InboxPage, Error> {
        let query = InboxQuery {
            user,
            templates: filter.templates,
            targets: filter.targets,
            read_status: filter.read_status,
            starting_before: filter.starting_before,
            limit: PAGE_SIZE,
        };
        Ok(InboxPage {
            notifications: self.store.list(&query).await?,
            unread_count: self.store.unread_count(user).await?,
        })
    }

    /// How many of the user's notifications are unread.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn unread_count(&self, user: UserId) -> Result<u64, Error> {
        Ok(self.store.unread_count(user).await?)
    }

    /// Marks one of the user's notifications read or unread.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the notification does not exist or is someone else's.
    pub async fn set_read(
        &self,
        user: UserId,
        id: InboxNotificationId,
        is_read: bool,
    ) -> Result<(InboxNotification, u64), Error> {
        let read_at = is_read.then(|| self.clock.now());
        let notification = self
            .store
            .set_read(user, id, read_at)
            .await?
            .ok_or_else(|| Error::NotFound(format!("inbox notification {id}")))?;
        Ok((notification, self.store.unread_count(user).await?))
    }

    /// Marks all of the user's notifications read; returns how many changed.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn mark_all_read(&self, user: UserId) -> Result<u64, Error> {
        Ok(self.store.mark_all_read(user, self.clock.now()).await?)
    }
}
