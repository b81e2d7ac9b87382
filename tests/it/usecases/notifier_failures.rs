//! DESIGN §5: what the notifier does when something under it fails — a dispatcher panicking,
//! a lease or write-back task panicking or failing, a port it reads unreadable, a template
//! missing or not rendering — and that `run` goes on after a failed cycle.
//!
//! Failures are injected with mocks (a port failing on its Nth call, a dispatcher called
//! exactly once); the stored state is the harness's memory store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Duration as Age, Utc};
use herald_application::ports::{
    CallerKey, CancelOutcome, ClaimAnswers, Delivery, DeliveryError, DispatchOutcome, Dispatcher,
    EnqueueOutcome, HeldLease, KeyClaim, LeaseRequest, MessageFilter, MessageQueue, NewMessage,
    NotifierMetrics, PreferenceStore, PurgeOutcome, StoreError, StoredAnswer, TemplateStore,
    ThrottleWindow, ThrottledLease, UserDirectory,
};
use herald_application::{Cycle, NotifierConfig, WRITE_BACK_RETRY_DELAYS};
use herald_domain::catalogue::{self, WORKSPACE_DELETED};
use herald_domain::message::StatusChange;
use herald_domain::{
    Message, MessageId, MessageStatus, Method, Role, Template, TemplateId, User, UserId,
};
use herald_memory::MemoryStore;
use herald_tests::fixture::within;
use mockall::{Sequence, mock};

use super::notifier::{as_dispatchers, enqueue_for, one_message, webhook_only};
use super::support::{Harness, ScriptedDispatcher, quiet_config, until_idle};

mock! {
    pub Dispatcher {}
    #[async_trait]
    impl Dispatcher for Dispatcher {
        fn method(&self) -> Method;
        async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError>;
    }
}

mock! {
    pub Directory {}
    #[async_trait]
    impl UserDirectory for Directory {
        async fn get(&self, id: UserId) -> Result<Option<User>, StoreError>;
        async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;
        async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError>;
    }
}

mock! {
    pub Preferences {}
    #[async_trait]
    impl PreferenceStore for Preferences {
        async fn for_user(
            &self,
            user: UserId,
        ) -> Result<
            std::collections::BTreeMap<TemplateId, herald_application::ports::TemplatePreferences>,
            StoreError,
        >;
        async fn set(
            &self,
            user: UserId,
            changes: &[herald_application::ports::PreferenceChange],
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), StoreError>;
        async fn lookup(
            &self,
            pairs: &[(UserId, TemplateId)],
        ) -> Result<HashMap<(UserId, TemplateId), herald_domain::StoredPreference>, StoreError>;
    }
}

mock! {
    pub Templates {}
    #[async_trait]
    impl TemplateStore for Templates {
        async fn seed(&self, catalogue: &[Template]) -> Result<(), StoreError>;
        async fn list(&self) -> Result<Vec<Template>, StoreError>;
        async fn get(&self, id: TemplateId) -> Result<Option<Template>, StoreError>;
        async fn find_by_name(&self, name: &str) -> Result<Option<Template>, StoreError>;
        async fn set_method_override(
            &self,
            id: TemplateId,
            method: Option<Method>,
        ) -> Result<Option<bool>, StoreError>;
        async fn set_digest_window(
            &self,
            id: TemplateId,
            window: Option<herald_domain::DigestWindow>,
        ) -> Result<Option<bool>, StoreError>;
    }
}

mock! {
    pub Metrics {}
    impl NotifierMetrics for Metrics {
        fn dispatch_attempt(&self, method: Method, template: &str, outcome: DispatchOutcome);
    }
}

/// The ports' traits ask for `Debug`, which mockall's mocks lack.
macro_rules! debug_as_name {
    ($($mock:ident),+) => {
        $(
            impl std::fmt::Debug for $mock {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(stringify!($mock))
                }
            }
        )+
    };
}

debug_as_name!(
    MockDispatcher,
    MockDirectory,
    MockPreferences,
    MockTemplates,
    MockMetrics
);

/// What a [`FaultyQueue`] does on one call before (or instead of) reaching the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Unavailable,
    Panic,
}

/// Asked by a [`FaultyQueue`] on each call it can fail.
#[mockall::automock]
pub trait QueueFaults: Send + Sync {
    fn lease(&self) -> Fault;
    fn mark_sent(&self) -> Fault;
    fn mark_failed(&self) -> Fault;
}

/// A memory queue whose leases and write-backs fail as its [`QueueFaults`] say.
pub struct FaultyQueue {
    inner: MemoryStore,
    faults: MockQueueFaults,
}

