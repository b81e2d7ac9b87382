//! The harness: every use case wired over `herald-memory`, plus a scriptable dispatcher.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    CallerKey, CancelOutcome, ClaimAnswers, Delivery, DeliveryError, Dispatcher, EnqueueOutcome,
    HeldLease, KeyClaim, LeaseRequest, MessageFilter, MessageQueue, NewMessage, PurgeOutcome,
    StoreError, StoredAnswer, ThrottleWindow, ThrottledLease, Wakeup as _,
};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_application::{
    Config, DefaultMethod, EventPorts, Events, Inbox, Notifier, NotifierConfig, NotifierPorts,
    Ports, Preferences, Purger, Services, Settings, Templates, Tokens, UserInput, Users,
};
use herald_domain::message::StatusChange;
use herald_domain::{Message, MessageId, Method, Role, User, UserId};
use herald_memory::{ManualClock, MemoryStore, MemoryWakeup};
use tokio::sync::{Notify, Semaphore};

pub const ACCESS_URL: &str = "https://herald.example.com";

/// A preference update turning these templates off (`true`) or on for every method.
pub fn every_method(
    templates: std::collections::BTreeMap<herald_domain::TemplateId, bool>,
) -> herald_application::PreferenceUpdate {
    herald_application::PreferenceUpdate {
        templates,
        ..Default::default()
    }
}

/// Every use case over one in-memory store, built by the composition root
/// ([`Services::build`]) as production builds them. The use cases are also fields, so a test
/// reads `h.events` rather than `h.services.events()`.
pub struct Harness {
    pub store: MemoryStore,
    pub wakeup: Arc<MemoryWakeup>,
    pub clock: ManualClock,
    pub services: Services,
    pub events: Events,
    pub settings: Settings,
    pub preferences: Preferences,
    pub templates: Templates,
    pub inbox: Inbox,
    pub users: Users,
    pub tokens: Tokens,
    pub purger: Purger,
}

impl Harness {
    /// Webhook configured and the default; inbox enabled.
    pub fn new() -> Self {
        Self::with_methods(DefaultMethod::Webhook, &[Method::Webhook, Method::Inbox])
    }

    /// Webhook only, so every event makes exactly one message.
    pub fn webhook_only() -> Self {
        Self::with_methods(DefaultMethod::Webhook, &[Method::Webhook])
    }

    /// A deployment whose dispatchers deliver by `methods` (the inbox among them enables it),
    /// with `default` as the default method.
    pub fn with_methods(default: DefaultMethod, methods: &[Method]) -> Self {
        Self::with_ports(default, methods, |_, _| {})
    }

    /// As [`Harness::with_methods`], with some ports replaced by `change` (a counting or gated
    /// wrapper over the harness's store, say).
    pub fn with_ports(
        default: DefaultMethod,
        methods: &[Method],
        change: impl FnOnce(&mut Ports, &MemoryStore),
    ) -> Self {
        let store = MemoryStore::new();
        let wakeup = Arc::new(MemoryWakeup::new());
        let clock = ManualClock::default();
        let mut ports = Ports::over(
            Arc::new(store.clone()),
            wakeup.clone(),
            Arc::new(herald_memory::MemoryInboxFeed::new()),
            Arc::new(clock.clone()),
            Arc::new(herald_application::ports::NoMetrics),
        );
        change(&mut ports, &store);
        let dispatchers = methods
            .iter()
            .map(|method| ScriptedDispatcher::ok(*method) as Arc<dyn Dispatcher>)
            .collect();
        let services = Services::build(ports, config(default), dispatchers);
        let users = services
            .users()
            .cloned()
            .unwrap_or_else(|| panic!("the harness keeps its own user directory"));
        Self {
            events: services.events().clone(),
            settings: services.settings().clone(),
            preferences: services.preferences().clone(),
            templates: services.templates().clone(),
            inbox: services.inbox().clone(),
            tokens: services.tokens().clone(),
            purger: services.purger().clone(),
            users,
            services,
            store,
            wakeup,
            clock,
        }
    }

    /// The services of another replica (or of this one restarted): built by the composition
    /// root over the harness's store, wake-ups and clock, delivering by webhook.
    pub fn replica(&self) -> Services {
        let ports = Ports::over(
            Arc::new(self.store.clone()),
            self.wakeup.clone(),
            Arc::new(herald_memory::MemoryInboxFeed::new()),
            Arc::new(self.clock.clone()),
            Arc::new(herald_application::ports::NoMetrics),
        );
        Services::build(
            ports,
            config(DefaultMethod::Webhook),
            vec![ScriptedDispatcher::ok(Method::Webhook) as Arc<dyn Dispatcher>],
        )
    }

