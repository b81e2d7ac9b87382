use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    CallerKey, CancelOutcome, ClaimAnswers, EnqueueOutcome, HeldLease, IDEMPOTENCY_WINDOW,
    KeyClaim, LeaseRequest, MessageFilter, MessageQueue, NewMessage, PurgeOutcome, StoreError,
    StoredAnswer, ThrottleWindow, ThrottledLease, throttle_scope,
};
use herald_domain::message::{StatusChange, leased_by_reason};
use herald_domain::{
    DedupeHash, Leasing, Message, MessageId, MessageStatus, Method, TemplateId, UserId, digest,
};

use super::MemoryStore;
use super::rates::Rates;

/// Where a message sits in age order: its creation time, then the order it was queued in.
type AgeKey = (DateTime<Utc>, u64);

/// The message queue. Every state change goes through the domain's state machine
/// ([`Message::lease`], [`Message::inhibit`], [`Message::apply`]).
#[derive(Debug, Default)]
pub(super) struct Queue {
    by_age: BTreeMap<AgeKey, Message>,
    keys: HashMap<MessageId, AgeKey>,
    hashes: HashSet<DedupeHash>,
    queued: u64,
    /// Idempotency keys: when each was claimed, and what it holds.
    claims: HashMap<CallerKey, (DateTime<Utc>, StoredAnswer)>,
    /// The latest digest of each template, recipient and method: open while it is pending
    /// and its window has not closed ([`Queue::open_digest`]).
    digests: HashMap<(TemplateId, UserId, Method), MessageId>,
}

impl Queue {
    /// How many messages `list` returns when the filter gives no limit.
    const DEFAULT_LIST_LIMIT: usize = 100;

    fn enqueue(&mut self, batch: &[NewMessage]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        // Refuse the whole batch before storing any of it.
        let mut ids = HashSet::new();
        if let Some(clash) = batch
            .iter()
            .find(|new| self.keys.contains_key(&new.id) || !ids.insert(new.id))
        {
            return Err(StoreError::Conflict(format!(
                "message id {} is already queued",
                clash.id
            )));
        }
        let outcomes = batch
            .iter()
            .map(|new| {
                if new.digest {
                    return self.gather(new);
                }
                if let Some(hash) = &new.dedupe_hash
                    && !self.hashes.insert(hash.clone())
                {
                    return EnqueueOutcome::Duplicate;
                }
                self.insert(pending(new));
                EnqueueOutcome::Queued(new.id)
            })
            .collect();
        Ok(outcomes)
    }

    /// `enqueue` with `claims` claimed along, all or nothing; `None` when a key is claimed.
    fn enqueue_claiming(
        &mut self,
        batch: &[NewMessage],
        claims: &[KeyClaim],
        now: DateTime<Utc>,
        answers: ClaimAnswers<'_>,
    ) -> Result<Option<Vec<EnqueueOutcome>>, StoreError> {
        let since = now - IDEMPOTENCY_WINDOW;
        if claims.iter().any(|claim| {
            self.claims
                .get(&claim.key)
                .is_some_and(|(claimed_at, _)| *claimed_at >= since)
        }) {
            return Ok(None);
        }
        let outcomes = self.enqueue(batch)?;
        let answers = answers(&outcomes);
        if answers.len() != claims.len() {
            return Err(StoreError::Other(format!(
                "{} answers for {} idempotency keys",
                answers.len(),
                claims.len()
            )));
        }
        for (claim, answer) in claims.iter().zip(answers) {
            let stored = StoredAnswer {
                fingerprint: claim.fingerprint.clone(),
                answer,
            };
            self.claims.insert(claim.key.clone(), (now, stored));
        }
        Ok(Some(outcomes))
    }

    fn claimed_answers(
        &self,
        keys: &[CallerKey],
        since: DateTime<Utc>,
    ) -> Vec<Option<StoredAnswer>> {
        keys.iter()
            .map(|key| {
                self.claims
                    .get(key)
                    .filter(|(claimed_at, _)| *claimed_at >= since)
                    .map(|(_, answer)| answer.clone())
            })
            .collect()
    }

    fn purge_claims(&mut self, cutoff: DateTime<Utc>) -> u64 {
        let before = self.claims.len();
        self.claims
            .retain(|_, (claimed_at, _)| *claimed_at >= cutoff);
        (before - self.claims.len()) as u64
    }

    fn cancel(&mut self, id: MessageId) -> CancelOutcome {
        let Some(key) = self.keys.get(&id).copied() else {
            return CancelOutcome::NotFound;
        };
        let Some(message) = self.by_age.get(&key) else {
            return CancelOutcome::NotFound;
        };
        if message.status != MessageStatus::Pending {
            return CancelOutcome::NotPending(message.status);
        }
        if let Some(message) = self.by_age.remove(&key) {
            self.keys.remove(&id);
            if let Some(hash) = &message.dedupe_hash {
                self.hashes.remove(hash);
            }
        }
        CancelOutcome::Cancelled
    }

