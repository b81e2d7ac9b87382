//! The throttle half of the `MessageQueue` contract (`lease_throttled`): pending messages are
//! counted per recipient and method in the window; past the limit the newest wait, pending
//! until the window's end with the throttle's reason; retries and expired leases are neither
//! counted nor held; concurrent leases never take more places than the window has.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{NewMessage, ThrottleWindow, ThrottledLease};
use herald_domain::message::StatusChange;
use herald_domain::{MessageId, MessageStatus, Method, UserId};
use herald_tests::fixture::Backend;
use herald_tests::sample::{self, lease_request, t0};

const REASON: &str = "throttled: 2 per 1h for this recipient and method";

/// The hour from `t0()`, at most `limit` per recipient and method.
fn window(limit: u32, start: DateTime<Utc>) -> ThrottleWindow {
    ThrottleWindow {
        limit,
        start,
        end: start + Duration::hours(1),
        reason: REASON.to_owned(),
    }
}

/// `count` messages to `recipient` by `method`, one a second from `t0()`, oldest first.
async fn queue(backend: &Backend, recipient: UserId, method: Method, count: i64) -> Vec<MessageId> {
    let batch: Vec<NewMessage> = (0..count)
        .map(|i| NewMessage {
            method,
            ..sample::new_message(recipient, t0() + Duration::seconds(i))
        })
        .collect();
    backend.queue.enqueue(&batch).await.unwrap();
    batch.into_iter().map(|m| m.id).collect()
}

async fn lease(
    backend: &Backend,
    now: DateTime<Utc>,
    count: usize,
    throttle: &ThrottleWindow,
) -> ThrottledLease {
    backend
        .queue
        .lease_throttled(lease_request(now, count), throttle)
        .await
        .unwrap()
}

fn ids(lease: &ThrottledLease) -> Vec<MessageId> {
    lease.leased.iter().map(|m| m.id).collect()
}

async fn a_throttled_lease_takes_the_oldest_up_to_the_limit_and_holds_back_the_rest(
    backend: Backend,
) {
    let recipient = UserId::random();
    let queued = queue(&backend, recipient, Method::Smtp, 5).await;
    let first = window(2, t0());
    let now = t0() + Duration::minutes(1);

    let taken = lease(&backend, now, 10, &first).await;

    assert_eq!(ids(&taken), queued[..2]);
    assert_eq!(taken.held_back, 3);
    for id in &queued[2..] {
        let held = backend.queue.get(*id).await.unwrap().unwrap();
        assert_eq!(held.status, MessageStatus::Pending);
        assert_eq!(held.next_retry_after, Some(first.end), "when it may go");
        assert_eq!(held.status_reason.as_deref(), Some(REASON));
        assert_eq!(held.attempt_count, 0);
    }
    let sent: Vec<StatusChange> = taken
        .leased
        .iter()
        .map(|m| StatusChange {
            id: m.id,
            lease: m.leased_until,
            status: MessageStatus::Sent,
            status_reason: None,
            attempt_count: 1,
            next_retry_after: None,
            at: now,
        })
        .collect();
    assert_eq!(backend.queue.mark_sent(&sent).await.unwrap(), 2);
    // Nothing more within the window: the held ones wait for its end.
    let again = lease(&backend, first.end - Duration::seconds(1), 10, &first).await;
    assert_eq!((again.leased.len(), again.held_back), (0, 0));

    // The next window: the oldest of those waiting go first.
    let second = window(2, first.end);
    let next = lease(&backend, second.start, 10, &second).await;
    assert_eq!(ids(&next), queued[2..4]);
    assert_eq!(next.held_back, 1);
    let last = backend.queue.get(queued[4]).await.unwrap().unwrap();
    assert_eq!(last.next_retry_after, Some(second.end));
}

