//! Retention: messages not updated for 7 days are deleted, and so are the workspace builds
//! reported more than 7 days ago; idempotency keys claimed more than [`IDEMPOTENCY_WINDOW`] ago
//! too.

use std::sync::Arc;

use chrono::Duration;

use crate::Error;
use crate::ports::{BuildStore, Clock, IDEMPOTENCY_WINDOW, MessageQueue, PurgeOutcome};

/// How long a message is kept after its last change, and a build after it was made.
pub const RETENTION: Duration = Duration::days(7);

/// Deletes old messages and builds; one replica at a time (the queue holds the lock).
#[derive(Debug, Clone)]
pub struct Purger {
    queue: Arc<dyn MessageQueue>,
    builds: Arc<dyn BuildStore>,
    clock: Arc<dyn Clock>,
}

impl Purger {
    pub fn new(
        queue: Arc<dyn MessageQueue>,
        builds: Arc<dyn BuildStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            queue,
            builds,
            clock,
        }
    }

    /// Deletes idempotency keys older than [`IDEMPOTENCY_WINDOW`] (on every run: deleting
    /// them twice is harmless), messages whose last update is older than [`RETENTION`], then
    /// builds made before then; the builds only on the replica that held the purge lock.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn purge(&self) -> Result<PurgeOutcome, Error> {
        let now = self.clock.now();
        let keys = self
            .queue
            .purge_idempotency_keys(now - IDEMPOTENCY_WINDOW)
            .await?;
        if keys > 0 {
            tracing::info!(count = keys, "notifications: purged old idempotency keys");
        }
        let cutoff = now - RETENTION;
        let outcome = self.queue.purge(cutoff).await?;
        if let PurgeOutcome::Purged(count) = outcome {
            if count > 0 {
                tracing::info!(count, %cutoff, "notifications: purged old messages");
            }
            let builds = self.builds.purge(cutoff).await?;
            if builds > 0 {
                tracing::info!(count = builds, %cutoff, "notifications: purged old builds");
            }
        }
        Ok(outcome)
    }
}