    /// Appends a digest row's items to the open digest of its template, recipient and method,
    /// else stores it as a new digest.
    fn gather(&mut self, new: &NewMessage) -> EnqueueOutcome {
        let key = (new.template_id, new.recipient, new.method);
        if let Some(id) = self.open_digest(key, new.created_at)
            && let Some(open) = self.get_mut(id)
        {
            let added = digest::items(new.payload.data.as_ref()).to_vec();
            let mut items = digest::items(open.payload.data.as_ref()).to_vec();
            items.extend(added);
            open.payload.data = Some(digest::data(items));
            open.updated_at = new.created_at;
            return EnqueueOutcome::Queued(id);
        }
        self.insert(pending(new));
        self.digests.insert(key, new.id);
        EnqueueOutcome::Queued(new.id)
    }

    /// The digest still open at `now` for a template, recipient and method: pending, its
    /// window not closed yet.
    fn open_digest(
        &mut self,
        key: (TemplateId, UserId, Method),
        now: DateTime<Utc>,
    ) -> Option<MessageId> {
        let id = *self.digests.get(&key)?;
        let open = self.get_mut(id).is_some_and(|message| {
            message.digest
                && message.status == MessageStatus::Pending
                && message.next_retry_after.is_some_and(|closes| closes > now)
        });
        open.then_some(id)
    }

    fn insert(&mut self, message: Message) {
        let key = (message.created_at, self.queued);
        self.queued += 1;
        self.keys.insert(message.id, key);
        self.by_age.insert(key, message);
    }

    fn get_mut(&mut self, id: MessageId) -> Option<&mut Message> {
        let key = self.keys.get(&id)?;
        self.by_age.get_mut(key)
    }

    /// Leases up to `request.count` messages, oldest first; those given up on (their lease
    /// expired once too often) count toward it but are not returned, as in PostgreSQL.
    fn lease(&mut self, request: &LeaseRequest) -> Vec<Message> {
        let chosen = self.leasable(request);
        chosen
            .into_iter()
            .filter_map(|key| lease_one(self.by_age.get_mut(&key)?, request))
            .collect()
    }

    /// `lease` under `throttle`: the pending messages chosen are counted in `rates` per
    /// recipient and method, and those past the window's limit (the newest of each) are held
    /// back instead of leased.
    fn lease_throttled(
        &mut self,
        request: &LeaseRequest,
        throttle: &ThrottleWindow,
        rates: &mut Rates,
    ) -> ThrottledLease {
        let chosen = self.leasable(request);
        let mut wanted: HashMap<(UserId, Method), Vec<AgeKey>> = HashMap::new();
        for key in &chosen {
            if let Some(message) = self.by_age.get(key)
                && message.status == MessageStatus::Pending
            {
                wanted
                    .entry((message.recipient, message.method))
                    .or_default()
                    .push(*key);
            }
        }
        let mut held = HashSet::new();
        for ((recipient, method), keys) in wanted {
            let n = keys.len() as u64;
            let counted = rates.add(&throttle_scope(method), recipient, throttle.start, n);
            let places = u64::from(throttle.limit).saturating_sub(counted - n);
            let places = usize::try_from(places).unwrap_or(usize::MAX);
            held.extend(keys.into_iter().skip(places));
        }
        let mut lease = ThrottledLease::default();
        for key in chosen {
            let Some(message) = self.by_age.get_mut(&key) else {
                continue;
            };
            if held.contains(&key) {
                if message.hold_back(throttle.end, &throttle.reason).is_ok() {
                    lease.held_back += 1;
                }
            } else if let Some(leased) = lease_one(message, request) {
                lease.leased.push(leased);
            }
        }
        lease
    }

    /// The keys of the messages a lease takes: up to `request.count` leasable ones of the
    /// methods it asks for, oldest first.
    fn leasable(&self, request: &LeaseRequest) -> Vec<AgeKey> {
        self.by_age
            .iter()
            .filter(|(_, message)| {
                !request.skip.contains(message.method)
                    && message.is_leasable(request.now, request.max_attempts)
            })
            .take(request.count)
            .map(|(key, _)| *key)
            .collect()
    }

    /// Applies each change to a message that is still leased; returns how many changed.
    fn write_back(&mut self, changes: &[StatusChange]) -> u64 {
        let mut changed = 0;
        for change in changes {
            if let Some(message) = self.get_mut(change.id)
                && message.status == MessageStatus::Leased
                && message.apply(change).is_ok()
            {
                changed += 1;
            }
        }
        changed
    }

    fn extend_leases(&mut self, held: &[HeldLease], until: DateTime<Utc>) -> Vec<MessageId> {
        held.iter()
            .filter(|held| {
                self.get_mut(held.id)
                    .is_some_and(|message| message.extend_lease(held.lease, until).is_ok())
            })
            .map(|held| held.id)
            .collect()
    }

    fn give_back(&mut self, held: &[HeldLease]) -> u64 {
        let mut given = 0;
        for held in held {
            if let Some(message) = self.get_mut(held.id)
                && message.give_back(held.lease).is_ok()
            {
                given += 1;
            }
        }
        given
    }

