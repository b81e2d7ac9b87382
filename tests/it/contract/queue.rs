//! The `MessageQueue` contract: enqueue and dedupe, leases, write-back, inhibition, purge,
//! troubleshooting listings.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{
    EnqueueOutcome, HeldLease, LeaseRequest, MessageFilter, NewMessage, PurgeOutcome, SkipMethods,
    StoreError,
};
use herald_domain::message::StatusChange;
use herald_domain::{
    Completion, DedupeHash, Message, MessageId, MessageStatus, Method, RetryPolicy, UserId,
    catalogue,
};
use herald_postgres::PURGE_CHUNK_ROWS;
use herald_tests::fixture::{Backend, within};
use herald_tests::sample::{self, LEASE_PERIOD, lease_request, t0};

const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: sample::MAX_ATTEMPTS,
    retry_interval: Duration::minutes(5),
};

fn secs(seconds: i64) -> Duration {
    Duration::seconds(seconds)
}

fn queued(id: MessageId) -> EnqueueOutcome {
    EnqueueOutcome::Queued(id)
}

fn id_set(messages: &[Message]) -> BTreeSet<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

/// Queues one message per creation time (offsets from t0) for `recipient`, in that order;
/// returns their ids in the same order.
async fn queue_at(backend: &Backend, recipient: UserId, offsets: &[Duration]) -> Vec<MessageId> {
    let batch: Vec<NewMessage> = offsets
        .iter()
        .map(|offset| sample::new_message(recipient, t0() + *offset))
        .collect();
    enqueue(backend, &batch).await;
    batch.iter().map(|m| m.id).collect()
}

async fn stored(backend: &Backend, id: MessageId) -> Message {
    backend
        .queue
        .get(id)
        .await
        .unwrap()
        .expect("the message is stored")
}

/// Leases up to 10 at `now` for messages below `max_attempts` attempts.
async fn lease_below(backend: &Backend, now: DateTime<Utc>, max_attempts: u32) -> Vec<Message> {
    let request = LeaseRequest {
        max_attempts,
        ..lease_request(now, 10)
    };
    backend.queue.lease(request).await.unwrap()
}

async fn lease(backend: &Backend, now: DateTime<Utc>, count: usize) -> Vec<Message> {
    backend
        .queue
        .lease(lease_request(now, count))
        .await
        .unwrap()
}

/// How a leased copy's dispatch ended, as the notifier computes it.
fn completed(leased: &Message, completion: Completion, now: DateTime<Utc>) -> StatusChange {
    leased.complete(&completion, now, POLICY).unwrap()
}

fn retryable(reason: &str) -> Completion {
    Completion::Failed {
        reason: reason.to_owned(),
        retryable: true,
        retry_after: None,
    }
}

fn permanent(reason: &str) -> Completion {
    Completion::Failed {
        reason: reason.to_owned(),
        retryable: false,
        retry_after: None,
    }
}

/// Queues one message, leases it at `now` and writes back a retryable failure: it waits for
/// its retry at `now + POLICY.retry_interval` with one attempt counted.
async fn queue_a_temporary_failure(backend: &Backend, now: DateTime<Utc>) -> MessageId {
    let [id] = queue_at(backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };
    let leased = lease(backend, now, 1).await;
    let change = completed(&leased[0], retryable("connection refused"), now);
    assert_eq!(backend.queue.mark_failed(&[change]).await.unwrap(), 1);
    id
}

/// A message to anyone, created at `created_at`, deduplicated by `hash`.
fn hashed(hash: &DedupeHash, created_at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        dedupe_hash: Some(hash.clone()),
        ..sample::new_message(UserId::random(), created_at)
    }
}

async fn enqueue(backend: &Backend, batch: &[NewMessage]) -> Vec<EnqueueOutcome> {
    backend.queue.enqueue(batch).await.unwrap()
}

async fn enqueue_reports_one_outcome_per_message_in_input_order(backend: Backend) {
    let user = UserId::random();
    let batch = [
        sample::new_message(user, t0() + secs(2)),
        hashed(&sample::dedupe_hash(), t0()),
        sample::new_message(user, t0() + secs(1)),
    ];
    let outcomes = enqueue(&backend, &batch).await;
    let expected: Vec<_> = batch.iter().map(|m| queued(m.id)).collect();
    assert_eq!(outcomes, expected);
}

async fn a_queued_message_is_stored_pending_and_never_attempted(backend: Backend) {
    let new = NewMessage {
        targets: vec![uuid::Uuid::new_v4()],
        ..hashed(&sample::dedupe_hash(), t0())
    };
    enqueue(&backend, std::slice::from_ref(&new)).await;

    let message = stored(&backend, new.id).await;
    assert_eq!(message.status, MessageStatus::Pending);
    assert_eq!(message.attempt_count, 0);
    assert_eq!(message.lease_expiries, 0);
    assert_eq!(message.status_reason, None);
    assert_eq!((message.created_at, message.updated_at), (t0(), t0()));
    assert_eq!(message.leased_until, None);
    assert_eq!(message.next_retry_after, None);
    assert_eq!(
        (message.template_id, message.recipient, message.method),
        (new.template_id, new.recipient, new.method)
    );
    assert_eq!(message.payload, new.payload);
    assert_eq!(message.targets, new.targets);
    assert_eq!(message.created_by, new.created_by);
    assert_eq!(message.dedupe_hash, new.dedupe_hash);
    assert_eq!(backend.queue.get(MessageId::random()).await.unwrap(), None);
}

async fn a_repeated_hash_in_one_batch_is_a_duplicate(backend: Backend) {
    let hash = sample::dedupe_hash();
    let (first, second) = (hashed(&hash, t0()), hashed(&hash, t0()));
    let unhashed = sample::new_message(UserId::random(), t0());

    let outcomes = enqueue(&backend, &[first.clone(), second.clone(), unhashed.clone()]).await;

    let expected = [
        queued(first.id),
        EnqueueOutcome::Duplicate,
        queued(unhashed.id),
    ];
    assert_eq!(outcomes, expected);
    assert_eq!(backend.queue.get(second.id).await.unwrap(), None);
}

