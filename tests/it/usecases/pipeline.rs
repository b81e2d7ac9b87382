//! The notifier's continuous pipeline: slots refilled as dispatches end, each method's share
//! of them, the backlog given back on pause, and results of leases taken over counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Duration as Age;
use herald_application::ports::{Delivery, DeliveryError, Dispatcher, LeaseRequest, MessageQueue};
use herald_application::{Cycle, DefaultMethod, NotifierConfig};
use herald_domain::{MessageId, MessageStatus, Method};
use herald_tests::sample;

use super::notifier::{as_dispatchers, enqueue_for, one_message, webhook_only};
use super::support::{Harness, ScriptedDispatcher, quiet_config, until_idle};

/// Answers at once, except its first dispatch, which takes five seconds.
#[derive(Debug, Default)]
struct FirstSlow {
    started: AtomicUsize,
    done: std::sync::Mutex<Vec<MessageId>>,
}

#[async_trait]
impl Dispatcher for FirstSlow {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        if self.started.fetch_add(1, Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        self.done.lock().unwrap().push(delivery.message_id);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn one_slow_answer_holds_one_slot_not_the_rest_of_its_batch() {
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.extend(enqueue_for(&h, owner.id, &format!("ws-{i}")).await);
    }
    let slow = Arc::new(FirstSlow::default());
    let config = NotifierConfig {
        lease_count: 4,
        ..quiet_config()
    };
    let handle = h.notifier(config, vec![slow.clone()]).spawn();

    until_idle().await;
    assert_eq!(
        slow.done.lock().unwrap().as_slice(),
        &ids[1..],
        "the other 19 went out, oldest first, while the first one's answer is awaited"
    );
    handle.stop().await;
    for id in &ids {
        assert_eq!(h.message(*id).await.status, MessageStatus::Sent);
    }
}

/// Queues `emails` messages by SMTP, then `webhooks` by webhook, to `owner`, each a second
/// after the last; returns them in that order.
async fn queue_emails_then_webhooks(
    h: &Harness,
    owner: herald_domain::UserId,
    emails: usize,
    webhooks: usize,
) -> Vec<herald_application::ports::NewMessage> {
    let methods = std::iter::repeat_n(Method::Smtp, emails)
        .chain(std::iter::repeat_n(Method::Webhook, webhooks));
    let batch: Vec<_> = methods
        .enumerate()
        .map(|(i, method)| herald_application::ports::NewMessage {
            method,
            ..sample::new_message(owner, sample::t0() + Age::seconds(i as i64))
        })
        .collect();
    h.store.enqueue(&batch).await.unwrap();
    batch
}

#[tokio::test(start_paused = true)]
async fn a_slow_method_alone_leaves_a_slot_for_another_which_then_gets_its_share() {
    let h = Harness::with_methods(DefaultMethod::Smtp, &[Method::Smtp, Method::Webhook]);
    let owner = h.user("owner", &[]).await;
    // Eight emails queued before eight webhook messages.
    let batch = queue_emails_then_webhooks(&h, owner.id, 8, 8).await;
    let smtp = ScriptedDispatcher::hanging(Method::Smtp);
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let config = NotifierConfig {
        lease_count: 4,
        ..quiet_config()
    };
    let handle = h
        .notifier(config, vec![smtp.clone(), webhook.clone()])
        .spawn();

    until_idle().await;
    // The emails, leased first, found no other method with work: they took every slot but
    // the one kept for webhook messages, which then went out through it.
    assert_eq!(smtp.delivered().len(), 3);
    assert_eq!(
        webhook.delivered_ids(),
        batch[8..].iter().map(|m| m.id).collect::<Vec<_>>(),
        "every webhook message went out beside the hanging emails"
    );
    handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pausing_gives_back_the_messages_waiting_in_the_backlog() {
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.extend(enqueue_for(&h, owner.id, &format!("ws-{i}")).await);
    }
    let webhook = ScriptedDispatcher::hanging(Method::Webhook);
    let config = NotifierConfig {
        lease_count: 2,
        ..quiet_config()
    };
    let handle = h.notifier(config, as_dispatchers(&webhook)).spawn();
    until_idle().await;
    assert_eq!(webhook.delivered().len(), 2);
    assert_eq!(
        h.message(ids[2]).await.status,
        MessageStatus::Leased,
        "waiting in the backlog"
    );

    h.settings.set_notifier_paused(true).await.unwrap();
    tokio::time::sleep(herald_application::notifier::PAUSED_RECHECK_INTERVAL * 2).await;
    assert_eq!(webhook.delivered().len(), 2, "nothing new started");
    for id in &ids[2..] {
        assert_eq!(h.message(*id).await.status, MessageStatus::Pending);
    }
    handle.stop().await;
}

/// Leases the message for another notifier (after its lease expired) while dispatching it.
#[derive(Debug)]
struct TakenOverMeanwhile {
    store: herald_memory::MemoryStore,
    clock: herald_memory::ManualClock,
}

#[async_trait]
impl Dispatcher for TakenOverMeanwhile {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn dispatch(&self, _: &Delivery) -> Result<(), DeliveryError> {
        self.clock.advance(Age::seconds(121));
        let taken = self
            .store
            .lease(LeaseRequest {
                notifier: "tests".into(),
                now: herald_application::ports::Clock::now(&self.clock),
                lease_period: Age::seconds(120),
                count: 10,
                max_attempts: 3,
                max_lease_expiries: 3,
                skip: herald_application::ports::SkipMethods::NONE,
            })
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        Ok(())
    }
}

#[tokio::test]
async fn a_result_for_a_lease_taken_over_is_counted_stale_and_changes_nothing() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let taking = Arc::new(TakenOverMeanwhile {
        store: h.store.clone(),
        clock: h.clock.clone(),
    });
    let mut notifier = h.notifier(quiet_config(), vec![taking]);

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.stale), (0, 1));
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Leased, "the new holder's");
    assert_eq!(message.attempt_count, 0);
}

