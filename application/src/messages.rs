//! Troubleshooting: the messages in the queue, as an operator looks at them.

use std::sync::Arc;

use herald_domain::{Message, MessageId};

use crate::Error;
use crate::ports::{CancelOutcome, MessageFilter, MessageQueue};

/// Messages per listing unless the caller asks for fewer or more.
pub const DEFAULT_LIMIT: usize = 50;
/// The most messages one listing returns.
pub const MAX_LIMIT: usize = 500;

/// Message listing use cases.
#[derive(Debug, Clone)]
pub struct Messages {
    queue: Arc<dyn MessageQueue>,
}

impl Messages {
    pub fn new(queue: Arc<dyn MessageQueue>) -> Self {
        Self { queue }
    }

    /// Messages matching the filter, newest first. A `limit` of 0 means [`DEFAULT_LIMIT`].
    ///
    /// # Errors
    /// [`Error::Invalid`] on `limit` above [`MAX_LIMIT`]; [`Error::Unavailable`] when the
    /// queue is down.
    pub async fn list(&self, mut filter: MessageFilter) -> Result<Vec<Message>, Error> {
        if filter.limit > MAX_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("must be at most {MAX_LIMIT}"),
            ));
        }
        if filter.limit == 0 {
            filter.limit = DEFAULT_LIMIT;
        }
        Ok(self.queue.list(&filter).await?)
    }

    /// Cancels a message that is still `pending` (a scheduled one, or one no notifier has
    /// taken yet): it is deleted and will never be sent.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown message; [`Error::Conflict`] once it left
    /// `pending`; [`Error::Unavailable`] when the queue is down.
    pub async fn cancel(&self, id: MessageId) -> Result<(), Error> {
        match self.queue.cancel(id).await? {
            CancelOutcome::Cancelled => Ok(()),
            CancelOutcome::NotPending(status) => Err(Error::Conflict(format!(
                "message {id} is {status}, no longer pending: it cannot be cancelled"
            ))),
            CancelOutcome::NotFound => Err(Error::NotFound(format!("message {id}"))),
        }
    }
}
