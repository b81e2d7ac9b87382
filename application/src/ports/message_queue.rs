use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use herald_domain::message::StatusChange;
use herald_domain::{
    DedupeHash, IdempotencyKey, Message, MessageId, MessageStatus, Method, Payload, TemplateId,
    UserId,
};
use uuid::Uuid;

use super::StoreError;

/// A message to queue, fully built by the enqueue use case.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: MessageId,
    pub template_id: TemplateId,
    pub recipient: UserId,
    pub method: Method,
    pub payload: Payload,
    pub targets: Vec<Uuid>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// `None` for events that are never deduplicated.
    pub dedupe_hash: Option<DedupeHash>,
    /// A scheduled message is not leased before this time (stored as its `next_retry_after`).
    /// For a digest, the close of its window.
    pub send_after: Option<DateTime<Utc>>,
    /// A digest row: its payload's `data.items` go into the open digest of its template,
    /// recipient and method, if there is one (see [`MessageQueue`]).
    pub digest: bool,
}

/// What a cancellation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The message was pending: it is deleted, its dedupe hash freed.
    Cancelled,
    /// The message left `pending` (leased, sent, failed…): nothing changed.
    NotPending(MessageStatus),
    NotFound,
}

/// What became of one [`NewMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    Queued(MessageId),
    /// A message with the same dedupe hash is already stored.
    Duplicate,
}

/// How long an idempotency key keeps its first answer (DESIGN §10.3).
pub const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

/// An idempotency key and whose it is: keys are per caller, so two callers never share one.
/// `caller` is `None` for a host enqueueing in its own name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerKey {
    pub caller: Option<UserId>,
    pub key: IdempotencyKey,
}

/// A key to claim along with a batch: the key, and the fingerprint of the request it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    pub key: CallerKey,
    pub fingerprint: String,
}

/// What a claimed key holds: the fingerprint of the request that claimed it and that
/// request's answer (JSON, as the enqueue use case wrote it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub fingerprint: String,
    pub answer: String,
}

/// Words each claim's answer from the batch's outcomes: one answer per claim, in claim order.
pub type ClaimAnswers<'a> = &'a (dyn Fn(&[EnqueueOutcome]) -> Vec<String> + Send + Sync);

/// An enqueue stored a part at a time ([`MessageQueue::begin_enqueue`]).
///
/// Implementations MUST store the parts given to `add` as one [`MessageQueue::enqueue`] of
/// all of them in order would, atomically: nothing is visible to others before `commit`, and
/// nothing is stored when the transaction is dropped without one (or a part fails). A dedupe
/// hash stored by an earlier part makes a later row with that hash a duplicate. `commit`
/// returns one outcome per message added, in order, and wakes the notifiers as `enqueue`
/// does when [`MessageQueue::wakes_notifiers`] says so.
///
/// # Errors
/// As [`MessageQueue::enqueue`]; after an error nothing is stored.
#[async_trait]
pub trait EnqueueTransaction: Send {
    /// Stores (or keeps, until commit) the next part of the batch.
    async fn add(&mut self, messages: Vec<NewMessage>) -> Result<(), StoreError>;

    /// Makes every part stored; the outcomes of all the messages added, in order.
    async fn commit(self: Box<Self>) -> Result<Vec<EnqueueOutcome>, StoreError>;
}

/// [`MessageQueue::begin_enqueue`]'s default: every part kept, one `enqueue` at commit.
struct BufferedEnqueue<'q, Q: ?Sized> {
    queue: &'q Q,
    messages: Vec<NewMessage>,
}

#[async_trait]
impl<Q: MessageQueue + ?Sized> EnqueueTransaction for BufferedEnqueue<'_, Q> {
    async fn add(&mut self, mut messages: Vec<NewMessage>) -> Result<(), StoreError> {
        self.messages.append(&mut messages);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<Vec<EnqueueOutcome>, StoreError> {
        if self.messages.is_empty() {
            return Ok(Vec::new());
        }
        self.queue.enqueue(&self.messages).await
    }
}

/// A notifier's request for work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The name of the notifier leasing: each message leased records it as its status reason
    /// ([`leased_by_reason`](herald_domain::message::leased_by_reason)).
    pub notifier: Arc<str>,
    pub now: DateTime<Utc>,
    pub lease_period: Duration,
    pub count: usize,
    pub max_attempts: u32,
    /// The expiry of a message's lease that fails it instead of leasing it again (at least 1).
    pub max_lease_expiries: u32,
    /// Methods whose messages this lease leaves queued (the notifier has enough of them
    /// waiting).
    pub skip: SkipMethods,
}

/// The throttle a lease applies (DESIGN §10.3): at most `limit` messages per recipient and
/// method in the window `start`..`end`. Built by the notifier from its
/// [`RateLimit`](crate::RateLimit) for the lease's `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleWindow {
    pub limit: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The `status_reason` of a message held back ("throttled: 5 per 1h for this recipient
    /// and method").
    pub reason: String,
}