    fn inhibit_recipient(&mut self, recipient: UserId, reason: &str, now: DateTime<Utc>) -> u64 {
        let mut inhibited = 0;
        for message in self.by_age.values_mut() {
            if message.recipient != recipient {
                continue;
            }
            // `inhibit` refuses messages that are already final.
            if let Ok(change) = message.inhibit(reason, now)
                && message.apply(&change).is_ok()
            {
                inhibited += 1;
            }
        }
        inhibited
    }

    fn purge(&mut self, cutoff: DateTime<Utc>) -> u64 {
        let mut purged = 0;
        self.by_age.retain(|_, message| {
            if message.updated_at >= cutoff {
                return true;
            }
            self.keys.remove(&message.id);
            if let Some(hash) = &message.dedupe_hash {
                self.hashes.remove(hash);
            }
            purged += 1;
            false
        });
        purged
    }

    fn list(&self, filter: &MessageFilter) -> Vec<Message> {
        let limit = match filter.limit {
            0 => Self::DEFAULT_LIST_LIMIT,
            limit => limit,
        };
        self.by_age
            .values()
            .rev()
            .filter(|m| filter.status.is_none_or(|status| m.status == status))
            .filter(|m| filter.recipient.is_none_or(|user| m.recipient == user))
            .filter(|m| {
                filter
                    .template_id
                    .is_none_or(|template| m.template_id == template)
            })
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Leases one leasable message as [`Message::lease`] does; returns it when leased (not when
/// given up on).
fn lease_one(message: &mut Message, request: &LeaseRequest) -> Option<Message> {
    let leasing = message
        .lease(
            request.now,
            request.lease_period,
            request.max_attempts,
            request.max_lease_expiries,
        )
        .ok()?;
    if leasing != Leasing::Leased {
        return None;
    }
    message.status_reason = Some(leased_by_reason(&request.notifier));
    Some(message.clone())
}

/// A freshly queued message: pending, never attempted.
fn pending(new: &NewMessage) -> Message {
    Message {
        id: new.id,
        template_id: new.template_id,
        recipient: new.recipient,
        method: new.method,
        status: MessageStatus::Pending,
        status_reason: None,
        attempt_count: 0,
        payload: new.payload.clone(),
        targets: new.targets.clone(),
        created_by: new.created_by.clone(),
        created_at: new.created_at,
        updated_at: new.created_at,
        leased_until: None,
        next_retry_after: new.send_after,
        queued_seconds: 0.0,
        lease_expiries: 0,
        dedupe_hash: new.dedupe_hash.clone(),
        digest: new.digest,
    }
}

#[async_trait]
impl MessageQueue for MemoryStore {
    async fn enqueue(&self, messages: &[NewMessage]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        self.with(|state| state.queue.enqueue(messages))?
    }

    async fn enqueue_claiming(
        &self,
        messages: &[NewMessage],
        claims: &[KeyClaim],
        now: DateTime<Utc>,
        answers: ClaimAnswers<'_>,
    ) -> Result<Option<Vec<EnqueueOutcome>>, StoreError> {
        self.with(|state| state.queue.enqueue_claiming(messages, claims, now, answers))?
    }

    async fn claimed_answers(
        &self,
        keys: &[CallerKey],
        since: DateTime<Utc>,
    ) -> Result<Vec<Option<StoredAnswer>>, StoreError> {
        self.with(|state| state.queue.claimed_answers(keys, since))
    }

    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|state| state.queue.purge_claims(cutoff))
    }

    async fn lease(&self, request: LeaseRequest) -> Result<Vec<Message>, StoreError> {
        self.with(|state| state.queue.lease(&request))
    }

    async fn lease_throttled(
        &self,
        request: LeaseRequest,
        throttle: &ThrottleWindow,
    ) -> Result<ThrottledLease, StoreError> {
        self.with(|state| {
            state
                .queue
                .lease_throttled(&request, throttle, &mut state.rates)
        })
    }

    async fn cancel(&self, id: MessageId) -> Result<CancelOutcome, StoreError> {
        self.with(|state| state.queue.cancel(id))
    }

    async fn mark_sent(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        self.with(|state| state.queue.write_back(changes))
    }

    async fn mark_failed(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        self.with(|state| state.queue.write_back(changes))
    }

    async fn extend_leases(
        &self,
        held: &[HeldLease],
        until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.with(|state| state.queue.extend_leases(held, until))
    }

    async fn give_back(&self, held: &[HeldLease]) -> Result<u64, StoreError> {
        self.with(|state| state.queue.give_back(held))
    }

    async fn inhibit_recipient(
        &self,
        recipient: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.with(|state| state.queue.inhibit_recipient(recipient, reason, now))
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<PurgeOutcome, StoreError> {
        self.ensure_available()?;
        let Some(_lock) = self.try_purge_lock() else {
            return Ok(PurgeOutcome::Skipped);
        };
        self.with(|state| PurgeOutcome::Purged(state.queue.purge(cutoff)))
    }

    async fn get(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.with(|state| {
            let key = state.queue.keys.get(&id)?;
            state.queue.by_age.get(key).cloned()
        })
    }

    async fn list(&self, filter: &MessageFilter) -> Result<Vec<Message>, StoreError> {
        self.with(|state| state.queue.list(filter))
    }
}
