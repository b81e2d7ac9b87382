//! Enqueue (DESIGN §4): an event becomes one message per recipient and method.
//!
//! [`Events`] is the use case; its work is split by concern:
//! - `event`: what a caller hands in ([`Event`]) and the one check that makes it acceptable;
//! - `grouping`: single events that arrive together are stored as one batch;
//! - `planning`: a batch resolved to its rows with store reads that do not grow with it, and
//!   which event refuses it;
//! - `rows`: an event's messages, payloads, actions and dedupe hashes;
//! - `idempotency`: events with an idempotency key, answered once and replayed after;
//! - `paging`: a single event planned and stored a page of role holders at a time, so its
//!   memory does not grow with its audience.
//!
//! A refused event's error names its own field (`user_id`); a batch's caller also learns the
//! event's index ([`Error::InvalidEvent`]), which the HTTP layer spells `events[i].user_id`.

mod custom;
mod event;
mod grouping;
mod idempotency;
mod paging;
mod planning;
mod rows;

use std::collections::HashSet;
use std::sync::Arc;

use herald_domain::catalogue::TEST_NOTIFICATION;
use herald_domain::{MessageId, Method, UserId};
use serde::{Deserialize, Serialize};

pub use self::custom::{CustomRecipients, MAX_CUSTOM_USER_IDS};
use self::event::CheckedEvent;
pub use self::event::{CustomContent, Event, TemplateRef};
use self::grouping::Group;
use self::planning::{EventPlan, Holders, Plan, Refusal};
use crate::Error;
use crate::config::DeliveryConfig;
use crate::limits::RateLimiter;
use crate::ports::{
    Clock, EnqueueOutcome, MessageQueue, NewMessage, PreferenceStore, TemplateStore, UserDirectory,
    Wakeup,
};
use crate::rendering::Renderer;

/// Why a recipient got no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The recipient opted out of the template (or did not opt in to an off-by-default one).
    Disabled,
    /// An identical message was already queued today.
    Duplicate,
    /// The recipient is deleted.
    Deleted,
    /// The recipient caused the event and is not told of their own act.
    Initiator,
    /// No such user (a custom notification named an id the directory does not know).
    Unknown,
}

/// A recipient who got no message, or no message by one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub user_id: UserId,
    pub reason: SkipReason,
    /// The method skipped, when the recipient still gets the event by another; `None` when
    /// they get no message at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
}

/// What an enqueue did: the messages it created and the recipients it skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EnqueueResult {
    pub message_ids: Vec<MessageId>,
    pub skipped: Vec<Skipped>,
}

/// The ports enqueueing drives.
#[derive(Debug, Clone)]
pub struct EventPorts {
    pub directory: Arc<dyn UserDirectory>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub templates: Arc<dyn TemplateStore>,
    pub queue: Arc<dyn MessageQueue>,
    pub wakeup: Arc<dyn Wakeup>,
    pub clock: Arc<dyn Clock>,
}

/// The enqueue use cases.
#[derive(Debug, Clone)]
pub struct Events {
    ports: EventPorts,
    delivery: DeliveryConfig,
    renderer: Renderer,
    /// Single events waiting to be queued together (shared by every clone).
    group: Arc<Group>,
    /// Permits for the batches being planned and stored (shared by every clone).
    batches: Arc<tokio::sync::Semaphore>,
    /// Holds each user to a number of custom notifications per window (`None`: unlimited).
    custom_limit: Option<RateLimiter>,
    /// How many role holders a single event plans and stores at a time.
    audience_page: usize,
}

/// The most batches planned and stored at once by one [`Events`] (a group of single events
/// counts as one). A batch holds its events, recipients and rows until its insert is done;
/// beyond a few at once they would only queue for a database connection while holding that
/// memory.
pub const MAX_BATCHES_AT_ONCE: usize = 4;

