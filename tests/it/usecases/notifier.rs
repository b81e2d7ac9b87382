//! DESIGN §5: the notifier's state transitions, leases, pause, backpressure, wake-up, stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Age;
use herald_application::notifier::REASON_RECIPIENT_DELETED;
use herald_application::ports::{DeliveryError, Dispatcher, LeaseRequest, MessageQueue};
use herald_application::{Cycle, Event, NotifierConfig};
use herald_domain::catalogue::{TEMPLATE_DELETED, WORKSPACE_DELETED};
use herald_domain::{MessageId, MessageStatus, Method, Role, UserId};

use super::support::{
    GatedQueue, Harness, ScriptedDispatcher, every_method, quiet_config, until_idle,
};

/// Queues one Workspace Deleted event per subject: a webhook and an inbox message each.
pub(super) async fn enqueue_for(h: &Harness, subject: UserId, name: &str) -> Vec<MessageId> {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(subject);
    event.labels.insert("name".into(), name.into());
    h.events.enqueue(event).await.unwrap().message_ids
}

/// A webhook-only deployment, so every event makes exactly one message.
pub(super) fn webhook_only() -> Harness {
    Harness::webhook_only()
}

pub(super) async fn one_message(h: &Harness) -> (UserId, MessageId) {
    let user = h.user("u", &[]).await;
    let ids = enqueue_for(h, user.id, "ws").await;
    assert_eq!(ids.len(), 1);
    (user.id, ids[0])
}

pub(super) fn as_dispatchers(d: &Arc<ScriptedDispatcher>) -> Vec<Arc<dyn Dispatcher>> {
    vec![d.clone()]
}

#[tokio::test]
async fn a_successful_dispatch_ends_sent_with_the_rendered_message() {
    let h = webhook_only();
    let (user, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    assert_eq!(notifier.buffered(), 1);
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.failed, flushed.dropped), (1, 0, 0));

    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.attempt_count, 1);
    assert_eq!(message.leased_until, None);
    let delivery = &webhook.delivered()[0];
    assert_eq!(delivery.message_id, id);
    assert_eq!(delivery.recipient, user);
    assert_eq!(delivery.rendered.title, "Workspace \"ws\" deleted");
    assert!(
        delivery
            .rendered
            .body
            .starts_with("Hi u,\n\nYour workspace ws has been deleted."),
        "{:?}",
        delivery.rendered.body
    );
}

#[tokio::test]
async fn a_retryable_failure_waits_the_retry_interval_then_is_retried() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::scripted(
        Method::Webhook,
        [Err(DeliveryError::retryable("503 from receiver"))],
    );
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    notifier.run_cycle().await.unwrap();
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::TemporaryFailure);
    assert_eq!(message.status_reason.as_deref(), Some("503 from receiver"));
    assert_eq!(message.attempt_count, 1);
    assert_eq!(
        message.next_retry_after,
        Some(h.clock_now() + Age::seconds(60))
    );

    h.clock.advance(Age::seconds(59));
    assert_eq!(
        notifier.run_cycle().await.unwrap(),
        Cycle::Dispatched(0),
        "not before the retry time"
    );
    h.clock.advance(Age::seconds(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.attempt_count, 2);
    assert_eq!(message.status_reason, None);
}

#[tokio::test]
async fn the_max_th_attempt_ends_permanent_failure() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let failing = (0..5).map(|i| Err(DeliveryError::retryable(format!("timeout {i}"))));
    let webhook = ScriptedDispatcher::scripted(Method::Webhook, failing);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    for attempt in 1..=3 {
        assert_eq!(
            notifier.run_cycle().await.unwrap(),
            Cycle::Dispatched(1),
            "attempt {attempt}"
        );
        notifier.flush().await;
        h.clock.advance(Age::minutes(2));
    }
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::PermanentFailure);
    assert_eq!(message.attempt_count, 3);
    assert!(message.status_reason.unwrap().contains("timeout 2"));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));
    assert_eq!(webhook.delivered().len(), 3);
}

