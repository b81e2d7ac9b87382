use async_trait::async_trait;
use herald_application::ports::{InboxFanout, InboxFeed, InboxSubscription, StoreError};
use herald_domain::{InboxNotification, UserId};

/// The live inbox feed of a single process: publishes straight to this process's watchers.
#[derive(Debug)]
pub struct MemoryInboxFeed {
    fanout: InboxFanout,
}

impl MemoryInboxFeed {
    /// How many notifications a watcher may fall behind before it is dropped.
    pub const WATCHER_CAPACITY: usize = 64;

    pub fn new() -> Self {
        Self {
            fanout: InboxFanout::new(Self::WATCHER_CAPACITY),
        }
    }
}

impl Default for MemoryInboxFeed {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl InboxFeed for MemoryInboxFeed {
    async fn publish(&self, notification: &InboxNotification) -> Result<(), StoreError> {
        self.fanout.publish(notification);
        Ok(())
    }

    async fn subscribe(&self, user: UserId) -> Result<InboxSubscription, StoreError> {
        Ok(self.fanout.subscribe(user))
    }
}