/// What a throttled lease did: the messages it leased, and how many it held back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ThrottledLease {
    pub leased: Vec<Message>,
    pub held_back: usize,
}

/// The scope a store counts a recipient's throttled messages of `method` under, beside the
/// [`RateCounter`](super::RateCounter)'s scopes.
#[must_use]
pub fn throttle_scope(method: Method) -> String {
    format!("throttle:{}", method.as_str())
}

/// A set of delivery methods a lease leaves alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkipMethods(u8);

impl SkipMethods {
    /// Skips nothing.
    pub const NONE: SkipMethods = SkipMethods(0);

    const fn bit(method: Method) -> u8 {
        match method {
            Method::Smtp => 1,
            Method::Webhook => 2,
            Method::Inbox => 4,
        }
    }

    #[must_use]
    pub const fn with(self, method: Method) -> SkipMethods {
        SkipMethods(self.0 | Self::bit(method))
    }

    pub const fn contains(self, method: Method) -> bool {
        self.0 & Self::bit(method) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    #[must_use]
    pub const fn union(self, other: SkipMethods) -> SkipMethods {
        SkipMethods(self.0 | other.0)
    }

    /// These methods but `other`'s.
    #[must_use]
    pub const fn without(self, other: SkipMethods) -> SkipMethods {
        SkipMethods(self.0 & !other.0)
    }

    /// The skipped methods' names, as `Method::as_str` spells them.
    pub fn names(self) -> Vec<&'static str> {
        Method::ALL
            .into_iter()
            .filter(|method| self.contains(*method))
            .map(Method::as_str)
            .collect()
    }
}

/// A lease a notifier holds: the message and the `leased_until` it was leased (or last
/// extended) with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLease {
    pub id: MessageId,
    pub lease: DateTime<Utc>,
}

/// Troubleshooting filter over stored messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub recipient: Option<UserId>,
    pub template_id: Option<TemplateId>,
    pub limit: usize,
}

/// Whether a purge ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeOutcome {
    Purged(u64),
    /// Another replica is purging right now.
    Skipped,
}

/// The message queue: where messages wait, are leased, and end.
///
/// Implementations MUST:
/// - store a whole `enqueue` batch atomically (all rows or none), report a row whose dedupe
///   hash is already stored as [`EnqueueOutcome::Duplicate`], and return one outcome per input
///   in input order;
/// - in `lease`, take up to `count` messages for which [`Message::is_leasable`] holds at `now`
///   and whose method `skip` does not hold, oldest first, never handing one message to two concurrent callers, and change each
///   exactly as [`Message::lease`] does with `max_lease_expiries`: most move to `leased` with
///   `leased_until = now + lease_period` and
///   [`leased_by_reason`](herald_domain::message::leased_by_reason)`(notifier)` as their
///   `status_reason`, and are returned; an expired lease is taken over
///   without counting an attempt but counting an expiry (`lease_expiries`), and the expiry
///   that brings the count to `max_lease_expiries` moves the message to `permanent_failure`
///   with [`lease_expiries_reason`](herald_domain::message::lease_expiries_reason) instead, and it is not returned (it counts toward
///   `count`). Only the takeover of a `leased` message counts: one whose lease was given back
///   or written back is leased again without an expiry;
/// - in `mark_sent` / `mark_failed`, apply each [`StatusChange`] only to a message that is
///   still `leased` with `leased_until` equal to the change's `lease` (a stale write-back from a
///   notifier whose lease was taken over changes nothing) and return how many rows changed;
/// - in `extend_leases`, move to `until` the lease of each message still leased with exactly
///   the held lease (as [`Message::extend_lease`]) and return the ids it extended; in
///   `give_back`, return each such message to where it was before its lease (as
///   [`Message::give_back`]: leasable at once, no attempt counted) and return how many; both
///   leave every other message (completed, taken over) untouched;
/// - purge only messages whose `updated_at` is older than the cutoff, and never run two purges
///   at once across replicas;
/// - in `enqueue_claiming`, claim every key of `claims` and store the batch as `enqueue` does
///   in one transaction, each key with the answer `answers` words from the outcomes; a key
///   claimed less than [`IDEMPOTENCY_WINDOW`] before `now` (committed, or in a transaction
///   still running, which it waits for) makes it store nothing and return `None`; an older
///   claim is replaced. `claimed_answers` sees a claim only with its answer, once committed;
/// - in `purge_idempotency_keys`, delete the keys claimed before the cutoff;
/// - in `lease_throttled`, choose the messages as `lease` does, and lease them as `lease` does
///   except pending ones past the throttle: each pending message chosen counts one against its
///   recipient and method (in the counter [`RateCounter`](super::RateCounter) keeps, scope
///   [`throttle_scope`], window `throttle.start`), and those of a recipient and method beyond
///   `throttle.limit` in the window, the newest of them first, are held back instead
///   ([`Message::hold_back`] until `throttle.end` with `throttle.reason`), not returned, and
///   counted in `held_back` (they count toward `count`). Messages already attempted (retries,
///   expired leases) are neither counted nor held. The count MUST hold across concurrent
///   leases on any replica: two leases never both take the last places of one window.
/// - store a row with `digest` set (it has no dedupe hash) as follows: when a digest of the
///   same template, recipient and method is open — `pending`, `digest`, and its
///   `next_retry_after` later than the row's `created_at` — append the row's `data.items` to
///   that message's (setting its `updated_at` to the row's `created_at`) and answer
///   `Queued` with that message's id; else store the row as a new message (`digest`, not
///   leasable before its `send_after`). Concurrent enqueues, on any replica, never leave two
///   open digests for one template, recipient and method, and never lose an item: an append
///   racing a lease either lands before the lease takes the message or opens a new digest.
///
/// # Errors
/// [`StoreError::Unavailable`] when the store cannot be reached (nothing was written);
/// [`StoreError::Other`] for anything else.
#[async_trait]
pub trait MessageQueue: Send + Sync + std::fmt::Debug {
    async fn enqueue(&self, messages: &[NewMessage]) -> Result<Vec<EnqueueOutcome>, StoreError>;