#[tokio::test]
async fn a_permanent_error_ends_permanent_failure_at_once() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::scripted(
        Method::Webhook,
        [Err(DeliveryError::permanent("404 from receiver"))],
    );
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::PermanentFailure);
    assert_eq!(message.attempt_count, 1);
    assert_eq!(message.status_reason.as_deref(), Some("404 from receiver"));
}

#[tokio::test]
async fn the_retry_time_a_receiver_asks_for_is_honoured() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let later = h.clock_now() + Age::hours(1);
    let webhook = ScriptedDispatcher::scripted(
        Method::Webhook,
        [Err(DeliveryError {
            reason: "429".into(),
            retryable: true,
            retry_after: Some(later),
        })],
    );
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;
    assert_eq!(h.message(id).await.next_retry_after, Some(later));

    h.clock.advance(Age::minutes(59));
    assert_eq!(
        notifier.run_cycle().await.unwrap(),
        Cycle::Dispatched(0),
        "held back beyond the retry interval, until the time asked for"
    );
    h.clock.advance(Age::minutes(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    assert_eq!(webhook.delivered_ids(), [id, id]);
}

#[tokio::test]
async fn disabling_after_enqueue_ends_the_message_inhibited_with_the_reason() {
    let h = Harness::new();
    let admin = h.user("admin", &[Role::TemplateAdmin]).await;
    let mut event = Event::new(TEMPLATE_DELETED);
    event.labels.insert("name".into(), "t".into());
    let ids = h.events.enqueue(event).await.unwrap().message_ids;
    assert_eq!(ids.len(), 2);
    h.preferences
        .update(
            admin.id,
            every_method(BTreeMap::from([(TEMPLATE_DELETED, true)])),
        )
        .await
        .unwrap();

    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let inbox = ScriptedDispatcher::ok(Method::Inbox);
    let mut notifier = h.notifier(quiet_config(), vec![webhook.clone(), inbox.clone()]);
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;

    for id in ids {
        let message = h.message(id).await;
        assert_eq!(message.status, MessageStatus::Inhibited);
        assert_eq!(
            message.status_reason.as_deref(),
            Some("disabled by user"),
            "the reference's words"
        );
        assert_eq!(message.attempt_count, 0);
    }
    assert!(webhook.delivered().is_empty() && inbox.delivered().is_empty());
}

#[tokio::test]
async fn deleting_a_user_inhibits_their_queued_messages() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let other = h.user("other", &[]).await;
    let ids = enqueue_for(&h, user.id, "ws").await;
    let others = enqueue_for(&h, other.id, "ws").await;

    assert_eq!(h.users.delete(user.id).await.unwrap(), 2);
    for id in ids {
        let message = h.message(id).await;
        assert_eq!(message.status, MessageStatus::Inhibited);
        assert_eq!(
            message.status_reason.as_deref(),
            Some(REASON_RECIPIENT_DELETED)
        );
    }
    for id in others {
        assert_eq!(h.message(id).await.status, MessageStatus::Pending);
    }
}

#[tokio::test]
async fn a_recipient_deleted_while_leased_is_inhibited_at_dispatch() {
    let h = webhook_only();
    let (user, id) = one_message(&h).await;
    // Deleted behind the use case's back (an embedded host's directory does this).
    herald_application::ports::UserRegistry::delete(&h.store, user)
        .await
        .unwrap();
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Inhibited);
    assert_eq!(
        message.status_reason.as_deref(),
        Some(REASON_RECIPIENT_DELETED)
    );
    assert!(webhook.delivered().is_empty());
}

#[tokio::test]
async fn a_method_without_a_dispatcher_fails_permanently_saying_so() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let mut notifier = h.notifier(quiet_config(), vec![ScriptedDispatcher::ok(Method::Smtp)]);
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::PermanentFailure);
    assert!(
        message
            .status_reason
            .unwrap()
            .contains("webhook is not configured")
    );
}