impl FaultyQueue {
    pub fn over(inner: MemoryStore, faults: MockQueueFaults) -> Arc<Self> {
        Arc::new(Self { inner, faults })
    }
}

impl std::fmt::Debug for FaultyQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultyQueue")
    }
}

fn apply(fault: Fault, call: &str) -> Result<(), StoreError> {
    match fault {
        Fault::None => Ok(()),
        Fault::Unavailable => Err(StoreError::Unavailable(format!(
            "{call} refused by the test"
        ))),
        Fault::Panic => panic!("{call} panicked, as the test asked"),
    }
}

#[async_trait]
impl MessageQueue for FaultyQueue {
    async fn enqueue(&self, messages: &[NewMessage]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        self.inner.enqueue(messages).await
    }

    async fn enqueue_claiming(
        &self,
        messages: &[NewMessage],
        claims: &[KeyClaim],
        now: DateTime<Utc>,
        answers: ClaimAnswers<'_>,
    ) -> Result<Option<Vec<EnqueueOutcome>>, StoreError> {
        self.inner
            .enqueue_claiming(messages, claims, now, answers)
            .await
    }

    async fn claimed_answers(
        &self,
        keys: &[CallerKey],
        since: DateTime<Utc>,
    ) -> Result<Vec<Option<StoredAnswer>>, StoreError> {
        self.inner.claimed_answers(keys, since).await
    }

    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.purge_idempotency_keys(cutoff).await
    }

    async fn cancel(&self, id: MessageId) -> Result<CancelOutcome, StoreError> {
        self.inner.cancel(id).await
    }

    async fn lease(&self, request: LeaseRequest) -> Result<Vec<Message>, StoreError> {
        apply(self.faults.lease(), "lease")?;
        self.inner.lease(request).await
    }

    async fn lease_throttled(
        &self,
        request: LeaseRequest,
        throttle: &ThrottleWindow,
    ) -> Result<ThrottledLease, StoreError> {
        apply(self.faults.lease(), "lease")?;
        self.inner.lease_throttled(request, throttle).await
    }

    async fn mark_sent(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        apply(self.faults.mark_sent(), "mark_sent")?;
        self.inner.mark_sent(changes).await
    }

    async fn mark_failed(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        apply(self.faults.mark_failed(), "mark_failed")?;
        self.inner.mark_failed(changes).await
    }

    async fn extend_leases(
        &self,
        held: &[HeldLease],
        until: DateTime<Utc>,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.inner.extend_leases(held, until).await
    }

    async fn give_back(&self, held: &[HeldLease]) -> Result<u64, StoreError> {
        self.inner.give_back(held).await
    }

    async fn inhibit_recipient(
        &self,
        recipient: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.inhibit_recipient(recipient, reason, now).await
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<PurgeOutcome, StoreError> {
        self.inner.purge(cutoff).await
    }

    async fn get(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        MessageQueue::get(&self.inner, id).await
    }

    async fn list(&self, filter: &MessageFilter) -> Result<Vec<Message>, StoreError> {
        MessageQueue::list(&self.inner, filter).await
    }
}

/// Faults answering each list in turn, one call each: leases, then sent and failed
/// write-backs. A call beyond its list fails the test.
fn faults(leases: &[Fault], sent: &[Fault], failed: &[Fault]) -> MockQueueFaults {
    let mut faults = MockQueueFaults::new();
    let (mut leasing, mut sending, mut failing) =
        (Sequence::new(), Sequence::new(), Sequence::new());
    for &fault in leases {
        faults
            .expect_lease()
            .times(1)
            .in_sequence(&mut leasing)
            .return_const(fault);
    }
    for &fault in sent {
        faults
            .expect_mark_sent()
            .times(1)
            .in_sequence(&mut sending)
            .return_const(fault);
    }
    for &fault in failed {
        faults
            .expect_mark_failed()
            .times(1)
            .in_sequence(&mut failing)
            .return_const(fault);
    }
    faults
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("refused by the test".to_owned())
}

/// One lease period and a second later: a message left leased can be leased again.
fn past_the_lease(h: &Harness) {
    h.clock.advance(Age::seconds(121));
}

/// After a failure that left `id` leased with no attempt counted: a notifier over the
/// harness's own ports, once the lease expired, sends it with its first attempt.
async fn is_sent_once_the_lease_expires(h: &Harness, id: MessageId) {
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Leased);
    assert_eq!(message.attempt_count, 0, "no attempt counted");
    past_the_lease(h);
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.attempt_count, 1);
}