/// `wakes_notifiers` tells the truth: a queue that says so wakes every replica's notifiers
/// from `enqueue` itself when it queued something, and not for a batch of duplicates only;
/// one that does not say so wakes no one (the use case calls `Wakeup::wake`).
async fn an_enqueue_wakes_the_notifiers_exactly_when_the_queue_says_it_does(backend: Backend) {
    let replica = backend.replica().await;
    let listener = replica.wakeup.subscribe();
    let mut wakeups = backend.watch_wakeups().await;
    let hash = sample::dedupe_hash();

    enqueue(&backend, &[hashed(&hash, t0())]).await;
    let woken = wakeups.any_queued_since().await;
    assert_eq!(woken, backend.queue.wakes_notifiers(), "woken: {woken}");
    if woken {
        within("the wake-up from the enqueue", listener.wait()).await;
    }

    let outcomes = enqueue(&backend, &[hashed(&hash, t0())]).await;
    assert_eq!(outcomes, [EnqueueOutcome::Duplicate]);
    assert!(
        !wakeups.any_queued_since().await,
        "a batch that queued nothing woke the notifiers"
    );
}

async fn a_hash_already_stored_is_a_duplicate_in_a_later_batch(backend: Backend) {
    let hash = sample::dedupe_hash();
    enqueue(&backend, &[hashed(&hash, t0())]).await;
    let again = hashed(&hash, t0() + secs(60));

    let outcomes = enqueue(&backend, std::slice::from_ref(&again)).await;

    assert_eq!(outcomes, [EnqueueOutcome::Duplicate]);
    assert_eq!(backend.queue.get(again.id).await.unwrap(), None);
}

async fn a_batch_stores_its_new_messages_around_a_hash_already_stored(backend: Backend) {
    let hash = sample::dedupe_hash();
    enqueue(&backend, &[hashed(&hash, t0())]).await;
    let repeated = hashed(&hash, t0() + secs(60));
    let unhashed = sample::new_message(UserId::random(), t0() + secs(60));
    let fresh = hashed(&sample::dedupe_hash(), t0() + secs(60));

    let outcomes = enqueue(
        &backend,
        &[unhashed.clone(), repeated.clone(), fresh.clone()],
    )
    .await;

    let expected = [
        queued(unhashed.id),
        EnqueueOutcome::Duplicate,
        queued(fresh.id),
    ];
    assert_eq!(outcomes, expected);
    assert_eq!(backend.queue.get(repeated.id).await.unwrap(), None);
    assert_eq!(
        stored(&backend, fresh.id).await.dedupe_hash,
        fresh.dedupe_hash
    );
}

async fn messages_without_a_hash_are_never_duplicates(backend: Backend) {
    let first = sample::new_message(UserId::random(), t0());
    let twin = NewMessage {
        id: MessageId::random(),
        ..first.clone()
    };
    let outcomes = enqueue(&backend, &[first.clone(), twin.clone()]).await;
    assert_eq!(outcomes, [queued(first.id), queued(twin.id)]);
}

async fn a_purged_message_frees_its_dedupe_hash(backend: Backend) {
    let hash = sample::dedupe_hash();
    enqueue(&backend, &[hashed(&hash, t0())]).await;
    let purged = backend.queue.purge(t0() + secs(1)).await.unwrap();
    assert_eq!(purged, PurgeOutcome::Purged(1));
    let again = hashed(&hash, t0() + Duration::days(8));

    let outcomes = enqueue(&backend, std::slice::from_ref(&again)).await;

    assert_eq!(outcomes, [queued(again.id)]);
}

async fn a_purge_frees_only_the_hashes_of_the_messages_it_deleted(backend: Backend) {
    let (old, young) = (sample::dedupe_hash(), sample::dedupe_hash());
    enqueue(
        &backend,
        &[hashed(&old, t0()), hashed(&young, t0() + secs(10))],
    )
    .await;
    let purged = backend.queue.purge(t0() + secs(1)).await.unwrap();
    assert_eq!(purged, PurgeOutcome::Purged(1));

    let outcomes = enqueue(&backend, &[hashed(&old, t0()), hashed(&young, t0())]).await;

    assert!(
        matches!(outcomes[0], EnqueueOutcome::Queued(_)),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], EnqueueOutcome::Duplicate);
}

async fn a_batch_with_a_message_id_already_queued_stores_none_of_its_rows(backend: Backend) {
    let existing = sample::new_message(UserId::random(), t0());
    enqueue(&backend, std::slice::from_ref(&existing)).await;
    let hash = sample::dedupe_hash();
    let fresh = hashed(&hash, t0());
    let clashing = NewMessage {
        id: existing.id,
        ..sample::new_message(UserId::random(), t0() + secs(5))
    };

    let refused = backend.queue.enqueue(&[fresh.clone(), clashing]).await;

    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(backend.queue.get(fresh.id).await.unwrap(), None);
    assert_eq!(stored(&backend, existing.id).await.created_at, t0());
    let retry = hashed(&hash, t0());
    let outcomes = enqueue(&backend, std::slice::from_ref(&retry)).await;
    assert_eq!(
        outcomes,
        [queued(retry.id)],
        "the refused batch took no hash"
    );
}

async fn an_unavailable_queue_refuses_everything_and_changes_nothing(backend: Backend) {
    let user = UserId::random();
    let [kept] = queue_at(&backend, user, &[secs(0)]).await[..] else {
        unreachable!()
    };
    backend.set_unavailable(true).await;
    let refused = sample::new_message(user, t0());
    let unavailable =
        |result: Result<_, StoreError>| matches!(result, Err(StoreError::Unavailable(_)));

    assert!(unavailable(
        backend
            .queue
            .enqueue(std::slice::from_ref(&refused))
            .await
            .map(drop)
    ));
    assert!(unavailable(
        backend.queue.lease(lease_request(t0(), 10)).await.map(drop)
    ));
    assert!(unavailable(
        backend
            .queue
            .purge(t0() + Duration::days(30))
            .await
            .map(drop)
    ));

    backend.set_unavailable(false).await;
    assert_eq!(backend.queue.get(refused.id).await.unwrap(), None);
    assert_eq!(stored(&backend, kept).await.status, MessageStatus::Pending);
}