#[tokio::test]
async fn an_expired_lease_is_leased_again_by_another_notifier_without_counting_an_attempt() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;

    // Notifier A leases and dies before writing anything back.
    let leased = h
        .store
        .lease(LeaseRequest {
            notifier: "tests".into(),
            now: h.clock_now(),
            lease_period: Age::minutes(2),
            count: 10,
            max_attempts: 3,
            max_lease_expiries: 3,
            skip: herald_application::ports::SkipMethods::NONE,
        })
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);

    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut b = h.notifier(quiet_config(), as_dispatchers(&webhook));
    h.clock.advance(Age::minutes(1));
    assert_eq!(
        b.run_cycle().await.unwrap(),
        Cycle::Dispatched(0),
        "the lease is still live"
    );

    h.clock.advance(Age::minutes(1) + Age::milliseconds(1));
    assert_eq!(b.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    b.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(
        message.attempt_count, 1,
        "the expiry did not count an attempt"
    );
    assert_eq!(webhook.delivered_ids(), vec![id]);
}

/// A replica that leases `h`'s messages, starts dispatching them with `dispatcher`, and dies
/// mid-dispatch: nothing is ever written back, as when the dispatch kills the process.
async fn crash_mid_dispatch(h: &Harness, dispatcher: &Arc<ScriptedDispatcher>) {
    let attempted = dispatcher.delivered().len();
    let mut replica = h.notifier(quiet_config(), as_dispatchers(dispatcher));
    let cycle = tokio::spawn(async move { replica.run_cycle().await });
    dispatcher.wait_for(attempted + 1).await;
    cycle.abort();
    assert!(cycle.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn a_message_whose_dispatch_crashes_every_replica_fails_permanently_at_its_third_lease_expiry()
 {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let crashing = ScriptedDispatcher::hanging(Method::Webhook);
    let lease_period = Age::from_std(quiet_config().lease_period).unwrap();
    let max_lease_expiries = quiet_config().max_lease_expiries;
    assert_eq!(max_lease_expiries, 3);

    crash_mid_dispatch(&h, &crashing).await;
    for _ in 1..max_lease_expiries {
        h.clock.advance(lease_period + Age::milliseconds(1));
        crash_mid_dispatch(&h, &crashing).await;
    }
    assert_eq!(crashing.delivered_ids(), vec![id; 3]);
    h.clock.advance(lease_period + Age::milliseconds(1));
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut survivor = h.notifier(quiet_config(), as_dispatchers(&webhook));

    assert_eq!(survivor.run_cycle().await.unwrap(), Cycle::Dispatched(0));

    assert!(
        webhook.delivered().is_empty(),
        "not dispatched a fourth time"
    );
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::PermanentFailure);
    assert_eq!(message.lease_expiries, 3);
    assert_eq!(message.attempt_count, 0);
    let reason = message.status_reason.unwrap_or_default();
    assert!(reason.contains("lease expired 3 times"), "{reason}");
    assert!(reason.contains("crashing"), "{reason}");
    h.clock.advance(Age::days(1));
    assert_eq!(survivor.run_cycle().await.unwrap(), Cycle::Dispatched(0));
    assert!(webhook.delivered().is_empty());
}

#[tokio::test]
async fn paused_messages_stay_pending_however_long_and_go_out_once_resumed() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    assert!(h.settings.set_notifier_paused(true).await.unwrap());
    assert!(
        !h.settings.set_notifier_paused(true).await.unwrap(),
        "unchanged"
    );
    for _ in 0..5 {
        assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Paused);
        h.clock.advance(Age::days(1));
    }
    assert_eq!(h.message(id).await.status, MessageStatus::Pending);
    assert!(webhook.delivered().is_empty());

    assert!(h.settings.set_notifier_paused(false).await.unwrap());
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    assert_eq!(h.message(id).await.status, MessageStatus::Sent);
}

#[tokio::test]
async fn write_back_failure_loses_nothing_the_messages_come_back_after_the_lease() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    notifier.run_cycle().await.unwrap();
    h.store.set_unavailable(true);
    let flushed = notifier.flush().await;
    assert_eq!(flushed.dropped, 1);
    h.store.set_unavailable(false);
    assert_eq!(h.message(id).await.status, MessageStatus::Leased);

    h.clock.advance(Age::minutes(2) + Age::seconds(1));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    assert_eq!(h.message(id).await.status, MessageStatus::Sent);
    assert_eq!(
        webhook.delivered_ids(),
        vec![id, id],
        "delivered at least once: here twice"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dispatch_slower_than_the_timeout_is_a_retryable_failure() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let mut notifier = h.notifier(
        quiet_config(),
        vec![ScriptedDispatcher::hanging(Method::Webhook)],
    );
    let started = tokio::time::Instant::now();
    notifier.run_cycle().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(10));
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::TemporaryFailure);
    assert!(message.status_reason.unwrap().contains("timed out"));
}