#[tokio::test]
async fn a_panicking_dispatcher_is_a_retryable_dispatcher_crashed_failure() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let mut crashing = MockDispatcher::new();
    crashing.expect_method().return_const(Method::Webhook);
    crashing
        .expect_dispatch()
        .times(1)
        .returning(|_| panic!("the dispatcher fell over"));
    let mut notifier = h.notifier(quiet_config(), vec![Arc::new(crashing)]);

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::TemporaryFailure);
    assert_eq!(message.attempt_count, 1);
    let reason = message.status_reason.unwrap_or_default();
    assert!(reason.starts_with("dispatcher crashed"), "{reason}");

    h.clock.advance(Age::seconds(60));
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut next = h.notifier(quiet_config(), as_dispatchers(&webhook));
    assert_eq!(next.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    next.flush().await;
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.attempt_count, 2);
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_panics_while_others_dispatch_loses_nothing_and_counts_no_attempt() {
    let h = webhook_only();
    let user = h.user("u", &[]).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.extend(enqueue_for(&h, user.id, &format!("ws-{n}")).await);
    }
    // The first lease takes two; the second, run while they are dispatched, panics; the
    // notifier leases again at its next poll.
    let mut faults = MockQueueFaults::new();
    let mut leases = 0;
    faults.expect_lease().returning(move || {
        leases += 1;
        if leases == 2 {
            Fault::Panic
        } else {
            Fault::None
        }
    });
    faults.expect_mark_sent().return_const(Fault::None);
    let queue = FaultyQueue::over(h.store.clone(), faults);
    let config = NotifierConfig {
        lease_count: 2,
        fetch_interval: Duration::from_secs(5),
        ..quiet_config()
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let handle = h
        .notifier_over(queue, config, as_dispatchers(&webhook))
        .spawn();

    until_idle().await;
    assert_eq!(
        webhook.delivered().len(),
        2,
        "the panic stopped nothing in flight"
    );
    webhook.wait_for(4).await;
    handle.stop().await;

    assert_eq!(
        webhook.delivered_ids(),
        ids,
        "each message once, oldest first"
    );
    for id in ids {
        let message = h.message(id).await;
        assert_eq!(message.status, MessageStatus::Sent);
        assert_eq!(message.attempt_count, 1);
    }
}

#[tokio::test]
async fn a_panicking_background_write_back_leaves_its_messages_leased_until_the_lease_expires() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let queue = FaultyQueue::over(
        h.store.clone(),
        faults(&[Fault::None], &[Fault::Panic], &[]),
    );
    // A buffer of one: the result is written back in the background at once.
    let config = NotifierConfig {
        store_sync_buffer_size: 1,
        ..quiet_config()
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier_over(queue, config, as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    assert_eq!(
        notifier.buffered(),
        0,
        "handed to the background write-back"
    );
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.failed), (0, 0));
    is_sent_once_the_lease_expires(&h, id).await;
}

#[tokio::test(start_paused = true)]
async fn a_background_write_back_the_store_never_takes_is_retried_then_reported_dropped() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let refusals = vec![Fault::Unavailable; 1 + WRITE_BACK_RETRY_DELAYS.len()];
    let queue = FaultyQueue::over(h.store.clone(), faults(&[Fault::None], &refusals, &[]));
    let config = NotifierConfig {
        store_sync_buffer_size: 1,
        ..quiet_config()
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier_over(queue, config, as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    assert_eq!(
        notifier.buffered(),
        0,
        "handed to the background write-back"
    );
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.failed, flushed.dropped), (0, 0, 1));
    is_sent_once_the_lease_expires(&h, id).await;
}

#[tokio::test(start_paused = true)]
async fn a_write_back_the_store_refuses_for_a_moment_is_retried_and_written() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    // A PostgreSQL restart, say: two refusals, then the store takes it.
    let queue = FaultyQueue::over(
        h.store.clone(),
        faults(
            &[Fault::None],
            &[Fault::Unavailable, Fault::Unavailable, Fault::None],
            &[],
        ),
    );
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier_over(queue, quiet_config(), as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.dropped), (1, 0));
    let message = h.message(id).await;
    assert_eq!(message.status, MessageStatus::Sent);
    assert_eq!(message.attempt_count, 1);
    assert_eq!(webhook.delivered().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_write_back_is_not_retried_once_the_lease_it_completes_has_ended() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let mut faults = MockQueueFaults::new();
    faults.expect_lease().return_const(Fault::None);
    // The refusal lasts past the lease: the only write-back tried is the first.
    let clock = h.clock.clone();
    faults.expect_mark_sent().times(1).returning(move || {
        clock.advance(Age::seconds(121));
        Fault::Unavailable
    });
    let queue = FaultyQueue::over(h.store.clone(), faults);
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier_over(queue, quiet_config(), as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.dropped), (0, 1));
    assert_eq!(h.message(id).await.status, MessageStatus::Leased);
}

