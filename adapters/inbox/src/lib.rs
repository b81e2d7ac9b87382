//! Herald's inbox dispatcher (DESIGN §6): a delivered message becomes an in-app inbox
//! notification with the message's id, stored through [`InboxStore`] and published on the
//! [`InboxFeed`] to the recipient's live watchers on every replica.

use std::sync::Arc;

use async_trait::async_trait;
use herald_application::ports::{
    Clock, Delivery, DeliveryError, Dispatcher, InboxFeed, InboxStore,
};
use herald_domain::{InboxNotification, Method};

/// Delivers messages to the in-app inbox.
#[derive(Debug, Clone)]
pub struct InboxDispatcher {
    store: Arc<dyn InboxStore>,
    feed: Arc<dyn InboxFeed>,
    clock: Arc<dyn Clock>,
}

impl InboxDispatcher {
    pub fn new(
        store: Arc<dyn InboxStore>,
        feed: Arc<dyn InboxFeed>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, feed, clock }
    }

    /// The inbox notification a delivery becomes: same id as the message, plain-text title
    /// and content (with their Markdown alongside), the rendered actions, unread.
    pub fn notification(
        delivery: &Delivery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> InboxNotification {
        InboxNotification {
            id: delivery.message_id.into(),
            user_id: delivery.recipient,
            template_id: delivery.template_id,
            targets: delivery.targets.clone(),
            title: delivery.rendered.title.clone(),
            content: delivery.rendered.body.clone(),
            title_markdown: delivery.rendered.title_markdown.clone(),
            content_markdown: delivery.rendered.body_markdown.clone(),
            actions: delivery.payload.actions.clone(),
            read_at: None,
            created_at: now,
        }
    }
}

#[async_trait]
impl Dispatcher for InboxDispatcher {
    fn method(&self) -> Method {
        Method::Inbox
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let notification = Self::notification(delivery, self.clock.now());
        // Any store failure may clear (the store is the same database the queue lives in).
        let inserted = self.store.insert(&notification).await.map_err(|err| {
            DeliveryError::retryable(format!("could not store the inbox notification: {err}"))
        })?;
        // A repeated delivery (at least once) is stored once and announced once.
        if inserted && let Err(err) = self.feed.publish(&notification).await {
            // Stored is delivered: watchers that missed the live event see it on their next
            // listing, so a feed outage does not fail the message.
            tracing::warn!(
                message_id = %delivery.message_id,
                error = %err,
                "notifications: inbox notification stored but not published to live watchers"
            );
        }
        Ok(())
    }
}