/// How many holders of a role audience a single event plans and stores at a time, unless
/// [`Events::with_audience_page`] says otherwise. An audience that fits in one page is stored
/// with one statement; a larger one page by page in one transaction, holding one page's rows
/// at a time.
pub const AUDIENCE_PAGE: usize = 1000;

impl Events {
    pub fn new(ports: EventPorts, delivery: DeliveryConfig, renderer: Renderer) -> Self {
        Self {
            ports,
            delivery,
            renderer,
            group: Arc::default(),
            batches: Arc::new(tokio::sync::Semaphore::new(MAX_BATCHES_AT_ONCE)),
            custom_limit: None,
            audience_page: AUDIENCE_PAGE,
        }
    }

    /// The same use cases, planning and storing a single event's role audience `holders` at a
    /// time (at least one) instead of [`AUDIENCE_PAGE`].
    #[must_use]
    pub fn with_audience_page(mut self, holders: usize) -> Self {
        self.audience_page = holders.max(1);
        self
    }

    /// The same use cases, with custom notifications held to `limiter` per user.
    #[must_use]
    pub fn with_custom_limit(mut self, limiter: RateLimiter) -> Self {
        self.custom_limit = Some(limiter);
        self
    }

    pub fn delivery(&self) -> &DeliveryConfig {
        &self.delivery
    }

    /// Queues one message per recipient and method of the event, in one batch, and wakes the
    /// notifiers.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field for an unknown template, a missing or unknown
    /// subject or initiator, or bad labels, data or targets; [`Error::Unavailable`] when a
    /// store is down (nothing was queued).
    ///
    /// Concurrent calls are stored together (see the `grouping` module); each still gets its
    /// own result or error, exactly as if it had been queued alone.
    pub async fn enqueue(&self, event: Event) -> Result<EnqueueResult, Error> {
        self.enqueue_grouped(CheckedEvent::check(event, self.ports.clock.now())?)
            .await
    }

    /// Queues several events in one batch (all or nothing); results in event order. At most
    /// [`MAX_BATCHES_AT_ONCE`] batches are planned and stored at once; others wait their turn.
    ///
    /// # Errors
    /// As [`Events::enqueue`], except that a refused event's [`Error::Invalid`] comes as
    /// [`Error::InvalidEvent`] with the event's index (the first refused event's, from 0).
    pub async fn enqueue_batch(&self, events: Vec<Event>) -> Result<Vec<EnqueueResult>, Error> {
        let mut refusal = Refusal::default();
        let mut checked = Vec::with_capacity(events.len());
        let now = self.ports.clock.now();
        for (index, event) in events.into_iter().enumerate() {
            match CheckedEvent::check(event, now) {
                Ok(event) => checked.push(event),
                Err(err) => {
                    // The events before it are still planned: one of them may be refused first.
                    refusal.refuse(index, err);
                    break;
                }
            }
        }
        self.store(checked, refusal, |index, err| err.in_event(index))
            .await
    }

    /// Sends the Test Notification to the caller.
    ///
    /// # Errors
    /// As [`Events::enqueue`].
    pub async fn send_test(&self, caller: UserId) -> Result<EnqueueResult, Error> {
        let mut event = Event::new(TEST_NOTIFICATION);
        event.initiator = Some(caller);
        event.created_by = "test".to_owned();
        self.enqueue(event).await
    }

    /// Sends a custom notification to the caller, within the caller's rate limit (see
    /// [`Events::with_custom_limit`]; a refused one is counted too).
    ///
    /// # Errors
    /// [`Error::Limited`] when the caller sent their most custom notifications in this window
    /// (nothing queued); else as [`Events::enqueue`].
    pub async fn send_custom(
        &self,
        caller: UserId,
        content: CustomContent,
    ) -> Result<EnqueueResult, Error> {
        self.send_custom_to(caller, content, CustomRecipients::sender_only())
            .await
    }

