//! Retention: messages not updated for 7 days are deleted, idempotency keys claimed more than
//! [`IDEMPOTENCY_WINDOW`] ago too.

use std::sync::Arc;

use chrono::Duration;

use crate::Error;
use crate::ports::{Clock, IDEMPOTENCY_WINDOW, MessageQueue, PurgeOutcome};

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

    /// Deletes messages whose last update is older than [`RETENTION`] and idempotency keys
    /// older than [`IDEMPOTENCY_WINDOW`] (those on every run: deleting them twice is harmless).
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
        if let PurgeOutcome::Purged(count) = outcome
            && count > 0
        {
            tracing::info!(count, %cutoff, "notifications: purged old messages");
        }
        Ok(outcome)
    }
}