async fn lease_takes_the_oldest_leasable_messages_up_to_the_count(backend: Backend) {
    let user = UserId::random();
    let offsets = [secs(3), secs(1), secs(4), secs(0), secs(2)];
    let ids = queue_at(&backend, user, &offsets).await;
    let (t0_id, t1_id, t2_id, t3_id, t4_id) = (ids[3], ids[1], ids[4], ids[0], ids[2]);
    let now = t0() + Duration::hours(1);

    assert!(lease(&backend, now, 0).await.is_empty());
    let first = lease(&backend, now, 3).await;
    let rest = lease(&backend, now, 10).await;

    assert_eq!(id_set(&first), BTreeSet::from([t0_id, t1_id, t2_id]));
    assert_eq!(id_set(&rest), BTreeSet::from([t3_id, t4_id]));
    for message in first.iter().chain(&rest) {
        assert_eq!(message.status, MessageStatus::Leased);
        assert_eq!(message.leased_until, Some(now + LEASE_PERIOD));
        assert_eq!(message.updated_at, now);
        assert_eq!(message.attempt_count, 0);
        assert_eq!(
            stored(&backend, message.id).await.status,
            MessageStatus::Leased
        );
    }
    assert!(lease(&backend, now, 10).await.is_empty());
}

async fn a_leased_message_is_not_leased_again_while_its_lease_runs(backend: Backend) {
    queue_at(&backend, UserId::random(), &[secs(0)]).await;
    assert_eq!(lease(&backend, t0(), 5).await.len(), 1);

    assert!(lease(&backend, t0() + secs(1), 5).await.is_empty());
    assert!(
        lease(&backend, t0() + LEASE_PERIOD, 5).await.is_empty(),
        "a lease runs until its end, inclusive"
    );
}

async fn an_expired_lease_is_taken_over_without_counting_an_attempt(backend: Backend) {
    let [id] = queue_at(&backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };
    lease(&backend, t0(), 1).await;
    let later = t0() + LEASE_PERIOD + secs(1);

    let taken_over = lease(&backend, later, 1).await;

    assert_eq!(id_set(&taken_over), BTreeSet::from([id]));
    let message = stored(&backend, id).await;
    assert_eq!(message.status, MessageStatus::Leased);
    assert_eq!(message.attempt_count, 0);
    assert_eq!(message.lease_expiries, 1);
    assert_eq!(message.leased_until, Some(later + LEASE_PERIOD));
}

/// A message whose dispatch never reports back (it crashes each replica that leases it) is
/// taken over at each expiry, counting it, until the `max_lease_expiries`th expiry fails it
/// permanently instead; that message still takes its place in the lease's count.
async fn the_nth_expired_lease_fails_the_message_permanently_instead_of_leasing_it(
    backend: Backend,
) {
    let [crashing, younger] = queue_at(&backend, UserId::random(), &[secs(0), secs(1)]).await[..]
    else {
        unreachable!()
    };
    let mut now = t0();
    assert_eq!(
        id_set(&lease(&backend, now, 1).await),
        BTreeSet::from([crashing])
    );
    for expiries in 1..sample::MAX_LEASE_EXPIRIES {
        now += LEASE_PERIOD + secs(1);
        let taken_over = lease(&backend, now, 1).await;
        assert_eq!(id_set(&taken_over), BTreeSet::from([crashing]));
        assert_eq!(taken_over[0].lease_expiries, expiries);
        assert_eq!(stored(&backend, crashing).await.lease_expiries, expiries);
    }
    now += LEASE_PERIOD + secs(1);

    let leased = lease(&backend, now, 1).await;

    assert!(leased.is_empty(), "{leased:?}");
    let given_up = stored(&backend, crashing).await;
    assert_eq!(given_up.status, MessageStatus::PermanentFailure);
    assert_eq!(given_up.lease_expiries, sample::MAX_LEASE_EXPIRIES);
    assert_eq!(given_up.attempt_count, 0);
    assert_eq!(given_up.leased_until, None);
    assert_eq!(given_up.updated_at, now);
    let reason = given_up.status_reason.unwrap_or_default();
    assert_eq!(
        reason,
        herald_domain::message::lease_expiries_reason(sample::MAX_LEASE_EXPIRIES)
    );
    assert!(
        reason.contains(&format!(
            "lease expired {} times",
            sample::MAX_LEASE_EXPIRIES
        )),
        "{reason}"
    );
    assert_eq!(
        id_set(&lease(&backend, now, 10).await),
        BTreeSet::from([younger])
    );
    let much_later = now + Duration::days(1);
    assert!(!id_set(&lease(&backend, much_later, 10).await).contains(&crashing));
}

/// Only a takeover counts: a lease after a completed dispatch was written back is no expiry.
async fn a_lease_after_a_write_back_counts_no_lease_expiry(backend: Backend) {
    let id = queue_a_temporary_failure(&backend, t0()).await;

    let leased = lease(&backend, t0() + POLICY.retry_interval, 1).await;

    assert_eq!(id_set(&leased), BTreeSet::from([id]));
    assert_eq!(leased[0].lease_expiries, 0);
    assert_eq!(stored(&backend, id).await.lease_expiries, 0);
}

async fn expired_leases_and_queued_messages_are_leased_together_oldest_first_up_to_the_count(
    backend: Backend,
) {
    let user = UserId::random();
    let now = t0() + Duration::hours(1);
    let [first, fourth] = queue_at(&backend, user, &[secs(1), secs(4)]).await[..] else {
        unreachable!()
    };
    assert_eq!(lease(&backend, now, 2).await.len(), 2);
    // Queued after that lease, but created before, between and after the leased ones.
    let [zeroth, second, third] = queue_at(&backend, user, &[secs(0), secs(2), secs(3)]).await[..]
    else {
        unreachable!()
    };
    let later = now + LEASE_PERIOD + secs(1);

    let oldest = lease(&backend, later, 3).await;
    let rest = lease(&backend, later, 10).await;

    assert_eq!(
        oldest.iter().map(|m| m.id).collect::<Vec<_>>(),
        [zeroth, first, second]
    );
    assert_eq!(id_set(&rest), BTreeSet::from([third, fourth]));
    for message in oldest.iter().chain(&rest) {
        assert_eq!(message.leased_until, Some(later + LEASE_PERIOD));
        assert_eq!(message.attempt_count, 0);
    }
}

