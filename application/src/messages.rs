//! Troubleshooting: the messages in the queue, as an operator looks at them.

use std::sync::Arc;

use herald_domain::Message;

use crate::Error;
use crate::ports::{MessageFilter, MessageQueue};

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
}