    /// `true` when `enqueue` itself wakes the notifiers of every replica, in the transaction
    /// that stores the messages, whenever it queued one (so the wake-up costs no commit of its
    /// own); the enqueue use case then does not call [`super::Wakeup::wake`]. Default: `false`.
    fn wakes_notifiers(&self) -> bool {
        false
    }

    /// Opens an enqueue that stores its messages a part at a time, all or nothing: see
    /// [`EnqueueTransaction`]. For a batch too large to hold at once.
    ///
    /// The default keeps every part and stores them with one [`MessageQueue::enqueue`] at
    /// commit; a store that can hold a transaction open SHOULD write each part as it comes.
    async fn begin_enqueue(&self) -> Result<Box<dyn EnqueueTransaction + '_>, StoreError> {
        Ok(Box::new(BufferedEnqueue {
            queue: self,
            messages: Vec::new(),
        }))
    }

    /// Stores a batch as [`MessageQueue::enqueue`] does and claims `claims` with it, all or
    /// nothing; `None` (nothing stored) when one of the keys is already claimed.
    async fn enqueue_claiming(
        &self,
        messages: &[NewMessage],
        claims: &[KeyClaim],
        now: DateTime<Utc>,
        answers: ClaimAnswers<'_>,
    ) -> Result<Option<Vec<EnqueueOutcome>>, StoreError>;

    /// What each of `keys` holds when claimed at or after `since` (`None`: not claimed), in
    /// `keys` order.
    async fn claimed_answers(
        &self,
        keys: &[CallerKey],
        since: DateTime<Utc>,
    ) -> Result<Vec<Option<StoredAnswer>>, StoreError>;

    /// Deletes the idempotency keys claimed before `cutoff`; returns how many.
    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn lease(&self, request: LeaseRequest) -> Result<Vec<Message>, StoreError>;

    /// [`MessageQueue::lease`] under a throttle, in one statement: see the contract above.
    async fn lease_throttled(
        &self,
        request: LeaseRequest,
        throttle: &ThrottleWindow,
    ) -> Result<ThrottledLease, StoreError>;

    /// Writes back a buffer of successful dispatches in one statement.
    async fn mark_sent(&self, changes: &[StatusChange]) -> Result<u64, StoreError>;

    /// Writes back a buffer of failed or inhibited dispatches in one statement.
    async fn mark_failed(&self, changes: &[StatusChange]) -> Result<u64, StoreError>;

    /// Extends the leases still held among `held` to `until`, in one statement; returns the
    /// ids extended (the others were taken over and must not be dispatched).
    async fn extend_leases(
        &self,
        held: &[HeldLease],
        until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError>;

    /// Gives back the leases still held among `held` (messages leased and never dispatched),
    /// in one statement, so any notifier may lease them at once; returns how many.
    async fn give_back(&self, held: &[HeldLease]) -> Result<u64, StoreError>;

    /// Inhibits every message of `recipient` that is not final yet (pending, leased or waiting
    /// for a retry); returns how many.
    async fn inhibit_recipient(
        &self,
        recipient: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Deletes a message that is still `pending` (never leased) and frees its dedupe hash;
    /// any other message is left as it is.
    async fn cancel(&self, id: MessageId) -> Result<CancelOutcome, StoreError>;

    /// Deletes messages not updated since `cutoff`.
    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<PurgeOutcome, StoreError>;

    async fn get(&self, id: MessageId) -> Result<Option<Message>, StoreError>;

    /// Messages matching the filter, newest first, at most `filter.limit`.
    async fn list(&self, filter: &MessageFilter) -> Result<Vec<Message>, StoreError>;
}