async fn due_retries_expired_leases_and_queued_messages_are_leased_together_oldest_first(
    backend: Backend,
) {
    let user = UserId::random();
    let [retried, expired] = queue_at(&backend, user, &[secs(1), secs(4)]).await[..] else {
        unreachable!()
    };
    let leased = lease(&backend, t0(), 2).await;
    assert_eq!(
        leased.iter().map(|m| m.id).collect::<Vec<_>>(),
        [retried, expired]
    );
    let failure = completed(&leased[0], retryable("503"), t0());
    assert_eq!(backend.queue.mark_failed(&[failure]).await.unwrap(), 1);
    let [zeroth, second, third] = queue_at(&backend, user, &[secs(0), secs(2), secs(3)]).await[..]
    else {
        unreachable!()
    };
    // The retry's time has come and the other lease has run out.
    let later = t0() + POLICY.retry_interval;

    let oldest = lease(&backend, later, 3).await;
    let rest = lease(&backend, later, 10).await;

    assert_eq!(
        oldest.iter().map(|m| m.id).collect::<Vec<_>>(),
        [zeroth, retried, second]
    );
    assert_eq!(
        rest.iter().map(|m| m.id).collect::<Vec<_>>(),
        [third, expired]
    );
    assert_eq!(oldest[1].attempt_count, 1);
    assert_eq!(rest[1].attempt_count, 0);
}

async fn an_expired_lease_at_its_maximum_attempts_is_never_leased(backend: Backend) {
    let id = queue_a_temporary_failure(&backend, t0()).await;
    let retry_at = t0() + POLICY.retry_interval;
    assert_eq!(
        id_set(&lease(&backend, retry_at, 1).await),
        BTreeSet::from([id])
    );
    let expired = retry_at + LEASE_PERIOD + secs(1);

    assert!(lease_below(&backend, expired, 1).await.is_empty());
    let taken_over = lease_below(&backend, expired, 2).await;
    assert_eq!(id_set(&taken_over), BTreeSet::from([id]));
    assert_eq!(taken_over[0].attempt_count, 1);
}

async fn a_temporary_failure_is_leased_again_only_once_its_retry_time_has_come(backend: Backend) {
    let id = queue_a_temporary_failure(&backend, t0()).await;
    let retry_at = t0() + POLICY.retry_interval;
    let waiting = stored(&backend, id).await;
    assert_eq!(waiting.status, MessageStatus::TemporaryFailure);
    assert_eq!(waiting.next_retry_after, Some(retry_at));

    assert!(lease(&backend, retry_at - secs(1), 1).await.is_empty());
    let retried = lease(&backend, retry_at, 1).await;

    assert_eq!(id_set(&retried), BTreeSet::from([id]));
    assert_eq!(retried[0].attempt_count, 1);
}

async fn a_message_at_its_maximum_attempts_is_never_leased(backend: Backend) {
    let id = queue_a_temporary_failure(&backend, t0()).await;
    let much_later = t0() + Duration::days(1);

    assert!(lease_below(&backend, much_later, 1).await.is_empty());
    let leased = lease_below(&backend, much_later, 2).await;
    assert_eq!(id_set(&leased), BTreeSet::from([id]));
}

async fn sent_failed_and_inhibited_messages_are_never_leased(backend: Backend) {
    queue_at(&backend, UserId::random(), &[secs(0), secs(1), secs(2)]).await;
    let leased = lease(&backend, t0(), 3).await;
    let now = t0() + secs(10);
    let sent = completed(&leased[0], Completion::Sent, now);
    let failed = completed(&leased[1], permanent("no such mailbox"), now);
    let inhibited = completed(
        &leased[2],
        Completion::Inhibited {
            reason: "disabled by the user".to_owned(),
        },
        now,
    );
    backend.queue.mark_sent(&[sent]).await.unwrap();
    backend
        .queue
        .mark_failed(&[failed, inhibited])
        .await
        .unwrap();

    let request = LeaseRequest {
        max_attempts: 100,
        ..lease_request(t0() + Duration::days(1), 10)
    };
    assert!(backend.queue.lease(request).await.unwrap().is_empty());
}