#[tokio::test(start_paused = true)]
async fn a_partial_write_back_keeps_the_sent_and_leaves_the_failed_leased() {
    let h = webhook_only();
    let user = h.user("u", &[]).await;
    let ids = [
        enqueue_for(&h, user.id, "ws-0").await,
        enqueue_for(&h, user.id, "ws-1").await,
    ]
    .concat();
    let queue = FaultyQueue::over(
        h.store.clone(),
        faults(
            &[Fault::None],
            &[Fault::None],
            &vec![Fault::Unavailable; 1 + WRITE_BACK_RETRY_DELAYS.len()],
        ),
    );
    let webhook = ScriptedDispatcher::scripted(
        Method::Webhook,
        [Ok(()), Err(DeliveryError::permanent("410 from receiver"))],
    );
    let mut notifier = h.notifier_over(queue, quiet_config(), as_dispatchers(&webhook));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(2));
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.failed, flushed.dropped), (1, 0, 1));

    let mut statuses = Vec::new();
    for id in ids {
        let message = h.message(id).await;
        statuses.push((message.status, message.attempt_count));
    }
    statuses.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        statuses,
        [(MessageStatus::Leased, 0), (MessageStatus::Sent, 1)],
        "the sent one written, the failed one left leased with no attempt counted"
    );
}

/// A notifier whose ports are the harness's, one replaced by `change`: runs one cycle over
/// one message, which must stay leased without an attempt or a dispatch.
async fn an_unreadable_port_leaves_the_message_leased(
    change: impl FnOnce(&mut herald_application::NotifierPorts),
) {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let mut ports = h.notifier_ports(Arc::new(h.store.clone()));
    change(&mut ports);
    let mut never = MockDispatcher::new();
    never.expect_method().return_const(Method::Webhook);
    never.expect_dispatch().never();
    let mut notifier = h.notifier_with_ports(ports, quiet_config(), vec![Arc::new(never)]);

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    let flushed = notifier.flush().await;
    assert_eq!((flushed.sent, flushed.failed), (0, 0));
    is_sent_once_the_lease_expires(&h, id).await;
}

#[tokio::test]
async fn an_unreadable_directory_leaves_the_message_leased_without_an_attempt() {
    let mut directory = MockDirectory::new();
    directory
        .expect_get_many()
        .times(1)
        .returning(|_| Err(unavailable()));
    an_unreadable_port_leaves_the_message_leased(|ports| ports.directory = Arc::new(directory))
        .await;
}

#[tokio::test]
async fn unreadable_preferences_leave_the_message_leased_without_an_attempt() {
    let mut preferences = MockPreferences::new();
    preferences
        .expect_lookup()
        .times(1)
        .returning(|_| Err(unavailable()));
    an_unreadable_port_leaves_the_message_leased(|ports| {
        ports.preferences = Arc::new(preferences);
    })
    .await;
}

#[tokio::test]
async fn unreadable_templates_leave_the_message_leased_without_an_attempt() {
    let mut templates = MockTemplates::new();
    templates
        .expect_get()
        .times(1)
        .returning(|_| Err(unavailable()));
    an_unreadable_port_leaves_the_message_leased(|ports| ports.templates = Arc::new(templates))
        .await;
}

/// Expects exactly one `dispatch_attempt` metric, for a webhook message under `template`
/// ending permanently failed.
fn one_permanent_failure_of(template: &'static str) -> Arc<MockMetrics> {
    let mut metrics = MockMetrics::new();
    metrics
        .expect_dispatch_attempt()
        .withf(move |method, name, outcome| {
            *method == Method::Webhook
                && name == template
                && *outcome == DispatchOutcome::PermanentFailure
        })
        .times(1)
        .return_const(());
    Arc::new(metrics)
}

#[tokio::test]
async fn a_message_of_an_unknown_template_fails_permanently_under_the_unknown_label() {
    let h = webhook_only();
    let user = h.user("u", &[]).await;
    let unknown = TemplateId::random();
    let message = NewMessage {
        template_id: unknown,
        method: Method::Webhook,
        ..herald_tests::sample::new_message(user.id, h.clock_now())
    };
    h.store
        .enqueue(std::slice::from_ref(&message))
        .await
        .unwrap();
    let never = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h
        .notifier(quiet_config(), as_dispatchers(&never))
        .with_metrics(one_permanent_failure_of(
            herald_application::notifier::UNKNOWN_TEMPLATE,
        ));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    let stored = h.message(message.id).await;
    assert_eq!(stored.status, MessageStatus::PermanentFailure);
    assert_eq!(
        stored.status_reason,
        Some(format!("template {unknown} does not exist"))
    );
    assert!(never.delivered().is_empty());
}

