//! The notifier (DESIGN §5): leases messages, dispatches them concurrently, and writes the
//! results back in bulk. One runs per replica; several share the queue safely.

mod decision;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::message::StatusChange;
use herald_domain::{
    Completion, Message, MessageStatus, Method, RetryPolicy, Template, TemplateId,
};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::{NotifierConfig, NotifierSettings};
use crate::ports::{
    Clock, CycleOutcome, DeliveryError, DispatchOutcome, Dispatcher, LeaseRequest, MessageQueue,
    NoMetrics, NotifierMetrics, PreferenceStore, SettingsStore, StoreError, TemplateStore,
    UserDirectory, Wake, WakeupListener,
};
use crate::rendering::Renderer;

pub use decision::{Decision, Facts, REASON_DISABLED, REASON_RECIPIENT_DELETED, decide};

/// The template label of metrics about messages whose template no longer exists.
pub const UNKNOWN_TEMPLATE: &str = "unknown";

/// While the pause switch is on, how often at most an enqueue's wake-up makes the notifier read
/// the switch again. Every enqueue wakes the notifiers; a paused one would otherwise read the
/// switch once per enqueue. Turning the switch off wakes them with [`Wake::Resumed`], which a
/// paused notifier answers at once.
pub const PAUSED_RECHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// The ports a notifier drives.
#[derive(Debug, Clone)]
pub struct NotifierPorts {
    pub queue: Arc<dyn MessageQueue>,
    /// The process's shared template cache (`CachedTemplates`), as every use case reads.
    pub templates: Arc<dyn TemplateStore>,
    pub directory: Arc<dyn UserDirectory>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub clock: Arc<dyn Clock>,
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// The pause switch is on: nothing was leased.
    Paused,
    /// This many messages were leased and dispatched (0: nothing to do).
    Dispatched(usize),
}

/// Results waiting to be written back.
#[derive(Debug, Default)]
struct ResultBuffer {
    sent: Vec<StatusChange>,
    failed: Vec<StatusChange>,
}

impl ResultBuffer {
    fn len(&self) -> usize {
        self.sent.len() + self.failed.len()
    }

    fn push(&mut self, change: StatusChange) {
        if change.status == MessageStatus::Sent {
            self.sent.push(change);
        } else {
            self.failed.push(change);
        }
    }
}

/// What a flush wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flushed {
    pub sent: u64,
    pub failed: u64,
    /// Results dropped because the write-back failed; their rows stay leased and are
    /// delivered again after the lease expires.
    pub dropped: usize,
}

/// A leased batch and the time it was leased at.
type Leased = (Vec<Message>, DateTime<Utc>);

/// What leasing needs, apart from the rest of the notifier, so the next batch can be leased on a
/// task of its own while this one is prepared and dispatched.
#[derive(Debug)]
struct Leaser {
    queue: Arc<dyn MessageQueue>,
    settings: Arc<dyn SettingsStore>,
    clock: Arc<dyn Clock>,
    lease_period: chrono::Duration,
    count: usize,
    max_attempts: u32,
    max_lease_expiries: u32,
}

impl Leaser {
    /// Leases a batch unless the pause switch is on (`None`).
    async fn lease(&self) -> Result<Option<Leased>, StoreError> {
        if self.settings.notifier_paused().await? {
            return Ok(None);
        }
        let now = self.clock.now();
        let leased = self
            .queue
            .lease(LeaseRequest {
                now,
                lease_period: self.lease_period,
                count: self.count,
                max_attempts: self.max_attempts,
                max_lease_expiries: self.max_lease_expiries,
            })
            .await?;
        Ok(Some((leased, now)))
    }
}

/// One replica's notifier.
#[derive(Debug)]
pub struct Notifier {
    name: String,
    config: NotifierConfig,
    policy: RetryPolicy,
    ports: NotifierPorts,
    dispatchers: HashMap<Method, Arc<dyn Dispatcher>>,
    renderer: Renderer,
    wakeup: WakeupListener,
    buffer: ResultBuffer,
    metrics: Arc<dyn NotifierMetrics>,
    leaser: Arc<Leaser>,
    /// A batch leased while the previous one was being prepared and dispatched, with its lease
    /// time: the next cycle dispatches it without waiting for the database.
    ahead: Option<Leased>,
    /// The write-back running in the background, if any. At most one runs at a time: the next
    /// write-back waits for it (backpressure).
    writing: Option<JoinHandle<Flushed>>,
    /// Set on stop: no more leasing ahead.
    stopping: bool,
}

