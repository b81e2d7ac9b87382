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
/// full or closed watcher is dropped so publishing never waits. Watchers that closed are also
/// forgotten as new ones subscribe (their user's at once, everyone's in a sweep as often as
/// there were users left by the last sweep), so a user who never gets another notification
/// leaves nothing behind. Feeds build on it (the memory
/// feed directly, the PostgreSQL feed after each NOTIFY).
#[derive(Debug)]
pub struct InboxFanout {
    capacity: usize,
    watchers: Mutex<Watchers>,
}

#[derive(Debug, Default)]
struct Watchers {
    by_user: HashMap<UserId, Vec<mpsc::Sender<InboxNotification>>>,
    /// Subscriptions since the last sweep of closed watchers.
    since_sweep: usize,
    /// Users held right after the last sweep: the next sweep comes after as many
    /// subscriptions, so sweeping costs each subscription a constant share.
    after_sweep: usize,
}

impl InboxFanout {
    /// Each watcher may fall `capacity` notifications behind before it is dropped.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            watchers: Mutex::new(Watchers::default()),
        }
    }

    pub fn subscribe(&self, user: UserId) -> InboxSubscription {
        let (sender, receiver) = mpsc::channel(self.capacity);
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        watchers.since_sweep += 1;
        if watchers.since_sweep > watchers.after_sweep {
            watchers.by_user.retain(|_, senders| {
                senders.retain(|sender| !sender.is_closed());
                !senders.is_empty()
            });
            watchers.since_sweep = 0;
            watchers.after_sweep = watchers.by_user.len();
        }
        let senders = watchers.by_user.entry(user).or_default();
        senders.retain(|sender| !sender.is_closed());
        senders.push(sender);
        InboxSubscription::new(receiver)
    }

    /// Hands the notification to every watcher of its user; returns how many took it.
    pub fn publish(&self, notification: &InboxNotification) -> usize {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(senders) = watchers.by_user.get_mut(&notification.user_id) else {
            return 0;
        };
        senders.retain(|sender| sender.try_send(notification.clone()).is_ok());
        let delivered = senders.len();
        if senders.is_empty() {
            watchers.by_user.remove(&notification.user_id);
        }
        delivered
    }

    /// How many watchers are live for a user.
    /// Watchers held for every user, closed ones not yet forgotten included.
    pub fn held(&self) -> usize {
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_user
            .values()
            .map(Vec::len)
            .sum()
    }

    pub fn watcher_count(&self, user: UserId) -> usize {
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_user
            .get(&user)
            .map_or(0, |senders| {
                senders.iter().filter(|s| !s.is_closed()).count()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_that_closed_are_forgotten_though_their_users_get_nothing_more() {
        let fanout = InboxFanout::new(4);
        let live: Vec<_> = (0..100)
            .map(|_| fanout.subscribe(UserId::random()))
            .collect();

        // Watchers opened and closed, each by a user who is never notified.
        for _ in 0..10_000 {
            drop(fanout.subscribe(UserId::random()));
        }

        assert!(
            fanout.held() <= live.len() * 2 + 1,
            "{} held",
            fanout.held()
        );
        for subscription in &live {
            assert!(!subscription.receiver.is_closed());
        }
    }

    #[test]
    fn a_users_closed_watchers_go_when_they_subscribe_again() {
        let fanout = InboxFanout::new(4);
        let user = UserId::random();
        let others: Vec<_> = (0..10)
            .map(|_| fanout.subscribe(UserId::random()))
            .collect();
        for _ in 0..5 {
            drop(fanout.subscribe(user));
        }

        let _watching = fanout.subscribe(user);

        assert_eq!(fanout.watcher_count(user), 1);
        assert_eq!(fanout.held(), others.len() + 1);
    }
}