#[tokio::test]
async fn a_dispatch_timeout_not_shorter_than_the_lease_period_is_refused() {
    use herald_application::config::notifier_keys;
    for timeout in [120, 300] {
        let config = NotifierConfig {
            dispatch_timeout: Duration::from_secs(timeout),
            ..quiet_config()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, notifier_keys::DISPATCH_TIMEOUT);
        assert!(
            err.reason
                .contains(&format!("shorter than `{}`", notifier_keys::LEASE_PERIOD)),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_stops_leasing_until_it_is_written_and_nothing_is_lost() {
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.extend(enqueue_for(&h, owner.id, &format!("ws-{i}")).await);
    }
    let gated = GatedQueue::closed(h.store.clone());
    let config = NotifierConfig {
        lease_count: 5,
        store_sync_buffer_size: 2,
        ..quiet_config()
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let notifier = h.notifier_over(gated.clone(), config, as_dispatchers(&webhook));
    let handle = notifier.spawn();

    until_idle().await;
    // The first results filled the buffer; its write-back is held, and the next full buffer
    // waits for it: the notifier is held there.
    assert_eq!(
        gated
            .write_backs_waiting
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let (leases, delivered) = (gated.leases(), webhook.delivered().len());
    assert!(delivered < 12, "{delivered} dispatched");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        (gated.leases(), webhook.delivered().len()),
        (leases, delivered),
        "nothing is leased or starts while the buffer cannot be written"
    );

    gated.open();
    webhook.wait_for(12).await;
    handle.stop().await;
    for id in &ids {
        assert_eq!(
            h.message(*id).await.status,
            MessageStatus::Sent,
            "stop flushed everything"
        );
    }
    assert_eq!(webhook.delivered().len(), 12);
}

/// Twelve webhook messages queued, and a queue over them that counts leases and holds nothing.
async fn twelve_queued() -> (Harness, Vec<MessageId>, Arc<GatedQueue>) {
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.extend(enqueue_for(&h, owner.id, &format!("ws-{i}")).await);
    }
    let queue = GatedQueue::closed(h.store.clone());
    queue.open();
    (h, ids, queue)
}

#[tokio::test(start_paused = true)]
async fn the_backlog_is_leased_while_slots_are_busy_and_given_back_at_once_on_stop() {
    let (h, ids, queue) = twelve_queued().await;
    let config = NotifierConfig {
        lease_count: 5,
        ..quiet_config()
    };
    // Every dispatch hangs until the dispatch timeout: the first five stay in flight.
    let webhook = ScriptedDispatcher::hanging(Method::Webhook);
    let handle = h
        .notifier_over(queue.clone(), config, as_dispatchers(&webhook))
        .spawn();
    until_idle().await;
    assert_eq!(webhook.delivered().len(), 5, "every slot is busy");
    assert_eq!(
        queue.leases(),
        2,
        "the next five were leased while the first are dispatched, and no more"
    );

    handle.stop().await;
    assert_eq!(webhook.delivered().len(), 5, "nothing new starts on stop");
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(h.message(*id).await.status);
    }
    assert_eq!(
        statuses,
        [
            [MessageStatus::TemporaryFailure; 5].as_slice(),
            &[MessageStatus::Pending; 7],
        ]
        .concat(),
        "the five in flight timed out; the five waiting were given back, not left leased"
    );
}

/// The harness's directory, holding every `get_many` (the notifier's recipient check) until
/// let through.
#[derive(Debug)]
struct HeldDirectory {
    inner: herald_memory::MemoryStore,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl herald_application::ports::UserDirectory for HeldDirectory {
    async fn get(
        &self,
        id: UserId,
    ) -> Result<Option<herald_domain::User>, herald_application::ports::StoreError> {
        herald_application::ports::UserDirectory::get(&self.inner, id).await
    }

    async fn get_many(
        &self,
        ids: &[UserId],
    ) -> Result<Vec<herald_domain::User>, herald_application::ports::StoreError> {
        self.gate.acquire().await.unwrap().forget();
        herald_application::ports::UserDirectory::get_many(&self.inner, ids).await
    }

    async fn with_any_role(
        &self,
        roles: &std::collections::BTreeSet<Role>,
    ) -> Result<Vec<herald_domain::User>, herald_application::ports::StoreError> {
        herald_application::ports::UserDirectory::with_any_role(&self.inner, roles).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_waiting_for_its_recipients_holds_no_slot() {
    let (h, ids, queue) = twelve_queued().await;
    // The first lease's recipients are read at once; the next lease's wait.
    let directory = Arc::new(HeldDirectory {
        inner: h.store.clone(),
        gate: tokio::sync::Semaphore::new(1),
    });
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let notifier = h.notifier_with_ports(
        herald_application::NotifierPorts {
            directory: directory.clone(),
            ..h.notifier_ports(queue.clone())
        },
        NotifierConfig {
            lease_count: 5,
            ..quiet_config()
        },
        as_dispatchers(&webhook),
    );
    let handle = notifier.spawn();
    until_idle().await;
    assert_eq!(
        webhook.delivered_ids(),
        ids[..5],
        "the first lease went out while the second waits for its recipients"
    );
    assert_eq!(queue.leases(), 2);

    directory
        .gate
        .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    until_idle().await;
    handle.stop().await;
    assert_eq!(
        webhook.delivered_ids(),
        ids,
        "each message once, oldest first"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_fails_while_others_dispatch_leases_nothing_and_the_next_poll_leases_again() {
    let (h, ids, queue) = twelve_queued().await;
    queue
        .failing_lease
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let config = NotifierConfig {
        lease_count: 5,
        ..quiet_config()
    };
    let handle = h
        .notifier_over(queue.clone(), config, as_dispatchers(&webhook))
        .spawn();
    until_idle().await;
    assert_eq!(queue.leases(), 2, "the second lease failed");
    assert_eq!(webhook.delivered().len(), 5);
    let mut pending = 0;
    for id in &ids {
        pending += usize::from(h.message(*id).await.status == MessageStatus::Pending);
    }
    assert_eq!(pending, 7, "the failed lease left its messages queued");

    // The fetch interval passes: the notifier leases again.
    webhook.wait_for(12).await;
    handle.stop().await;
    assert_eq!(
        webhook.delivered_ids(),
        ids,
        "each message once, oldest first"
    );
    for id in &ids {
        assert_eq!(h.message(*id).await.status, MessageStatus::Sent);
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_back_in_progress_holds_dispatching_only_once_the_buffer_fills_again() {
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.extend(enqueue_for(&h, owner.id, &format!("ws-{i}")).await);
    }
    let gated = GatedQueue::closed(h.store.clone());
    let config = NotifierConfig {
        lease_count: 5,
        store_sync_buffer_size: 10,
        ..quiet_config()
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let handle = h
        .notifier_over(gated.clone(), config, as_dispatchers(&webhook))
        .spawn();
    until_idle().await;
    // The first 10 results filled the buffer; their write-back is held. The next 10 are
    // dispatched meanwhile, and only the second full buffer waits for the first write-back.
    assert_eq!(
        gated
            .write_backs_waiting
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(webhook.delivered().len(), 20);

    gated.open();
    handle.stop().await;
    for id in &ids {
        assert_eq!(h.message(*id).await.status, MessageStatus::Sent);
    }
}

#[tokio::test(start_paused = true)]
async fn a_notifier_picks_up_a_new_message_on_the_wake_up_without_waiting_for_the_poll() {
    let h = webhook_only();
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let handle = h.notifier(quiet_config(), as_dispatchers(&webhook)).spawn();
    until_idle().await;

    let started = tokio::time::Instant::now();
    let (_, id) = one_message(&h).await;
    tokio::time::timeout(Duration::from_secs(1), webhook.wait_for(1))
        .await
        .expect("delivered on the wake-up, long before the 1 h poll");
    assert!(started.elapsed() < Duration::from_secs(1));
    handle.stop().await;
    assert_eq!(h.message(id).await.status, MessageStatus::Sent);
}

#[tokio::test(start_paused = true)]
async fn without_a_wake_up_the_fallback_poll_still_delivers() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let config = NotifierConfig {
        fetch_interval: Duration::from_secs(15),
        ..quiet_config()
    };
    // Subscribed after the enqueue's wake-up: only the poll can find the message... after the
    // first cycle, which runs at start. So enqueue a second message without waking anyone.
    let handle = h.notifier(config, as_dispatchers(&webhook)).spawn();
    webhook.wait_for(1).await;
    let started = tokio::time::Instant::now();
    let user = h.user("late", &[]).await;
    let late = h
        .store
        .enqueue(&[herald_application::ports::NewMessage {
            id: MessageId::random(),
            template_id: WORKSPACE_DELETED,
            recipient: user.id,
            method: Method::Webhook,
            payload: h.message(id).await.payload,
            targets: vec![],
            created_by: "no wake-up".into(),
            created_at: h.clock_now(),
            dedupe_hash: None,
            send_after: None,
            digest: false,
        }])
        .await
        .unwrap();
    assert_eq!(late.len(), 1);
    webhook.wait_for(2).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(14) && waited <= Duration::from_secs(16),
        "{waited:?}"
    );
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stop_finishes_in_flight_dispatches_and_flushes_the_buffer() {
    let h = webhook_only();
    let user = h.user("u", &[]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.extend(enqueue_for(&h, user.id, &format!("ws-{i}")).await);
    }
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let handle = h.notifier(quiet_config(), as_dispatchers(&webhook)).spawn();
    webhook.wait_for(3).await;
    // The buffer (50) is not full and the sync interval is an hour: nothing is written yet.
    for id in &ids {
        assert_eq!(h.message(*id).await.status, MessageStatus::Leased);
    }
    handle.stop().await;
    for id in &ids {
        assert_eq!(h.message(*id).await.status, MessageStatus::Sent);
    }
}

#[tokio::test(start_paused = true)]
async fn the_buffer_is_written_back_every_store_sync_interval() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let config = NotifierConfig {
        store_sync_interval: Duration::from_secs(2),
        ..quiet_config()
    };
    let handle = h.notifier(config, as_dispatchers(&webhook)).spawn();
    webhook.wait_for(1).await;
    assert_eq!(h.message(id).await.status, MessageStatus::Leased);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.message(id).await.status, MessageStatus::Sent);
    handle.stop().await;
}

impl Harness {
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        herald_application::ports::Clock::now(&self.clock)
    }
}

#[tokio::test(start_paused = true)]
async fn full_batches_are_leased_again_at_once_without_waiting_for_the_poll() {
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    for i in 0..12 {
        enqueue_for(&h, owner.id, &format!("ws-{i}")).await;
    }
    // Created after the enqueues: no wake-up is pending, only fullness can trigger re-leasing.
    let config = NotifierConfig {
        lease_count: 5,
        ..quiet_config()
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let handle = h.notifier(config, as_dispatchers(&webhook)).spawn();
    tokio::time::timeout(Duration::from_secs(1), webhook.wait_for(12))
        .await
        .expect("batches of 5, 5 and 2 go out back to back, not one per 1 h poll");
    handle.stop().await;
}

/// Counts how often the templates are read.
#[derive(Debug)]
struct CountingTemplates {
    inner: herald_memory::MemoryStore,
    lists: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl herald_application::ports::TemplateStore for CountingTemplates {
    async fn seed(
        &self,
        catalogue: &[herald_domain::Template],
    ) -> Result<(), herald_application::ports::StoreError> {
        self.inner.seed(catalogue).await
    }

    async fn list(
        &self,
    ) -> Result<Vec<herald_domain::Template>, herald_application::ports::StoreError> {
        self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        herald_application::ports::TemplateStore::list(&self.inner).await
    }

    async fn get(
        &self,
        id: herald_domain::TemplateId,
    ) -> Result<Option<herald_domain::Template>, herald_application::ports::StoreError> {
        herald_application::ports::TemplateStore::get(&self.inner, id).await
    }

    async fn find_by_name(
        &self,
        name: &str,
    ) -> Result<Option<herald_domain::Template>, herald_application::ports::StoreError> {
        self.inner.find_by_name(name).await
    }

    async fn set_method_override(
        &self,
        id: herald_domain::TemplateId,
        method: Option<Method>,
    ) -> Result<Option<bool>, herald_application::ports::StoreError> {
        self.inner.set_method_override(id, method).await
    }

    async fn set_digest_window(
        &self,
        id: herald_domain::TemplateId,
        window: Option<herald_domain::DigestWindow>,
    ) -> Result<Option<bool>, herald_application::ports::StoreError> {
        self.inner.set_digest_window(id, window).await
    }
}

#[tokio::test]
async fn the_notifier_and_enqueue_share_one_read_of_the_templates() {
    let mut counting = None;
    let h = Harness::with_ports(
        herald_application::DefaultMethod::Webhook,
        &[Method::Webhook],
        |ports, store| {
            let templates = Arc::new(CountingTemplates {
                inner: store.clone(),
                lists: 0.into(),
            });
            ports.templates = templates.clone();
            counting = Some(templates);
        },
    );
    let counting = counting.unwrap();
    let user = h.user("u", &[]).await;
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));
    for i in 0..3 {
        enqueue_for(&h, user.id, &format!("ws-{i}")).await;
        assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    }
    assert_eq!(webhook.delivered().len(), 3);
    assert_eq!(counting.lists.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The harness's settings, counting how often the pause switch is read.
#[derive(Debug)]
struct CountedSwitch {
    inner: herald_memory::MemoryStore,
    reads: std::sync::atomic::AtomicUsize,
}

impl CountedSwitch {
    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl herald_application::ports::SettingsStore for CountedSwitch {
    async fn notifier_paused(&self) -> Result<bool, herald_application::ports::StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.notifier_paused().await
    }

    async fn set_notifier_paused(
        &self,
        paused: bool,
    ) -> Result<bool, herald_application::ports::StoreError> {
        self.inner.set_notifier_paused(paused).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_paused_notifier_reads_the_switch_at_most_once_per_recheck_interval_and_resumes_at_once()
{
    use herald_application::notifier::PAUSED_RECHECK_INTERVAL;
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    let switch = Arc::new(CountedSwitch {
        inner: h.store.clone(),
        reads: Default::default(),
    });
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let notifier = h.notifier_with_ports(
        herald_application::NotifierPorts {
            settings: switch.clone(),
            ..h.notifier_ports(Arc::new(h.store.clone()))
        },
        quiet_config(),
        as_dispatchers(&webhook),
    );
    h.settings.set_notifier_paused(true).await.unwrap();
    let handle = notifier.spawn();
    until_idle().await;
    assert_eq!(switch.reads(), 1, "the first cycle found the switch on");

    // Every enqueue wakes the notifier; while paused it does not read the switch each time.
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.extend(enqueue_for(&h, owner.id, &format!("ws-{n}")).await);
        until_idle().await;
    }
    assert_eq!(switch.reads(), 1);
    tokio::time::advance(PAUSED_RECHECK_INTERVAL).await;
    until_idle().await;
    assert_eq!(
        switch.reads(),
        2,
        "one read for all the wake-ups of the interval"
    );
    assert!(webhook.delivered().is_empty());

    // An enqueue right after that read: the notifier will not read the switch for another
    // interval on its account. Turning the switch off wakes it as a resume: it reads the switch
    // at once (no time passes here) and delivers.
    ids.extend(enqueue_for(&h, owner.id, "ws-last").await);
    until_idle().await;
    assert_eq!(switch.reads(), 2);
    h.settings.set_notifier_paused(false).await.unwrap();
    until_idle().await;
    assert_eq!(switch.reads(), 3);
    assert_eq!(webhook.delivered_ids(), ids);
    handle.stop().await;
}