async fn recipients_and_methods_are_counted_apart(backend: Backend) {
    let (alice, bob) = (UserId::random(), UserId::random());
    let alice_mail = queue(&backend, alice, Method::Smtp, 2).await;
    let alice_hooks = queue(&backend, alice, Method::Webhook, 2).await;
    let bob_mail = queue(&backend, bob, Method::Smtp, 2).await;

    let taken = lease(&backend, t0() + Duration::minutes(1), 10, &window(1, t0())).await;

    let leased: HashSet<MessageId> = ids(&taken).into_iter().collect();
    assert_eq!(
        leased,
        HashSet::from([alice_mail[0], alice_hooks[0], bob_mail[0]])
    );
    assert_eq!(taken.held_back, 3);
}

async fn the_window_counts_across_leases_and_held_back_messages_count_toward_the_lease(
    backend: Backend,
) {
    let recipient = UserId::random();
    let throttle = window(3, t0());
    let now = t0() + Duration::minutes(1);
    let early = queue(&backend, recipient, Method::Smtp, 2).await;
    assert_eq!(ids(&lease(&backend, now, 10, &throttle).await), early);

    let late: Vec<NewMessage> = (0..4)
        .map(|i| sample::new_message(recipient, t0() + Duration::seconds(10 + i)))
        .collect();
    backend.queue.enqueue(&late).await.unwrap();
    let taken = lease(&backend, now, 3, &throttle).await;

    assert_eq!(ids(&taken), [late[0].id], "one place was left");
    assert_eq!(taken.held_back, 2, "a lease of 3 looked at 3");
    let untouched = backend.queue.get(late[3].id).await.unwrap().unwrap();
    assert_eq!(untouched.next_retry_after, None, "beyond the lease's count");
}

async fn retries_and_expired_leases_are_neither_counted_nor_held(backend: Backend) {
    let recipient = UserId::random();
    let queued = queue(&backend, recipient, Method::Smtp, 2).await;
    let throttle = window(1, t0());
    let now = t0() + Duration::minutes(1);
    let first = lease(&backend, now, 1, &throttle).await;
    assert_eq!(ids(&first), queued[..1]);

    // Its lease expires: taken over, though the window is full.
    let later = now + sample::LEASE_PERIOD + Duration::seconds(1);
    let taken = lease(&backend, later, 1, &throttle).await;
    assert_eq!(ids(&taken), queued[..1]);
    assert_eq!(taken.held_back, 0);

    // A temporary failure is retried, though the window is full.
    let message = &taken.leased[0];
    let change = StatusChange {
        id: message.id,
        lease: message.leased_until,
        status: MessageStatus::TemporaryFailure,
        status_reason: Some("receiver down".to_owned()),
        attempt_count: 1,
        next_retry_after: Some(later + Duration::seconds(1)),
        at: later,
    };
    assert_eq!(backend.queue.mark_failed(&[change]).await.unwrap(), 1);
    let retry = lease(&backend, later + Duration::seconds(2), 1, &throttle).await;
    assert_eq!(ids(&retry), queued[..1]);
    assert_eq!(retry.held_back, 0);
}

async fn concurrent_throttled_leases_never_take_more_places_than_the_window_has(backend: Backend) {
    let recipient = UserId::random();
    queue(&backend, recipient, Method::Smtp, 40).await;
    let throttle = window(5, t0());
    let now = t0() + Duration::minutes(1);

    let leases: Vec<_> = (0..4)
        .map(|_| {
            let queue = backend.queue.clone();
            let throttle = throttle.clone();
            tokio::spawn(async move {
                queue
                    .lease_throttled(lease_request(now, 10), &throttle)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut leased = 0;
    for lease in leases {
        leased += lease.await.unwrap().leased.len();
    }

    assert_eq!(leased, 5);
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_throttled_lease_takes_the_oldest_up_to_the_limit_and_holds_back_the_rest,
    recipients_and_methods_are_counted_apart,
    the_window_counts_across_leases_and_held_back_messages_count_toward_the_lease,
    retries_and_expired_leases_are_neither_counted_nor_held,
    concurrent_throttled_leases_never_take_more_places_than_the_window_has,
}
