//! Retention: messages not updated for 7 days are deleted.

use std::sync::Arc;

use chrono::Duration;

use crate::Error;
use crate::ports::{Clock, MessageQueue, PurgeOutcome};

/// How long a message is kept after its last change.
pub const RETENTION: Duration = Duration::days(7);

/// Deletes old messages; one replica at a time (the queue holds the lock).
#[derive(Debug, Clone)]
pub struct Purger {
    queue: Arc<dyn MessageQueue>,
    clock: Arc<dyn Clock>,
}

impl Purger {
    pub fn new(queue: Arc<dyn MessageQueue>, clock: Arc<dyn Clock>) -> Self {
        Self { queue, clock }
    }

    /// Deletes messages whose last update is older than [`RETENTION`].
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn purge(&self) -> Result<PurgeOutcome, Error> {
        let cutoff = self.clock.now() - RETENTION;
        let outcome = self.queue.purge(cutoff).await?;
        if let PurgeOutcome::Purged(count) = outcome
            && count > 0
        {
            tracing::info!(count, %cutoff, "notifications: purged old messages");
        }
        Ok(outcome)
    }
}