impl Notifier {
    /// A notifier with checked `settings`. Production builds it through
    /// [`crate::Services::notifier`].
    pub fn new(
        name: impl Into<String>,
        settings: NotifierSettings,
        ports: NotifierPorts,
        dispatchers: Vec<Arc<dyn Dispatcher>>,
        renderer: Renderer,
        wakeup: WakeupListener,
    ) -> Self {
        let config = settings.config().clone();
        let leaser = Arc::new(Leaser {
            queue: Arc::clone(&ports.queue),
            settings: Arc::clone(&ports.settings),
            clock: Arc::clone(&ports.clock),
            lease_period: settings.lease_period(),
            count: config.lease_count,
            max_attempts: config.max_send_attempts,
            max_lease_expiries: config.max_lease_expiries,
        });
        Self {
            name: name.into(),
            policy: settings.retry_policy(),
            config,
            ports,
            dispatchers: dispatchers.into_iter().map(|d| (d.method(), d)).collect(),
            renderer,
            wakeup,
            buffer: ResultBuffer::default(),
            metrics: Arc::new(NoMetrics),
            leaser,
            ahead: None,
            writing: None,
            stopping: false,
        }
    }

    /// Reports to `metrics` (default: nowhere).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn NotifierMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Results buffered and not yet written back.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// One cycle: unless paused, lease up to `lease-count` messages, dispatch them
    /// concurrently (each under the dispatch timeout), and buffer their results. The buffer
    /// is written back whenever it fills (in the background, one write-back at a time), and a
    /// full buffer stops leasing (backpressure).
    ///
    /// When the batch came back full and the buffer has room for its results, the next batch
    /// is leased (on a task of its own) while this one is being prepared and dispatched, so the
    /// database and the receivers work at the same time; the next cycle dispatches it (even if
    /// the pause switch was turned on in between: it was leased before).
    ///
    /// # Errors
    /// [`StoreError`] when the pause flag or the lease could not be read; nothing was leased.
    pub async fn run_cycle(&mut self) -> Result<Cycle, StoreError> {
        let (leased, now) = match self.ahead.take() {
            Some(batch) => batch,
            None => match self.leaser.lease().await? {
                Some(batch) => batch,
                None => return Ok(Cycle::Paused),
            },
        };
        let count = leased.len();
        if count == 0 {
            return Ok(Cycle::Dispatched(0));
        }
        tracing::debug!(notifier = %self.name, count, "notifications: leased messages");

        let leasing_ahead = self.lease_ahead(count);
        let prepared = self.prepare(leased, now).await;
        let mut in_flight = JoinSet::new();
        let mut by_task = HashMap::new();
        for (message, template, next) in prepared {
            match next {
                Next::Complete(completion) => self.record(&message, &template, &completion).await,
                Next::Dispatch(dispatcher, delivery) => {
                    let timeout = self.config.dispatch_timeout;
                    let metrics = Arc::clone(&self.metrics);
                    let method = message.method;
                    metrics.observe_queued_seconds(method, message.queued_seconds.max(0.0));
                    metrics.dispatch_started(method, &template);
                    let handle = in_flight.spawn(async move {
                        let started = Instant::now();
                        let result =
                            match tokio::time::timeout(timeout, dispatcher.dispatch(&delivery))
                                .await
                            {
                                Ok(result) => result,
                                Err(_) => Err(DeliveryError::retryable(format!(
                                    "dispatch timed out after {timeout:?}"
                                ))),
                            };
                        metrics.observe_send_seconds(method, started.elapsed().as_secs_f64());
                        result
                    });
                    by_task.insert(handle.id(), (message, template));
                }
            }
        }
        if let Some(leasing) = leasing_ahead {
            self.ahead = match leasing.await {
                Ok(Ok(Some((leased, now)))) if !leased.is_empty() => Some((leased, now)),
                Ok(Ok(_)) => None,
                Ok(Err(err)) => {
                    tracing::warn!(notifier = %self.name, error = %err, "notifications: could not lease messages");
                    None
                }
                Err(err) => {
                    tracing::error!(notifier = %self.name, error = %err, "notifications: the lease task ended abnormally; what it leased comes back when the lease expires");
                    None
                }
            };
        }
        while let Some(joined) = in_flight.join_next_with_id().await {
            let (task, result) = match joined {
                Ok((task, result)) => (task, result),
                Err(err) => (
                    err.id(),
                    Err(DeliveryError::retryable(format!(
                        "dispatcher crashed: {err}"
                    ))),
                ),
            };
            let Some((message, template)) = by_task.remove(&task) else {
                continue;
            };
            self.metrics.dispatch_finished(message.method, &template);
            let completion = match result {
                Ok(()) => Completion::Sent,
                Err(err) => {
                    tracing::warn!(
                        notifier = %self.name,
                        message_id = %message.id,
                        method = %message.method,
                        retryable = err.retryable,
                        reason = %err.reason,
                        "notifications: dispatch failed"
                    );
                    Completion::Failed {
                        reason: err.reason,
                        retryable: err.retryable,
                        retry_after: err.retry_after,
                    }
                }
            };
            self.record(&message, &template, &completion).await;
        }
        Ok(Cycle::Dispatched(count))
    }

