use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use herald_domain::{InboxNotification, UserId};
use tokio::sync::mpsc;

use super::StoreError;

/// A live stream of one user's new inbox notifications.
#[derive(Debug)]
pub struct InboxSubscription {
    receiver: mpsc::Receiver<InboxNotification>,
}

impl InboxSubscription {
    pub fn new(receiver: mpsc::Receiver<InboxNotification>) -> Self {
        Self { receiver }
    }

    /// The next notification, or `None` once the feed dropped this watcher.
    pub async fn next(&mut self) -> Option<InboxNotification> {
        self.receiver.recv().await
    }

    /// A notification that already arrived, without waiting.
    pub fn try_next(&mut self) -> Option<InboxNotification> {
        self.receiver.try_recv().ok()
    }
}

/// Publishes new inbox notifications to the watchers of their user, on every replica.
///
/// Implementations MUST deliver a published notification to every live subscription of that
/// user (on any replica sharing the store) and to no other user's; MUST NOT block `publish`
/// on a slow watcher (drop the watcher instead).
///
/// # Errors
/// [`StoreError::Unavailable`] when the feed cannot publish or subscribe.
#[async_trait]
pub trait InboxFeed: Send + Sync + std::fmt::Debug {
    async fn publish(&self, notification: &InboxNotification) -> Result<(), StoreError>;

    async fn subscribe(&self, user: UserId) -> Result<InboxSubscription, StoreError>;
}

/// In-process fan-out of notifications to the watchers of each user: bounded per watcher, a
/// full or closed watcher is dropped so publishing never waits. Feeds build on it (the memory
/// feed directly, the PostgreSQL feed after each NOTIFY).
#[derive(Debug)]
pub struct InboxFanout {
    capacity: usize,
    watchers: Mutex<HashMap<UserId, Vec<mpsc::Sender<InboxNotification>>>>,
}

impl InboxFanout {
    /// Each watcher may fall `capacity` notifications behind before it is dropped.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            watchers: Mutex::new(HashMap::new()),
        }
    }

    pub fn subscribe(&self, user: UserId) -> InboxSubscription {
        let (sender, receiver) = mpsc::channel(self.capacity);
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user)
            .or_default()
            .push(sender);
        InboxSubscription::new(receiver)
    }

    /// Hands the notification to every watcher of its user; returns how many took it.
    pub fn publish(&self, notification: &InboxNotification) -> usize {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(senders) = watchers.get_mut(&notification.user_id) else {
            return 0;
        };
        senders.retain(|sender| sender.try_send(notification.clone()).is_ok());
        let delivered = senders.len();
        if senders.is_empty() {
            watchers.remove(&notification.user_id);
        }
        delivered
    }

    /// How many watchers are live for a user.
    pub fn watcher_count(&self, user: UserId) -> usize {
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
            .map_or(0, |senders| {
                senders.iter().filter(|s| !s.is_closed()).count()
            })
    }
}