#[tokio::test]
async fn a_template_that_does_not_render_fails_its_message_permanently() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let mut broken = catalogue::templates()
        .into_iter()
        .find(|template| template.id == WORKSPACE_DELETED)
        .unwrap();
    broken.body = "{{#if labels.name}}never closed".to_owned();
    // Changed in the store as another replica would: seen here once the cache's TTL is over.
    h.store.seed(&[broken]).await.unwrap();
    h.clock
        .advance(Age::from_std(herald_application::templates::TEMPLATE_CACHE_TTL).unwrap());
    let never = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h
        .notifier(quiet_config(), as_dispatchers(&never))
        .with_metrics(one_permanent_failure_of("Workspace Deleted"));

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    let stored = h.message(id).await;
    assert_eq!(stored.status, MessageStatus::PermanentFailure);
    assert_eq!(stored.attempt_count, 1);
    assert!(never.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_running_notifier_goes_on_after_a_cycle_that_failed() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let queue = FaultyQueue::over(
        h.store.clone(),
        faults(&[Fault::Unavailable, Fault::None], &[Fault::None], &[]),
    );
    let config = NotifierConfig {
        fetch_interval: std::time::Duration::from_secs(1),
        ..quiet_config()
    };
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let handle = h
        .notifier_over(queue, config, as_dispatchers(&webhook))
        .spawn();

    // The first cycle's lease fails; the next, a fetch interval later (tokio's clock is
    // paused and moves on once every task waits), delivers.
    within("the delivery after the failed cycle", webhook.wait_for(1)).await;
    handle.stop().await;
    assert_eq!(webhook.delivered_ids(), [id]);
    assert_eq!(h.message(id).await.status, MessageStatus::Sent);
}

/// Waits (on tokio's paused clock) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    within(what, async {
        while !done().await {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_supervised_notifier_whose_loop_panics_starts_again_and_delivers() {
    let h = Harness::with_ports(
        herald_application::DefaultMethod::Webhook,
        &[Method::Webhook],
        |ports, _| {
            // The loop panics once (a bug in it, say: here its first report of a cycle, just
            // after its first lease).
            ports.metrics = Arc::new(PanicsOnce::default());
        },
    );
    let (user, first) = one_message(&h).await;

    let handle = h.services.spawn_notifier("supervised");
    let health = handle.health();
    until("the panic seen as the notifier not running", async || {
        !health.is_running()
    })
    .await;
    until("the notifier running again", async || health.is_running()).await;
    // What the panicked loop had leased comes back once its lease expired; a new message
    // wakes the new notifier.
    past_the_lease(&h);
    let [second] = enqueue_for(&h, user, "ws-2").await[..] else {
        unreachable!("one message per event")
    };
    // Leasing oldest first, the lease that takes the second takes the expired first too.
    until("the new message leased by the new notifier", async || {
        h.message(second).await.status != MessageStatus::Pending
    })
    .await;
    handle.stop().await;

    for id in [first, second] {
        let sent = h.message(id).await;
        assert_eq!(sent.status, MessageStatus::Sent, "{sent:?}");
        assert_eq!(sent.attempt_count, 1);
    }
}

/// Metrics whose first report of a cycle panics: a panic in the notifier's own loop.
#[derive(Debug, Default)]
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl NotifierMetrics for PanicsOnce {
    fn cycle_ended(&self, _: herald_application::ports::CycleOutcome) {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("the notifier's loop panicked, as the test asked");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn readyz_is_503_while_the_supervised_notifier_starts_again_after_a_panic() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    let h = Harness::with_ports(
        herald_application::DefaultMethod::Webhook,
        &[Method::Webhook],
        |ports, store| {
            ports.metrics = Arc::new(PanicsOnce::default());
            let _ = store;
        },
    );
    let handle = h.services.spawn_notifier("supervised");
    let router = herald_http::router(
        herald_http::Api::new(h.services.clone(), Arc::default())
            .unwrap()
            .with_readiness(herald_http::Readiness::from_settings_and_notifier(
                h.settings.clone(),
                handle.health(),
            )),
    );
    let readyz = || async {
        let response = router
            .clone()
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(readyz().await.0, StatusCode::OK, "before the panic");

    let health = handle.health();
    until("the panic seen as the notifier not running", async || {
        !health.is_running()
    })
    .await;
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("notifier"), "{body}");
    handle.stop().await;
}