    /// The ports enqueue drives, straight over the harness's store (no template cache).
    pub fn event_ports(&self) -> EventPorts {
        let shared = Arc::new(self.store.clone());
        EventPorts {
            directory: shared.clone(),
            preferences: shared.clone(),
            templates: shared.clone(),
            queue: shared,
            wakeup: self.wakeup.clone(),
            clock: Arc::new(self.clock.clone()),
        }
    }

    /// Enqueueing over `ports` (reads counted, say) with the services' delivery methods and
    /// renderer: the one place tests build [`Events`] other than [`Services::build`] does, for
    /// tests of how enqueue uses each port.
    pub fn events_over(&self, ports: EventPorts) -> Events {
        Events::new(
            ports,
            self.services.delivery().clone(),
            self.services.renderer().clone(),
        )
    }

    /// Syncs a user into the directory.
    pub async fn user(&self, username: &str, roles: &[Role]) -> User {
        let roles: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
        let input = UserInput::parse(
            &format!("{username}@example.com"),
            username,
            "",
            &roles,
            "active",
        )
        .unwrap();
        self.users.upsert(UserId::random(), input).await.unwrap()
    }

    /// The ports the services' notifier drives.
    pub fn notifier_ports(&self, queue: Arc<dyn MessageQueue>) -> NotifierPorts {
        NotifierPorts {
            queue,
            ..self.services.notifier_ports().clone()
        }
    }

    pub fn notifier(
        &self,
        config: NotifierConfig,
        dispatchers: Vec<Arc<dyn Dispatcher>>,
    ) -> Notifier {
        self.notifier_with_ports(self.services.notifier_ports().clone(), config, dispatchers)
    }

    pub fn notifier_over(
        &self,
        queue: Arc<dyn MessageQueue>,
        config: NotifierConfig,
        dispatchers: Vec<Arc<dyn Dispatcher>>,
    ) -> Notifier {
        self.notifier_with_ports(self.notifier_ports(queue), config, dispatchers)
    }

    /// A notifier over `ports` (the harness's, some replaced) with these dispatchers and
    /// settings, woken by the harness's enqueues. The one place tests build a notifier other
    /// than [`Services::notifier`] does, so they can script its dispatchers.
    pub fn notifier_with_ports(
        &self,
        ports: NotifierPorts,
        config: NotifierConfig,
        dispatchers: Vec<Arc<dyn Dispatcher>>,
    ) -> Notifier {
        Notifier::new(
            "test-notifier",
            config.validate().unwrap(),
            ports,
            dispatchers,
            self.services.renderer().clone(),
            self.wakeup.subscribe(),
        )
    }

    pub async fn message(&self, id: MessageId) -> Message {
        MessageQueue::get(&self.store, id).await.unwrap().unwrap()
    }
}

/// The services' configuration in tests: Herald's name, [`ACCESS_URL`], quiet notifier
/// settings, a fresh unsubscribe key.
pub fn config(default_method: DefaultMethod) -> Config {
    Config {
        app_name: "Herald".to_owned(),
        access_url: ACCESS_URL.to_owned(),
        app_url: None,
        default_method,
        notifier: quiet_config().validate().unwrap(),
        unsubscribe_key: UnsubscribeKey::generate().unwrap(),
        limits: herald_application::Limits::default(),
    }
}

/// A dispatcher that answers from a script (then `Ok`), records what it delivered, and can
/// hang until the dispatch timeout.
#[derive(Debug)]
pub struct ScriptedDispatcher {
    method: Method,
    script: Mutex<VecDeque<Result<(), DeliveryError>>>,
    delivered: Mutex<Vec<Delivery>>,
    hang: bool,
    arrived: Notify,
}

impl ScriptedDispatcher {
    pub fn ok(method: Method) -> Arc<Self> {
        Self::scripted(method, [])
    }