    /// Starts leasing the next batch on a task of its own while `dispatching` messages are
    /// prepared and dispatched, when their batch was full (more are likely waiting) and the
    /// buffer can take their results without filling.
    fn lease_ahead(
        &self,
        dispatching: usize,
    ) -> Option<JoinHandle<Result<Option<Leased>, StoreError>>> {
        if self.stopping
            || dispatching < self.config.lease_count
            || self.buffer.len() + dispatching > self.config.store_sync_buffer_size
        {
            return None;
        }
        let leaser = Arc::clone(&self.leaser);
        Some(tokio::spawn(async move { leaser.lease().await }))
    }

    /// Writes the buffered results back (one statement for the sent, one for the rest) and
    /// waits for it, after the write-back running in the background, if any; reports both.
    /// On failure the results are dropped: their rows stay leased and come back when the
    /// lease expires (at least once, never lost).
    pub async fn flush(&mut self) -> Flushed {
        let earlier = self.finish_writing().await;
        let changes = std::mem::take(&mut self.buffer);
        let latest = write_back(&self.ports.queue, &*self.metrics, &self.name, changes).await;
        self.metrics.pending_result_updates(self.buffer.len());
        Flushed {
            sent: earlier.sent + latest.sent,
            failed: earlier.failed + latest.failed,
            dropped: earlier.dropped + latest.dropped,
        }
    }

    /// Starts writing the buffer back in the background, after waiting for the write-back
    /// already running (so at most one runs, and a slow database holds the notifier here).
    async fn flush_in_background(&mut self) {
        self.finish_writing().await;
        let changes = std::mem::take(&mut self.buffer);
        let (queue, metrics, name) = (
            Arc::clone(&self.ports.queue),
            Arc::clone(&self.metrics),
            self.name.clone(),
        );
        self.writing = Some(tokio::spawn(async move {
            write_back(&queue, &*metrics, &name, changes).await
        }));
        self.metrics.pending_result_updates(self.buffer.len());
    }

    /// Waits for the background write-back, if one runs.
    async fn finish_writing(&mut self) -> Flushed {
        match self.writing.take() {
            Some(task) => task.await.unwrap_or_else(|err| {
                tracing::error!(notifier = %self.name, error = %err, "notifications: the write-back task ended abnormally; its messages will be retried when their lease expires");
                Flushed::default()
            }),
            None => Flushed::default(),
        }
    }