/// Its first dispatch waits until `waiting` is leased (into the backlog behind it), then moves
/// the clock on by `takes`, as a slow answer would; every dispatch is answered.
#[derive(Debug)]
struct SlowFirstAnswer {
    store: herald_memory::MemoryStore,
    clock: herald_memory::ManualClock,
    waiting: MessageId,
    takes: Age,
    done: std::sync::Mutex<Vec<(MessageId, chrono::DateTime<chrono::Utc>)>>,
}

#[async_trait]
impl Dispatcher for SlowFirstAnswer {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        if self.done.lock().unwrap().is_empty() && delivery.message_id != self.waiting {
            while self.store.get(self.waiting).await.unwrap().unwrap().status
                != MessageStatus::Leased
            {
                tokio::task::yield_now().await;
            }
            self.clock.advance(self.takes);
        }
        let lease = self.store.get(delivery.message_id).await.unwrap().unwrap();
        self.done
            .lock()
            .unwrap()
            .push((delivery.message_id, lease.leased_until.unwrap()));
        Ok(())
    }
}

/// Counts leases extended and given back.
#[derive(Debug, Default)]
struct LeaseChanges {
    extended: AtomicUsize,
    given_back: AtomicUsize,
}

impl herald_application::ports::NotifierMetrics for LeaseChanges {
    fn leases_renewed(&self, extended: u64, _lost: u64) {
        self.extended.fetch_add(extended as usize, Ordering::SeqCst);
    }

    fn leases_given_back(&self, count: u64) {
        self.given_back.fetch_add(count as usize, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_whose_lease_ran_low_in_the_backlog_is_extended_before_it_starts() {
    let h = webhook_only();
    let owner = h.user("owner", &[]).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.extend(enqueue_for(&h, owner.id, &format!("ws-{i}")).await);
    }
    // Lease 120 s, timeout 60 s: a message starts only with at least 90 s left. The first
    // answer takes 40 s, so the second, leased meanwhile, has 80 s left when its slot frees.
    let slow = Arc::new(SlowFirstAnswer {
        store: h.store.clone(),
        clock: h.clock.clone(),
        waiting: ids[1],
        takes: Age::seconds(40),
        done: std::sync::Mutex::new(Vec::new()),
    });
    let config = NotifierConfig {
        lease_count: 1,
        lease_period: Duration::from_secs(120),
        dispatch_timeout: Duration::from_secs(60),
        ..quiet_config()
    };
    let leased_at = herald_application::ports::Clock::now(&h.clock);
    let changes = Arc::new(LeaseChanges::default());
    let handle = h
        .notifier(config, vec![slow.clone()])
        .with_metrics(changes.clone())
        .spawn();
    until_idle().await;
    handle.stop().await;

    let done = slow.done.lock().unwrap().clone();
    assert_eq!(done.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
    assert_eq!(
        done[1].1,
        leased_at + Age::seconds(40 + 120),
        "the second started on a lease extended when its slot freed"
    );
    assert_eq!(
        (
            changes.extended.load(Ordering::SeqCst),
            changes.given_back.load(Ordering::SeqCst)
        ),
        (1, 0),
        "extended, not given back and leased again"
    );
    for id in &ids {
        assert_eq!(h.message(*id).await.status, MessageStatus::Sent);
    }
}

#[tokio::test(start_paused = true)]
async fn messages_of_a_method_with_free_slots_are_leased_past_a_slow_methods_older_ones() {
    let h = Harness::with_methods(DefaultMethod::Smtp, &[Method::Smtp, Method::Webhook]);
    let owner = h.user("owner", &[]).await;
    // Thirty emails queued before eight webhook messages: leasing oldest first alone would
    // fill the backlog with emails waiting for their share while webhook slots idle.
    let batch = queue_emails_then_webhooks(&h, owner.id, 30, 8).await;
    let smtp = ScriptedDispatcher::hanging(Method::Smtp);
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let config = NotifierConfig {
        lease_count: 4,
        ..quiet_config()
    };
    let handle = h
        .notifier(config, vec![smtp.clone(), webhook.clone()])
        .spawn();

    until_idle().await;
    assert_eq!(
        webhook.delivered_ids(),
        batch[30..].iter().map(|m| m.id).collect::<Vec<_>>(),
        "the webhook messages were leased past the emails waiting in the backlog"
    );
    let mut leased_emails = 0;
    for message in &batch[..30] {
        leased_emails += usize::from(h.message(message.id).await.status == MessageStatus::Leased);
    }
    assert!(
        leased_emails < 12,
        "{leased_emails} emails held: no more than the slots and a batch or two waiting"
    );
    handle.stop().await;
}
