//! Dispatch results on their way back to the store: buffered, then written in bulk (one
//! statement for the sent, one for the rest), retried while the leases they complete still
//! hold.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_domain::MessageStatus;
use herald_domain::message::StatusChange;

use crate::ports::{Clock, MessageQueue, NotifierMetrics, StoreError};

/// How long a write-back the store could not take waits before each retry; after the last
/// one (or once the earliest lease it completes has ended) its results are dropped.
pub const WRITE_BACK_RETRY_DELAYS: [Duration; 5] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// Results waiting to be written back.
#[derive(Debug, Default)]
pub(super) struct ResultBuffer {
    sent: Vec<StatusChange>,
    failed: Vec<StatusChange>,
    /// The earliest lease the buffered results complete: they must be written before it ends.
    earliest_lease: Option<DateTime<Utc>>,
}

impl ResultBuffer {
    pub fn len(&self) -> usize {
        self.sent.len() + self.failed.len()
    }

    pub fn earliest_lease(&self) -> Option<DateTime<Utc>> {
        self.earliest_lease
    }

    pub fn push(&mut self, change: StatusChange) {
        if let Some(lease) = change.lease {
            self.earliest_lease = Some(self.earliest_lease.map_or(lease, |e| e.min(lease)));
        }
        if change.status == MessageStatus::Sent {
            self.sent.push(change);
        } else {
            self.failed.push(change);
        }
    }
}

/// What a flush wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flushed {
    pub sent: u64,
    pub failed: u64,
    /// Results dropped because the write-back failed until their leases ended (or its
    /// retries ran out); their rows stay leased and are delivered again after the lease.
    pub dropped: usize,
    /// Results the store did not apply because their message no longer held the lease they
    /// complete (taken over by another notifier after it expired).
    pub stale: u64,
}

impl Flushed {
    pub(super) fn add(self, other: Flushed) -> Flushed {
        Flushed {
            sent: self.sent + other.sent,
            failed: self.failed + other.failed,
            dropped: self.dropped + other.dropped,
            stale: self.stale + other.stale,
        }
    }
}

/// What a write-back needs besides the results.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    pub name: String,
    pub queue: Arc<dyn MessageQueue>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn NotifierMetrics>,
    /// How long one write-back statement may take ([`super::bounded`]).
    pub timeout: Duration,
}

impl Writer {
    /// Writes `buffer` back: one statement for the sent, one for the rest, each retried
    /// after [`WRITE_BACK_RETRY_DELAYS`] while the store is unavailable and the earliest lease
    /// it completes has not ended.
    pub async fn write(&self, buffer: ResultBuffer) -> Flushed {
        let mut flushed = Flushed::default();
        for (changes, all_sent) in [(buffer.sent, true), (buffer.failed, false)] {
            if changes.is_empty() {
                continue;
            }
            match self.write_retrying(&changes, all_sent).await {
                Ok(written) => {
                    if all_sent {
                        flushed.sent = written;
                    } else {
                        flushed.failed = written;
                    }
                    self.metrics.synced_result_updates(written);
                    let stale = (changes.len() as u64).saturating_sub(written);
                    if stale > 0 {
                        flushed.stale += stale;
                        self.metrics.stale_result_updates(stale);
                        tracing::warn!(
                            notifier = %self.name,
                            results = changes.len(),
                            stale,
                            "notifications: results written back for messages whose lease was no longer held; another notifier may have dispatched them too"
                        );
                    }
                }
                Err(err) => {
                    flushed.dropped += changes.len();
                    tracing::warn!(
                        notifier = %self.name,
                        error = %err,
                        results = changes.len(),
                        "notifications: could not write results back; the messages will be retried when their lease expires"
                    );
                }
            }
        }
        flushed
    }

    async fn write_retrying(
        &self,
        changes: &[StatusChange],
        all_sent: bool,
    ) -> Result<u64, StoreError> {
        let earliest = changes.iter().filter_map(|c| c.lease).min();
        let mut delays = WRITE_BACK_RETRY_DELAYS.iter();
        loop {
            let result = if all_sent {
                super::bounded(self.timeout, "mark_sent", self.queue.mark_sent(changes)).await
            } else {
                super::bounded(self.timeout, "mark_failed", self.queue.mark_failed(changes)).await
            };
            let err = match result {
                Err(err @ StoreError::Unavailable(_)) => err,
                other => return other,
            };
            let Some(delay) = delays.next() else {
                return Err(err);
            };
            if earliest.is_some_and(|lease| self.clock.now() + *delay >= lease) {
                return Err(err);
            }
            tracing::debug!(notifier = %self.name, error = %err, ?delay, "notifications: write-back failed; retrying");
            tokio::time::sleep(*delay).await;
        }
    }
}