    /// Runs until stopped: a cycle, then — unless the lease came back full — a wait for a
    /// wake-up, the fetch interval or the stop signal, flushing every store-sync interval.
    /// On stop it finishes the cycle in flight and flushes.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(notifier = %self.name, "notifications: notifier started");
        let sync_every = self.config.store_sync_interval;
        let mut last_flush = Instant::now();
        // When the last cycle found the switch on: a wake-up before then waits until then.
        let mut paused_until: Option<Instant> = None;
        'run: while !*stop.borrow() {
            let cycle = self.run_cycle().await;
            self.metrics.cycle_ended(match cycle {
                Ok(Cycle::Dispatched(_)) => CycleOutcome::Dispatched,
                Ok(Cycle::Paused) => CycleOutcome::Paused,
                Err(_) => CycleOutcome::Failed,
            });
            let full = match cycle {
                Ok(Cycle::Dispatched(count)) => {
                    paused_until = None;
                    count >= self.config.lease_count
                }
                Ok(Cycle::Paused) => {
                    paused_until = Some(Instant::now() + PAUSED_RECHECK_INTERVAL);
                    false
                }
                Err(err) => {
                    tracing::warn!(notifier = %self.name, error = %err, "notifications: could not lease messages");
                    false
                }
            };
            if last_flush.elapsed() >= sync_every {
                self.flush_in_background().await;
                last_flush = Instant::now();
            }
            if full {
                continue;
            }
            let poll = tokio::time::sleep(self.config.fetch_interval);
            tokio::pin!(poll);
            // Paused and woken: the next cycle waits for `paused_until`.
            let mut woken_while_paused = false;
            loop {
                let next_flush = last_flush + sync_every;
                tokio::select! {
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break 'run;
                        }
                    }
                    wake = self.wakeup.wait() => match (paused_until, wake) {
                        (Some(_), Wake::Queued) => woken_while_paused = true,
                        _ => break,
                    },
                    () = tokio::time::sleep_until(paused_until.unwrap_or_else(Instant::now)),
                        if woken_while_paused => break,
                    () = &mut poll => break,
                    () = tokio::time::sleep_until(next_flush), if self.buffer.len() > 0 => {
                        self.flush().await;
                        last_flush = Instant::now();
                    }
                }
            }
        }
        // A batch leased ahead is dispatched rather than left to wait for its lease to expire.
        self.stopping = true;
        if self.ahead.is_some()
            && let Err(err) = self.run_cycle().await
        {
            tracing::warn!(notifier = %self.name, error = %err, "notifications: could not dispatch the last batch");
        }
        let flushed = self.flush().await;
        tracing::info!(
            notifier = %self.name,
            sent = flushed.sent,
            failed = flushed.failed,
            "notifications: notifier stopped"
        );
    }

    /// Starts [`Notifier::run`] on the runtime, unsupervised: a panic of its loop ends it
    /// (production supervises, [`NotifierHandle::supervise`]).
    pub fn spawn(self) -> NotifierHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        NotifierHandle {
            stop,
            task,
            health: NotifierHealth::new(),
        }
    }

    /// Buffers a result, writing the buffer back first when it is full.
    async fn record(&mut self, message: &Message, template: &str, completion: &Completion) {
        let now = self.ports.clock.now();
        match message.complete(completion, now, self.policy) {
            Ok(change) => {
                if let Some(outcome) = DispatchOutcome::from_status(change.status) {
                    self.metrics
                        .dispatch_attempt(message.method, template, outcome);
                }
                if change.status == MessageStatus::TemporaryFailure
                    && change.next_retry_after.is_some()
                {
                    self.metrics.retry_scheduled(message.method, template);
                }
                self.buffer.push(change);
                self.metrics.pending_result_updates(self.buffer.len());
            }
            Err(err) => {
                tracing::error!(notifier = %self.name, error = %err, "notifications: dispatch result refused by the state machine");
                return;
            }
        }
        if self.buffer.len() >= self.config.store_sync_buffer_size {
            self.flush_in_background().await;
        }
    }

    /// Reads what the leased messages' decisions need (recipients, preferences, templates) and
    /// decides for each ([`decide`]). A message whose facts could not be read is left out: it
    /// stays leased and comes back when the lease expires, without an attempt counted.
    async fn prepare(
        &mut self,
        leased: Vec<Message>,
        now: DateTime<Utc>,
    ) -> Vec<(Message, String, Next)> {
        let recipients: Vec<_> = leased
            .iter()
            .map(|m| m.recipient)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let pairs: Vec<_> = leased
            .iter()
            .map(|m| (m.recipient, m.template_id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let (users, stored, templates) = tokio::join!(
            self.ports.directory.get_many(&recipients),
            self.ports.preferences.lookup(&pairs),
            self.templates_of(&leased)
        );
        let live: HashSet<_> = match users {
            Ok(users) => users
                .into_iter()
                .filter(|u| !u.deleted)
                .map(|u| u.id)
                .collect(),
            Err(err) => {
                tracing::warn!(error = %err, "notifications: could not read recipients");
                return Vec::new();
            }
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(error = %err, "notifications: could not read preferences");
                return Vec::new();
            }
        };
        let templates = match templates {
            Ok(templates) => templates,
            Err(err) => {
                tracing::warn!(error = %err, "notifications: could not read templates");
                return Vec::new();
            }
        };

        let mut prepared = Vec::with_capacity(leased.len());
        for message in leased {
            let template = templates.get(&message.template_id);
            let facts = Facts {
                template,
                recipient_live: live.contains(&message.recipient),
                stored_disabled: stored
                    .get(&(message.recipient, message.template_id))
                    .copied(),
                method_configured: self.dispatchers.contains_key(&message.method),
            };
            let next = match decide(&message, &facts, &self.renderer, now) {
                Decision::Complete(completion) => Next::Complete(completion),
                Decision::Dispatch(delivery) => match self.dispatchers.get(&message.method) {
                    Some(dispatcher) => Next::Dispatch(Arc::clone(dispatcher), delivery),
                    None => continue,
                },
            };
            let name = template.map_or(UNKNOWN_TEMPLATE, |t| t.name.as_str());
            prepared.push((message, name.to_owned(), next));
        }
        prepared
    }

    /// The templates the messages name, from the shared template cache (`None` for one that
    /// does not exist).
    async fn templates_of(
        &self,
        messages: &[Message],
    ) -> Result<HashMap<TemplateId, Template>, StoreError> {
        let ids: HashSet<TemplateId> = messages.iter().map(|m| m.template_id).collect();
        let mut templates = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(template) = self.ports.templates.get(id).await? {
                templates.insert(id, template);
            }
        }
        Ok(templates)
    }
}