    /// Plans and stores a batch (all or nothing) and wakes the notifiers; results in event
    /// order. `refusal` holds what the events were refused before planning; `name` words a
    /// refused event's error from its index. A batch with idempotency keys goes through
    /// [`Events::store_keyed`], a single event without one through [`Events::store_paged`].
    async fn store(
        &self,
        events: Vec<CheckedEvent>,
        refusal: Refusal,
        name: impl Fn(usize, Error) -> Error,
    ) -> Result<Vec<EnqueueResult>, Error> {
        let _storing = self
            .batches
            .acquire()
            .await
            .map_err(|_| Error::Internal("the enqueue permits were closed".to_owned()))?;
        if events.iter().any(|event| event.idempotency.is_some()) {
            return self.store_keyed(events, refusal, name).await;
        }
        if refusal.index().is_none()
            && let [event] = events.as_slice()
        {
            return self.store_paged(event.clone(), name).await;
        }
        let now = self.ports.clock.now();
        let plan = self
            .plan(events, refusal, now, Holders::All)
            .await
            .map_err(|(index, err)| name(index, err))?;
        self.store_plan(plan).await
    }

    /// Stores a planned batch with one `enqueue` and wakes the notifiers; results in event
    /// order.
    async fn store_plan(&self, plan: Plan) -> Result<Vec<EnqueueResult>, Error> {
        let Plan { rows, events, .. } = plan;
        let outcomes = if rows.is_empty() {
            Vec::new()
        } else {
            self.ports.queue.enqueue(&rows).await?
        };
        let (results, queued_any) = results(&rows, &events, &outcomes)?;
        self.wake(queued_any).await;
        Ok(results)
    }

    /// Wakes the notifiers after a batch queued a message, unless the queue already did in
    /// its own transaction.
    async fn wake(&self, queued_any: bool) {
        if queued_any
            && !self.ports.queue.wakes_notifiers()
            && let Err(err) = self.ports.wakeup.wake().await
        {
            tracing::warn!(error = %err, "notifications: could not wake the notifiers; they will poll");
        }
    }
}

/// Each event's result from the outcomes of its rows, and whether any message was queued.
fn results(
    rows: &[NewMessage],
    events: &[EventPlan],
    outcomes: &[EnqueueOutcome],
) -> Result<(Vec<EnqueueResult>, bool), Error> {
    results_by_recipient(
        rows.iter().map(|row| row.recipient),
        rows.len(),
        events,
        outcomes,
    )
}

/// [`results`] from the recipients of the rows (`count` of them), in row order.
fn results_by_recipient(
    recipients: impl Iterator<Item = UserId>,
    count: usize,
    events: &[EventPlan],
    outcomes: &[EnqueueOutcome],
) -> Result<(Vec<EnqueueResult>, bool), Error> {
    if outcomes.len() != count {
        return Err(Error::Internal(format!(
            "the queue answered {} outcomes for {} messages",
            outcomes.len(),
            count
        )));
    }
    let mut stored = recipients.zip(outcomes);
    let mut queued_any = false;
    let results = events
        .iter()
        .map(|plan| {
            let mut result = EnqueueResult {
                message_ids: Vec::with_capacity(plan.rows),
                skipped: plan.skipped.clone(),
            };
            // Planning skips no one as a duplicate; report each recipient once.
            let mut duplicates = HashSet::new();
            for (recipient, outcome) in stored.by_ref().take(plan.rows) {
                match outcome {
                    EnqueueOutcome::Queued(id) => {
                        queued_any = true;
                        result.message_ids.push(*id);
                    }
                    EnqueueOutcome::Duplicate => {
                        if duplicates.insert(recipient) {
                            result.skipped.push(Skipped {
                                user_id: recipient,
                                reason: SkipReason::Duplicate,
                                method: None,
                            });
                        }
                    }
                }
            }
            result
        })
        .collect();
    Ok((results, queued_any))
}