    pub fn scripted(
        method: Method,
        script: impl IntoIterator<Item = Result<(), DeliveryError>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            method,
            script: Mutex::new(script.into_iter().collect()),
            delivered: Mutex::new(Vec::new()),
            hang: false,
            arrived: Notify::new(),
        })
    }

    pub fn hanging(method: Method) -> Arc<Self> {
        Arc::new(Self {
            method,
            script: Mutex::new(VecDeque::new()),
            delivered: Mutex::new(Vec::new()),
            hang: true,
            arrived: Notify::new(),
        })
    }

    pub fn delivered(&self) -> Vec<Delivery> {
        self.delivered.lock().unwrap().clone()
    }

    pub fn delivered_ids(&self) -> Vec<MessageId> {
        self.delivered().iter().map(|d| d.message_id).collect()
    }

    /// Waits until at least `count` deliveries were attempted.
    pub async fn wait_for(&self, count: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.delivered.lock().unwrap().len() >= count {
                return;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl Dispatcher for ScriptedDispatcher {
    fn method(&self) -> Method {
        self.method
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        self.delivered.lock().unwrap().push(delivery.clone());
        self.arrived.notify_waiters();
        if self.hang {
            std::future::pending::<()>().await;
        }
        self.script.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

/// A queue that counts leases and holds write-backs (or inserts) at a gate until let through.
#[derive(Debug)]
pub struct GatedQueue {
    inner: MemoryStore,
    pub leases: AtomicUsize,
    /// The lease, counting from 1, that fails as if the store were down (0: none).
    pub failing_lease: AtomicUsize,
    /// Set: every insert fails as if the store were down (after being counted).
    pub failing_inserts: std::sync::atomic::AtomicBool,
    pub write_backs_waiting: AtomicUsize,
    pub inserts_waiting: AtomicUsize,
    /// Rows per insert, in the order the inserts were made.
    pub inserts: Mutex<Vec<usize>>,
    holds_inserts: bool,
    gate: Semaphore,
}

impl GatedQueue {
    /// Write-backs wait at the gate; inserts go through.
    pub fn closed(inner: MemoryStore) -> Arc<Self> {
        Self::holding(inner, false)
    }

    /// Inserts wait at the gate; write-backs go through.
    pub fn holding_inserts(inner: MemoryStore) -> Arc<Self> {
        Self::holding(inner, true)
    }

    fn holding(inner: MemoryStore, holds_inserts: bool) -> Arc<Self> {
        Arc::new(Self {
            inner,
            leases: AtomicUsize::new(0),
            failing_lease: AtomicUsize::new(0),
            failing_inserts: std::sync::atomic::AtomicBool::new(false),
            write_backs_waiting: AtomicUsize::new(0),
            inserts_waiting: AtomicUsize::new(0),
            inserts: Mutex::new(Vec::new()),
            holds_inserts,
            gate: Semaphore::new(0),
        })
    }

    /// Lets one held call through.
    pub fn release_one(&self) {
        self.gate.add_permits(1);
    }

    /// Lets everything through from now on.
    pub fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    pub fn leases(&self) -> usize {
        self.leases.load(Ordering::SeqCst)
    }

    async fn pass(&self, waiting: &AtomicUsize) {
        waiting.fetch_add(1, Ordering::SeqCst);
        // Each call uses a permit up, so `release_one` lets exactly one through.
        self.gate.acquire().await.unwrap().forget();
        waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl MessageQueue for GatedQueue {
    async fn enqueue(&self, messages: &[NewMessage]) -> Result<Vec<EnqueueOutcome>, StoreError> {
        if self.holds_inserts {
            self.pass(&self.inserts_waiting).await;
        }
        self.inserts.lock().unwrap().push(messages.len());
        if self.failing_inserts.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("insert refused by the test".into()));
        }
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
        let lease = self.leases.fetch_add(1, Ordering::SeqCst) + 1;
        if lease == self.failing_lease.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(format!(
                "lease {lease} refused by the test"
            )));
        }
        self.inner.lease(request).await
    }

    async fn lease_throttled(
        &self,
        request: LeaseRequest,
        throttle: &ThrottleWindow,
    ) -> Result<ThrottledLease, StoreError> {
        self.inner.lease_throttled(request, throttle).await
    }

    async fn mark_sent(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        if !self.holds_inserts {
            self.pass(&self.write_backs_waiting).await;
        }
        self.inner.mark_sent(changes).await
    }

    async fn mark_failed(&self, changes: &[StatusChange]) -> Result<u64, StoreError> {
        if !self.holds_inserts {
            self.pass(&self.write_backs_waiting).await;
        }
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
        self.inner.get(id).await
    }

    async fn list(&self, filter: &MessageFilter) -> Result<Vec<Message>, StoreError> {
        self.inner.list(filter).await
    }
}

/// Notifier settings for tests: short, valid, and with a huge fetch interval so only
/// wake-ups and explicit cycles move things (and a huge store timeout, so a gated store holds
/// the notifier for as long as a test keeps it closed).
pub fn quiet_config() -> NotifierConfig {
    NotifierConfig {
        max_send_attempts: 3,
        retry_interval: Duration::from_secs(60),
        fetch_interval: Duration::from_secs(3600),
        lease_period: Duration::from_secs(120),
        lease_count: 20,
        dispatch_timeout: Duration::from_secs(10),
        store_sync_interval: Duration::from_secs(3600),
        store_sync_buffer_size: 50,
        max_lease_expiries: 3,
        store_timeout: Duration::from_secs(3600),
        ..NotifierConfig::default()
    }
}

/// Waits until every other task is idle (waiting on a lock, a channel, a gate or a timer).
/// Needs the test's tokio time paused (`start_paused = true`): a paused clock moves, and so
/// this tick's timer fires, only once no task can run; tokio's clock is then one tick later.
pub async fn until_idle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}