/// Writes `buffer` back: one statement for the sent, one for the rest.
async fn write_back(
    queue: &Arc<dyn MessageQueue>,
    metrics: &dyn NotifierMetrics,
    notifier: &str,
    buffer: ResultBuffer,
) -> Flushed {
    let mut flushed = Flushed::default();
    for (changes, all_sent) in [(buffer.sent, true), (buffer.failed, false)] {
        if changes.is_empty() {
            continue;
        }
        let result = if all_sent {
            queue.mark_sent(&changes).await
        } else {
            queue.mark_failed(&changes).await
        };
        match result {
            Ok(written) => {
                if all_sent {
                    flushed.sent = written;
                } else {
                    flushed.failed = written;
                }
                metrics.synced_result_updates(written);
            }
            Err(err) => {
                flushed.dropped += changes.len();
                tracing::warn!(
                    notifier = %notifier,
                    error = %err,
                    results = changes.len(),
                    "notifications: could not write results back; the messages will be retried when their lease expires"
                );
            }
        }
    }
    flushed
}

enum Next {
    Complete(Completion),
    Dispatch(Arc<dyn Dispatcher>, Box<crate::ports::Delivery>),
}

/// How long a supervised notifier waits before starting again after a panic.
pub const RESTART_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a supervised notifier is running; clones share the answer (for `/readyz`).
#[derive(Debug, Clone)]
pub struct NotifierHealth(Arc<std::sync::atomic::AtomicBool>);

impl NotifierHealth {
    fn new() -> Self {
        Self(Arc::new(std::sync::atomic::AtomicBool::new(true)))
    }

    /// `false` from a panic of the notifier's loop until it runs again.
    pub fn is_running(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set(&self, running: bool) {
        self.0.store(running, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running notifier.
#[derive(Debug)]
pub struct NotifierHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    health: NotifierHealth,
}

impl NotifierHandle {
    /// Runs the notifiers `make` builds, one at a time, until stopped: when one's loop panics
    /// (a bug, or a port that panicked), the panic is logged, [`NotifierHealth`] reads not
    /// running, and a new one starts after [`RESTART_DELAY`]. What the panicked one had leased
    /// comes back when its lease expires.
    pub fn supervise(make: impl Fn() -> Notifier + Send + 'static) -> Self {
        let (stop, stopped) = watch::channel(false);
        let health = NotifierHealth::new();
        let task = tokio::spawn({
            let health = health.clone();
            async move {
                loop {
                    let notifier = make();
                    let name = notifier.name().to_owned();
                    match tokio::spawn(notifier.run(stopped.clone())).await {
                        Ok(()) => break,
                        Err(err) if err.is_panic() => {
                            health.set(false);
                            tracing::error!(notifier = %name, error = %err, "notifications: the notifier panicked; starting it again");
                        }
                        Err(err) => {
                            tracing::error!(notifier = %name, error = %err, "notifications: notifier task ended abnormally");
                            break;
                        }
                    }
                    let mut stopping = stopped.clone();
                    tokio::select! {
                        () = tokio::time::sleep(RESTART_DELAY) => {}
                        _ = stopping.wait_for(|stop| *stop) => break,
                    }
                    health.set(true);
                }
            }
        });
        Self { stop, task, health }
    }

    /// Whether the notifier runs (shared with its clones).
    pub fn health(&self) -> NotifierHealth {
        self.health.clone()
    }

    /// Stops leasing, lets the dispatches in flight finish (each bounded by the dispatch
    /// timeout), writes every result back, and returns once the notifier has stopped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "notifications: notifier task ended abnormally");
        }
    }
}