async fn leasing_from_many_tasks_never_hands_one_message_out_twice(backend: Backend) {
    let offsets: Vec<_> = (0..200).map(secs).collect();
    let queued_ids = queue_at(&backend, UserId::random(), &offsets).await;
    let replica = backend.replica().await;
    let now = t0() + Duration::hours(1);

    let leasers: Vec<_> = [&backend, &replica, &backend, &replica]
        .into_iter()
        .map(|side| {
            let queue = side.queue.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let leased = queue.lease(lease_request(now, 7)).await.unwrap();
                    if leased.is_empty() {
                        return taken;
                    }
                    taken.extend(leased.into_iter().map(|m| m.id));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut taken = Vec::new();
    for leaser in leasers {
        taken.extend(leaser.await.unwrap());
    }

    let distinct: HashSet<_> = taken.iter().copied().collect();
    assert_eq!(distinct.len(), taken.len(), "a message was leased twice");
    assert_eq!(distinct, queued_ids.into_iter().collect::<HashSet<_>>());
}

async fn mark_sent_records_the_send_and_counts_the_attempt(backend: Backend) {
    queue_at(&backend, UserId::random(), &[secs(0), secs(1)]).await;
    let leased = lease(&backend, t0(), 2).await;
    let now = t0() + secs(30);
    let changes: Vec<_> = leased
        .iter()
        .map(|m| completed(m, Completion::Sent, now))
        .collect();

    assert_eq!(backend.queue.mark_sent(&changes).await.unwrap(), 2);

    for message in &leased {
        let message = stored(&backend, message.id).await;
        assert_eq!(message.status, MessageStatus::Sent);
        assert_eq!(message.attempt_count, 1);
        assert_eq!(
            (message.leased_until, message.next_retry_after),
            (None, None)
        );
        assert_eq!(message.updated_at, now);
    }
}

async fn mark_failed_records_each_failure_with_its_reason(backend: Backend) {
    let ids = queue_at(&backend, UserId::random(), &[secs(0), secs(1), secs(2)]).await;
    let leased = lease(&backend, t0(), 3).await;
    let by_id = |id| leased.iter().find(|m| m.id == id).unwrap();
    let now = t0() + secs(30);
    let asked_retry = now + Duration::hours(1);
    let changes = [
        completed(
            by_id(ids[0]),
            Completion::Failed {
                reason: "503 from the endpoint".to_owned(),
                retryable: true,
                retry_after: Some(asked_retry),
            },
            now,
        ),
        completed(by_id(ids[1]), permanent("no such mailbox"), now),
        completed(
            by_id(ids[2]),
            Completion::Inhibited {
                reason: "disabled by the user".to_owned(),
            },
            now,
        ),
    ];

    assert_eq!(backend.queue.mark_failed(&changes).await.unwrap(), 3);

    let mut ended = Vec::new();
    for &id in &ids {
        let message = stored(&backend, id).await;
        assert_eq!((message.leased_until, message.updated_at), (None, now));
        let reason = message.status_reason.unwrap_or_default();
        ended.push((
            message.status,
            reason,
            message.attempt_count,
            message.next_retry_after,
        ));
    }
    let reason = str::to_owned;
    assert_eq!(
        ended,
        [
            (
                MessageStatus::TemporaryFailure,
                reason("503 from the endpoint"),
                1,
                Some(asked_retry)
            ),
            (
                MessageStatus::PermanentFailure,
                reason("no such mailbox"),
                1,
                None
            ),
            (
                MessageStatus::Inhibited,
                reason("disabled by the user"),
                0,
                None
            ),
        ]
    );
}

async fn a_stale_write_back_after_a_takeover_and_send_changes_nothing(backend: Backend) {
    let [id] = queue_at(&backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };
    let first_lease = lease(&backend, t0(), 1).await.remove(0);
    let takeover_at = t0() + LEASE_PERIOD + secs(1);
    let second_lease = lease(&backend, takeover_at, 1).await.remove(0);
    let sent = completed(&second_lease, Completion::Sent, takeover_at + secs(1));
    assert_eq!(backend.queue.mark_sent(&[sent]).await.unwrap(), 1);

    let late = takeover_at + secs(5);
    let stale_failure = completed(&first_lease, retryable("timed out"), late);
    let stale_send = completed(&first_lease, Completion::Sent, late);

    assert_eq!(
        backend.queue.mark_failed(&[stale_failure]).await.unwrap(),
        0
    );
    assert_eq!(backend.queue.mark_sent(&[stale_send]).await.unwrap(), 0);
    let message = stored(&backend, id).await;
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.attempt_count, 1);
    assert_eq!(message.updated_at, takeover_at + secs(1));
}

async fn a_stale_write_back_while_the_new_holder_still_dispatches_changes_nothing(
    backend: Backend,
) {
    let [id] = queue_at(&backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };
    let first_lease = lease(&backend, t0(), 1).await.remove(0);
    let takeover_at = t0() + LEASE_PERIOD + secs(1);
    let second_lease = lease(&backend, takeover_at, 1).await.remove(0);

    let late = takeover_at + secs(5);
    let stale = completed(&first_lease, retryable("timed out"), late);
    assert_eq!(backend.queue.mark_failed(&[stale]).await.unwrap(), 0);
    let message = stored(&backend, id).await;
    assert_eq!(message.status, MessageStatus::Leased);
    assert_eq!(message.attempt_count, 0);

    let current = completed(&second_lease, Completion::Sent, late);
    assert_eq!(backend.queue.mark_sent(&[current]).await.unwrap(), 1);
    assert_eq!(stored(&backend, id).await.status, MessageStatus::Sent);
}

async fn a_lease_leaves_the_methods_it_skips_queued(backend: Backend) {
    let recipient = UserId::random();
    let batch: Vec<NewMessage> = [Method::Smtp, Method::Webhook, Method::Smtp, Method::Inbox]
        .into_iter()
        .enumerate()
        .map(|(i, method)| NewMessage {
            method,
            ..sample::new_message(recipient, t0() + secs(i as i64))
        })
        .collect();
    enqueue(&backend, &batch).await;

    let request = LeaseRequest {
        skip: SkipMethods::NONE.with(Method::Smtp),
        ..lease_request(t0(), 10)
    };
    let leased = backend.queue.lease(request).await.unwrap();
    assert_eq!(id_set(&leased), BTreeSet::from([batch[1].id, batch[3].id]));
    for email in [&batch[0], &batch[2]] {
        assert_eq!(
            stored(&backend, email.id).await.status,
            MessageStatus::Pending
        );
    }
    let rest = lease(&backend, t0(), 10).await;
    assert_eq!(id_set(&rest), BTreeSet::from([batch[0].id, batch[2].id]));
}

fn held(message: &Message) -> HeldLease {
    HeldLease {
        id: message.id,
        lease: message.leased_until.expect("a leased copy"),
    }
}

async fn extending_moves_only_the_leases_still_held(backend: Backend) {
    let [first, second, third] =
        queue_at(&backend, UserId::random(), &[secs(0), secs(1), secs(2)]).await[..]
    else {
        unreachable!()
    };
    let leased = lease(&backend, t0(), 3).await;
    let sent = completed(&leased[1], Completion::Sent, t0() + secs(1));
    assert_eq!(backend.queue.mark_sent(&[sent]).await.unwrap(), 1);
    // The first lease expires and another notifier takes the oldest message over.
    let takeover_at = t0() + LEASE_PERIOD + secs(1);
    let taken = lease(&backend, takeover_at, 1).await.remove(0);
    assert_eq!(taken.id, first);

    let until = takeover_at + LEASE_PERIOD;
    let held_leases: Vec<HeldLease> = leased.iter().map(held).collect();
    let extended = backend
        .queue
        .extend_leases(&held_leases, until)
        .await
        .unwrap();
    assert_eq!(
        extended,
        vec![third],
        "only the lease still held, expired or not"
    );
    assert_eq!(stored(&backend, third).await.leased_until, Some(until));
    assert_eq!(
        stored(&backend, first).await.leased_until,
        taken.leased_until
    );
    assert_eq!(stored(&backend, second).await.status, MessageStatus::Sent);
    assert!(
        lease(&backend, takeover_at + secs(1), 3).await.is_empty(),
        "the extended lease runs on"
    );

    // The result of the extended lease is written back; one of the old lease is stale.
    let stale = completed(&leased[2], Completion::Sent, until);
    assert_eq!(backend.queue.mark_sent(&[stale]).await.unwrap(), 0);
    let mut extended_copy = leased[2].clone();
    extended_copy.leased_until = Some(until);
    let current = completed(&extended_copy, Completion::Sent, until);
    assert_eq!(backend.queue.mark_sent(&[current]).await.unwrap(), 1);
    assert_eq!(stored(&backend, third).await.status, MessageStatus::Sent);
}

async fn a_lease_given_back_is_leasable_at_once_with_its_attempts_unchanged(backend: Backend) {
    let retry = queue_a_temporary_failure(&backend, t0()).await;
    let due = t0() + POLICY.retry_interval;
    let [fresh] = queue_at(&backend, UserId::random(), &[secs(1)]).await[..] else {
        unreachable!()
    };
    let leased = lease(&backend, due, 10).await;
    assert_eq!(id_set(&leased), BTreeSet::from([retry, fresh]));

    let held_leases: Vec<HeldLease> = leased.iter().map(held).collect();
    assert_eq!(backend.queue.give_back(&held_leases).await.unwrap(), 2);
    let given_retry = stored(&backend, retry).await;
    assert_eq!(given_retry.status, MessageStatus::TemporaryFailure);
    assert_eq!(given_retry.attempt_count, 1);
    assert_eq!(given_retry.leased_until, None);
    let given_fresh = stored(&backend, fresh).await;
    assert_eq!(given_fresh.status, MessageStatus::Pending);
    assert_eq!(given_fresh.attempt_count, 0);
    for given in [&given_retry, &given_fresh] {
        assert_eq!(
            given.status_reason.as_deref(),
            Some(herald_domain::message::GIVEN_BACK_REASON),
            "no longer leased by a notifier"
        );
    }

    assert_eq!(
        backend.queue.give_back(&held_leases).await.unwrap(),
        0,
        "a lease no longer held is not given back twice"
    );
    let again = lease(&backend, due + secs(1), 10).await;
    assert_eq!(
        id_set(&again),
        BTreeSet::from([retry, fresh]),
        "leasable at once"
    );
    let stale: Vec<HeldLease> = leased.iter().map(held).collect();
    assert_eq!(
        backend.queue.give_back(&stale).await.unwrap(),
        0,
        "the old lease is not the one held"
    );
    assert_eq!(stored(&backend, fresh).await.status, MessageStatus::Leased);
}

async fn leases_given_back_behind_a_later_lease_are_leased_first(backend: Backend) {
    let ids = queue_at(
        &backend,
        UserId::random(),
        &[secs(0), secs(1), secs(2), secs(3), secs(4)],
    )
    .await;
    let now = t0() + Duration::minutes(1);
    let first = lease(&backend, now, 2).await;
    let second = lease(&backend, now, 2).await;
    assert_eq!(id_set(&second), BTreeSet::from([ids[2], ids[3]]));

    let held_leases: Vec<HeldLease> = first.iter().map(held).collect();
    assert_eq!(backend.queue.give_back(&held_leases).await.unwrap(), 2);
    let again = lease(&backend, now, 2).await;

    assert_eq!(id_set(&again), BTreeSet::from([ids[0], ids[1]]));
}

async fn write_back_skips_unknown_messages_and_messages_never_leased(backend: Backend) {
    let [id] = queue_at(&backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };
    let change = |id| StatusChange {
        id,
        lease: None,
        status: MessageStatus::Sent,
        status_reason: None,
        attempt_count: 1,
        next_retry_after: None,
        at: t0() + secs(5),
    };

    assert_eq!(backend.queue.mark_sent(&[change(id)]).await.unwrap(), 0);
    assert_eq!(
        backend
            .queue
            .mark_failed(&[change(MessageId::random())])
            .await
            .unwrap(),
        0
    );
    assert_eq!(stored(&backend, id).await.status, MessageStatus::Pending);
}

async fn inhibiting_a_recipient_stops_its_unfinished_messages_but_not_sent_ones(backend: Backend) {
    let (gone, other) = (UserId::random(), UserId::random());
    let ids = queue_at(&backend, gone, &[secs(0), secs(1), secs(2), secs(3)]).await;
    let [others] = queue_at(&backend, other, &[secs(4)]).await[..] else {
        unreachable!()
    };
    let leased = lease(&backend, t0() + secs(10), 3).await;
    let by_id = |id| leased.iter().find(|m| m.id == id).unwrap();
    let done_at = t0() + secs(20);
    let retrying = completed(by_id(ids[1]), retryable("connection refused"), done_at);
    let sent = completed(by_id(ids[2]), Completion::Sent, done_at);
    backend.queue.mark_failed(&[retrying]).await.unwrap();
    backend.queue.mark_sent(&[sent]).await.unwrap();
    let now = t0() + Duration::minutes(1);

    let inhibited = backend
        .queue
        .inhibit_recipient(gone, "user deleted", now)
        .await
        .unwrap();

    assert_eq!(inhibited, 3, "leased, retrying and pending");
    for id in [ids[0], ids[1], ids[3]] {
        let message = stored(&backend, id).await;
        assert_eq!(message.status, MessageStatus::Inhibited);
        assert_eq!(message.status_reason.as_deref(), Some("user deleted"));
        assert_eq!(message.updated_at, now);
    }
    assert_eq!(stored(&backend, ids[2]).await.status, MessageStatus::Sent);
    assert_eq!(
        stored(&backend, others).await.status,
        MessageStatus::Pending
    );
    let leasable = lease(&backend, t0() + Duration::days(1), 10).await;
    assert_eq!(id_set(&leasable), BTreeSet::from([others]));
}

async fn purge_deletes_only_messages_not_updated_since_the_cutoff(backend: Backend) {
    let user = UserId::random();
    let cutoff = t0() + Duration::days(1);
    let [touched, stale, at_cutoff] =
        queue_at(&backend, user, &[secs(-1), secs(0), Duration::days(1)]).await[..]
    else {
        unreachable!()
    };
    let leased = lease(&backend, t0() + Duration::days(2), 1).await;
    assert_eq!(id_set(&leased), BTreeSet::from([touched]));

    assert_eq!(
        backend.queue.purge(cutoff).await.unwrap(),
        PurgeOutcome::Purged(1)
    );

    assert_eq!(backend.queue.get(stale).await.unwrap(), None);
    assert_eq!(
        stored(&backend, touched).await.status,
        MessageStatus::Leased
    );
    assert_eq!(
        stored(&backend, at_cutoff).await.status,
        MessageStatus::Pending
    );
}

async fn purge_is_skipped_while_another_replica_holds_the_purge_lock(backend: Backend) {
    let [id] = queue_at(&backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };
    let cutoff = t0() + Duration::days(8);
    let held = backend.hold_purge_lock().await;

    assert_eq!(
        backend.queue.purge(cutoff).await.unwrap(),
        PurgeOutcome::Skipped
    );
    assert!(backend.queue.get(id).await.unwrap().is_some());

    held.release().await;
    assert_eq!(
        backend.queue.purge(cutoff).await.unwrap(),
        PurgeOutcome::Purged(1)
    );
    assert_eq!(backend.queue.get(id).await.unwrap(), None);
}

/// More expired messages than PostgreSQL's purge deletes in one chunk, most of them last
/// updated at the very same instant, so chunks end in the middle of a run of equal times.
fn more_than_one_chunk() -> usize {
    usize::try_from(PURGE_CHUNK_ROWS).unwrap() * 2 + 7
}

async fn a_purge_larger_than_one_chunk_deletes_every_expired_message_and_frees_its_hash(
    backend: Backend,
) {
    let expired: Vec<NewMessage> = (0..more_than_one_chunk())
        .map(|n| {
            let at = if n % 10 == 0 {
                t0() - secs(i64::try_from(n).unwrap())
            } else {
                t0()
            };
            hashed(&sample::dedupe_hash(), at)
        })
        .collect();
    let young: Vec<NewMessage> = (0..3)
        .map(|n| hashed(&sample::dedupe_hash(), t0() + secs(1 + n)))
        .collect();
    enqueue(&backend, &expired).await;
    enqueue(&backend, &young).await;

    let purged = backend.queue.purge(t0() + secs(1)).await.unwrap();

    assert_eq!(purged, PurgeOutcome::Purged(expired.len() as u64));
    for message in &expired {
        assert_eq!(backend.queue.get(message.id).await.unwrap(), None);
    }
    for message in &young {
        assert_eq!(
            stored(&backend, message.id).await.status,
            MessageStatus::Pending
        );
    }
    let again: Vec<NewMessage> = expired
        .iter()
        .chain(&young)
        .map(|m| hashed(m.dedupe_hash.as_ref().unwrap(), t0() + Duration::days(1)))
        .collect();
    let outcomes = enqueue(&backend, &again).await;
    let (freed, kept) = outcomes.split_at(expired.len());
    assert!(
        freed.iter().all(|o| matches!(o, EnqueueOutcome::Queued(_))),
        "a purged message's hash stayed claimed"
    );
    assert_eq!(
        kept,
        [
            EnqueueOutcome::Duplicate,
            EnqueueOutcome::Duplicate,
            EnqueueOutcome::Duplicate
        ],
        "a young message lost its hash"
    );
}

async fn the_purge_lock_is_released_after_a_purge(backend: Backend) {
    let expired: Vec<NewMessage> = (0..more_than_one_chunk())
        .map(|_| sample::new_message(UserId::random(), t0()))
        .collect();
    enqueue(&backend, &expired).await;
    let cutoff = t0() + Duration::days(8);
    assert_eq!(
        backend.queue.purge(cutoff).await.unwrap(),
        PurgeOutcome::Purged(expired.len() as u64)
    );
    let [late] = queue_at(&backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };

    let other = backend.replica().await;

    assert_eq!(
        other.queue.purge(cutoff).await.unwrap(),
        PurgeOutcome::Purged(1),
        "the next purge, on another replica, ran"
    );
    assert_eq!(backend.queue.get(late).await.unwrap(), None);
    backend.hold_purge_lock().await.release().await;
}

async fn list_shows_messages_newest_first_up_to_the_limit(backend: Backend) {
    let ids = queue_at(
        &backend,
        UserId::random(),
        &[secs(2), secs(4), secs(0), secs(3), secs(1)],
    )
    .await;
    let filter = MessageFilter {
        limit: 3,
        ..MessageFilter::default()
    };

    let listed = backend.queue.list(&filter).await.unwrap();

    let listed: Vec<_> = listed.iter().map(|m| m.id).collect();
    assert_eq!(listed, [ids[1], ids[3], ids[0]]);
}

async fn list_keeps_only_messages_matching_status_recipient_and_template(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let ann_deleted = sample::new_message(ann, t0());
    let ann_dormant = NewMessage {
        template_id: catalogue::WORKSPACE_MARKED_DORMANT,
        ..sample::new_message(ann, t0() + secs(1))
    };
    let bob_deleted = sample::new_message(bob, t0() - secs(1));
    backend
        .queue
        .enqueue(&[
            ann_deleted.clone(),
            ann_dormant.clone(),
            bob_deleted.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(
        id_set(&lease(&backend, t0(), 1).await),
        BTreeSet::from([bob_deleted.id])
    );
    let list = |filter: MessageFilter| {
        let queue = backend.queue.clone();
        async move {
            let filter = MessageFilter {
                limit: 50,
                ..filter
            };
            let listed = queue.list(&filter).await.unwrap();
            listed.iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };

    let by_recipient = list(MessageFilter {
        recipient: Some(ann),
        ..MessageFilter::default()
    });
    assert_eq!(by_recipient.await, [ann_dormant.id, ann_deleted.id]);
    let by_template = list(MessageFilter {
        template_id: Some(catalogue::WORKSPACE_DELETED),
        ..MessageFilter::default()
    });
    assert_eq!(by_template.await, [ann_deleted.id, bob_deleted.id]);
    let by_status = list(MessageFilter {
        status: Some(MessageStatus::Leased),
        ..MessageFilter::default()
    });
    assert_eq!(by_status.await, [bob_deleted.id]);
    let by_all = list(MessageFilter {
        status: Some(MessageStatus::Pending),
        recipient: Some(ann),
        template_id: Some(catalogue::WORKSPACE_DELETED),
        limit: 0,
    });
    assert_eq!(by_all.await, [ann_deleted.id]);
}

async fn a_leased_message_says_which_notifier_holds_it(backend: Backend) {
    let [id] = queue_at(&backend, UserId::random(), &[secs(0)]).await[..] else {
        unreachable!()
    };
    let request = LeaseRequest {
        notifier: "replica-a".into(),
        ..lease_request(t0(), 10)
    };
    let leased = backend.queue.lease(request).await.unwrap();
    assert_eq!(
        leased[0].status_reason.as_deref(),
        Some("leased by notifier replica-a")
    );
    let listed = stored(&backend, id).await;
    assert_eq!(listed.status, MessageStatus::Leased);
    assert_eq!(
        listed.status_reason.as_deref(),
        Some("leased by notifier replica-a")
    );

    // Taken over after the lease expired: the new holder's name.
    let request = LeaseRequest {
        notifier: "replica-b".into(),
        ..lease_request(t0() + LEASE_PERIOD + secs(1), 10)
    };
    backend.queue.lease(request).await.unwrap();
    assert_eq!(
        stored(&backend, id).await.status_reason.as_deref(),
        Some("leased by notifier replica-b")
    );
}

/// An enqueue in parts is one batch: nothing visible before its commit, a hash stored by an
/// earlier part makes a later row a duplicate, and the outcomes come in the order added.
async fn an_enqueue_in_parts_stores_every_part_at_its_commit(backend: Backend) {
    let hash = sample::dedupe_hash();
    let first = [
        hashed(&hash, t0()),
        sample::new_message(UserId::random(), t0()),
    ];
    let second = [
        hashed(&hash, t0()),
        sample::new_message(UserId::random(), t0()),
    ];
    let mut transaction = backend.queue.begin_enqueue().await.unwrap();
    transaction.add(first.to_vec()).await.unwrap();
    transaction.add(second.to_vec()).await.unwrap();
    assert_eq!(backend.queue.get(first[0].id).await.unwrap(), None);

    let outcomes = transaction.commit().await.unwrap();

    assert_eq!(
        outcomes,
        [
            queued(first[0].id),
            queued(first[1].id),
            EnqueueOutcome::Duplicate,
            queued(second[1].id),
        ]
    );
    for id in [first[0].id, first[1].id, second[1].id] {
        assert_eq!(stored(&backend, id).await.status, MessageStatus::Pending);
    }
    assert_eq!(backend.queue.get(second[0].id).await.unwrap(), None);
}

/// An enqueue in parts dropped before its commit stores none of its parts, nor their hashes.
async fn an_enqueue_in_parts_dropped_before_its_commit_stores_nothing(backend: Backend) {
    let hash = sample::dedupe_hash();
    let parts = [
        vec![hashed(&hash, t0())],
        vec![
            sample::new_message(UserId::random(), t0()),
            sample::new_message(UserId::random(), t0()),
        ],
    ];
    let mut transaction = backend.queue.begin_enqueue().await.unwrap();
    for part in &parts {
        transaction.add(part.clone()).await.unwrap();
    }
    drop(transaction);

    for message in parts.iter().flatten() {
        assert_eq!(backend.queue.get(message.id).await.unwrap(), None);
    }
    let again = hashed(&hash, t0());
    assert_eq!(
        enqueue(&backend, std::slice::from_ref(&again)).await,
        [queued(again.id)]
    );
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    enqueue_reports_one_outcome_per_message_in_input_order,
    an_enqueue_in_parts_stores_every_part_at_its_commit,
    an_enqueue_in_parts_dropped_before_its_commit_stores_nothing,
    a_queued_message_is_stored_pending_and_never_attempted,
    a_repeated_hash_in_one_batch_is_a_duplicate,
    an_enqueue_wakes_the_notifiers_exactly_when_the_queue_says_it_does,
    a_hash_already_stored_is_a_duplicate_in_a_later_batch,
    a_batch_stores_its_new_messages_around_a_hash_already_stored,
    messages_without_a_hash_are_never_duplicates,
    a_purged_message_frees_its_dedupe_hash,
    a_purge_frees_only_the_hashes_of_the_messages_it_deleted,
    a_batch_with_a_message_id_already_queued_stores_none_of_its_rows,
    an_unavailable_queue_refuses_everything_and_changes_nothing,
    lease_takes_the_oldest_leasable_messages_up_to_the_count,
    a_leased_message_is_not_leased_again_while_its_lease_runs,
    a_leased_message_says_which_notifier_holds_it,
    an_expired_lease_is_taken_over_without_counting_an_attempt,
    the_nth_expired_lease_fails_the_message_permanently_instead_of_leasing_it,
    a_lease_after_a_write_back_counts_no_lease_expiry,
    expired_leases_and_queued_messages_are_leased_together_oldest_first_up_to_the_count,
    due_retries_expired_leases_and_queued_messages_are_leased_together_oldest_first,
    an_expired_lease_at_its_maximum_attempts_is_never_leased,
    a_temporary_failure_is_leased_again_only_once_its_retry_time_has_come,
    a_message_at_its_maximum_attempts_is_never_leased,
    sent_failed_and_inhibited_messages_are_never_leased,
    leasing_from_many_tasks_never_hands_one_message_out_twice,
    mark_sent_records_the_send_and_counts_the_attempt,
    mark_failed_records_each_failure_with_its_reason,
    a_stale_write_back_after_a_takeover_and_send_changes_nothing,
    a_stale_write_back_while_the_new_holder_still_dispatches_changes_nothing,
    write_back_skips_unknown_messages_and_messages_never_leased,
    a_lease_leaves_the_methods_it_skips_queued,
    extending_moves_only_the_leases_still_held,
    a_lease_given_back_is_leasable_at_once_with_its_attempts_unchanged,
    leases_given_back_behind_a_later_lease_are_leased_first,
    inhibiting_a_recipient_stops_its_unfinished_messages_but_not_sent_ones,
    purge_deletes_only_messages_not_updated_since_the_cutoff,
    purge_is_skipped_while_another_replica_holds_the_purge_lock,
    a_purge_larger_than_one_chunk_deletes_every_expired_message_and_frees_its_hash,
    the_purge_lock_is_released_after_a_purge,
    list_shows_messages_newest_first_up_to_the_limit,
    list_keeps_only_messages_matching_status_recipient_and_template,
}
